"""Telling the secretariat at once: a log line always, an e-mail when SMTP is configured.

Notifications name the record (M000012) and what it is, never the sender, their device or address:
the person who acts opens the record in renraku.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage

from renraku.config import Settings

log = logging.getLogger(__name__)


def _context(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(settings.smtp_cafile) if settings.smtp_cafile else None)


@contextmanager
def smtp_connection(settings: Settings) -> Iterator[smtplib.SMTP]:
    """One SMTP session (implicit TLS, STARTTLS or plain on a trusted network), logged in if asked."""
    assert settings.smtp_host
    if settings.smtp_tls == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, context=_context(settings),
                                              timeout=30)
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30)
    with smtp:
        if settings.smtp_tls == "starttls":
            smtp.starttls(context=_context(settings))
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        yield smtp


def send_mail(settings: Settings, to: str, subject: str, body: str) -> None:
    """One e-mail over SMTP."""
    msg = EmailMessage()
    msg["From"] = settings.notify_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    with smtp_connection(settings) as smtp:
        smtp.send_message(msg)


def notify_urgent(settings: Settings, record_ids: list[str]) -> bool:
    """Log and (if configured) mail the secretariat about urgent records; True if mailed."""
    for record_id in record_ids:
        log.warning("URGENT: lost or stolen device reported, message record %s is at the top of the queue",
                    record_id)
    if not record_ids or not (settings.smtp_host and settings.notify_to):
        return False
    body = ("端末の紛失・盗難の報告を受け付けました。直ちに対応してください。\n\n"
            + "\n".join(f"- メッセージ {r}" for r in record_ids)
            + "\n\nrenraku の受付一覧の先頭に表示されています。\n")
    try:
        send_mail(settings, settings.notify_to, "【至急】どこでも連絡帳: 端末の紛失・盗難の報告", body)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("could not mail the urgent notification (%s); the records stay at the top of the queue",
                  type(exc).__name__)
        return False
    return True
