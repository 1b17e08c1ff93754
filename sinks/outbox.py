"""Sending what waits in the outbox, by the scheduled run: retries, and never a mail twice.

Each mail is sent in three steps: (1) commit the attempt (status `sending`, attempt count, time;
the Message-ID was fixed when the mail was queued); (2) hand it to the SMTP server; (3) commit
`sent`. A server that is down or answers 4xx leaves the mail `queued` for a later run (the wait
doubles from `outbox_retry_seconds`, up to six hours); a permanent refusal (5xx for the recipient)
marks the address undeliverable.

A crash between (2) and (3) leaves `sending`. Every mail also goes to the secretariat's own
address (Bcc, `confirm_copy_to_self`), so its copy arrives in the inbox the run reads: the intake
sees the copy's Message-ID and marks the mail sent (sinks/confirmation.py). A `sending` mail is
tried again only after its wait, when no copy came, and then with the same Message-ID and token,
so even that rare second copy is answered like the first.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from renraku.config import Settings
from renraku.pipeline import faults
from renraku.sinks import models as m
from renraku.sinks.confirmation import mark_undeliverable, record_sent
from renraku.sinks.notify import smtp_connection

log = logging.getLogger(__name__)
MAX_WAIT = dt.timedelta(hours=6)


@dataclass
class SendReport:
    sent: list[int] = field(default_factory=list)  # outbox ids
    deferred: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    error: str = ""


def mime(mail: m.OutboxMail, settings: Settings) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.notify_from
    msg["To"] = mail.to_addr
    msg["Subject"] = mail.subject
    msg["Date"] = email.utils.format_datetime(m.utcnow())
    msg["Message-ID"] = mail.message_id
    if mail.references:
        msg["In-Reply-To"] = mail.references
        msg["References"] = mail.references
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(mail.body)
    return msg


def _wait(attempts: int, settings: Settings) -> dt.timedelta:
    return min(dt.timedelta(seconds=settings.outbox_retry_seconds * 2 ** max(0, attempts - 1)), MAX_WAIT)


def _due(sessions: sessionmaker[Session], now: dt.datetime) -> list[int]:
    with sessions() as s:
        return list(s.scalars(select(m.OutboxMail.id).where(m.OutboxMail.status.in_(("queued", "sending")),
                                                            m.OutboxMail.next_attempt_at <= now)
                              .order_by(m.OutboxMail.id)))


def _defer(sessions: sessionmaker[Session], ids: list[int], error: str, settings: Settings,
           now: dt.datetime) -> None:
    with sessions.begin() as s:
        for mail in s.scalars(select(m.OutboxMail).where(m.OutboxMail.id.in_(ids))):
            if mail.status == "queued":  # a `sending` row keeps its state: it may have gone out
                mail.attempts += 1
                mail.attempted_at = now
            mail.last_error = error
            mail.next_attempt_at = now + _wait(mail.attempts, settings)


def send_due(sessions: sessionmaker[Session], settings: Settings, now: dt.datetime | None = None) -> SendReport:
    """Send every mail whose time has come; a server that is down leaves them all waiting."""
    report = SendReport()
    now = now or m.utcnow()
    due = _due(sessions, now)
    if not due:
        return report
    if not settings.smtp_host:
        report.deferred, report.error = due, "SMTP が設定されていません（RENRAKU_SMTP_HOST）"
        log.warning("%d mails wait in the outbox: no SMTP server configured", len(due))
        return report
    try:
        with smtp_connection(settings) as smtp:
            for n, mail_id in enumerate(due):
                try:
                    _send_one(sessions, smtp, mail_id, settings, report)
                except (OSError, smtplib.SMTPException) as exc:  # the connection broke: the rest waits
                    report.error = f"SMTP の送信に失敗しました（{type(exc).__name__}）"
                    rest = due[n:]
                    _defer(sessions, rest, report.error, settings, now)
                    report.deferred += rest
                    break
    except (OSError, smtplib.SMTPException) as exc:
        pending = [i for i in due if i not in report.sent and i not in report.refused and i not in report.deferred]
        if pending:
            report.error = f"SMTP サーバーに接続できません（{type(exc).__name__}）"
            _defer(sessions, pending, report.error, settings, now)
            report.deferred += pending
    if report.error:
        log.warning("outbox: %d sent, %d wait for a later run (%s)", len(report.sent), len(report.deferred),
                    report.error)
    else:
        log.info("outbox: %d sent, %d refused", len(report.sent), len(report.refused))
    return report


def _send_one(sessions: sessionmaker[Session], smtp: smtplib.SMTP, mail_id: int, settings: Settings,
              report: SendReport) -> None:
    with sessions.begin() as s:  # (1) the attempt, before the server sees anything
        mail = s.get(m.OutboxMail, mail_id)
        if mail is None or mail.status not in ("queued", "sending"):
            return
        conf = mail.confirmation
        if not conf.staff.active or conf.status not in ("waiting", "sent"):
            mail.status, mail.last_error = "cancelled", "登録の削除、または確認の終了により送信しません"
            return
        now = m.utcnow()
        mail.status, mail.attempts, mail.attempted_at = "sending", mail.attempts + 1, now
        mail.next_attempt_at = now + _wait(mail.attempts, settings)  # a crash: the copy has time to arrive
        msg = mime(mail, settings)
        to = [mail.to_addr] + ([settings.notify_from] if settings.confirm_copy_to_self else [])
    faults.checkpoint("outbox:attempted")
    try:
        refused = smtp.send_message(msg, from_addr=settings.notify_from, to_addrs=to)  # (2)
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
        refused = exc.recipients
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500 and exc.smtp_code != 552:
            _refused(sessions, mail_id, exc.smtp_code, report)
            return
        raise
    code = refused.get(to[0], (250, b""))[0]  # the copy to ourselves may go through while the address fails
    if code >= 500:
        _refused(sessions, mail_id, code, report)
        return
    if code >= 400:
        with sessions.begin() as s:
            mail = s.get(m.OutboxMail, mail_id)
            assert mail is not None
            mail.status, mail.last_error = "queued", f"SMTP サーバーが宛先を一時的に拒否しました（{code}）"
        report.deferred.append(mail_id)
        return
    faults.checkpoint("outbox:accepted")
    with sessions.begin() as s:  # (3)
        mail = s.get(m.OutboxMail, mail_id)
        assert mail is not None
        record_sent(s, mail)
        attempts, conf_id = mail.attempts, mail.confirmation_id
    report.sent.append(mail_id)
    log.info("outbox mail %d sent (confirmation %d, attempt %d)", mail_id, conf_id, attempts)


def _refused(sessions: sessionmaker[Session], mail_id: int, code: int, report: SendReport) -> None:
    with sessions.begin() as s:
        mail = s.get(m.OutboxMail, mail_id)
        assert mail is not None
        mail.status, mail.last_error = "failed", f"SMTP サーバーが宛先を拒否しました（{code}）"
        mark_undeliverable(s, mail.confirmation, mail.last_error, f"smtp:{code}")
    report.refused.append(mail_id)
    log.warning("outbox mail %d refused permanently (%d)", mail_id, code)
