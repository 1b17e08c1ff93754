"""From received bytes to sheet readings, without touching storage (a pure stage).

`open_document` opens a file (or an e-mail and, recursively, its attachments) and loads its pages;
`read_opened` classifies each page and reads its fields, in worker processes when there are pages
enough (both cores; results do not depend on which worker read a page). Whatever goes wrong with
one input becomes a status and a reason on that document or page; the caller records it and the
batch goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
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
    picture: Any = field(default=None, repr=False)  # image pages: the page in template space (numpy)


@dataclass
class DocumentResult:
    name: str
    sha256: str
    size: int
    media_type: str
    status: str  # read | message | unsupported | unreadable | skipped | duplicate
    reason: str = ""
    message: mail.MailContent | None = None
    pages: list[PageResult] = field(default_factory=list)
    children: list[DocumentResult] = field(default_factory=list)
    data: bytes = field(default=b"", repr=False)
    loaded: list[Page] = field(default_factory=list, repr=False)  # opened, not yet read


@dataclass
class ReadContext:
    templates: list[Template]
    config: dict[str, Any]

    def threshold(self, reading: FieldReading) -> float:
        """The review threshold for a reading: reading.toml's number, or the calibrated one of the
        reading's channel kind."""
        value = self.config.get("review", {}).get("threshold", "calibrated")
        if value in ("calibrated", "calibrated_per_channel"):
            from renraku.extractors.calibration import calibrated_threshold

            channel = getattr(reading.evidence, "channel", None) if reading.evidence is not None else None
            return calibrated_threshold(channel if value == "calibrated_per_channel" else None)
        return float(value)

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
    result.readings, result.picture = reader(page, template, cls, ctx.config)
    flag_for_review(result.readings, ctx.threshold)
    return result


def open_document(data: bytes, name: str, ctx: ReadContext, *, declared_type: str = "",
                  is_known: Callable[[str], bool] = lambda _sha: False, media_type: str = "") -> DocumentResult:
    """Open a file, or a message and its attachments, and load its pages; nothing is read yet.

    Bytes already stored are not opened again. `declared_type` is what a mail part claims to be;
    the content decides, the claim only explains.
    """
    media = media_type or sniff_media_type(data, name)  # what a source knows (IMAP: mail) beats a guess
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
                if att.inline:
                    child = DocumentResult(name=att.name, sha256=sha256(att.data), size=len(att.data),
                                           media_type=att.content_type, data=att.data, status="skipped",
                                           reason="本文に埋め込まれた小さな画像（署名・ロゴなど）のため様式として読みません")
                    if is_known(child.sha256):
                        child.status = "duplicate"
                    doc.children.append(child)
                    continue
                doc.children.append(open_document(att.data, att.name, ctx, declared_type=att.content_type,
                                                  is_known=is_known))
            return doc
        doc.loaded = load_pages(data, media)
    except InputError as exc:
        doc.status = "unsupported" if exc.code in ("unsupported", "unsupported_type") else "unreadable"
        doc.reason = exc.reason
        if declared_type and declared_type != media:
            doc.reason += f"（添付の申告: {declared_type}）"
    return doc


def walk(doc: DocumentResult) -> Iterator[DocumentResult]:
    yield doc
    for child in doc.children:
        yield from walk(child)


def read_opened(docs: list[DocumentResult], ctx: ReadContext, pool: Executor | None = None) -> None:
    """Read every loaded page of the documents and their attachments, in parallel given a pool."""
    parts = [d for doc in docs for d in walk(doc) if d.loaded]
    pages = [p for d in parts for p in d.loaded]
    if pool is not None and len(pages) > 1:
        results = list(pool.map(_read_page_in_worker, pages))
    else:
        results = [_read_page_safely(p, ctx) for p in pages]
    it = iter(results)
    for d in parts:
        d.pages = [next(it) for _ in d.loaded]
        d.loaded = []
        unread = [p for p in d.pages if p.classification.method == "none"]
        if unread and len(unread) == len(d.pages):
            d.status, d.reason = "unreadable", unread[0].reason


def read_document(data: bytes, name: str, ctx: ReadContext, *, declared_type: str = "",
                  is_known: Callable[[str], bool] = lambda _sha: False, pool: Executor | None = None) -> DocumentResult:
    """Open and read a file, or a message and its attachments (see `open_document`)."""
    doc = open_document(data, name, ctx, declared_type=declared_type, is_known=is_known)
    read_opened([doc], ctx, pool)
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


# ------------------------------------------------------------------------------- worker pool

_WORKER_CTX: ReadContext | None = None


def _init_worker(ctx: ReadContext) -> None:
    global _WORKER_CTX
    os.environ["OMP_THREAD_LIMIT"] = "1"  # each worker one core; Tesseract must not fan out
    _WORKER_CTX = ctx


def _read_page_in_worker(page: Page) -> PageResult:
    assert _WORKER_CTX is not None
    return _read_page_safely(page, _WORKER_CTX)


def page_pool(ctx: ReadContext, workers: int) -> Executor | None:
    """Worker processes reading pages in parallel (None for one worker: read in this process)."""
    if workers <= 1:
        return None
    import multiprocessing

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(ctx,))
