"""The review queue as SQL: filters, counts per state, order and one page of rows.

Why in the database: at a prefecture's size (tens of thousands of applications, millions of
fields) loading every application with its sheets into Python took seconds per page. Here the
database filters, counts (GROUP BY) and sorts applications and messages together; only the rows of
one page are then detailed, with one query per kind of detail (never one per row).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, String, and_, case, exists, func, literal, select, true, union_all
from sqlalchemy.orm import Session

from renraku.sinks import models as m

OPEN_STATES = ("incomplete", "needs_review", "ready", "open", "attention")
PAGE_SIZE = 100


@dataclass(frozen=True)
class QueueFilter:
    status: str = "open"  # open | all | one state
    kind: str = ""
    channel: str = ""
    batch: str = ""  # as typed: a number, or nothing


@dataclass
class QueuePage:
    rows: list[dict[str, Any]]  # the rows of this page, each with kind, id, status, errors, channels …
    counts: dict[str, int]  # every row per state, unfiltered
    total: int  # every row
    matching: int  # rows the filter lets through
    page: int
    pages: int


def _entries(flt: QueueFilter | None, attention: Select[Any], ordered: bool = True) -> Any:
    """Applications and messages as one relation: (rtype, id, kind, status, urgent, has_errors, received);
    only (rtype, id, kind, status) when not `ordered` (enough to count)."""
    trouble = attention.subquery("trouble")
    status = case((m.Application.id.in_(select(trouble.c.application_id)), "attention"), else_=m.Application.status)
    blocking = exists().where(m.Finding.application_id == m.Application.id, m.Finding.severity == "error",
                              m.Finding.overridden_by.is_(None))
    apps = select(literal("A", String).label("rtype"), m.Application.id.label("id"), m.Application.kind.label("kind"),
                  status.label("status"))
    msgs = select(literal("M", String), m.Message.id, m.Message.kind, m.Message.status)
    if ordered:
        apps = apps.add_columns(literal(0, Integer).label("urgent"), case((blocking, 1), else_=0).label("has_errors"),
                                m.Application.created_at.label("received"))
        msgs = msgs.add_columns(case((m.Message.urgent, 1), else_=0), literal(0, Integer), m.Message.created_at)
    if flt is not None:
        if flt.kind:
            apps, msgs = apps.where(m.Application.kind == flt.kind), msgs.where(m.Message.kind == flt.kind)
        if flt.batch:
            number = int(flt.batch) if flt.batch.isdigit() and len(flt.batch) < 10 else -1  # typed, not a batch: none
            apps, msgs = apps.where(m.Application.batch_id == number), msgs.where(m.Message.batch_id == number)
        if flt.channel:
            apps = apps.where(exists().where(m.Sheet.application_id == m.Application.id, m.Page.id == m.Sheet.page_id,
                                             m.Document.id == m.Page.document_id, m.Document.channel == flt.channel))
            msgs = msgs.where(exists().where(m.Document.id == m.Message.document_id,
                                             m.Document.channel == flt.channel))
    return union_all(apps, msgs).subquery("entries")


def queue_page(s: Session, flt: QueueFilter, page: int, attention: Select[Any],
               page_size: int = PAGE_SIZE) -> QueuePage:
    """One page of the queue: urgent reports first, then what has open errors, then the oldest.

    `attention`: a query of application ids (first column) shown as 確認メール要対応 whatever their state."""
    everything = _entries(None, attention, ordered=False)
    counts: dict[str, int] = defaultdict(int)
    for state, n in s.execute(select(everything.c.status, func.count()).group_by(everything.c.status)):
        counts[state] = n
    if flt.kind or flt.channel or flt.batch:
        narrowed = _entries(flt, attention, ordered=False)
        matching = s.scalar(select(func.count()).select_from(narrowed).where(_in_status(narrowed, flt.status))) or 0
    else:  # the counts say it already
        matching = sum(n for state, n in counts.items() if _wanted(state, flt.status))
    entries = _entries(flt, attention)
    shown_sq = select(entries).where(_in_status(entries, flt.status)).subquery("shown")
    pages = max(1, -(-matching // page_size))
    page = min(max(1, page), pages)
    found = s.execute(select(shown_sq).order_by(
        shown_sq.c.urgent.desc(), shown_sq.c.has_errors.desc(), shown_sq.c.received, shown_sq.c.rtype, shown_sq.c.id)
        .limit(page_size).offset((page - 1) * page_size)).all()
    rows = _details(s, found)
    return QueuePage(rows, counts, sum(counts.values()), matching, page, pages)


def _wanted(state: str, status: str) -> bool:
    return status == "all" or state == status or (status == "open" and state in OPEN_STATES)


def _in_status(entries: Any, status: str) -> Any:
    if status == "all":
        return true()
    return entries.c.status.in_(OPEN_STATES) if status == "open" else entries.c.status == status


def _details(s: Session, found: list[Any]) -> list[dict[str, Any]]:
    """What the queue shows of each row on the page: one query per kind of detail."""
    app_ids = [r.id for r in found if r.rtype == "A"]
    msg_ids = [r.id for r in found if r.rtype == "M"]
    apps = {a.id: a for a in s.scalars(select(m.Application).where(m.Application.id.in_(app_ids)))} if app_ids else {}
    findings = {a: (e or 0, w or 0) for a, e, w in s.execute(
        select(m.Finding.application_id,
               func.sum(case((and_(m.Finding.severity == "error", m.Finding.overridden_by.is_(None)), 1), else_=0)),
               func.sum(case((m.Finding.severity == "warning", 1), else_=0)))
        .where(m.Finding.application_id.in_(app_ids)).group_by(m.Finding.application_id))} if app_ids else {}
    flagged = dict(s.execute(select(m.Sheet.application_id, func.count()).join(m.Field, m.Field.sheet_id == m.Sheet.id)
                             .where(m.Sheet.application_id.in_(app_ids), m.Field.needs_review)
                             .group_by(m.Sheet.application_id)).all()) if app_ids else {}
    channels: dict[int, set[str]] = defaultdict(set)
    if app_ids:
        for a, channel in s.execute(select(m.Sheet.application_id, m.Document.channel).distinct()
                                    .join(m.Page, m.Page.id == m.Sheet.page_id)
                                    .join(m.Document, m.Document.id == m.Page.document_id)
                                    .where(m.Sheet.application_id.in_(app_ids))):
            channels[a].add(channel)
    messages = {msg.id: (msg, channel) for msg, channel in s.execute(
        select(m.Message, m.Document.channel).join(m.Document, m.Document.id == m.Message.document_id)
        .where(m.Message.id.in_(msg_ids)))} if msg_ids else {}
    rows = []
    for r in found:
        base = {"kind": r.kind, "status": r.status, "urgent": bool(r.urgent), "received": _aware(r.received)}
        if r.rtype == "A":
            a = apps[r.id]
            errors, warnings = findings.get(r.id, (0, 0))
            rows.append({**base, "id": a.public_id, "app_id": a.id, "title": a.facility_name or "（施設名なし）",
                         "errors": int(errors), "warnings": int(warnings), "missing": list(a.missing),
                         "channels": channels[r.id], "batch": a.batch_id, "flagged": flagged.get(r.id, 0)})
        else:
            msg, channel = messages[r.id]
            rows.append({**base, "id": msg.public_id, "message_id": msg.id, "title": msg.subject or "（件名なし）",
                         "errors": 0, "warnings": 0, "missing": [], "channels": {channel}, "batch": msg.batch_id,
                         "flagged": 0})
    return rows


def _aware(value: Any) -> dt.datetime:
    """A union's timestamps come back as written (SQLite: text, no zone); the queue shows them as before."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value

