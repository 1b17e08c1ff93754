"""Scheduled intake against a real IMAP server and a real scan folder: exactly once, whatever happens."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from renraku.context import Context, open_context
from renraku.pipeline.intake import run_once
from renraku.samples.generator import eml_with_attachments, invent_set, render_pdf
from renraku.sinks import models as m
from tests.servers import content_fetches, fetched_uids, imap_server, imap_server_factory, smtp_server  # noqa: F401

JST = dt.timezone(dt.timedelta(hours=9))


def mail(n: int, *, pdf: bytes | None = None, subject: str | None = None, body: str = "") -> bytes:
    attachments = [(f"申込書_{n}.pdf", pdf)] if pdf else []
    return eml_with_attachments(attachments, subject=subject or f"どこでも連絡帳 申込書 {n}",
                                sender=f"施設{n} <sender{n}@clinic.example.jp>",
                                when=dt.datetime(2025, 9, 1, 9, 0, tzinfo=JST) + dt.timedelta(minutes=n),
                                body=body or f"お世話になっております。{n}\n", message_id=f"<m{n}@clinic.example.jp>")


@pytest.fixture
def intake_env(home: Path, tmp_path: Path, imap_server, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    for key, value in imap_server.env("ssl").items():
        monkeypatch.setenv(key, value)
    scan = tmp_path / "scan"
    scan.mkdir()
    monkeypatch.setenv("RENRAKU_SCAN_DIR", str(scan))
    monkeypatch.setenv("RENRAKU_SCAN_SETTLE_SECONDS", "0")
    return imap_server, scan


def count(ctx: Context, model, *where) -> int:
    with ctx.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
def test_mail_is_taken_over_tls_once_and_left_unread(intake_env, tls: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server, _scan = intake_env
    for key, value in server.env(tls).items():
        monkeypatch.setenv(key, value)
    sheets = invent_set(random.Random(50))
    server.append("INBOX", mail(1, pdf=render_pdf(sheets)))
    server.append("INBOX", mail(2))
    ctx = open_context()
    try:
        report = run_once(ctx)
        assert report is not None and report.count("recorded") == 2 and report.sheets == 3
        assert count(ctx, m.Document, m.Document.channel == "imap", m.Document.parent_id.is_(None)) == 2
        assert count(ctx, m.Message) == 1  # the mail without a sheet, kept for a person to read
        with ctx.sessions() as s:
            refs = sorted(s.scalars(select(m.Receipt.source_ref)))
        assert all(r.startswith("imap://secretariat@127.0.0.1/INBOX;UIDVALIDITY=") for r in refs)
        stored = server.messages("INBOX")
        assert all("$Renraku" in msg.flags and "\\Seen" not in msg.flags for msg in stored)
        again = run_once(ctx)
        assert again is not None and again.items == []
    finally:
        ctx.close()
    assert server.logins()[-1].tls  # the password never crossed the wire in clear


def test_a_poll_with_nothing_new_fetches_no_message_bodies(intake_env) -> None:
    server, _scan = intake_env
    server.append_many("INBOX", [mail(n) for n in range(2000)], flags=["$Renraku"])
    ctx = open_context()
    try:
        server.clear_client_commands()
        first = run_once(ctx)  # first contact: looks at flags and headers only
        second = run_once(ctx)  # and now only asks for UIDs above the last one seen
    finally:
        ctx.close()
    assert first is not None and second is not None and first.items == second.items == []
    commands = server.client_commands()
    assert content_fetches(commands) == []
    assert any("UID SEARCH UID 2001:*" in c.upper() for c in commands)


def test_a_poll_fetches_the_bodies_of_the_new_messages_only(intake_env) -> None:
    server, _scan = intake_env
    server.append_many("INBOX", [mail(n) for n in range(300)], flags=["$Renraku"])  # taken long ago
    ctx = open_context()
    try:
        run_once(ctx)
        new = server.append_many("INBOX", [mail(300 + n) for n in range(5)])
        server.clear_client_commands()
        report = run_once(ctx)
    finally:
        ctx.close()
    assert report is not None and [i.status for i in report.items] == ["recorded"] * 5
    assert fetched_uids(server.client_commands()) == new


def test_a_changed_uidvalidity_brings_no_duplicates_and_loses_nothing(intake_env) -> None:
    server, _scan = intake_env
    for n in range(3):
        server.append("INBOX", mail(n))
    ctx = open_context()
    try:
        run_once(ctx)
        with server._admin() as client:  # flags lost as well: dedupe by Message-ID, not by the keyword
            client.select_folder("INBOX")
            client.remove_flags(client.search("ALL"), [b"$Renraku"])
        server.reset_uidvalidity("INBOX")
        server.append("INBOX", mail(3))
        server.clear_client_commands()
        report = run_once(ctx)
        assert report is not None and [i.status for i in report.items] == ["recorded"]
        assert count(ctx, m.Document, m.Document.parent_id.is_(None)) == 4
        assert len(content_fetches(server.client_commands())) == 1  # only the new message's body
        assert all("$Renraku" in msg.flags for msg in server.messages("INBOX"))
    finally:
        ctx.close()


def test_processed_mail_is_moved_with_copy_and_expunge_where_move_is_missing(
        home: Path, imap_server_factory, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    server = imap_server_factory(move=False)
    for key, value in server.env("ssl").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RENRAKU_IMAP_PROCESSED", "Processed")
    server.create_folder("Processed")
    server.append("INBOX", mail(1))
    ctx = open_context()
    try:
        assert run_once(ctx).count("recorded") == 1
    finally:
        ctx.close()
    assert server.messages("INBOX") == [] and len(server.messages("Processed")) == 1
    commands = " ".join(server.client_commands()).upper()
    assert "UID COPY" in commands and "UID EXPUNGE" in commands and " MOVE " not in commands


def test_the_scan_folder_takes_complete_files_and_moves_them(home: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    scan = tmp_path / "スキャン"
    (scan / "2025年9月").mkdir(parents=True)
    monkeypatch.setenv("RENRAKU_SCAN_DIR", str(scan))
    monkeypatch.setenv("RENRAKU_SCAN_SETTLE_SECONDS", "30")
    pdf = render_pdf(invent_set(random.Random(51)))
    partial = scan / "2025年9月" / "受信 FAX (1).pdf"
    partial.write_bytes(pdf[: len(pdf) // 2])  # the fax server is still writing
    ready = tmp_path / "elsewhere.pdf"
    ready.write_bytes(render_pdf(invent_set(random.Random(52))))
    old = time.time() - 600
    os.utime(ready, (old, old))
    os.replace(ready, scan / "renamed into place.pdf")
    (scan / "~scan0001.tmp").write_bytes(b"temporary")
    ctx = open_context()
    try:
        first = run_once(ctx)
        assert [(i.source_ref, i.status) for i in first.items] == [("scan:renamed into place.pdf", "recorded")]
        assert partial.exists()
        partial.write_bytes(pdf)  # finished; a while later it is settled
        os.utime(partial, (old, old))
        second = run_once(ctx)
        assert [i.status for i in second.items] == ["recorded"] and second.sheets == 3
    finally:
        ctx.close()
    processed = sorted(p.relative_to(scan / "processed").as_posix()
                       for p in (scan / "processed").rglob("*") if p.is_file())
    assert processed == ["2025年9月/受信 FAX (1).pdf", "renamed into place.pdf"]
    assert (scan / "~scan0001.tmp").exists()


def test_a_lost_device_report_is_urgent_and_the_secretariat_is_told(
        intake_env, smtp_server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    server, _scan = intake_env
    monkeypatch.setenv("RENRAKU_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("RENRAKU_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("RENRAKU_SMTP_CAFILE", str(smtp_server.cafile))
    monkeypatch.setenv("RENRAKU_NOTIFY_TO", "jimukyoku@renraku.test")
    server.append("INBOX", mail(1, subject="【至急】スマートフォン紛失のご報告",
                                body="訪問中にスマートフォンをなくしました。ログインの停止をお願いします。"))
    server.append("INBOX", mail(2, subject="研修会のご案内"))
    ctx = open_context()
    try:
        report = run_once(ctx)
        assert report.urgent == ["M000001"]
        with ctx.sessions() as s:
            kinds = [(x.kind, x.urgent, x.notified) for x in s.scalars(select(m.Message).order_by(m.Message.id))]
        assert kinds == [("lost_device", True, True), ("other", False, False)]
    finally:
        ctx.close()
    import email
    import email.policy

    sent = email.message_from_bytes(smtp_server.wait_for_delivery(1)[-1], policy=email.policy.default)
    assert sent["To"] == "jimukyoku@renraku.test" and "紛失" in sent["Subject"]
    body = sent.get_content()
    assert "M000001" in body
    assert "sender1" not in body and "スマートフォン" not in body  # the record is named, not the person


def test_the_mail_corpus_goes_through_one_run(intake_env, corpus: Path) -> None:
    server, _scan = intake_env
    files = [corpus / line.split("\t")[0] for line in (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]]
    server.append_many("INBOX", [f.read_bytes() for f in files])
    ctx = open_context()
    try:
        t0 = time.monotonic()
        report = run_once(ctx)
        seconds = time.monotonic() - t0
        assert report is not None and report.count("failed") == 0
        with ctx.sessions() as s:
            tops = s.scalars(select(m.Document).where(m.Document.parent_id.is_(None))).all()
            messages = {x.document_id for x in s.scalars(select(m.Message))}
            with_sheets = {d.id for d in tops
                           if any(p.sheet and p.sheet.form_id not in ("cover", "unknown")
                                  for c in [d, *d.children] for p in c.pages)}
            quarantined = {d.id for d in tops if d.status in ("unreadable", "unsupported") and d.reason}
            accounted = messages | with_sheets | quarantined
            assert {d.id for d in tops} == accounted
            assert len(tops) == len(files)  # the server made each a distinct message
            assert s.scalar(select(func.count()).select_from(m.Receipt)) == len(files)
    finally:
        ctx.close()
    assert all("$Renraku" in msg.flags for msg in server.messages("INBOX"))
    print(f"\nmail corpus: {len(files)} messages in {seconds:.1f} s")


@pytest.fixture(scope="session")
def corpus() -> Path:
    from tests.conftest import shared_dir

    shared = shared_dir()
    if shared is None or not (shared / "mail-corpus" / "MANIFEST.tsv").exists():
        pytest.skip("the shared mail corpus is not beside this checkout")
    return shared / "mail-corpus"


def _run_child(env: dict[str, str], fault: str | None) -> int:
    child_env = {**os.environ, **env}
    if fault:
        child_env["RENRAKU_FAULT"] = fault
    else:
        child_env.pop("RENRAKU_FAULT", None)
    done = subprocess.run([sys.executable, "-m", "renraku.cli", "run", "--once"], env=child_env,
                          capture_output=True, timeout=300)
    return done.returncode


def test_crashes_at_any_step_leave_every_document_exactly_once(intake_env, tmp_path: Path) -> None:
    server, scan = intake_env
    env = {k: v for k, v in os.environ.items() if k.startswith("RENRAKU_")}
    env["RENRAKU_WORKERS"] = "1"
    steps = ["imap:fetched", "imap:stored", "imap:recorded", "imap:marked",
             "scan:stored", "scan:recorded", "scan:moved"]
    rng = random.Random(53)
    pdfs = [render_pdf(invent_set(random.Random(200 + i))[:1]) for i in range(3)]
    expected: set[str] = set()
    import hashlib
    killed = 0
    for run in range(22):
        for j in range(2):  # new arrivals at both doors before every run
            raw = mail(100 + 2 * run + j, pdf=pdfs[(run + j) % 3] if j == 0 and run % 4 == 0 else None)
            server.append("INBOX", raw)
            doc = f"scan {run}-{j}".encode() + b"%PDF-1.4 not really a pdf " + bytes([run, j])
            (scan / f"doc_{run}_{j}.pdf").write_bytes(doc)
            expected.add(hashlib.sha256(doc).hexdigest())
        fault = f"{rng.choice(steps)}:{rng.randint(1, 2)}"
        killed += _run_child(env, fault) != 0
    assert killed >= 15  # most runs really died half way
    assert _run_child(env, None) == 0  # the clean rerun
    ctx = open_context()
    try:
        with ctx.sessions() as s:
            shas = list(s.scalars(select(m.Document.sha256).where(m.Document.parent_id.is_(None))))
    finally:
        ctx.close()
    expected |= {hashlib.sha256(msg.raw).hexdigest() for msg in server.messages("INBOX")}  # as the server gives them
    assert len(expected) == 22 * 4
    assert sorted(shas) == sorted(set(shas))  # no document twice
    assert expected <= set(shas)  # none lost
    assert [p for p in scan.iterdir() if p.is_file()] == []
    assert all("$Renraku" in msg.flags for msg in server.messages("INBOX"))


def test_two_overlapping_runs_never_take_a_message_twice(intake_env) -> None:
    server, _scan = intake_env
    env = {k: v for k, v in os.environ.items() if k.startswith("RENRAKU_")}
    for n in range(12):
        server.append("INBOX", mail(300 + n))
    child_env = {**os.environ, **env}
    runs = [subprocess.Popen([sys.executable, "-m", "renraku.cli", "run", "--once"], env=child_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(r.wait(timeout=300), r.stdout.read().decode(), r.stderr.read().decode()) for r in runs]
    assert [code for code, _out, _err in results] == [0, 0], results
    ctx = open_context()
    try:
        assert count(ctx, m.Document, m.Document.parent_id.is_(None)) == 12
        assert count(ctx, m.Receipt) == 12  # no message even looked at twice
    finally:
        ctx.close()


def _sheet_values(ctx: Context) -> dict[tuple[str, int], tuple[str, dict]]:
    with ctx.sessions() as s:
        return {(sh.page.document.sha256, sh.page.number): (sh.form_id, {f.path: f.value for f in sh.fields})
                for sh in s.scalars(select(m.Sheet))}


def test_dev_set_mail_by_imap_reads_as_the_same_mail_in_the_scan_folder(
        intake_env, dev_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, _scan = intake_env
    emails = sorted((dev_set / "emails").glob("*.eml"))
    server.append_many("INBOX", [e.read_bytes() for e in emails])
    ctx = open_context()
    try:
        assert run_once(ctx).count("failed") == 0
        by_imap = _sheet_values(ctx)
    finally:
        ctx.close()
    scan = tmp_path / "scan2"
    scan.mkdir()
    for e in emails:
        (scan / e.name).write_bytes(e.read_bytes())
    monkeypatch.setenv("RENRAKU_HOME", str(tmp_path / "home2"))
    monkeypatch.delenv("RENRAKU_IMAP_HOST")
    monkeypatch.setenv("RENRAKU_SCAN_DIR", str(scan))
    ctx = open_context()
    try:
        run_once(ctx)
        by_scan = _sheet_values(ctx)
    finally:
        ctx.close()
    assert len(by_imap) >= 14 and by_imap == by_scan


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """One temporary Prefect server for the session (it takes a while to start)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


def test_the_prefect_flow_runs_a_pass_and_leaves_a_summary(intake_env, prefect_harness) -> None:
    from prefect.client.orchestration import get_client

    from renraku.flows import intake

    server, scan = intake_env
    server.append("INBOX", mail(1, pdf=render_pdf(invent_set(random.Random(54)))))
    (scan / "fax.pdf").write_bytes(render_pdf(invent_set(random.Random(55))[:2]))
    summary = intake()
    assert summary["recorded"] == 2 and summary["sheets"] == 5
    assert {i["source"].split(":")[0] for i in summary["items"]} == {"imap", "scan"}

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts()
    import asyncio

    found = [a for a in asyncio.run(artifacts()) if a.key == "renraku-batch"]
    assert found and "2 recorded" in (found[0].description or "")
    assert intake()["recorded"] == 0  # nothing new the second time
