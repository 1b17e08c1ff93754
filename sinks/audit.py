"""The audit log: append-only, each entry chained to the one before by its hash.

Changing, deleting or reordering an entry breaks the chain from that entry on, and `verify` names
the first broken entry. The chain cannot fork: each previous hash may be continued only once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from renraku.sinks.models import AuditEntry, utcnow

GENESIS = "0" * 64


def _at(value: dt.datetime) -> str:
    """One text for a moment, whatever the database hands back (naive UTC or aware)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def entry_hash(prev_hash: str, at: dt.datetime, actor: str, action: str, target: str, detail: dict[str, Any]) -> str:
    body = json.dumps({"prev": prev_hash, "at": _at(at), "actor": actor, "action": action, "target": target,
                       "detail": detail}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def record(session: Session, actor: str, action: str, target: str, detail: dict[str, Any] | None = None) -> AuditEntry:
    """Append an entry in the caller's transaction (it commits or rolls back with the action)."""
    detail = detail or {}
    last = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    prev = last.hash if last else GENESIS
    at = utcnow()
    entry = AuditEntry(at=at, actor=actor, action=action, target=target, detail=detail, prev_hash=prev,
                       hash=entry_hash(prev, at, actor, action, target, detail))
    session.add(entry)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # another writer appended meanwhile: the caller retries the action
        from renraku.errors import StorageError
        raise StorageError("監査ログへの記録が競合しました。もう一度操作してください") from exc
    return entry


@dataclass
class ChainReport:
    entries: int
    broken_at: int | None  # id of the first entry that does not verify
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(session: Session) -> ChainReport:
    prev = GENESIS
    count = 0
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        count += 1
        if entry.prev_hash != prev:
            return ChainReport(count, entry.id, "前の記録とつながっていません（削除・並べ替え）")
        if entry_hash(prev, entry.at, entry.actor, entry.action, entry.target, entry.detail) != entry.hash:
            return ChainReport(count, entry.id, "記録の内容が書き換えられています")
        prev = entry.hash
    return ChainReport(count, None)
