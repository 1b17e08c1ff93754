"""From received bytes to sheet readings, without touching storage (a pure stage).

`read_document` opens a file (or an e-mail and, recursively, its attachments), loads its pages,
classifies each page and reads its fields. Whatever goes wrong with one input becomes a status and
a reason on that document or page; the caller records it and the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from renraku.errors import InputError
from renraku.extractors import READERS
from renraku.extractors.fields import FieldReading, flag_for_review
from renraku.extractors.templates import Template
from renraku.pipeline import mail
from renraku.pipeline.classify import Classification, classify
from renraku.pipeline.pages import EML, Page, load_pages, sniff_media_type
from renraku.sinks.store import sha256

log = logging.getLogger(__name__)


@dataclass
class PageResult:
    number: int
    kind: str
    width: float
    height: float
    classification: Classification
    readings: list[FieldReading] = field(default_factory=list)
    reason: str = ""  # why the page could not be read, if it could not


@dataclass
class DocumentResult:
    name: str
    sha256: str
    size: int
    media_type: str
    status: str  # read | message | unsupported | unreadable | duplicate
    reason: str = ""
    message: mail.MailContent | None = None
    pages: list[PageResult] = field(default_factory=list)
    children: list[DocumentResult] = field(default_factory=list)
    data: bytes = field(default=b"", repr=False)


@dataclass
class ReadContext:
    templates: list[Template]
    config: dict[str, Any]

    @property
    def threshold(self) -> float:
        return float(self.config.get("review", {}).get("threshold", 0.9))

    def template(self, form_id: str) -> Template | None:
        return next((t for t in self.templates if t.form_id == form_id), None)


def read_page(page: Page, ctx: ReadContext) -> PageResult:
    result = PageResult(page.number, page.kind, page.width, page.height,
                        classify(page, ctx.templates, ctx.config))
    cls = result.classification
    if not cls.template_matched:
        result.reason = cls.reason
        return result
    reader = READERS.get(page.kind)
    template = ctx.template(cls.form_id)
    if reader is None or template is None:
        result.reason = "このページの読み取り方法がまだありません"
        return result
    result.readings = reader(page, template, cls.transform, ctx.config)
    flag_for_review(result.readings, ctx.threshold)
    return result


def read_document(data: bytes, name: str, ctx: ReadContext, *, declared_type: str = "",
                  is_known: Callable[[str], bool] = lambda _sha: False) -> DocumentResult:
    """Read a file, or a message and its attachments; bytes already stored are not read again.

    `declared_type` is what a mail part claims to be; the content decides, the claim only explains.
    """
    media = sniff_media_type(data, name)
    doc = DocumentResult(name=name, sha256=sha256(data), size=len(data), media_type=media, status="read",
                         data=data)
    if is_known(doc.sha256):
        doc.status = "duplicate"
        return doc
    try:
        if media == EML:
            doc.status = "message"
            doc.message = mail.open_message(data)
            for att in doc.message.attachments:
                doc.children.append(read_document(att.data, att.name, ctx, declared_type=att.content_type,
                                                  is_known=is_known))
            return doc
        for page in load_pages(data, media):
            doc.pages.append(_read_page_safely(page, ctx))
    except InputError as exc:
        doc.status = "unsupported" if exc.code in ("unsupported", "unsupported_type") else "unreadable"
        doc.reason = exc.reason
        if declared_type and declared_type != media:
            doc.reason += f"（添付の申告: {declared_type}）"
        doc.pages = []
        return doc
    unread = [p for p in doc.pages if p.classification.method == "none"]
    if unread and len(unread) == len(doc.pages):
        doc.status = "unreadable"
        doc.reason = unread[0].reason
    return doc


def _read_page_safely(page: Page, ctx: ReadContext) -> PageResult:
    try:
        return read_page(page, ctx)
    except InputError as exc:
        reason = exc.reason
    except Exception:  # a reader bug must cost one page, not the batch; the trace goes to the log
        log.exception("page %d could not be read", page.number)
        reason = "読み取り中に内部エラーが起きました（ログを確認してください）"
    return PageResult(page.number, page.kind, page.width, page.height,
                      Classification("unknown", 0.0, "none", reason=reason), reason=reason)
