"""Opening an e-mail (RFC 5322) to its attachments, whatever real mail looks like.

The message itself is kept as received; what renraku reads are its attachments. Parts that carry a
file (a file name, or a non-text body such as application/pdf or image/*) are attachments, also
inside forwarded messages (message/rfc822). File names come in every encoding Japanese mail uses:
RFC 2231, RFC 2047 (even where it is not allowed, inside a quoted name), and raw ISO-2022-JP,
Shift_JIS or EUC-JP bytes; all are decoded. Small images embedded in the body (logos, signatures)
are kept but not read as sheets. Nothing here raises on a malformed message except for input that
is no mail at all; a part that cannot be decoded is skipped with a note.
"""

from __future__ import annotations

import contextlib
import email
import email.header
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

from renraku.errors import BrokenInput

MAX_ATTACHMENTS = 50
MAX_MESSAGE_BYTES = 60_000_000
INLINE_IMAGE_BYTES = 50_000  # an embedded image smaller than this is a logo or signature, not a sheet
JAPANESE_CODECS = ("utf-8", "cp932", "euc_jp", "iso2022_jp")


@dataclass
class Attachment:
    name: str
    content_type: str
    data: bytes
    inline: bool = False  # an image shown in the body (Content-ID), not sent as a file


@dataclass
class MailContent:
    message_id: str | None
    subject: str
    sender: str
    date: str
    body: str
    attachments: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # parts that could not be taken, and why


def fix_text(value: str) -> str:
    """Text from a header as a person would read it: raw Japanese bytes and stray escapes decoded."""
    if "\x1b$" in value or "\x1b(" in value:  # raw ISO-2022-JP where an encoded word belongs
        try:
            return value.encode("latin-1", "ignore").decode("iso2022_jp", "replace")
        except (UnicodeError, LookupError):
            pass
    if any("\udc80" <= ch <= "\udcff" for ch in value):  # raw 8-bit bytes kept by surrogateescape
        raw = value.encode("utf-8", "surrogateescape")
        for codec in JAPANESE_CODECS:
            try:
                return raw.decode(codec)
            except UnicodeDecodeError:
                continue
        return raw.decode("utf-8", "replace")
    if "=?" in value and "?=" in value:  # RFC 2047 words left inside a quoted parameter
        try:
            return str(email.header.make_header(email.header.decode_header(value)))
        except (email.errors.HeaderParseError, UnicodeError, LookupError, ValueError):
            return value
    return value


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
        return fix_text(str(value)) if value is not None else ""
    except Exception:  # a header the policy cannot parse must not lose the message
        raw = msg.get_all(name, failobj=[]) if hasattr(msg, "get_all") else []
        return fix_text(str(raw[0])) if raw else ""


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:
        name = ""
    if not name:
        try:
            name = part.get_param("name", header="content-type") or ""
            if isinstance(name, tuple):
                name = email.utils.collapse_rfc2231_value(name)
        except Exception:
            name = ""
    name = fix_text(str(name)).strip().strip('"')
    return re.sub(r"[\x00-\x1f/\\]", "_", name)


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    ctype = _content_type(part)
    if ctype in ("message/delivery-status", "message/disposition-notification", "text/rfc822-headers",
                 "message/rfc822-headers"):
        return False
    if _filename(part):
        return True
    return not ctype.startswith("text/")


def _payload(part: Message) -> bytes | None:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return None
    return payload if isinstance(payload, bytes) and payload else None


def _decode_text(part: Message) -> str:
    raw = _payload(part) or b""
    charset = None
    with contextlib.suppress(Exception):
        charset = part.get_content_charset()
    for codec in ([charset] if charset else []) + list(JAPANESE_CODECS):
        try:
            return raw.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("utf-8", "replace")


def _body_text(msg: Message) -> str:
    """The plain text a person reads (HTML reduced to text when there is no plain part)."""
    plain, html = [], []
    for part in msg.walk():
        if part.is_multipart() or _filename(part):
            continue
        ctype = _content_type(part)
        if ctype == "text/plain":
            plain.append(_decode_text(part))
        elif ctype == "text/html":
            html.append(re.sub(r"<[^>]+>", " ", _decode_text(part)))
    return "\n".join(plain or html)


def open_message(data: bytes) -> MailContent:
    """The headers, body text and attachments of a message; raises BrokenInput if it is no mail."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise BrokenInput(f"メールが大きすぎます（{len(data) // 1_000_000} MB）", code="too_large")
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        keys = msg.keys()
    except Exception:
        try:
            msg = email.message_from_bytes(data, policy=email.policy.compat32)
            keys = msg.keys()
        except Exception as exc:
            raise BrokenInput(f"メールとして読めません（{type(exc).__name__}）", code="broken_mail") from exc
    if not keys:
        raise BrokenInput("メールのヘッダーがありません", code="broken_mail")
    attachments: list[Attachment] = []
    notes: list[str] = []
    try:
        parts = list(msg.walk())
    except Exception as exc:  # a structure Python cannot walk: the message is still kept whole
        parts = []
        notes.append(f"メールの構造を解析できません（{type(exc).__name__}）")
    for index, part in enumerate(parts):
        if part is msg and msg.is_multipart():
            continue
        try:
            attachment = _is_attachment(part)
        except Exception:
            attachment = False
        if not attachment:
            continue
        payload = _payload(part)
        name = _filename(part) or f"attachment-{index}"
        if payload is None:
            notes.append(f"添付「{name}」を取り出せません（空、または符号化が壊れています）")
            continue
        ctype = _content_type(part)
        inline = ctype.startswith("image/") and bool(part.get("Content-ID")) and len(payload) < INLINE_IMAGE_BYTES
        attachments.append(Attachment(name, ctype, payload, inline))
        if len(attachments) > MAX_ATTACHMENTS:
            raise BrokenInput(f"添付ファイルが多すぎます（上限 {MAX_ATTACHMENTS}）", code="too_many_parts")
    message_id = _header(msg, "Message-ID").strip() or None
    return MailContent(
        message_id=message_id,
        subject=_header(msg, "Subject"),
        sender=_header(msg, "From"),
        date=_header(msg, "Date"),
        body=_body_text(msg) if parts else "",
        attachments=attachments,
        notes=notes,
    )
