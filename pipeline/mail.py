"""Opening an e-mail (RFC 5322) to its attachments with Python's email package.

The message itself is kept as received; what renraku reads are its attachments. Parts that carry a
file (a file name, or a non-text body such as application/pdf or image/*) are attachments; the
plain-text body is kept for the person who reads the message.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

from renraku.errors import BrokenInput

MAX_ATTACHMENTS = 50


@dataclass
class Attachment:
    name: str
    content_type: str
    data: bytes


@dataclass
class MailContent:
    message_id: str | None
    subject: str
    sender: str
    date: str
    body: str
    attachments: list[Attachment] = field(default_factory=list)


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
        return str(value) if value is not None else ""
    except Exception:  # a malformed header must not lose the message
        raw = msg.get_all(name, failobj=[""])
        return str(raw[0]) if raw else ""


def _is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    ctype = part.get_content_type()
    if part.get_filename():
        return True
    return not ctype.startswith("text/") and ctype != "message/delivery-status"


def _body_text(msg: EmailMessage) -> str:
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""
    except (LookupError, KeyError, ValueError, AttributeError):
        return ""


def open_message(data: bytes) -> MailContent:
    """The headers, body text and attachments of a message; raises BrokenInput if it is no mail."""
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
    except Exception as exc:
        raise BrokenInput(f"メールとして読めません（{type(exc).__name__}）", code="broken_mail") from exc
    if not msg.keys():
        raise BrokenInput("メールのヘッダーがありません", code="broken_mail")
    attachments: list[Attachment] = []
    for index, part in enumerate(msg.walk()):
        if part is msg and msg.is_multipart():
            continue
        if not _is_attachment(part):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        try:
            name = part.get_filename() or ""
        except Exception:
            name = ""
        attachments.append(Attachment(name or f"attachment-{index}", part.get_content_type(), payload))
        if len(attachments) > MAX_ATTACHMENTS:
            raise BrokenInput(f"添付ファイルが多すぎます（上限 {MAX_ATTACHMENTS}）", code="too_many_parts")
    message_id = _header(msg, "Message-ID").strip() or None
    return MailContent(
        message_id=message_id,
        subject=_header(msg, "Subject"),
        sender=_header(msg, "From"),
        date=_header(msg, "Date"),
        body=_body_text(msg) if isinstance(msg, EmailMessage) else "",
        attachments=attachments,
    )
