"""Two workers, one PostgreSQL: each message, file and mail taken by one of them, and a killed one
gives back what it held. Real PostgreSQL, Dovecot and Postfix, real processes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from renraku.bench.two_workers import Arrivals, Worker, run_rounds, tally
from renraku.context import open_context
from renraku.pipeline.claims import PgClaims
from renraku.pipeline.run import Batch
from renraku.sinks import models as m
from tests.servers import imap_server, imap_server_factory, smtp_server  # noqa: F401 (fixtures)
from tests.sinks.test_confirmation_parts import confirm_for, registered
from tests.sinks.test_db import postgres_url  # noqa: F401 (a fixture)

HOLDER = """
import sys, time
from sqlalchemy import create_engine
from renraku.pipeline.claims import PgClaims
claims = PgClaims(create_engine(sys.argv[1]))
claims.take(["imap://a/INBOX;UIDVALIDITY=1/;UID=7", "scan:fax.pdf"])
claims.wait("batch:1")
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_worker_gives_back_every_claim(postgres_url: str) -> None:  # noqa: F811
    from sqlalchemy import create_engine

    engine = create_engine(postgres_url)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, postgres_url], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with PgClaims(engine) as claims:
            keys = ["imap://a/INBOX;UIDVALIDITY=1/;UID=7", "imap://a/INBOX;UIDVALIDITY=1/;UID=8", "scan:fax.pdf"]
            assert claims.take(keys) == {keys[1]}  # the other worker's are left to it
            assert claims.ended("batch:1") is False  # its batch is running
            with claims.sole("outbox") as first, PgClaims(engine) as other, other.sole("outbox") as second:
                assert (first, second) == (True, False)  # one sender at a time
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=10)
            deadline = time.monotonic() + 10  # the server notices the closed connection at once
            while claims.take(keys) != set(keys) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert claims.held[keys[0]] >= 1 and claims.held[keys[2]] >= 1
            assert claims.ended("batch:1") is True
    finally:
        holder.kill()
        holder.wait()
        engine.dispose()


def test_a_batch_left_running_on_another_machine_is_marked_interrupted(
        home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("RENRAKU_DB_URL", postgres_url)
    ctx = open_context()
    try:
        with ctx.sessions.begin() as s:  # pid 1 is alive here: only the claims can tell it is gone
            gone = m.Batch(kind="run", status="running", stats={"pid": 1, "host": "worker-b"})
            alive = m.Batch(kind="run", status="running", stats={"pid": 1, "host": "worker-c"})
            s.add_all([gone, alive])
        with PgClaims(ctx.engine) as worker_c:
            worker_c.wait(f"batch:{alive.id}")
            with Batch(ctx, "run") as batch:
                pass
        with ctx.sessions() as s:
            status = {b.id: b.status for b in s.scalars(select(m.Batch))}
        assert status == {gone.id: "interrupted", alive.id: "running", batch.report.batch_id: "done"}
    finally:
        ctx.close()


def test_two_workers_share_the_inbox_the_scan_folder_and_the_outbox(
        home: Path, tmp_path: Path, postgres_url: str, imap_server, smtp_server,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    scan = tmp_path / "scan"
    scan.mkdir()
    env = {**imap_server.env("ssl"), "RENRAKU_DB_URL": postgres_url, "RENRAKU_SCAN_DIR": str(scan),
           "RENRAKU_SCAN_SETTLE_SECONDS": "0", "RENRAKU_WORKERS": "1", "RENRAKU_SMTP_HOST": smtp_server.host,
           "RENRAKU_SMTP_PORT": str(smtp_server.port), "RENRAKU_SMTP_CAFILE": str(smtp_server.cafile),
           "RENRAKU_CONFIRM_COPY_TO_SELF": "false",
           "RENRAKU_FAULT_PAUSE": "imap:fetched:2"}  # a slow inbox: the two passes really overlap
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ctx = open_context()
    try:
        registered(ctx)  # two people whose 送受信確認 mails wait in the outbox
        for address in ("sato.hanako@sakura.example.jp", "takahashi@sakura.example.jp"):
            confirm_for(ctx, address, status="waiting")
        with ctx.sessions.begin() as s:
            for mail in s.scalars(select(m.OutboxMail)):
                mail.status = "queued"
    finally:
        ctx.close()
    arrivals = Arrivals(scan)
    arrivals.arrive(imap_server, 20, 0, random.Random(60))
    arrivals.arrive(imap_server, 0, 12, random.Random(61))
    workers = [Worker(dict(os.environ)) for _ in range(2)]
    codes = [w.wait(timeout=300) for w in workers]
    assert codes == [0, 0], [w.stderr() for w in workers]
    found = tally(postgres_url, imap_server, arrivals)
    assert found["expected"] == found["documents"] == 32
    assert (found["duplicated"], found["lost"], found["seen_again"]) == (0, 0, 0)  # nothing even looked at twice
    assert found["batches_taking"] == 2  # both workers took some
    ctx = open_context()
    try:
        with ctx.sessions() as s:
            assert s.scalar(select(func.count()).select_from(m.Receipt)) == 32
            assert set(s.scalars(select(m.OutboxMail.status))) == {"sent"}
            mailbox = s.scalars(select(m.Mailbox)).one()
        smtp_server.wait_for_delivery(2)
        time.sleep(2)  # a second send would have arrived by now
        assert len(smtp_server.delivered()) == 2  # each mail once
        assert mailbox.last_uid <= 20
        rerun = Worker(dict(os.environ))
        assert rerun.wait(timeout=300) == 0
        with ctx.sessions() as s:
            assert s.scalars(select(m.Mailbox.last_uid)).one() == 20  # caught up, nothing taken again
            assert s.scalar(select(func.count()).select_from(m.Receipt)) == 32
    finally:
        ctx.close()


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(home: Path, tmp_path: Path, postgres_url: str,  # noqa: F811
                                                               imap_server) -> None:  # noqa: F811
    scan = tmp_path / "scan"
    scan.mkdir()
    results = run_rounds(2, 6, 3, 53, postgres_url, imap_server, home, scan)
    assert sum(r["killed"] for r in results) == 2, results  # rounds go on until two kills
    assert all(r["exit"][1:] == [0, 0] for r in results), results
    assert {(r["duplicated"], r["lost"], r["batches_left_running"]) for r in results} == {(0, 0, 0)}, results
    assert results[-1]["documents"] == results[-1]["expected"] == 9 * len(results)


def test_the_same_bytes_at_both_doors_at_once_are_read_by_one_worker(
        home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import threading

    from renraku.pipeline.run import Received
    from renraku.samples.generator import invent_set, render_pdf

    monkeypatch.setenv("RENRAKU_DB_URL", postgres_url)
    monkeypatch.setenv("RENRAKU_WORKERS", "1")
    data = render_pdf(invent_set(random.Random(80)))
    ctx = open_context()
    try:
        digest = ctx.store.put(data)
        with PgClaims(ctx.engine) as first:
            assert first.take([f"sha:{digest}"])  # the first worker is reading these bytes
            second: list = []
            thread = threading.Thread(target=lambda: second.append(_receive(ctx, data, "scan:fax.pdf")))
            thread.start()
            time.sleep(2)  # the second worker got the same bytes by mail meanwhile: it waits
            with Batch(ctx, "run", claims=first) as batch:
                assert batch.receive(Received(data, "申込書.pdf", "imap://x/INBOX;UIDVALIDITY=1/;UID=1",
                                              "imap")).status == "recorded"
            first.release([f"sha:{digest}"])
            thread.join(timeout=120)
        assert second == ["duplicate"]  # told it was recorded, never read twice
        with ctx.sessions() as s:
            assert s.scalar(select(func.count()).select_from(m.Page)) == 3
    finally:
        ctx.close()


def _receive(ctx, data: bytes, ref: str) -> str:  # type: ignore[no-untyped-def]
    from renraku.pipeline.run import Received

    with Batch(ctx, "run") as batch:
        return batch.receive(Received(data, "fax.pdf", ref, "scan")).status
