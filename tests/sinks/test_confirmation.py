"""送受信確認 end to end (SPEC §5) against a real Postfix delivering into a real Dovecot.

Approve a set → the mails arrive in the recipients' mailboxes → replies go out from there →
`renraku run --once` reads them in the secretariat's inbox → the addresses are confirmed → the MCS
list holds exactly them. A bounce and forged replies confirm nothing; an SMTP server that is down
and then up, or a crash right after the server took a mail, gets every mail exactly once.
"""

from __future__ import annotations

import csv
import datetime as dt
import email
import email.policy
import io
import os
import random
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select, update

from renraku.cli import main
from renraku.context import Context, open_context
from renraku.pipeline.run import Batch, Received
from renraku.samples.generator import invent_set, render_pdf
from renraku.sinks import audit
from renraku.sinks import models as m
from renraku.sinks.queue import Actor, approve, override_finding
from tests.servers import REFUSED_ADDRESS, imap_server, imap_server_factory, smtp_server  # noqa: F401

BOSS = Actor("鈴木", "supervisor")
PEOPLE = [("佐藤 花子", "サトウ ハナコ", "看護師"), ("高橋 健一", "タカハシ ケンイチ", "医師"),
          ("伊藤 美咲", "イトウ ミサキ", "薬剤師"), ("渡辺 翔太", "ワタナベ ショウタ", "介護支援専門員"),
          ("山本 愛", "ヤマモト アイ", "理学療法士")]


def approved_set(ctx: Context, seed: int, addresses: list[str]) -> int:
    """A new-facility set with one staff row per address, read from its PDF, checked and approved."""
    usage, staff, pledge = invent_set(random.Random(seed))
    usage.truth |= {"policy_agreed": True, "contact_name": PEOPLE[0][0], "contact_email": addresses[0]}
    pledge.truth["seal"] = True
    for n in range(1, 9):
        person = PEOPLE[n - 1] if n <= len(addresses) else ("", "", "")
        staff.truth |= {f"staff[{n}].name": person[0], f"staff[{n}].name_kana": person[1],
                        f"staff[{n}].job": person[2], f"staff[{n}].admin": n == 1,
                        f"staff[{n}].email": addresses[n - 1] if n <= len(addresses) else ""}
    with Batch(ctx) as batch:
        batch.receive(Received(render_pdf([usage, staff, pledge]), f"set{seed}.pdf", f"set{seed}.pdf"))
    with ctx.sessions.begin() as s:
        app = s.scalars(select(m.Application).order_by(m.Application.id.desc())).first()
        sheet_ids = [sh.id for sh in app.sheets]
        s.execute(update(m.Field).where(m.Field.sheet_id.in_(sheet_ids)).values(needs_review=False))
        for f in list(app.findings):
            if f.blocking:
                override_finding(s, f.id, "試験: 原本と照合済み", BOSS)
        approve(s, app.id, BOSS)
        return app.id


@pytest.fixture
def loop_env(home: Path, imap_server, smtp_server, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    for key, value in imap_server.env("ssl").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RENRAKU_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("RENRAKU_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("RENRAKU_SMTP_CAFILE", str(smtp_server.cafile))
    monkeypatch.setenv("RENRAKU_NOTIFY_FROM", imap_server.address)  # replies and bounces come back here
    monkeypatch.setenv("RENRAKU_OUTBOX_RETRY_SECONDS", "0")
    ctx = open_context()
    yield ctx, imap_server, smtp_server
    ctx.close()


def wait_for(predicate, what: str, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
    return result


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def reply_to(original: bytes, sender: str) -> EmailMessage:
    """What a mail program sends when its user presses 返信 and types a line."""
    orig = parse(original)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = orig["From"]
    msg["Subject"] = f"Re: {orig['Subject']}"
    msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["In-Reply-To"] = orig["Message-ID"]
    msg["References"] = orig["Message-ID"]
    quoted = "\n".join(f"> {line}" for line in orig.get_content().splitlines())
    msg.set_content(f"届いています。よろしくお願いします。\n\n{quoted}\n")
    return msg


def dsn(original: bytes, recipient: str) -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464), returning our mail's headers."""
    head = original.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return (
        "From: MAILER-DAEMON@smtp.renraku.test (Mail Delivery System)\r\n"
        "To: secretariat@renraku.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(dt.datetime.now(dt.UTC))}\r\n"
        f"Message-ID: {make_msgid(domain='smtp.renraku.test')}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n\r\n'
        "--B1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n<{recipient}>: "
        "host mx.example.jp said: 550 5.1.1 User unknown\r\n\r\n"
        "--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; smtp.renraku.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        "--B1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{head}\r\n\r\n--B1--\r\n"
    ).encode()


def send(smtp_server, msg: EmailMessage | bytes, sender: str, to: str) -> None:  # noqa: F811
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        if isinstance(msg, bytes):
            smtp.sendmail(sender, [to], msg)
        else:
            smtp.send_message(msg, from_addr=sender, to_addrs=[to])


def states(ctx: Context) -> dict[str, str]:
    with ctx.sessions() as s:
        return {c.email: c.status for c in s.scalars(select(m.Confirmation))}


def test_replies_confirm_and_only_confirmed_addresses_reach_the_mcs_list(loop_env, tmp_path: Path) -> None:
    ctx, inbox, smtp = loop_env
    a = ["sato.hanako@sakura-clinic.example.jp", "takahashi.k@sakura-clinic.example.jp",
         "ito.misaki@sakura-clinic.example.jp", "watanabe.s@sakura-clinic.example.jp"]
    app_id = approved_set(ctx, 3, a)
    assert states(ctx) == dict.fromkeys(a, "waiting")  # queued by the approval, nothing sent yet
    assert smtp.delivered() == []

    assert main(["run", "--once"]) == 0
    got = {addr: wait_for(lambda addr=addr: smtp.delivered_to(addr), f"mail for {addr}") for addr in a}
    assert all(len(mails) == 1 for mails in got.values())
    mails = {addr: parse(mails[0]) for addr, mails in got.items()}
    with ctx.sessions() as s:
        tokens = {c.email: c.token for c in s.scalars(select(m.Confirmation))}
    for addr, mail in mails.items():
        assert mail["To"] == addr and tokens[addr] in mail["Subject"] and tokens[addr] in mail.get_content()
        assert "送受信確認" in mail["Subject"] and "返信" in mail.get_content()
    assert len(set(tokens.values())) == 4 and all(len(t) >= 20 for t in tokens.values())
    assert len({mail["Message-ID"] for mail in mails.values()}) == 4
    assert states(ctx) == dict.fromkeys(a, "sent")

    # a[0], a[1] answer; someone else answers a[2]'s mail; a[2] answers with a token that is not
    # theirs; a[3]'s mail bounces; a[0] answers a second time (the token is used by then).
    send(smtp, reply_to(got[a[0]][0], a[0]), a[0], inbox.address)
    send(smtp, reply_to(got[a[1]][0], a[1]), a[1], inbox.address)
    send(smtp, reply_to(got[a[2]][0], "someone@elsewhere.example.jp"), "someone@elsewhere.example.jp", inbox.address)
    guess = EmailMessage()  # a[2]'s address written by someone who guesses a token
    guess["From"], guess["To"] = a[2], inbox.address
    guess["Subject"] = mails[a[2]]["Subject"].replace(tokens[a[2]], tokens[a[2]][::-1])
    guess.set_content(f"確認番号: {tokens[a[2]][::-1]}\n")
    send(smtp, guess, a[2], inbox.address)
    send(smtp, dsn(got[a[3]][0], a[3]), "", inbox.address)
    wait_for(lambda: len(smtp.delivered_to(inbox.address)) >= 4 + 5, "replies in the secretariat's inbox")
    assert main(["run", "--once"]) == 0
    send(smtp, reply_to(got[a[0]][0], a[0]), a[0], inbox.address)
    wait_for(lambda: len(smtp.delivered_to(inbox.address)) >= 10, "the second reply")
    assert main(["run", "--once"]) == 0

    assert states(ctx) == {a[0]: "confirmed", a[1]: "confirmed", a[2]: "sent", a[3]: "bounced"}
    with ctx.sessions() as s:
        messages = [(x.kind, x.status, x.note) for x in s.scalars(select(m.Message).order_by(m.Message.id))]
        app = s.get(m.Application, app_id)
        undeliverable = [(f.rule, f.field, f.blocking) for f in app.findings if f.rule == "undeliverable_email"]
        assert app.status == "approved"
        confirmed = s.scalars(select(m.Confirmation).where(m.Confirmation.status == "confirmed")).all()
        assert all(c.message is not None and c.message.kind == "confirmation" for c in confirmed)
        assert audit.verify(s).ok
        actions = [e.action for e in s.scalars(select(m.AuditEntry))]
    assert actions.count("mail_sent") == 4 and actions.count("confirmation_confirmed") == 2
    assert actions.count("confirmation_bounced") == 1
    assert undeliverable == [("undeliverable_email", "staff[4].email", True)]
    copies = [x for x in messages if "控え" in x[2]]
    assert len(copies) == 4 and all(x[1] == "done" for x in copies)  # the secretariat's Bcc copies
    rest = [(kind, status, note.split("（")[0]) for kind, status, note in messages if "控え" not in note]
    assert sorted(rest[:-1]) == [  # in the order postfix delivered them
        ("bounce", "done", "送受信確認のメールが届きませんでした"),
        ("confirmation", "done", "送受信確認の返信です"),
        ("confirmation", "done", "送受信確認の返信です"),
        ("confirmation", "open", "確認番号が送受信確認のどれとも一致しません"),
        ("confirmation", "open", "返信元が確認先のアドレスと異なります"),
    ]
    assert rest[-1] == ("confirmation", "open", "この確認番号は使用済みです")

    out = tmp_path / "mcs.csv"
    assert main(["mcs", "export", "--out", str(out), "--actor", "鈴木"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert sorted(r["メールアドレス"] for r in rows) == sorted(a[:2])
    assert {(r["氏名"], r["管理者"]) for r in rows} == {(PEOPLE[0][0], "1"), (PEOPLE[1][0], "0")}
    assert os.stat(out).st_mode & 0o777 == 0o600
    again = tmp_path / "next.csv"
    assert main(["mcs", "export", "--out", str(again)]) == 0
    assert len(again.read_text(encoding="utf-8-sig").splitlines()) == 1  # the header: nobody new
    assert main(["mcs", "export", "--out", str(again), "--again", "1"]) == 0
    assert again.read_bytes() == out.read_bytes()  # a list written again on purpose is the same list
    assert main(["mcs", "issued", "1", "--actor", "鈴木"]) == 0
    with ctx.sessions() as s:
        export = s.get(m.McsExport, 1)
        assert (export.rows, export.issued_by) == (2, "鈴木")
    assert len(smtp.delivered()) == 4 + 6  # nothing was sent twice, no reminder yet


def test_a_server_that_is_down_then_up_gets_every_mail_exactly_once(loop_env) -> None:
    ctx, _inbox, smtp = loop_env
    a = ["yamada.t@kaede-home.example.jp", "kimura.y@kaede-home.example.jp", "hayashi.m@kaede-home.example.jp"]
    smtp.stop()
    approved_set(ctx, 5, a)  # the approval does not wait for, nor fail with, the mail server
    assert main(["run", "--once"]) == 1  # reported as a failed source; the mails wait
    with ctx.sessions() as s:
        waiting = [(o.status, o.attempts, bool(o.last_error)) for o in s.scalars(select(m.OutboxMail))]
    assert waiting == [("queued", 1, True)] * 3
    assert states(ctx) == dict.fromkeys(a, "waiting")
    smtp.start()
    assert main(["run", "--once"]) == 0
    assert main(["run", "--once"]) == 0
    for addr in a:
        wait_for(lambda addr=addr: smtp.delivered_to(addr), f"mail for {addr}")
    time.sleep(0.5)  # anything sent twice would have arrived by now
    assert sorted(len(smtp.delivered_to(addr)) for addr in a) == [1, 1, 1]
    ids = [parse(raw)["Message-ID"] for raw in smtp.delivered()]
    assert len(ids) == len(set(ids)) == 3
    with ctx.sessions() as s:
        assert [(o.status, o.attempts) for o in s.scalars(select(m.OutboxMail))] == [("sent", 2)] * 3


def test_a_crash_after_the_server_took_the_mail_sends_it_once(loop_env) -> None:
    ctx, inbox, smtp = loop_env
    a = ["kobayashi.r@momo-pharmacy.example.jp", "kato.n@momo-pharmacy.example.jp"]
    approved_set(ctx, 8, a)
    env = dict(os.environ, RENRAKU_FAULT="outbox:accepted:1")
    done = subprocess.run([sys.executable, "-m", "renraku.cli", "run", "--once"], env=env, capture_output=True,
                          timeout=120)
    assert done.returncode == -9  # killed between the server's acceptance and our commit
    with ctx.sessions() as s:
        assert [o.status for o in s.scalars(select(m.OutboxMail).order_by(m.OutboxMail.id))] == ["sending", "queued"]
    wait_for(lambda: smtp.delivered_to(a[0]) and smtp.delivered_to(inbox.address), "the first mail and its copy")
    assert main(["run", "--once"]) == 0  # reads the copy first: the mail went out, it is not sent again
    assert main(["run", "--once"]) == 0
    wait_for(lambda: smtp.delivered_to(a[1]), "the second mail")
    time.sleep(0.5)
    assert [len(smtp.delivered_to(x)) for x in a] == [1, 1]
    assert states(ctx) == dict.fromkeys(a, "sent")


def test_an_address_the_server_refuses_for_good_is_undeliverable_at_once(loop_env) -> None:
    ctx, _inbox, smtp = loop_env
    good = "nakamura.k@aoba-care.example.jp"
    app_id = approved_set(ctx, 9, [good, REFUSED_ADDRESS])
    assert main(["run", "--once"]) == 0  # a refused address is the address's problem, not the server's
    assert states(ctx) == {good: "sent", REFUSED_ADDRESS: "bounced"}
    with ctx.sessions() as s:
        refused = s.scalars(select(m.OutboxMail).where(m.OutboxMail.to_addr == REFUSED_ADDRESS)).one()
        assert (refused.status, refused.last_error) == ("failed", "SMTP サーバーが宛先を拒否しました（550）")
        assert [f.field for f in s.get(m.Application, app_id).findings if f.rule == "undeliverable_email"] == [
            "staff[2].email"]
    assert main(["run", "--once"]) == 0  # not tried again
    wait_for(lambda: smtp.delivered_to(good), "the good address's mail")
    assert smtp.delivered_to(REFUSED_ADDRESS) == []
