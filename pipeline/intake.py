"""One pass of the scheduled intake: the inbox and the scan folder, as one batch.

On SQLite passes never overlap: a lock file in RENRAKU_HOME is held for the whole pass (a second
pass waits or is skipped, as asked). On PostgreSQL passes of several workers run side by side and
each message and file is claimed in the database (pipeline/claims.py), so none is taken twice. A
source that cannot be reached is reported in the batch and the other source still runs; the next
pass picks up where this one stopped.
"""

from __future__ import annotations

import logging

from renraku.context import Context
from renraku.errors import RenrakuError
from renraku.pipeline.claims import FileClaims, open_claims
from renraku.pipeline.imap import ImapSource
from renraku.pipeline.progress import Progress
from renraku.pipeline.run import Batch, BatchReport, ItemOutcome, intake_config
from renraku.pipeline.scanfolder import ScanFolderSource

log = logging.getLogger(__name__)


def scan_source(ctx: Context, batch: Batch) -> ScanFolderSource | None:
    settings = ctx.settings
    if settings.scan_dir is None:
        return None
    scan = intake_config(settings).get("scan", {})
    settle = settings.scan_settle_seconds
    if settle is None:
        settle = scan.get("settle_seconds", 10)
    processed = settings.scan_processed_dir or settings.scan_dir / "processed"
    return ScanFolderSource(settings.scan_dir, processed, float(settle), scan.get("ignore", []), batch)


def pull_imap(ctx: Context, batch: Batch) -> list[ItemOutcome]:
    if not ctx.settings.imap_host:
        return []
    return ImapSource(ctx.settings, batch).poll()


def pull_scan(ctx: Context, batch: Batch) -> list[ItemOutcome]:
    source = scan_source(ctx, batch)
    return source.poll() if source else []


def run_once(ctx: Context, *, wait: bool = True, progress: Progress | None = None) -> BatchReport | None:
    """Pull both sources once; None when another pass holds the lock and `wait` is false."""
    with open_claims(ctx.engine, ctx.settings.home) as claims, claims.pass_lock(wait) as got:
        if not got:
            log.info("another intake pass is running; this one is skipped")
            return None
        with Batch(ctx, "run", progress, claims=claims) as batch:
            for name, pull in (("imap", pull_imap), ("scan", pull_scan)):
                try:
                    pull(ctx, batch)
                except RenrakuError as exc:  # one source down must not stop the other
                    log.error("%s source failed: %s", name, exc.code)
                    batch.report.items.append(ItemOutcome(name, "", "failed", exc.reason))
            send_mail(ctx, batch, claims)
        return batch.report


def send_mail(ctx: Context, batch: Batch, claims: FileClaims) -> None:
    """After the inbox was read (replies first): queue due reminders, then send what waits.

    One worker at a time does this (the outbox is small; a mail must never go out twice): a worker
    that finds another sending leaves the outbox to it."""
    with claims.sole("outbox") as got:
        if got:
            _send_mail(ctx, batch)
        else:
            log.info("another worker is sending the outbox; left to it")


def _send_mail(ctx: Context, batch: Batch) -> None:
    from renraku.sinks.confirmation import remind_due
    from renraku.sinks.outbox import send_due

    try:
        with ctx.sessions.begin() as session:
            remind_due(session, ctx.settings)
    except RenrakuError as exc:  # an unusable mail text: the mails already written still go out
        log.error("confirmation mails: %s", exc.code)
        batch.report.items.append(ItemOutcome("confirmation", "", "failed", exc.reason))
    sent = send_due(ctx.sessions, ctx.settings)
    batch.report.mails_sent += len(sent.sent)
    batch.report.mails_waiting += len(sent.deferred)
    if sent.error and sent.deferred:
        reason = f"{sent.error}: {len(sent.deferred)} 通は次回に送信"
        batch.report.items.append(ItemOutcome("smtp", "", "failed", reason))
