"""A batch: hand received items to the pipeline, store and record each exactly once, report.

Order per item, so that nothing is lost and nothing is doubled: the bytes go into the document
store first (durable, content-addressed); the item is read; then one database transaction records
the document, its pages, sheets, fields, applications and findings together. A crash before the
commit leaves only stored bytes, and a rerun records the item once; bytes already recorded are a
duplicate and add nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import tomllib
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from renraku.config import Settings
from renraku.context import Context
from renraku.extractors.corroboration import Links
from renraku.extractors.ocr import drop_engines
from renraku.pipeline import faults
from renraku.pipeline.claims import FileClaims, open_claims
from renraku.pipeline.progress import Progress
from renraku.pipeline.read import (
    Ahead,
    DocumentResult,
    give_back_memory,
    open_document,
    page_pool,
    prepare_ahead,
    read_opened,
    walk,
)
from renraku.sinks import models as m
from renraku.sinks.notify import notify_urgent
from renraku.sinks.records import document_by_sha, record_applications, record_document, record_message

log = logging.getLogger(__name__)


@dataclass
class Received:
    """Bytes as they came in, and where from (a path, or an IMAP message reference)."""

    data: bytes
    name: str
    source_ref: str
    channel: str = "upload"
    media_type: str = ""  # when the source knows it (IMAP: message/rfc822)


@dataclass
class ItemOutcome:
    source_ref: str
    sha256: str
    status: str  # recorded | duplicate | unsupported | unreadable | failed
    reason: str = ""
    sheets: int = 0
    documents: int = 0


@dataclass
class BatchReport:
    batch_id: int
    items: list[ItemOutcome] = field(default_factory=list)
    sheets: int = 0
    forms: int = 0
    fields: int = 0
    flagged: int = 0
    applications: int = 0
    findings: int = 0
    messages: int = 0
    urgent: list[str] = field(default_factory=list)
    mails_sent: int = 0  # 送受信確認 mails handed to the SMTP server by this run
    mails_waiting: int = 0  # and those left for a later run (server down)
    pages_read: int = 0  # pages opened and read by this run (a rerun after a crash reads only what was not recorded)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    def stats(self) -> dict[str, int | float]:
        return {
            "items": len(self.items), "recorded": self.count("recorded"),
            "duplicates": self.count("duplicate"), "unsupported": self.count("unsupported"),
            "unreadable": self.count("unreadable"), "failed": self.count("failed"),
            "sheets": self.sheets, "forms": self.forms, "fields": self.fields, "flagged": self.flagged,
            "applications": self.applications, "findings": self.findings, "messages": self.messages,
            "urgent": len(self.urgent), "mails_sent": self.mails_sent, "mails_waiting": self.mails_waiting,
            "pages_read": self.pages_read, "seconds": round(self.seconds, 3),
        }


def files_under(paths: Iterable[Path], exclude: Path | None = None) -> Iterator[Path]:
    """Files named, and files in folders named (recursively, in name order).

    Hidden files are skipped, and so is `exclude` (renraku's own data folder, should someone point
    the pipeline at a folder that contains it).
    """
    skip = exclude.resolve() if exclude else None
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if skip and (child.resolve() == skip or skip in child.resolve().parents):
                    continue
                if child.is_file() and not any(p.startswith(".") for p in child.relative_to(path).parts):
                    yield child
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(path)


def _outcome_status(result: DocumentResult) -> tuple[str, str]:
    """What an operator should see for an item: its own problem, or a note on its attachments."""
    if result.status in ("unsupported", "unreadable"):
        return result.status, result.reason
    problems = [c for c in walk(result) if c is not result and c.status in ("unsupported", "unreadable")]
    if problems:
        kinds = "、".join(sorted({c.reason for c in problems}))
        return "recorded", f"添付ファイル {len(problems)} 件を読めません: {kinds}"
    return "recorded", ""


def intake_config(settings: Settings) -> dict[str, Any]:
    with open(settings.intake_config, "rb") as fh:
        return tomllib.load(fh)


READ_AHEAD = 32  # files `renraku process` hands over at once
PAGES_AHEAD = 24  # pages read together (their OCR shares calls and both threads), and memory stays
# bounded (eight 30-page faxes at once would have held 240 pages)
PIXELS_AHEAD = 100 << 20  # and at most this many bytes of page images: a phone photo's are 12 MB (bench/backlog.py)


class _AlreadyRecorded(Exception):
    """The bytes were recorded after this item was opened (the same file twice in one window)."""


class Batch:
    """One batch run; use as a context manager so the batch record is closed whatever happens."""

    def __init__(self, ctx: Context, kind: str = "process", progress: Progress | None = None,
                 claims: FileClaims | None = None) -> None:
        self.ctx = ctx
        self.kind = kind
        self.progress = progress  # a line on the terminal; None: nothing shown
        self._own_claims = claims is None
        self.claims = open_claims(ctx.engine, ctx.settings.home) if claims is None else claims
        self._t0 = time.monotonic()
        self.pool: Executor | None = None  # started with the first item (an idle poll forks no workers)
        self._ahead: Ahead = {}  # the window's pages already with the workers (`prepare_ahead`)
        self.lost_keywords = intake_config(ctx.settings).get("lost_device", {}).get("keywords", [])
        self.shared_boxes = {t.form_id: Links.of(t).shared for t in ctx.reading.templates}
        with ctx.sessions.begin() as session:
            mark_interrupted(session, self.claims)
            row = m.Batch(kind=kind, status="running", stats={"pid": os.getpid(), "host": socket.gethostname()})
            session.add(row)
            session.flush()
            self.report = BatchReport(batch_id=row.id)
            self.claims.wait(f"batch:{row.id}")  # held while it runs: others see it alive (mark_interrupted)
        log.info("batch %d started (%s)", self.report.batch_id, kind)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if self.progress is not None:
            self.progress.close()
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        self.report.seconds = time.monotonic() - self._t0
        with self.ctx.sessions.begin() as session:
            row = session.get(m.Batch, self.report.batch_id)
            assert row is not None
            self._count_stored(session)
            row.finished_at = m.utcnow()
            row.status = "failed" if exc else "done"
            row.error = f"{exc_type.__name__}" if exc_type else None
            row.stats = (row.stats or {}) | self.report.stats() | {"read": [  # kept: which process, where
                {"source": i.source_ref, "sha256": i.sha256, "status": i.status, "reason": i.reason, "sheets": i.sheets}
                for i in self.report.items]}
        self.claims.release([f"batch:{self.report.batch_id}"])
        if self._own_claims:
            self.claims.close()
        log.info("batch %d %s: %s", self.report.batch_id, "failed" if exc else "done", self.report.stats())

    def start_workers(self) -> None:
        """Fork the page workers (once), before any page is loaded (see `page_pool`), and where the
        caller can, before the first files are read: each worker keeps a copy of whatever this process
        held when they were forked (32 files read ahead of a folder of large scans: 55 MB a worker)."""
        if self.pool is None:
            self.pool = page_pool(self.ctx.reading, self.ctx.settings.workers)

    def _is_recorded(self, digest: str) -> bool:
        with self.ctx.sessions() as session:
            return document_by_sha(session, digest) is not None

    def receive(self, item: Received) -> ItemOutcome:
        return self.receive_many([item])[0]

    def receive_many(self, items: list[Received]) -> list[ItemOutcome]:
        """Store each item's bytes, read their pages together (both cores, `PAGES_AHEAD` at a time),
        record in order."""
        ctx = self.ctx
        if items:
            self.start_workers()
        outcomes: list[ItemOutcome] = []
        opened: list[tuple[Received, str, DocumentResult | None]] = []
        pages = pixels = 0
        for item in items:
            digest = ctx.store.put(item.data)  # durable before anything is recorded
            faults.checkpoint(f"{item.channel}:stored")
            if not self.claims.take([f"sha:{digest}"]):  # another worker reads these very bytes now:
                outcomes += self._read_and_record(opened)  # record ours (releasing their claims), then
                opened, pages, pixels = [], 0, 0  # wait for it, holding no content claim (no two wait on each other)
                self.claims.wait(f"sha:{digest}")
            doc = None if self._is_recorded(digest) else open_document(
                item.data, item.name, ctx.reading, is_known=self._is_recorded, media_type=item.media_type)
            opened.append((item, digest, doc))
            loaded = [page for part in walk(doc) for page in part.loaded] if doc is not None else []
            pages += len(loaded)
            decoded = any(page.image is not None for page in loaded)  # a scanned PDF's are rendered in the workers
            pixels += sum(page.pixel_bytes for page in loaded)
            self._ahead |= prepare_ahead(loaded, self.pool)
            if decoded:
                give_back_memory()  # what decoding them freed, before the next is decoded
            if pages >= PAGES_AHEAD or pixels >= PIXELS_AHEAD:
                outcomes += self._read_and_record(opened)
                opened, pages, pixels = [], 0, 0
        return outcomes + self._read_and_record(opened)

    def _read_and_record(self, opened: list[tuple[Received, str, DocumentResult | None]]) -> list[ItemOutcome]:
        self.report.pages_read += sum(len(part.loaded) for _i, _d, doc in opened if doc is not None
                                      for part in walk(doc))
        ahead, self._ahead = self._ahead, {}
        read_opened([doc for _i, _d, doc in opened if doc is not None], self.ctx.reading, self.pool, ahead)
        # The window's OCR is done: its Tesseract models (six, 178 MB) would sit idle through the
        # opening and preparing of the next window's files, the batch's largest moment; loading
        # them again costs 0.1-0.15 s of CPU each, once a window.
        drop_engines()
        outcomes = []
        for item, digest, doc in opened:
            outcome = self._duplicate(item, digest) if doc is None else self._record(item, doc)
            faults.checkpoint(f"{item.channel}:recorded")
            self.claims.release([f"sha:{digest}"])
            self.report.items.append(outcome)
            outcomes.append(outcome)
            log.info("item %s… %s (%d sheets)", digest[:12], outcome.status, outcome.sheets)
            if self.progress is not None:
                self.progress.advance(sum(len(part.pages) for part in walk(doc)) if doc is not None else 0)
        give_back_memory()
        return outcomes

    def _duplicate(self, item: Received, digest: str) -> ItemOutcome:
        with self.ctx.sessions.begin() as session:
            doc = document_by_sha(session, digest)
            assert doc is not None
            session.add(m.Receipt(batch_id=self.report.batch_id, document_id=doc.id,
                                  source_ref=item.source_ref, duplicate=True))
        return ItemOutcome(item.source_ref, digest, "duplicate", "既に受け付け済みの文書です")

    def _save_pictures(self, result: DocumentResult) -> None:
        """The page pictures of a document and its attachments, for the review desk."""
        from renraku.pipeline.pictures import page_png

        for part in walk(result):
            for page in part.pages:
                png = page_png(part, page, self.ctx.settings.render_dpi)
                if png is not None:
                    self.ctx.pictures.put(part.sha256, page.number, png)

    def _record(self, item: Received, result: DocumentResult) -> ItemOutcome:
        ctx = self.ctx
        self._save_pictures(result)
        for part in walk(result):  # attachments are stored under their own hash too
            if part is not result and part.status != "duplicate":
                ctx.store.put(part.data)
        attempts = 3
        while True:
            try:
                with self.claims.turn("record"):  # workers record one at a time: a set's late sheet joins
                    return self._record_once(item, result)  # the set another worker has just recorded
            except IntegrityError:  # another process recorded the same bytes first, or one of the
                attempts -= 1  # attachments: then again, with that attachment as a part already known
                if self._is_recorded(result.sha256):
                    return self._duplicate(item, result.sha256)
                if not attempts:
                    raise

    def _record_once(self, item: Received, result: DocumentResult) -> ItemOutcome:
        ctx = self.ctx
        try:
            with ctx.sessions.begin() as session:
                if document_by_sha(session, result.sha256) is not None:
                    raise _AlreadyRecorded
                batch = session.get(m.Batch, self.report.batch_id)
                assert batch is not None
                sheets = record_document(session, result, channel=item.channel, batch=batch,
                                         dpi=ctx.settings.render_dpi)
                doc = document_by_sha(session, result.sha256)
                assert doc is not None
                session.add(m.Receipt(batch_id=batch.id, document_id=doc.id, source_ref=item.source_ref))
                record_applications(session, sheets, batch=batch, shared=self.shared_boxes)
                message = record_message(session, result, sheets, batch=batch, keywords=self.lost_keywords)
                urgent = [message.public_id] if message is not None and message.urgent else []
        except _AlreadyRecorded:  # the same bytes came twice
            return self._duplicate(item, result.sha256)
        self._count(sheets)  # counted once committed (a transaction that failed is tried again)
        self.report.messages += message is not None
        if urgent:
            self.report.urgent += urgent
            if notify_urgent(ctx.settings, urgent):
                with ctx.sessions.begin() as session:
                    session.query(m.Message).filter(m.Message.id == int(urgent[0][1:])).update({"notified": True})
        status, reason = _outcome_status(result)
        return ItemOutcome(item.source_ref, result.sha256, status, reason, sheets=len(sheets),
                           documents=sum(1 for _ in walk(result)))

    def _count(self, sheets: list[m.Sheet]) -> None:
        r = self.report
        r.sheets += len(sheets)
        r.forms += sum(1 for s in sheets if s.fields)
        r.fields += sum(len(s.fields) for s in sheets)
        r.flagged += sum(1 for s in sheets for f in s.fields if f.needs_review)

    def _count_stored(self, session: Session) -> None:
        """Applications and findings as stored at the end, not as counted on the way: a set whose
        sheets came in three files is one application, and its findings are those of the last check."""
        ids = (select(m.Sheet.application_id).join(m.Page, m.Sheet.page_id == m.Page.id)
               .join(m.Document, m.Page.document_id == m.Document.id)
               .where(m.Document.batch_id == self.report.batch_id))  # ids only: PostgreSQL cannot DISTINCT JSON
        apps = session.scalars(select(m.Application).where(m.Application.id.in_(ids))).all()
        self.report.applications = len(apps)
        self.report.findings = sum(len(a.findings) for a in apps)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def mark_interrupted(session: Session, claims: FileClaims) -> list[int]:
    """Batches left `running` by a process that no longer exists were interrupted (killed, a power
    cut): say so, instead of showing them as running forever. On PostgreSQL a running batch holds
    its claim, whatever machine it runs on; otherwise only this machine's processes can be asked."""
    host = socket.gethostname()
    found = []
    for row in session.scalars(select(m.Batch).where(m.Batch.status == "running")):
        pid = (row.stats or {}).get("pid")
        ended = claims.ended(f"batch:{row.id}")
        if ended is None:
            ended = (row.stats or {}).get("host") == host and isinstance(pid, int) and not _alive(pid)
        if ended:
            row.status, row.error = "interrupted", "process ended before the batch was closed"
            found.append(row.id)
            log.warning("batch %d was interrupted (process %d ended)", row.id, pid)
    return found


LINK_REFUSED = "リンク（シンボリックリンク）は読みません: 指定したフォルダの外を指すことがあります"


def _read_in_folder(path: Path) -> bytes:
    """A file found in a folder, never through a link (O_NOFOLLOW: a link put there meanwhile fails)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def process_paths(ctx: Context, paths: Iterable[Path], channel: str = "upload",
                  progress: Progress | None = None) -> BatchReport:
    """`renraku process`: every file under `paths` through the pipeline, as one batch.

    A file named on the command line is read as named; in a folder, links are not followed (like
    the scan folder, which skips them): `ln -s /etc/passwd in/x.pdf` must not store /etc/passwd.
    """
    paths = [Path(p) for p in paths]
    named = set(paths)
    with Batch(ctx, "process", progress) as batch:
        window: list[Received] = []
        files = list(files_under(paths, exclude=ctx.settings.home))
        if progress is not None:
            progress.expect(len(files))
        if files:
            batch.start_workers()
        for path in files:
            in_folder = path not in named
            if in_folder and path.is_symlink():
                batch.report.items.append(ItemOutcome(str(path), "", "unsupported", LINK_REFUSED))
                continue
            try:
                data = _read_in_folder(path) if in_folder else path.read_bytes()
            except OSError as exc:
                batch.report.items.append(ItemOutcome(str(path), "", "failed", f"読めません: {exc.strerror}"))
                continue
            window.append(Received(data, path.name, str(path), channel))
            if len(window) >= READ_AHEAD:
                batch.receive_many(window)
                window = []
        if window:
            batch.receive_many(window)
    return batch.report
