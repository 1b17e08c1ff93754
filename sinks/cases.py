"""Lost or stolen devices (紛失・盗難): a case per report, followed until the account is safe again.

A report (an urgent message record, pipeline/intake.toml's words) opens a case linked to the
registry person whose address sent it; otherwise a reviewer chooses the person. States:
received → suspension_requested (the secretariat asked the MCS operator to suspend the account:
who asked, when, whom) → resolved. Until resolved the person shows as suspended.
"""

from __future__ import annotations

from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session

from renraku import normalize
from renraku.errors import DecisionRefused
from renraku.sinks import audit
from renraku.sinks import models as m
from renraku.sinks.queue import Actor, allow

STATE_NAMES = {"received": "受付", "suspension_requested": "停止依頼済み", "resolved": "解決"}


def open_case(session: Session, message: m.Message, sender: str) -> m.Case:
    pairs = getaddresses([sender])
    address = normalize.comparable("email", pairs[0][1]) if pairs else ""
    person = session.scalar(select(m.Staff).where(m.Staff.active, m.Staff.email == address)
                            .order_by(m.Staff.id.desc()).limit(1)) if address else None
    case = m.Case(message=message, staff=person, linked_by="sender" if person else None, state="received")
    session.add(case)
    session.flush()
    audit.record(session, "renraku", "case_opened", f"case:{case.public_id}",
                 {"message": message.public_id, "staff_id": person.id if person else None})
    return case


def _case(session: Session, case_id: int) -> m.Case:
    case = session.get(m.Case, case_id)
    if case is None:
        raise KeyError(case_id)
    return case


def link(session: Session, case_id: int, staff_id: int, actor: Actor) -> m.Case:
    """A reviewer names the person (the report came from another address, or named someone else)."""
    allow(actor, "case")
    case = _case(session, case_id)
    if case.state == "resolved":
        raise DecisionRefused("解決済みの案件は変更できません")
    person = session.get(m.Staff, staff_id)
    if person is None:
        raise DecisionRefused("その登録者は見つかりません")
    before = case.staff_id
    case.staff, case.linked_by = person, actor.name
    audit.record(session, actor.name, "case_link", f"case:{case.public_id}", {"staff_id": staff_id, "before": before})
    return case


def request_suspension(session: Session, case_id: int, note: str, actor: Actor) -> m.Case:
    """Record that the operator was asked to suspend the account (whom, how: the note)."""
    allow(actor, "case")
    case = _case(session, case_id)
    if case.state != "received":
        raise DecisionRefused("停止依頼は受付の状態からだけ記録できます")
    if case.staff_id is None:
        raise DecisionRefused("先に対象の登録者を選んでください")
    if not note.strip():
        raise DecisionRefused("依頼先と方法を記入してください（例: MCS 運営窓口へ電話）")
    case.state, case.requested_at, case.requested_by, case.request_note = (
        "suspension_requested", m.utcnow(), actor.name, note.strip())
    audit.record(session, actor.name, "case_suspension_requested", f"case:{case.public_id}",
                 {"staff_id": case.staff_id, "note": note.strip()})
    return case


def resolve(session: Session, case_id: int, note: str, actor: Actor) -> m.Case:
    allow(actor, "case")
    case = _case(session, case_id)
    if case.state == "resolved":
        raise DecisionRefused("この案件は既に解決済みです")
    if not note.strip():
        raise DecisionRefused("解決の内容を記入してください（例: 端末が見つかり停止解除）")
    case.state, case.resolved_at, case.resolved_by, case.resolution_note = (
        "resolved", m.utcnow(), actor.name, note.strip())
    case.message.status = "done"
    audit.record(session, actor.name, "case_resolved", f"case:{case.public_id}",
                 {"staff_id": case.staff_id, "note": note.strip()})
    return case


def suspended_staff(session: Session) -> set[int]:
    """People with an unresolved case: shown as suspended in the registry and the exports."""
    return set(session.scalars(select(m.Case.staff_id).where(m.Case.state != "resolved",
                                                             m.Case.staff_id.is_not(None))))
