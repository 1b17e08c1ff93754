"""送受信確認 (SPEC §5): every new address gets a mail with a token and is confirmed by its reply.

Approval queues the mails (`queue_for_application`, in the approval's transaction: sending never
blocks it); the scheduled run sends them (sinks/outbox.py), queues reminders after N days
(`remind_due`) and reads the inbox, where `recognise` tells a reply or a bounce from other mail.
Only a reply from the address being confirmed, naming a token that is still open, confirms; any
other reply goes to a person as a message record with the reason. A bounce marks the address
undeliverable and gives the application a finding, so that it shows in the queue again.

Texts, the token's label and the words that mark a bounce are data: sinks/confirmation.toml.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import re
import secrets
import tomllib
from dataclasses import dataclass
from email.message import Message as MimeMessage
from email.utils import getaddresses, make_msgid
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from renraku import normalize
from renraku.config import Settings, load_settings
from renraku.errors import ConfigError
from renraku.sinks import audit
from renraku.sinks import models as m
from renraku.validators.common import label, rows

log = logging.getLogger(__name__)
SYSTEM = "renraku"  # the actor of what the scheduled run does by itself
OPEN = ("waiting", "sent")  # a token that may still be answered
STATE_NAMES = {"waiting": "送信待ち", "sent": "返信待ち", "overdue": "期限切れ", "confirmed": "確認済み",
               "bounced": "不達", "cancelled": "取消"}
TOKEN_CHARS = r"[A-Za-z0-9_-]{16,64}"
UNDELIVERABLE_RULE = "undeliverable_email"


def load_config(settings: Settings) -> dict[str, Any]:
    try:
        with open(settings.confirmation_config, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"送受信確認の設定 {settings.confirmation_config} を読めません: {exc}") from exc


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """A moment as an aware UTC datetime, whatever the database handed back (SQLite: naive UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def state(conf: m.Confirmation, settings: Settings, now: dt.datetime | None = None) -> str:
    """waiting | sent | overdue | confirmed | bounced | cancelled: overdue is `sent` for M days."""
    now = now or m.utcnow()
    sent_at = aware(conf.sent_at)
    if conf.status == "sent" and sent_at and now - sent_at >= dt.timedelta(days=settings.confirm_overdue_days):
        return "overdue"
    return conf.status


# ------------------------------------------------------------------------------ queueing

def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def compose(conf: m.Confirmation, kind: str, settings: Settings, config: dict[str, Any]) -> m.OutboxMail:
    """The mail of `kind` (confirmation | reminder) for a confirmation, from the editable template."""
    template = config.get("mail", {}).get(kind)
    if not template:
        raise ConfigError(f"送受信確認の文面 [mail.{kind}] が {settings.confirmation_config} にありません")
    values = {"facility": conf.staff.facility.name, "name": conf.staff.name, "email": conf.email,
              "token": conf.token, "application": conf.application.public_id if conf.application else "",
              "reply_to": settings.notify_from, "days": f"{settings.confirm_remind_days:g}"}
    try:
        subject = template["subject"].format_map(values)
        body = template["body"].strip("\n").format_map(values) + "\n"
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"送受信確認の文面 [mail.{kind}] に使えない差し込み {exc} があります") from exc
    if conf.token not in subject:
        raise ConfigError(f"送受信確認の件名 [mail.{kind}] に {{token}} がありません（返信を見分けられません）")
    first = conf.mails[0].message_id if conf.mails else ""
    return m.OutboxMail(kind=kind, template=kind, to_addr=conf.email, subject=subject, body=body,
                        message_id=make_msgid(domain=_domain(settings.notify_from)), references=first)


def _new_addresses(app: m.Application) -> list[str]:
    """The addresses an approved application brings: every staff row, every 追加/変更 row with one."""
    from renraku.sinks.records import application_view

    found = []
    for row in rows(application_view(app)):
        if row.prefix == "changes" and (len(row.kinds) != 1 or row.kinds[0] not in ("add", "modify")):
            continue
        address = normalize.comparable("email", row.text("email"))
        if address and address not in found:
            found.append(address)
    return found


def queue_for_application(session: Session, app: m.Application,
                          settings: Settings | None = None) -> list[m.Confirmation]:
    """Queue a confirmation mail to each new address of `app`, in the caller's transaction (the
    approval's audit entry names them).

    An address whose person already has an open or confirmed confirmation gets none (a change
    that only corrects a job title does not make anyone answer again).
    """
    settings = settings or load_settings()
    config = load_config(settings)
    for conf in session.scalars(select(m.Confirmation).join(m.Staff).where(m.Confirmation.status.in_(OPEN),
                                                                           ~m.Staff.active)):
        cancel(conf, "登録の削除により取り消し")  # a 削除 row of this approval: nobody waits for that reply
    queued = []
    for address in _new_addresses(app):
        person = session.scalar(select(m.Staff).where(m.Staff.active, m.Staff.email == address)
                                .order_by(m.Staff.id.desc()).limit(1))
        if person is None:
            continue
        known = session.scalar(select(m.Confirmation.id).where(
            m.Confirmation.staff_id == person.id, m.Confirmation.email == address,
            m.Confirmation.status.in_((*OPEN, "confirmed"))).limit(1))
        if known is not None:
            continue
        queued.append(_queue(session, person, app, address, settings, config))
    return queued


def _queue(session: Session, person: m.Staff, app: m.Application | None, address: str, settings: Settings,
           config: dict[str, Any]) -> m.Confirmation:
    conf = m.Confirmation(staff=person, application=app, email=address, token=secrets.token_urlsafe(16),
                          status="waiting")
    session.add(conf)
    session.flush()
    try:
        conf.mails.append(compose(conf, "confirmation", settings, config))
    except ConfigError as exc:  # never blocks the approval: the scheduled run composes it once the text is fixed
        log.error("confirmation %d waits for a usable mail text: %s", conf.id, exc.code)
    session.flush()
    return conf


def resend(session: Session, confirmation_id: int, address: str, actor: str,
           settings: Settings | None = None) -> m.Confirmation:
    """A supervisor's way out of a bounce: the corrected address in the registry, a new confirmation.

    The undeliverable finding is overridden with the reason; the old confirmation stays as it was.
    """
    from renraku.errors import DecisionRefused
    from renraku.validators import load_rule_config
    from renraku.validators.emails import email_problem

    settings = settings or load_settings()
    old = session.get(m.Confirmation, confirmation_id)
    if old is None:
        raise KeyError(confirmation_id)
    address = normalize.comparable("email", normalize.email(address))
    if not address or (problem := email_problem(address, load_rule_config())) is not None:
        raise DecisionRefused(f"このアドレスには送れません: {problem or '空です'}")
    person = old.staff
    if not person.active:
        raise DecisionRefused("登録を削除された人には送りません")
    before = person.email
    person.email = address
    for c in session.scalars(select(m.Confirmation).where(m.Confirmation.staff_id == person.id,
                                                          m.Confirmation.status.in_(OPEN))):
        cancel(c, "アドレスを訂正して再送したため取り消し")
    conf = _queue(session, person, old.application, address, settings, load_config(settings))
    if old.application is not None:
        for f in old.application.findings:
            if f.rule == UNDELIVERABLE_RULE and f.overridden_by is None:
                f.overridden_by, f.overridden_at = actor, m.utcnow()
                f.override_reason = f"アドレスを訂正して再送（確認 {conf.public_id}）"
    audit.record(session, actor, "confirmation_resend", f"confirmation:{old.public_id}",
                 {"new": conf.public_id, "staff_id": person.id, "changed": before != address})
    return conf


def cancel(conf: m.Confirmation, reason: str) -> None:
    conf.status, conf.reason, conf.decided_at = "cancelled", reason, m.utcnow()
    _stop_mails(conf)


def _stop_mails(conf: m.Confirmation) -> None:
    for mail in conf.mails:
        if mail.status == "queued":
            mail.status = "cancelled"


def remind_due(session: Session, settings: Settings, now: dt.datetime | None = None) -> list[m.Confirmation]:
    """Queue one reminder for each confirmation sent N days ago and still unanswered (and the first
    mail of any whose text could not be written at approval); ConfigError if the text is unusable."""
    now = now or m.utcnow()
    limit = now - dt.timedelta(days=settings.confirm_remind_days)
    config = load_config(settings)
    for conf in session.scalars(select(m.Confirmation).where(m.Confirmation.status == "waiting",
                                                             ~m.Confirmation.mails.any())):
        conf.mails.append(compose(conf, "confirmation", settings, config))
    due = [c for c in session.scalars(select(m.Confirmation).where(m.Confirmation.status == "sent",
                                                                   m.Confirmation.reminded_at.is_(None)))
           if (sent := aware(c.sent_at)) is not None and sent <= limit and c.staff.active]
    for conf in due:
        conf.mails.append(compose(conf, "reminder", settings, config))
        conf.reminded_at = now
        audit.record(session, SYSTEM, "confirmation_reminder", f"confirmation:{conf.public_id}",
                     {"days": settings.confirm_remind_days})
    session.flush()
    return due


# ---------------------------------------------------------------------------- recognition

@dataclass
class Verdict:
    """What an incoming mail is to the confirmation loop, and what to do with it."""

    kind: str  # confirmation | bounce  (the message record's kind)
    done: bool  # handled by renraku (True) or for a person to read (False)
    note: str  # why, in Japanese, for the person
    confirmation: m.Confirmation | None = None
    action: str | None = None  # confirm | bounce | copy
    mail: m.OutboxMail | None = None  # for a copy: the mail it is a copy of


def _message_ids(text: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", text or "")


def _parse(data: bytes) -> MimeMessage | None:
    try:
        return email.message_from_bytes(data, policy=email.policy.compat32)
    except Exception:
        return None


def _head(data: bytes) -> bytes:
    """The message's header lines: what tells a reply or a bounce. Parsing a 3 MB message with photos
    attached took 0.1–0.3 s, each time a message came in (its attachments are parsed in the intake)."""
    end = re.search(rb"\r?\n\r?\n", data)
    return data if end is None else data[:end.end()]


def _header(msg: MimeMessage, name: str) -> str:
    from renraku.pipeline.mail import fix_text

    try:
        return " ".join(fix_text(str(v)) for v in msg.get_all(name, []))
    except Exception:
        return ""


def _sender(msg: MimeMessage) -> str:
    pairs = getaddresses([_header(msg, "From")])
    return normalize.comparable("email", pairs[0][1]) if pairs else ""


def _tokens(text: str, config: dict[str, Any]) -> list[str]:
    prefix = re.escape(config.get("mail", {}).get("token_prefix", "確認番号"))
    return list(dict.fromkeys(re.findall(rf"{prefix}\s*[:：]?\s*({TOKEN_CHARS})", text)))


def _bounce_report(msg: MimeMessage, data: bytes, config: dict[str, Any]) -> tuple[bool, bool, str]:
    """(is a bounce, delivery failed for good, the text to look for our Message-ID and token in);
    `msg` may hold the headers only: the whole message `data` is parsed when they say bounce."""
    bounce = config.get("bounce", {})
    ctype = msg.get_content_type()
    report = ctype == "multipart/report" and (msg.get_param("report-type") or "").lower() == "delivery-status"
    local = _sender(msg).partition("@")[0]
    subject = _header(msg, "Subject")
    daemon = local in {s.lower() for s in bounce.get("senders", [])} or (
        not _sender(msg) and any(w.lower() in subject.lower() for w in bounce.get("subjects", [])))
    if not (report or daemon):
        return False, False, ""
    msg = _parse(data) or msg
    texts: list[str] = []
    actions: list[str] = []
    try:
        for part in msg.walk():
            kind = part.get_content_type()
            if kind == "message/delivery-status":
                for block in part.get_payload() if part.is_multipart() else [part]:
                    raw = block.as_string() if hasattr(block, "as_string") else str(block)
                    actions += [a.strip().lower() for a in re.findall(r"(?im)^Action:\s*(\S+)", raw)]
            elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
                texts.append(part.as_string())
            elif not part.is_multipart():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    texts.append(payload.decode("utf-8", "replace"))
    except Exception:  # a malformed report is still a bounce; what could be read is used
        pass
    text = "\n".join(texts)
    actions = actions or [a.strip().lower() for a in re.findall(r"(?im)^Action:\s*(\S+)", text)]
    failed = not actions or any(a in ("failed", "failure") for a in actions)
    return True, failed, text


def recognise(session: Session, data: bytes, sender: str, subject: str, body: str,
              settings: Settings | None = None) -> Verdict | None:
    """A reply to a confirmation, a bounce of one, or None (mail for the rest of the intake)."""
    settings = settings or load_settings()
    config = load_config(settings)
    msg = _parse(_head(data))
    if msg is None:
        return None
    own = _message_ids(_header(msg, "Message-ID"))
    copy = session.scalar(select(m.OutboxMail).where(m.OutboxMail.message_id == own[0])) if own else None
    if copy is not None:  # our own copy (Bcc to the secretariat): proof that the server took the mail
        conf = copy.confirmation
        return Verdict("confirmation", True, f"送信した送受信確認メールの控えです（確認 {conf.public_id}）", conf,
                       "copy", copy)
    is_bounce, failed, returned = _bounce_report(msg, data, config)
    if is_bounce:
        conf = _by_message_ids(session, _message_ids(returned)) or _by_tokens(session, _tokens(returned, config))
        if conf is None:
            return Verdict("bounce", False, "不達通知です（送受信確認のメールとの対応は見つかりません）")
        if not failed:
            return Verdict("bounce", False, f"配送遅延の通知です（確認 {conf.public_id}、まだ不達ではありません）",
                           conf)
        if conf.status not in OPEN:
            return Verdict("bounce", False, f"不達通知です（確認 {conf.public_id} は{STATE_NAMES[conf.status]}）", conf)
        return Verdict("bounce", True, f"送受信確認のメールが届きませんでした（確認 {conf.public_id}）", conf, "bounce")

    by_header = _by_message_ids(session, _message_ids(_header(msg, "In-Reply-To") + " " + _header(msg, "References")))
    tokens = _tokens(f"{subject}\n{body}", config)
    by_token = _by_tokens(session, tokens)
    if by_header is None and not tokens:
        return None
    if by_header is None and by_token is None:
        return Verdict("confirmation", False, "確認番号が送受信確認のどれとも一致しません（確認していません）")
    if by_header is not None and tokens and (by_token is None or by_token.id != by_header.id):
        return Verdict("confirmation", False, f"確認番号が返信先のメール（確認 {by_header.public_id}）と一致しません"
                                              "（確認していません）", by_header)
    conf = by_header or by_token
    assert conf is not None
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return Verdict("confirmation", False, f"自動応答のメールです（確認 {conf.public_id}、確認していません）", conf)
    if _sender(msg) != normalize.comparable("email", conf.email):
        return Verdict("confirmation", False, f"返信元が確認先のアドレスと異なります（確認 {conf.public_id}、"
                                              "確認していません）", conf)
    if conf.status == "confirmed":
        return Verdict("confirmation", False, f"この確認番号は使用済みです（確認 {conf.public_id} は確認済み）", conf)
    if conf.status != "sent":
        return Verdict("confirmation", False, f"確認 {conf.public_id} は{STATE_NAMES[conf.status]}のため、"
                                              "返信では確認しません", conf)
    return Verdict("confirmation", True, f"送受信確認の返信です（確認 {conf.public_id}）", conf, "confirm")


def _by_message_ids(session: Session, ids: list[str]) -> m.Confirmation | None:
    if not ids:
        return None
    mail = session.scalar(select(m.OutboxMail).where(m.OutboxMail.message_id.in_(ids)).order_by(m.OutboxMail.id)
                          .limit(1))
    return mail.confirmation if mail else None


def _by_tokens(session: Session, tokens: list[str]) -> m.Confirmation | None:
    if not tokens:
        return None
    return session.scalar(select(m.Confirmation).where(m.Confirmation.token.in_(tokens)).limit(1))


def apply(session: Session, verdict: Verdict, message: m.Message) -> None:
    """Carry out a verdict once its message record exists: confirm, or mark undeliverable."""
    conf = verdict.confirmation
    if conf is None or verdict.action is None:
        return
    if verdict.action == "copy":
        if verdict.mail is not None and verdict.mail.status == "sending":  # the crash case of sinks/outbox.py
            record_sent(session, verdict.mail, evidence=message.public_id)
        return
    conf.decided_at, conf.message_id = m.utcnow(), message.id
    _stop_mails(conf)
    if verdict.action == "confirm":
        conf.status = "confirmed"
        audit.record(session, SYSTEM, "confirmation_confirmed", f"confirmation:{conf.public_id}",
                     {"staff_id": conf.staff_id, "message": message.public_id})
        return
    mark_undeliverable(session, conf, "不達通知を受け取りました", message.public_id)


def mark_undeliverable(session: Session, conf: m.Confirmation, reason: str, evidence: str) -> None:
    """The address does not take mail: the confirmation is bounced and the application gets a finding."""
    conf.status, conf.reason, conf.decided_at = "bounced", reason, conf.decided_at or m.utcnow()
    _stop_mails(conf)
    app = conf.application
    if app is not None:
        from renraku.sinks.records import application_view
        from renraku.validators import load_rule_config

        path = next((r.path("email") for r in rows(application_view(app))
                     if normalize.comparable("email", r.text("email")) == conf.email), None)
        where = label(path, load_rule_config()) if path else "メールアドレス"
        app.findings.append(m.Finding(
            rule=UNDELIVERABLE_RULE, field=path, severity="error",
            message=f"{where}にメールが届きません（送受信確認 {conf.public_id} が不達）。"
                    "施設に正しいアドレスを確認してください"))
    audit.record(session, SYSTEM, "confirmation_bounced", f"confirmation:{conf.public_id}",
                 {"staff_id": conf.staff_id, "evidence": evidence,
                  "application": app.public_id if app else None})


def attention_query(settings: Settings, now: dt.datetime | None = None) -> Select[Any]:
    """(application_id, bounced, overdue) of each application with a confirmation that bounced or is
    overdue; a person's newer confirmation (resent to a corrected address) replaces the older.

    A query, not a list: the queue uses it inside its own (tens of thousands of confirmations)."""
    overdue_from = (now or m.utcnow()) - dt.timedelta(days=settings.confirm_overdue_days)
    conf, newer = m.Confirmation, aliased(m.Confirmation)
    latest = ~exists().where(newer.staff_id == conf.staff_id, newer.id > conf.id)
    bounced = func.sum(case((conf.status == "bounced", 1), else_=0))
    overdue = func.sum(case((and_(conf.status == "sent", conf.sent_at <= overdue_from), 1), else_=0))
    return (select(conf.application_id, bounced, overdue)
            .where(conf.status.in_(("sent", "bounced")), conf.application_id.is_not(None), latest)
            .group_by(conf.application_id).having(or_(bounced > 0, overdue > 0)))


def attention(session: Session, settings: Settings, now: dt.datetime | None = None) -> dict[int, dict[str, int]]:
    """Per application: how many of its confirmations bounced or are overdue (the queue shows these)."""
    return {app_id: {"bounced": int(b), "overdue": int(o)}
            for app_id, b, o in session.execute(attention_query(settings, now))}


def record_sent(session: Session, mail: m.OutboxMail, evidence: str = "smtp") -> None:
    """The SMTP server took `mail` (we saw its acceptance, or its copy arrived in the inbox)."""
    now = m.utcnow()
    mail.status, mail.sent_at, mail.last_error = "sent", now, ""
    conf = mail.confirmation
    if conf.status == "waiting":
        conf.status, conf.sent_at = "sent", now
    audit.record(session, SYSTEM, "mail_sent", f"confirmation:{conf.public_id}",
                 {"outbox": mail.id, "template": mail.template, "message_id": mail.message_id,
                  "attempts": mail.attempts, "evidence": evidence})
