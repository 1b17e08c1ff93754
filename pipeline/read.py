"""From received bytes to sheet readings, without touching storage (a pure stage).

`open_document` opens a file (or an e-mail and, recursively, its attachments) and loads its pages;
`read_opened` classifies each page and reads its fields, in worker processes when there are pages
enough (both cores; results do not depend on which worker read a page). Whatever goes wrong with
one input becomes a status and a reason on that document or page; the caller records it and the
batch goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from renraku.errors import InputError
from renraku.extractors import READERS, corroboration, names
from renraku.extractors.fields import FieldReading, flag_for_review
from renraku.extractors.ocr import drop_engines
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
    picture_png: bytes | None = field(default=None, repr=False)  # image pages: the page in template space
    pending: Any = field(default=None, repr=False)  # image pages between preparation and OCR


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
    workers: int = 1  # Tesseract processes run at once for a batch's OCR

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


def prepare_page(page: Page, ctx: ReadContext) -> PageResult:
    """Classify a page and read what needs no OCR; an image page keeps its crops in `pending`."""
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
    read = reader(page, template, cls, ctx.config)
    if isinstance(read, list):
        result.readings = read
        flag_for_review(result.readings, ctx.threshold)
    else:
        result.pending, result.picture_png = read, read.picture_png
    return result


Ahead = dict[int, "Future[PageResult]"]  # pages already handed to the workers, by id(page)


def prepare_ahead(pages: list[Page], pool: Executor | None) -> Ahead:
    """Hand pages to the page workers as soon as they are loaded: while they prepare them, this
    process opens the next files of the window (decoding a photo, parsing a message) instead of
    leaving the workers idle until the window is full. `read_pages` takes them from there. A page's
    pixels are let go once it is prepared (its crops and picture are in the result, as with
    `release`): a window's photos are not all held while the last ones are decoded."""
    if pool is None:
        return {}
    ahead = {}
    for page in pages:
        ahead[id(page)] = future = pool.submit(_prepare_in_worker, page)
        future.add_done_callback(lambda _done, page=page: setattr(page, "image", None))
    return ahead


def read_pages(pages: list[Page], ctx: ReadContext, pool: Executor | None = None, *,
               release: bool = False, ahead: Ahead | None = None) -> list[PageResult]:
    """Read pages: prepared in parallel (given a pool), the OCR of all of them batched, then finished.

    `release`: drop each page's pixels once it is prepared (its crops and picture are in the result):
    the OCR of the whole window, the long part, then runs without a window of page images held.
    `ahead`: pages `prepare_ahead` has handed to the workers already.
    """
    ahead = ahead or {}
    if pool is not None and (len(pages) > 1 or ahead):
        from renraku.extractors.corroboration import warm

        images = any(p.kind == "image" for p in pages)
        warming = threading.Thread(target=warm, args=(ctx.config,), daemon=True)
        if images:
            warming.start()  # this process only waits for the workers meanwhile
        futures = [ahead.get(id(p)) or pool.submit(_prepare_in_worker, p) for p in pages]
        prepared: Iterator[PageResult] = (f.result() for f in futures)
    else:
        prepared = (_safely(prepare_page, p, ctx) for p in pages)
        images = False
    results = []
    for page, result in zip(pages, prepared, strict=True):
        if release:
            page.image = None
        results.append(result)
    if images:
        warming.join()
    pending = [r for r in results if r.pending is not None]
    if pending:
        from renraku.extractors.escalation import ocr_prepared
        from renraku.extractors.image_reader import ImageReader, vocabulary

        readers = [ImageReader(ctx.template(r.pending.form_id), ctx.config, vocabulary()) for r in pending]
        try:
            found = ocr_prepared([(reader, r.pending) for reader, r in zip(readers, pending, strict=True)],
                                 ctx.workers)
        except Exception:  # OCR itself failed (Tesseract missing, killed): every waiting page says so
            log.exception("OCR failed for %d pages", len(pending))
            found = [None] * len(pending)
        for reader, r, ocr_results in zip(readers, pending, found, strict=True):
            if ocr_results is None:
                _fail(r, "文字認識（OCR）を実行できませんでした（ログを確認してください）")
                continue
            try:
                r.readings = reader.finish(r.pending, ocr_results)
                flag_for_review(r.readings, ctx.threshold)
            except Exception:  # a reader bug must cost one page, not the batch
                log.exception("page %d could not be read", r.number)
                _fail(r, INTERNAL_ERROR)
            r.pending = None
    return results


def read_page(page: Page, ctx: ReadContext) -> PageResult:
    """One page on its own."""
    return read_pages([page], ctx)[0]


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


def read_opened(docs: list[DocumentResult], ctx: ReadContext, pool: Executor | None = None,
                ahead: Ahead | None = None) -> None:
    """Read every loaded page of the documents and their attachments, in parallel given a pool."""
    parts = [d for doc in docs for d in walk(doc) if d.loaded]
    results = read_pages([p for d in parts for p in d.loaded], ctx, pool, release=True, ahead=ahead)
    it = iter(results)
    for d in parts:
        d.pages = [next(it) for _ in d.loaded]
        d.loaded = []
        unread = [p for p in d.pages if p.classification.method == "none"]
        if unread and len(unread) == len(d.pages):
            d.status, d.reason = "unreadable", unread[0].reason
    for doc in docs:
        corroborate_item([p for d in walk(doc) for p in d.pages], ctx)


def corroborate_item(pages: list[PageResult], ctx: ReadContext) -> None:
    """Sheets that came together (a fax, a mail and its attachments) vouch for each other's shared
    fields and mail domains (the item rules of reading.toml); confidence and review flags follow."""
    from renraku.extractors.image_reader import vocabulary

    words = vocabulary()
    sheets = []
    for p in pages:
        template = ctx.template(p.classification.form_id) if p.readings else None
        if template is not None:
            sheets.append(corroboration.SheetView({r.path: r for r in p.readings}, corroboration.Links.of(template),
                                                  kinds={f.path: f.kind for f in template.fields}))
    means = corroboration.Means(names.configured(ctx.config), role_suffixes=tuple(words.get("email_role_suffixes", [])),
                                facility_kinds=tuple(words.get("facility_suffixes", [])),
                                mail_domains=tuple(words.get("mail_domains", [])))
    changed = corroboration.run(corroboration.configured(ctx.config, "item"), corroboration.ItemView(sheets), means)
    flag_for_review(changed, ctx.threshold)


def read_document(data: bytes, name: str, ctx: ReadContext, *, declared_type: str = "",
                  is_known: Callable[[str], bool] = lambda _sha: False, pool: Executor | None = None) -> DocumentResult:
    """Open and read a file, or a message and its attachments (see `open_document`)."""
    doc = open_document(data, name, ctx, declared_type=declared_type, is_known=is_known)
    read_opened([doc], ctx, pool)
    return doc


def _safely(step: Callable[[Page, ReadContext], PageResult], page: Page, ctx: ReadContext) -> PageResult:
    try:
        return step(page, ctx)
    except InputError as exc:
        reason = exc.reason
    except Exception:  # a reader bug must cost one page, not the batch; the trace goes to the log
        log.exception("page %d could not be read", page.number)
        reason = INTERNAL_ERROR
    result = PageResult(page.number, page.kind, page.width, page.height, Classification("unknown", 0.0, "none"))
    _fail(result, reason)
    return result


INTERNAL_ERROR = "読み取り中に内部エラーが起きました（ログを確認してください）"


def _fail(result: PageResult, reason: str) -> None:
    """The page could not be read: it is recorded as unknown, with the reason for the reviewer."""
    result.classification = Classification("unknown", 0.0, "none", reason=reason)
    result.reason, result.readings, result.pending = reason, [], None


# ------------------------------------------------------------------------------- worker pool

_WORKER_CTX: ReadContext | None = None


def _init_worker(ctx: ReadContext, parent: int) -> None:
    """Each worker one core: Tesseract, OpenCV and BLAS must not fan out (measured: two workers
    each running multi-threaded OpenCV and BLAS took twice the CPU per page; see `page_pool`).

    A worker ends with its parent: a batch killed mid-way (a crash, the OOM killer) must not leave
    its workers waiting forever for pages, holding memory and the parent's output pipes."""
    global _WORKER_CTX
    os.environ["OMP_THREAD_LIMIT"] = "1"
    _WORKER_CTX = ctx
    with contextlib.suppress(OSError, AttributeError):  # Linux: the kernel sends SIGKILL when the parent ends
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent ended before that was set
        os._exit(1)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _glibc() -> Any:
    return ctypes.CDLL("libc.so.6")


def give_back_memory() -> None:
    """Return freed memory to the system. glibc keeps freed page images and OCR crops in its arenas
    otherwise (~100 MB per window on a 1,000-page backlog), and what opening a photo frees (its
    colour planes, 36–48 MB a copy) as holes between the grey pages kept: 11 photos of 82 MB of
    pixels held 186 MB, 82 MB with a trim after each (docs/scale.md)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        _glibc().malloc_trim(0)


def _prepare_in_worker(page: Page) -> PageResult:
    assert _WORKER_CTX is not None
    try:
        return _safely(prepare_page, page, _WORKER_CTX)
    finally:  # what preparing the page took: the worker waits with it otherwise, as long as a window's OCR
        drop_engines()
        give_back_memory()


def page_pool(ctx: ReadContext, workers: int) -> Executor | None:
    """Worker processes reading pages in parallel (None for one worker: read in this process)."""
    if workers <= 1:
        return None
    import multiprocessing

    import cv2
    from threadpoolctl import threadpool_limits

    # Set before the fork (neither OpenCV's nor BLAS's thread pool may be reconfigured in a forked
    # child: it hangs); the workers inherit one thread each.
    cv2.setNumThreads(1)
    threadpool_limits(1)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(ctx, os.getpid()))
    # Fork the workers now, before any page is loaded: forked at the first page they would each start
    # with the first window's page images and the heap around them (measured: 265 MB a worker, 180 MB now).
    # The objects there are frozen meanwhile: the workers' garbage collector then leaves them alone,
    # instead of writing to (and so copying) every page of this process's heap that holds one.
    gc.freeze()
    try:
        pool.submit(int).result()
    finally:
        gc.unfreeze()  # here they are collected as before
    return pool
