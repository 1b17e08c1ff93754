"""The schema is migrated (not created ad hoc), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from renraku.sinks import models as m
from renraku.sinks.db import make_engine, migrate, session_factory
from tests.servers import pg_bin, private_postgres


def _roundtrip(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    migrate(engine)  # a second start changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    assert diff == [], "models and migrations disagree: add a migration"
    assert {"documents", "pages", "sheets", "fields", "applications", "findings", "batches",
            "receipts", "alembic_version"} <= set(inspect(engine).get_table_names())
    sessions = session_factory(engine)
    with sessions.begin() as s:
        batch = m.Batch(kind="process")
        doc = m.Document(sha256="a" * 64, size=3, media_type="application/pdf", file_name="申込書.pdf",
                         channel="upload", status="read")
        sheet = m.Sheet(page=m.Page(document=doc, number=1, kind="text", width_pt=595.3, height_pt=841.9, dpi=200),
                        form_id="facility_pledge", method="text_layer", status="ready")
        sheet.fields.append(m.Field(path="seal", kind="seal", value=True, confidence=1.0, needs_review=False,
                                    method="text_layer", x0=1, y0=2, x1=3, y1=4))
        sheet.fields.append(m.Field(path="facility_name", kind="text", value="さくら在宅クリニック",
                                    confidence=1.0, needs_review=False, method="text_layer", x0=1, y0=2, x1=3, y1=4))
        s.add_all([batch, sheet])
    with sessions() as s:
        got = s.query(m.Sheet).one()
        assert {f.path: f.value for f in got.fields} == {"seal": True, "facility_name": "さくら在宅クリニック"}
        assert got.page.document.file_name == "申込書.pdf"
    engine.dispose()


def test_sqlite_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'renraku.db'}"
    _roundtrip(url)
    with make_engine(url).connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_the_sqlite_database_and_its_journal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "renraku.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)  # as an older version left it
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with session_factory(engine).begin() as s:
        s.add(m.Batch(kind="process"))
        with engine.connect() as conn:  # a second connection keeps the -wal and -shm files open
            conn.execute(text("SELECT 1"))
            modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.glob("renraku.db*")}
    engine.dispose()
    assert {"renraku.db", "renraku.db-wal", "renraku.db-shm"} <= set(modes)
    assert set(modes.values()) == {"0o600"}, modes
    fresh = tmp_path / "new" / "renraku.db"
    make_engine(f"sqlite:///{fresh}").dispose()
    assert oct(fresh.stat().st_mode & 0o777) == "0o600"


@pytest.fixture
def postgres_url():
    """A private PostgreSQL cluster in a temp folder (never the system service)."""
    if os.environ.get("RENRAKU_TEST_PG_URL"):
        yield os.environ["RENRAKU_TEST_PG_URL"]
        return
    if pg_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt install postgresql)")
    with private_postgres() as url:
        yield url


def test_postgresql_by_url(postgres_url: str) -> None:
    _roundtrip(postgres_url)
