"""What people do in the review queue: correct a field, override a finding, approve, reject.

Each action checks the person's role, changes the records, re-runs the rules where values changed
and appends to the audit log, all in the caller's transaction: an action happens whole or not at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from renraku import normalize
from renraku.errors import DecisionRefused, PermissionDenied
from renraku.extractors.templates import MARK_KINDS
from renraku.sinks import audit
from renraku.sinks import models as m
from renraku.sinks.confirmation import queue_for_application
from renraku.sinks.records import application_status, application_view, revalidate
from renraku.sinks.registry import apply_application
from renraku.validators import load_rule_config

REVIEWER, SUPERVISOR, AUDITOR = "reviewer", "supervisor", "auditor"
CAN = {
    "correct": {REVIEWER, SUPERVISOR},
    "decide": {SUPERVISOR},
    "override": {SUPERVISOR},
    "case": {REVIEWER, SUPERVISOR},
    "mcs": {SUPERVISOR},
}


@dataclass(frozen=True)
class Actor:
    name: str
    role: str


def allow(actor: Actor, action: str) -> None:
    if actor.role not in CAN[action]:
        raise PermissionDenied(f"{actor.role} の権限ではこの操作はできません")


def value_for(kind: str, value: Any) -> Any:
    if kind in MARK_KINDS:
        if isinstance(value, bool):
            return value
        return normalize.compact(str(value)).lower() in {"true", "1", "○", "〇", "✓", "yes", "on", "はい"}
    return normalize.normalise(kind, "" if value is None else str(value)).value


def correct_field(session: Session, field_id: int, value: Any, actor: Actor,
                  config: dict[str, Any] | None = None) -> m.Field:
    """A person's value for a field (or their confirmation of the value read, if equal)."""
    allow(actor, "correct")
    field = session.get(m.Field, field_id)
    if field is None:
        raise KeyError(field_id)
    sheet = field.sheet
    app = sheet.application
    if app is not None and app.status in ("approved", "rejected"):
        raise DecisionRefused("決定済みの申請は修正できません")
    new = value_for(field.kind, value)
    old = field.value
    if new == old:
        field.needs_review = False
        audit.record(session, actor.name, "confirm_field", f"sheet:{sheet.public_id}",
                     {"field": field.path, "value": new, "method": field.method})
    else:
        field.value, field.raw, field.method = new, "" if value is None else str(value), "human"
        field.confidence, field.needs_review, field.note = 1.0, False, ""
        audit.record(session, actor.name, "correct_field", f"sheet:{sheet.public_id}",
                     {"field": field.path, "old": old, "new": new})
    sheet.status = "needs_review" if any(f.needs_review for f in sheet.fields) else "ready"
    if app is not None:
        revalidate(session, app, config)
    return field


def override_finding(session: Session, finding_id: int, reason: str, actor: Actor) -> m.Finding:
    allow(actor, "override")
    finding = session.get(m.Finding, finding_id)
    if finding is None:
        raise KeyError(finding_id)
    if not reason.strip():
        raise DecisionRefused("上書きには理由の記入が必要です")
    if finding.severity != "error":
        raise DecisionRefused("警告は上書きの対象ではありません")
    finding.overridden_by, finding.overridden_at, finding.override_reason = actor.name, m.utcnow(), reason.strip()
    app = finding.application
    app.status = application_status(app)
    audit.record(session, actor.name, "override_finding", f"application:{app.public_id}",
                 {"rule": finding.rule, "field": finding.field, "reason": reason.strip()})
    return finding


def approve(session: Session, application_id: int, actor: Actor, *, config: dict[str, Any] | None = None,
            today: dt.date | None = None) -> m.Application:
    """Approve and apply to the registry; refused while errors are open or fields unchecked."""
    allow(actor, "decide")
    config = config if config is not None else load_rule_config()
    app = session.get(m.Application, application_id)
    if app is None:
        raise KeyError(application_id)
    if app.status in ("approved", "rejected"):
        raise DecisionRefused(f"この申請は既に{'承認' if app.status == 'approved' else '却下'}されています")
    revalidate(session, app, config, today)
    blocking = [f for f in app.findings if f.blocking]
    if blocking:
        rules = "、".join(sorted({f.rule for f in blocking}))
        raise DecisionRefused(f"未解決のエラーがあるため承認できません（{rules}）。"
                              "修正するか、理由を記入して上書きしてください")
    unchecked = [f.path for s in app.sheets for f in s.fields if f.needs_review]
    if unchecked:
        raise DecisionRefused(f"確認待ちの項目が {len(unchecked)} 件あります")
    apply_application(session, app, application_view(app), config, today or dt.date.today())
    app.status, app.decided_by, app.decided_at = "approved", actor.name, m.utcnow()
    confirmations = queue_for_application(session, app)  # 送受信確認: queued now, sent by the scheduled run
    audit.record(session, actor.name, "approve", f"application:{app.public_id}",
                 {"kind": app.kind, "overridden": [f.rule for f in app.findings if f.overridden_by],
                  "confirmations": [c.public_id for c in confirmations]})
    return app


def reject(session: Session, application_id: int, reason: str, actor: Actor) -> m.Application:
    allow(actor, "decide")
    app = session.get(m.Application, application_id)
    if app is None:
        raise KeyError(application_id)
    if app.status in ("approved", "rejected"):
        raise DecisionRefused("この申請は既に決定済みです")
    if not reason.strip():
        raise DecisionRefused("却下には理由の記入が必要です")
    app.status, app.decided_by, app.decided_at, app.decision_note = "rejected", actor.name, m.utcnow(), reason.strip()
    audit.record(session, actor.name, "reject", f"application:{app.public_id}", {"reason": reason.strip()})
    return app
