"""Who takes which item when intake passes run at the same time: one interface, two implementations.

SQLite lives on one machine: `FileClaims` holds a lock file in RENRAKU_HOME for a whole pass, so
passes take turns and every claim inside a pass is granted. PostgreSQL can be shared by workers on
several machines: `PgClaims` lets passes run side by side and claims each message, file, content
and batch with a session-level advisory lock (`pg_try_advisory_lock`) on one connection kept for
the pass. Advisory locks rather than claim rows with SELECT … FOR UPDATE SKIP LOCKED: the things
claimed (an IMAP UID, a file in the scan folder) have no row before they are recorded, and a row
lock lasts only as long as its transaction, while recording an item commits several; a session
lock outlives those commits, needs no table, and goes when the connection goes, so a worker that
is killed (or whose machine dies) releases everything it held.

A claim is a promise not to take an item another worker holds, nothing more: whoever gets a claim
must still look whether the item was finished meanwhile (a receipt, a moved file).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)


def lock_id(key: str) -> int:
    """A claim's key as PostgreSQL's 64-bit advisory lock number."""
    return int.from_bytes(hashlib.blake2b(f"renraku:{key}".encode(), digest_size=8).digest(), "big", signed=True)


class FileClaims:
    """One machine: passes take turns (a lock file held for the pass); inside a pass all is granted."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @contextmanager
    def pass_lock(self, wait: bool) -> Iterator[bool]:
        """True while this process holds the intake lock; False if another holds it and we do not wait."""
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / "intake.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def take(self, keys: Iterable[str]) -> set[str]:
        """The keys this worker now holds; those another worker holds are left to it."""
        return set(keys)

    def wait(self, key: str) -> None:
        """Hold `key`, waiting while another worker holds it. Call it holding no other waited-for key."""

    def release(self, keys: Iterable[str]) -> None:
        pass

    @contextmanager
    def turn(self, key: str) -> Iterator[None]:
        """Held while inside: workers take turns at `key` (waiting, see `wait`)."""
        self.wait(key)
        try:
            yield
        finally:
            self.release([key])

    @contextmanager
    def sole(self, name: str) -> Iterator[bool]:
        """True when this worker may do `name` (e.g. send the outbox) with nobody else doing it now."""
        yield True

    def ended(self, key: str) -> bool | None:
        """Whether the worker that held `key` is gone; None when these claims cannot tell."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> FileClaims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PgClaims(FileClaims):
    """Several machines, one PostgreSQL: advisory locks held on this object's own connection."""

    def __init__(self, engine: Engine) -> None:
        self.conn: Connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.held: Counter[str] = Counter()  # advisory locks nest per session: count to release right

    @contextmanager
    def pass_lock(self, wait: bool) -> Iterator[bool]:
        yield True  # passes run side by side; the items are claimed one by one

    def take(self, keys: Iterable[str]) -> set[str]:
        wanted = {lock_id(k): k for k in keys}
        if not wanted:
            return set()
        rows = self.conn.execute(text("SELECT k, pg_try_advisory_lock(k) FROM unnest(CAST(:ids AS bigint[])) AS k"),
                                 {"ids": list(wanted)})
        got = {wanted[k] for k, ok in rows if ok}
        self.held.update(got)
        return got

    def wait(self, key: str) -> None:
        self.conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id(key)})
        self.held[key] += 1

    def release(self, keys: Iterable[str]) -> None:
        mine = [k for k in keys if self.held[k] > 0]
        if not mine:
            return
        self.conn.execute(text("SELECT pg_advisory_unlock(k) FROM unnest(CAST(:ids AS bigint[])) AS k"),
                          {"ids": [lock_id(k) for k in mine]})
        self.held.subtract(mine)

    @contextmanager
    def sole(self, name: str) -> Iterator[bool]:
        got = bool(self.take([name]))
        try:
            yield got
        finally:
            if got:
                self.release([name])

    def ended(self, key: str) -> bool | None:
        if self.held[key] > 0:
            return False
        if self.take([key]):
            self.release([key])
            return True
        return False

    def close(self) -> None:
        try:
            self.conn.execute(text("SELECT pg_advisory_unlock_all()"))
        except Exception:  # the connection is gone already, and with it every lock
            log.debug("claims connection closed before its locks were released")
        self.conn.close()


def open_claims(engine: Engine, home: Path) -> FileClaims:
    """The claims that fit the database: advisory locks on PostgreSQL, the pass lock file otherwise."""
    return PgClaims(engine) if engine.dialect.name == "postgresql" else FileClaims(home)
