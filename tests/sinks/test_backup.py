"""Backup and restore: a restored copy verifies its audit log and serves the same documents."""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, select, text

from renraku.cli import main
from renraku.config import load_settings
from renraku.context import open_context
from renraku.pipeline.run import Batch, Received
from renraku.review import create_app
from renraku.review.auth import add_user
from renraku.samples.generator import invent_set, render_pdf
from renraku.sinks import models as m
from renraku.sinks.queue import Actor, correct_field
from tests.review.conftest import PEOPLE, login
from tests.servers import pg_bin
from tests.sinks.test_db import postgres_url  # noqa: F401 (a fixture)

INBOX = Path(__file__).resolve().parents[2] / "samples" / "inbox"


def _a_days_work() -> None:
    """Documents read, people added, a correction in the audit log."""
    with open_context() as ctx:
        with Batch(ctx) as batch:
            batch.receive(Received(render_pdf(invent_set(random.Random(7))), "set.pdf", "set.pdf"))
            batch.receive(Received((INBOX / "FAX_20250908_101500.pdf").read_bytes(), "fax.pdf", "fax.pdf", "scan"))
        with ctx.sessions.begin() as s:
            for name, (role, password) in PEOPLE.items():
                add_user(s, name, password, role)
            field = s.scalars(select(m.Field).where(m.Field.path == "facility_name")).first()
            correct_field(s, field.id, field.value + " (確認済み)", Actor("tanaka", "reviewer"))


@pytest.fixture
def working_home(home: Path) -> Path:
    _a_days_work()
    return home


def _served_originals(ctx_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[int, str]:
    """sha256 of every original as the review desk hands it to a supervisor, and page pictures served."""
    monkeypatch.setenv("RENRAKU_HOME", str(ctx_home))
    with open_context() as ctx:
        app = create_app(ctx)
        app.config["TESTING"] = True
        with ctx.sessions() as s:
            documents = s.scalars(select(m.Document.id)).all()
            pages = s.scalars(select(m.Page.id)).all()
        client = app.test_client()
        login(client, "suzuki")
        served = {}
        for doc_id in documents:
            response = client.get(f"/documents/{doc_id}/original")
            assert response.status_code == 200
            served[doc_id] = hashlib.sha256(response.data).hexdigest()
        assert pages and all(client.get(f"/pages/{p}/picture").status_code == 200 for p in pages)
    return served


def test_a_restored_copy_verifies_its_audit_log_and_serves_the_same_documents(
        working_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    backup_dir = tmp_path / "backup"
    assert main(["backup", "--out", str(backup_dir)]) == 0
    assert "database: sqlite" in capsys.readouterr().out
    assert (backup_dir / "renraku.db").stat().st_mode & 0o777 == 0o600
    before = _served_originals(working_home, monkeypatch)

    restored = tmp_path / "restored"
    monkeypatch.setenv("RENRAKU_HOME", str(restored))
    assert main(["restore", str(backup_dir)]) == 0
    assert f"{len(before)} documents" in capsys.readouterr().out
    assert main(["audit", "verify"]) == 0
    assert "chain intact" in capsys.readouterr().out
    after = _served_originals(restored, monkeypatch)
    assert after == before and len(after) >= 2
    with open_context(load_settings()) as ctx, ctx.sessions() as s:
        assert s.scalars(select(m.Field).where(m.Field.method == "human")).one().value.endswith(" (確認済み)")


def test_a_damaged_backup_or_an_occupied_home_is_refused(
        working_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    backup_dir = tmp_path / "backup"
    assert main(["backup", "--out", str(backup_dir)]) == 0
    assert main(["backup", "--out", str(backup_dir)]) == 2  # never written over
    assert main(["restore", str(backup_dir)]) == 2  # the home in use already has a database
    assert "すでにデータベース" in capsys.readouterr().err

    original = next(p for p in (backup_dir / "documents").rglob("*") if p.is_file())
    original.write_bytes(original.read_bytes() + b"\0")
    monkeypatch.setenv("RENRAKU_HOME", str(tmp_path / "restored"))
    assert main(["restore", str(backup_dir)]) == 5
    assert "破損" in capsys.readouterr().err


def test_with_postgresql_pg_dump_and_pg_restore_then_restore_as_the_admin_guide_says(
        home: Path, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("pg_dump is not installed (apt install postgresql)")
    monkeypatch.setenv("RENRAKU_DB_URL", postgres_url)
    _a_days_work()
    backup_dir, dump = tmp_path / "backup", tmp_path / "renraku.pgdump"
    libpq = make_url(postgres_url).set(drivername="postgresql")
    subprocess.run([str(bindir / "pg_dump"), "-Fc", "-f", str(dump),
                    libpq.render_as_string(hide_password=False)], check=True)
    assert main(["backup", "--out", str(backup_dir)]) == 0
    assert "postgresql: not included" in capsys.readouterr().out
    before = _served_originals(home, monkeypatch)

    with create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("CREATE DATABASE restored"))
    restored_db = libpq.set(database="restored")
    subprocess.run([str(bindir / "pg_restore"), "--no-owner", "-d",
                    restored_db.render_as_string(hide_password=False), str(dump)], check=True)
    monkeypatch.setenv("RENRAKU_DB_URL", make_url(postgres_url).set(database="restored").render_as_string(False))
    monkeypatch.setenv("RENRAKU_HOME", str(tmp_path / "restored"))
    assert main(["restore", str(backup_dir)]) == 0
    assert main(["audit", "verify"]) == 0
    assert _served_originals(tmp_path / "restored", monkeypatch) == before
