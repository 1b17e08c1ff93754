"""The database: SQLite in RENRAKU_HOME by default (WAL), PostgreSQL by URL; migrated by Alembic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Executable, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


PRIVATE = 0o600  # the database holds the same personal data as the document store


def _private_sqlite_files(url: str) -> None:
    """Create the database file 0600 before SQLite does (its -wal and -shm take the file's mode),
    and make an older world-readable one and its companions private."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE))
    for companion in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if companion.exists():
            os.chmod(companion, PRIVATE)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _private_sqlite_files(url)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head", lock_file: Path | None = None) -> None:
    """Bring the schema to `revision`; safe to call at every start, from several processes at once.

    Two processes starting together on a new database must not both create it: they take turns
    (a lock file beside the data for SQLite, an advisory lock on PostgreSQL).
    """
    import fcntl

    fd = None
    if lock_file is not None:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(7262716) "))  # renraku's migration lock
                try:
                    cfg = alembic_config(engine)
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
                    conn.commit()
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(7262716)"))
                    conn.commit()
        else:
            command.upgrade(alembic_config(engine), revision)
    finally:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def first_column_chunks(session: Session, statement: Executable, chunk: int, *,
                        text_as_bytes: bool = False) -> Iterator[list[Any]]:
    """The first value of every row, `chunk` rows at a time, from the driver's own cursor in the
    session's transaction (close the iterator to stop early: the cursor is then closed).

    For a bulk read: SQLAlchemy's Row objects cost 60-80 ms per 50,000 rows, and a whole result held
    at once is one more copy of it. `text_as_bytes` (PostgreSQL): text comes in binary and stays the
    bytes the server sent, in the connection's encoding, not decoded into str; the rows come in chunks
    as the server sends them (libpq >= 17), so that they are used while the server still works."""
    connection = session.connection()
    compiled = statement.compile(connection)
    params = compiled.construct_params()
    query = compiled.string
    bound = [params[k] for k in compiled.positiontup or ()] if compiled.positional else params
    cursor = connection.connection.cursor()
    try:
        if text_as_bytes:
            from psycopg import capabilities
            from psycopg.types.string import ByteaBinaryLoader

            cursor.adapters.register_loader("text", ByteaBinaryLoader)
            if capabilities.has_stream_chunked():
                with closing(cursor.stream(query, bound, binary=True, size=chunk)) as rows:  # stopped: cancelled
                    while values := [value for (value,) in islice(rows, chunk)]:
                        yield values
                return
            cursor.execute(query, bound, binary=True)
        else:
            cursor.execute(query, bound)
        while rows := cursor.fetchmany(chunk):
            yield [value for (value,) in rows]
    finally:
        cursor.close()
