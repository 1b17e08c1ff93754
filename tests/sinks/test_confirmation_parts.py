"""The pieces of the confirmation loop one by one: reminders and overdue, change notices, templates
as data, what counts as a reply or a bounce, mail that waits without a server, lost-device cases,
and the MCS list's columns."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from renraku.config import load_settings
from renraku.context import Context
from renraku.errors import ConfigError, DecisionRefused, PermissionDenied
from renraku.pipeline.run import Batch, Received
from renraku.samples.generator import eml_with_attachments, invent_change, render_pdf
from renraku.sinks import cases, confirmation, mcs
from renraku.sinks import models as m
from renraku.sinks.export import export
from renraku.sinks.outbox import send_due
from renraku.sinks.queue import Actor, approve, override_finding
from renraku.sinks.registry import export_csv, import_csv
from renraku.validators import load_rule_config

BOSS, CLERK = Actor("鈴木", "supervisor"), Actor("田中", "reviewer")
FACILITY = "さくらクリニック"
REGISTRY = ("facility_name,facility_kana,postal_code,address,phone,staff_name,staff_kana,job,admin,email,"
            "registered_on\n"
            f"{FACILITY},さくらくりにっく,320-0001,栃木県宇都宮市本町1-1,028-600-0001,"
            "佐藤 花子,サトウ ハナコ,医師,○,sato.hanako@sakura.example.jp,2024-04-01\n"
            f"{FACILITY},さくらくりにっく,320-0001,栃木県宇都宮市本町1-1,028-600-0001,"
            "高橋 健一,タカハシ ケンイチ,看護師,,takahashi@sakura.example.jp,2024-04-01\n")
JST = dt.timezone(dt.timedelta(hours=9))


def registered(ctx: Context) -> None:
    with ctx.sessions.begin() as s:
        import_csv(s, REGISTRY.encode(), load_rule_config())


def person(s, email: str) -> m.Staff:  # type: ignore[no-untyped-def]
    return s.scalars(select(m.Staff).where(m.Staff.email == email)).one()


def confirm_for(ctx: Context, email: str, *, status: str = "sent", days_ago: float = 0) -> int:
    """A confirmation of a registered person, as if its mail went out `days_ago` days ago."""
    settings = load_settings()
    with ctx.sessions.begin() as s:
        conf = confirmation._queue(s, person(s, email), None, email, settings, confirmation.load_config(settings))
        conf.status = status
        conf.sent_at = m.utcnow() - dt.timedelta(days=days_ago)
        for mail in conf.mails:
            mail.status = "sent"
        return conf.id


def received(ctx: Context, raw: bytes, name: str = "mail.eml") -> m.Message | None:
    with Batch(ctx) as batch:
        batch.receive(Received(raw, name, name, "imap", "message/rfc822"))
    with ctx.sessions() as s:
        return s.scalars(select(m.Message).order_by(m.Message.id.desc())).first()


def mail(sender: str, subject: str, body: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "renraku@localhost", subject
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


# ---------------------------------------------------------------------------- reminders

def test_no_reply_after_n_days_sends_one_reminder_and_after_m_days_it_is_overdue(ctx: Context) -> None:
    registered(ctx)
    fresh = confirm_for(ctx, "sato.hanako@sakura.example.jp", days_ago=2)
    late = confirm_for(ctx, "takahashi@sakura.example.jp", days_ago=8)
    settings = load_settings()
    with ctx.sessions.begin() as s:
        assert [c.id for c in confirmation.remind_due(s, settings)] == [late]
        assert confirmation.remind_due(s, settings) == []  # once only
        conf = s.get(m.Confirmation, late)
        first, reminder = conf.mails
        assert (reminder.kind, reminder.status, reminder.references) == ("reminder", "queued", first.message_id)
        assert conf.token in reminder.subject and reminder.subject.startswith("【再送】")
        assert reminder.message_id != first.message_id
        now = m.utcnow()
        assert confirmation.state(conf, settings, now) == "sent"
        assert confirmation.state(conf, settings, now + dt.timedelta(days=7)) == "overdue"  # 8 + 7 > M = 14
        assert confirmation.state(s.get(m.Confirmation, fresh), settings, now + dt.timedelta(days=7)) == "sent"


def test_the_days_are_settings(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    registered(ctx)
    conf_id = confirm_for(ctx, "sato.hanako@sakura.example.jp", days_ago=2)
    monkeypatch.setenv("RENRAKU_CONFIRM_REMIND_DAYS", "1")
    monkeypatch.setenv("RENRAKU_CONFIRM_OVERDUE_DAYS", "1.5")
    settings = load_settings()
    with ctx.sessions.begin() as s:
        assert [c.id for c in confirmation.remind_due(s, settings)] == [conf_id]
        assert confirmation.state(s.get(m.Confirmation, conf_id), settings) == "overdue"


# ------------------------------------------------------------------------- change notices

def test_a_change_notice_confirms_added_and_modified_addresses_and_deactivates_removed_people(
        ctx: Context) -> None:
    registered(ctx)
    waiting_for = confirm_for(ctx, "takahashi@sakura.example.jp")  # asked before, removed now
    notice = invent_change(random.Random(4))
    rows = {1: ("add", "伊藤 美咲", "イトウ ミサキ", "薬剤師", "ito.misaki@sakura.example.jp"),
            2: ("remove", "高橋 健一", "タカハシ ケンイチ", "看護師", "takahashi@sakura.example.jp"),
            3: ("modify", "佐藤 花子", "サトウ ハナコ", "医師", "hanako.sato@sakura.example.jp")}
    notice.truth["facility_name"] = FACILITY
    for n in range(1, 7):
        kind, name, kana, job, email = rows.get(n, ("", "", "", "", ""))
        notice.truth |= {f"changes[{n}].kind.{k}": k == kind for k in ("add", "remove", "modify")}
        notice.truth |= {f"changes[{n}].name": name, f"changes[{n}].name_kana": kana, f"changes[{n}].job": job,
                         f"changes[{n}].admin": n == 3, f"changes[{n}].email": email}
    with Batch(ctx) as batch:
        batch.receive(Received(render_pdf([notice]), "change.pdf", "change.pdf"))
    with ctx.sessions.begin() as s:
        app = s.scalars(select(m.Application)).one()
        for f in (f for sh in app.sheets for f in sh.fields):
            f.needs_review = False
        for f in list(app.findings):
            if f.blocking:
                override_finding(s, f.id, "試験", BOSS)
        approve(s, app.id, BOSS)
    with ctx.sessions() as s:
        assert s.get(m.Confirmation, waiting_for).status == "cancelled"
        queued = {c.email: c.staff.name for c in s.scalars(select(m.Confirmation)) if c.id != waiting_for}
        removed = person(s, "takahashi@sakura.example.jp")
        mails = [o.to_addr for o in s.scalars(select(m.OutboxMail)) if o.confirmation_id != waiting_for]
        approved = s.scalars(select(m.AuditEntry).where(m.AuditEntry.action == "approve")).one()
    assert queued == {"ito.misaki@sakura.example.jp": "伊藤 美咲", "hanako.sato@sakura.example.jp": "佐藤 花子"}
    assert sorted(mails) == sorted(queued)
    assert (removed.active, removed.removed_on is not None) == (False, True)  # kept, not deleted
    assert len(approved.detail["confirmations"]) == 2


# ---------------------------------------------------------------------------- templates

def test_the_mail_text_is_data_the_secretariat_edits(ctx: Context, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    registered(ctx)
    custom = tmp_path / "confirmation.toml"
    custom.write_text('[mail.confirmation]\nsubject = "確認のお願い {token}"\n'
                      'body = "{name} 様\\n返信してください。{token}"\n', encoding="utf-8")
    monkeypatch.setenv("RENRAKU_CONFIRMATION_CONFIG", str(custom))
    conf_id = confirm_for(ctx, "sato.hanako@sakura.example.jp")
    with ctx.sessions() as s:
        first = s.get(m.Confirmation, conf_id).mails[0]
        assert first.subject.startswith("確認のお願い ") and first.body.startswith("佐藤 花子 様")
        assert first.template == "confirmation"
    custom.write_text('[mail.confirmation]\nsubject = "確認のお願い"\nbody = "{token}"\n', encoding="utf-8")
    broken = confirm_for(ctx, "takahashi@sakura.example.jp", status="waiting")  # does not block the approval
    with ctx.sessions.begin() as s, pytest.raises(ConfigError, match="token"):  # the run reports it
        confirmation.remind_due(s, load_settings())
    custom.write_text('[mail.confirmation]\nsubject = "確認 {token}"\nbody = "{token}"\n', encoding="utf-8")
    with ctx.sessions.begin() as s:
        confirmation.remind_due(s, load_settings())
        assert [x.subject.split()[0] for x in s.get(m.Confirmation, broken).mails] == ["確認"]


# -------------------------------------------------------------------------- recognition

def test_an_auto_reply_or_a_delay_notice_confirms_nothing_and_a_plain_bounce_is_understood(ctx: Context) -> None:
    registered(ctx)
    conf_id = confirm_for(ctx, "sato.hanako@sakura.example.jp")
    with ctx.sessions() as s:
        conf = s.get(m.Confirmation, conf_id)
        token, subject, mid = conf.token, conf.mails[0].subject, conf.mails[0].message_id
    away = received(ctx, mail("sato.hanako@sakura.example.jp", f"自動応答: {subject}", "不在です",
                              In_Reply_To=mid, Auto_Submitted="auto-replied"), "away.eml")
    assert (away.kind, away.status) == ("confirmation", "open") and "自動応答" in away.note
    delayed = received(ctx, mail("MAILER-DAEMON@mx.example.jp", "Delayed Mail (still being retried)",
                                 f"Message-ID: {mid}\nAction: delayed\n"), "delay.eml")
    assert (delayed.kind, delayed.status) == ("bounce", "open") and "配送遅延" in delayed.note
    with ctx.sessions() as s:
        assert s.get(m.Confirmation, conf_id).status == "sent"
    plain = received(ctx, mail("Mail Delivery Subsystem <mailer-daemon@mx.example.jp>", "Returned mail",
                               f"確認番号 {token} の宛先に配送できませんでした。\n"), "plain.eml")
    assert plain.kind == "bounce"
    with ctx.sessions() as s:
        assert s.get(m.Confirmation, conf_id).status == "bounced"


def test_a_reply_is_recognised_by_the_token_when_the_headers_are_gone(ctx: Context) -> None:
    registered(ctx)
    conf_id = confirm_for(ctx, "sato.hanako@sakura.example.jp")
    with ctx.sessions() as s:
        subject = s.get(m.Confirmation, conf_id).mails[0].subject
    reply = received(ctx, mail("Sato Hanako <SATO.HANAKO@sakura.example.jp>", f"RE: {subject}", "受信できました"))
    assert (reply.kind, reply.status) == ("confirmation", "done")
    with ctx.sessions() as s:
        conf = s.get(m.Confirmation, conf_id)
        assert (conf.status, conf.message_id) == ("confirmed", reply.id)


def test_a_reply_to_the_reminder_confirms_too(ctx: Context) -> None:
    registered(ctx)
    conf_id = confirm_for(ctx, "sato.hanako@sakura.example.jp", days_ago=8)
    with ctx.sessions.begin() as s:
        confirmation.remind_due(s, load_settings())
        reminder = s.get(m.Confirmation, conf_id).mails[-1]
        reminder.status = "sent"
        subject, mid = reminder.subject, reminder.message_id
    reply = received(ctx, mail("sato.hanako@sakura.example.jp", f"Re: {subject}", "届きました", In_Reply_To=mid))
    assert (reply.kind, reply.status) == ("confirmation", "done")
    with ctx.sessions() as s:
        assert s.get(m.Confirmation, conf_id).status == "confirmed"


def test_a_lost_device_report_in_a_reply_stays_urgent_and_confirms_nothing(ctx: Context) -> None:
    registered(ctx)
    conf_id = confirm_for(ctx, "sato.hanako@sakura.example.jp")
    with ctx.sessions() as s:
        first = s.get(m.Confirmation, conf_id).mails[0]
    reply = received(ctx, mail("sato.hanako@sakura.example.jp", f"Re: {first.subject}",
                               "実は昨日スマートフォンを紛失しました", In_Reply_To=first.message_id))
    assert (reply.kind, reply.urgent, reply.status) == ("lost_device", True, "open")
    assert "送受信確認の返信でもありますが、確認はしていません" in reply.note
    with ctx.sessions() as s:
        assert s.get(m.Confirmation, conf_id).status == "sent"
        assert s.scalars(select(m.Case.staff_id)).one() == person(s, "sato.hanako@sakura.example.jp").id


def test_a_mail_that_only_looks_like_a_reply_is_left_to_the_intake(ctx: Context) -> None:
    registered(ctx)
    other = received(ctx, mail("x@example.jp", "Re: 研修会のご案内", "参加します", In_Reply_To="<abc@example.jp>"))
    assert (other.kind, other.status) == ("other", "open")


# ------------------------------------------------------------------------------ sending

def test_without_an_smtp_server_the_mails_wait(ctx: Context) -> None:
    registered(ctx)
    confirm_for(ctx, "sato.hanako@sakura.example.jp", status="waiting")
    with ctx.sessions.begin() as s:
        s.scalars(select(m.OutboxMail)).one().status = "queued"
    report = send_due(ctx.sessions, load_settings())
    assert report.sent == [] and len(report.deferred) == 1 and "SMTP" in report.error
    with ctx.sessions() as s:
        assert s.scalars(select(m.OutboxMail.status)).one() == "queued"


# -------------------------------------------------------------------------------- cases

def test_a_lost_device_case_follows_the_person_until_resolved(ctx: Context, tmp_path: Path) -> None:
    registered(ctx)
    report = eml_with_attachments([], subject="スマートフォン紛失のご報告",
                                  sender="佐藤 <sato.hanako@sakura.example.jp>",
                                  when=dt.datetime(2025, 10, 1, 9, 0, tzinfo=JST), body="訪問先で端末をなくしました。")
    msg = received(ctx, report)
    assert (msg.kind, msg.urgent) == ("lost_device", True)
    with ctx.sessions() as s:
        case = s.scalars(select(m.Case)).one()
        assert (case.state, case.staff.email, case.linked_by) == ("received", "sato.hanako@sakura.example.jp", "sender")
        case_id, staff_id = case.id, case.staff_id
        assert cases.suspended_staff(s) == {staff_id}
        export(s, tmp_path / "out")
    with open(tmp_path / "out" / "staff.csv", encoding="utf-8") as fh:
        staff = {r["email"]: r["suspended"] for r in csv.DictReader(fh)}
    assert staff == {"sato.hanako@sakura.example.jp": "True", "takahashi@sakura.example.jp": "False"}
    with ctx.sessions() as s:
        export_csv(s, tmp_path / "registry.csv")
    with open(tmp_path / "registry.csv", encoding="utf-8") as fh:
        assert {r["email"]: r["suspended"] for r in csv.DictReader(fh)} == {
            "sato.hanako@sakura.example.jp": "○", "takahashi@sakura.example.jp": ""}

    with ctx.sessions.begin() as s, pytest.raises(DecisionRefused, match="依頼先"):
        cases.request_suspension(s, case_id, " ", CLERK)
    with ctx.sessions.begin() as s:
        cases.request_suspension(s, case_id, "MCS 運営窓口へ電話で停止を依頼", CLERK)
    with ctx.sessions.begin() as s, pytest.raises(PermissionDenied):
        cases.resolve(s, case_id, "x", Actor("監査", "auditor"))
    with ctx.sessions.begin() as s:
        cases.resolve(s, case_id, "端末が見つかり、停止を解除", BOSS)
    with ctx.sessions() as s:
        case = s.get(m.Case, case_id)
        assert (case.state, case.requested_by, case.resolved_by, case.message.status) == (
            "resolved", "田中", "鈴木", "done")
        assert cases.suspended_staff(s) == set()
        log = [e.action for e in s.scalars(select(m.AuditEntry).where(m.AuditEntry.target == f"case:K{case_id:06d}"))]
    assert log == ["case_opened", "case_suspension_requested", "case_resolved"]


def test_a_report_from_an_unknown_address_waits_for_a_reviewer_to_name_the_person(ctx: Context) -> None:
    registered(ctx)
    received(ctx, eml_with_attachments([], subject="【至急】タブレット盗難", sender="家族 <family@example.com>",
                                       when=dt.datetime(2025, 10, 1, 9, 0, tzinfo=JST), body="盗まれました"))
    with ctx.sessions.begin() as s:
        case = s.scalars(select(m.Case)).one()
        assert case.staff_id is None
        with pytest.raises(DecisionRefused, match="登録者"):
            cases.request_suspension(s, case.id, "電話で依頼", CLERK)
        cases.link(s, case.id, person(s, "takahashi@sakura.example.jp").id, CLERK)
        assert case.linked_by == "田中"


# ---------------------------------------------------------------------------------- MCS

def test_the_mcs_columns_are_data_and_only_confirmed_active_unsuspended_people_are_listed(
        ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registered(ctx)
    layout = tmp_path / "mcs.toml"
    layout.write_text('encoding = "cp932"\nadmin_true = "管理者"\nadmin_false = ""\n'
                      '[[columns]]\nheader = "ログインID"\nvalue = "email"\n'
                      '[[columns]]\nheader = "権限"\nvalue = "admin"\n'
                      '[[columns]]\nheader = "所属"\nvalue = "facility_name"\n', encoding="utf-8")
    monkeypatch.setenv("RENRAKU_MCS_CONFIG", str(layout))
    confirm_for(ctx, "sato.hanako@sakura.example.jp", status="confirmed")
    confirm_for(ctx, "takahashi@sakura.example.jp", status="confirmed")
    with ctx.sessions.begin() as s, pytest.raises(PermissionDenied):
        mcs.export(s, load_settings(), CLERK)
    with ctx.sessions.begin() as s:  # a lost device: not listed while the case is open
        message = m.Message(document=m.Document(sha256="0" * 64, size=1, media_type="message/rfc822",
                                                file_name="x.eml", channel="imap", status="message"),
                            kind="lost_device", urgent=True)
        s.add(message)
        s.flush()
        cases.open_case(s, message, "takahashi@sakura.example.jp")
        record, data = mcs.export(s, load_settings(), BOSS)
    rows = list(csv.reader(io.StringIO(data.decode("cp932"))))
    assert rows == [["ログインID", "権限", "所属"], ["sato.hanako@sakura.example.jp", "管理者", FACILITY]]
    assert record.rows == 1
    layout.write_text('[[columns]]\nheader = "x"\nvalue = "password"\n', encoding="utf-8")
    with ctx.sessions.begin() as s, pytest.raises(ConfigError, match="password"):
        mcs.export(s, load_settings(), BOSS)
