"""Review desk pages for life after approval: the 送受信確認 view, the MCS list, lost-device cases.

Kept apart from views.py: the queue and the application page only call `annotate_queue` and the
template helpers registered here (`confirmations_of`, `case_of`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from renraku import normalize
from renraku.errors import DecisionRefused
from renraku.review.auth import role_required
from renraku.sinks import cases, confirmation, mcs
from renraku.sinks import models as m
from renraku.sinks.queue import AUDITOR, REVIEWER, SUPERVISOR

bp = Blueprint("confirmations", __name__)
STATES = ("waiting", "sent", "overdue", "confirmed", "bounced", "cancelled")


def _ctx():  # type: ignore[no-untyped-def]
    return current_app.extensions["renraku"]


def _elapsed(since: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """How long ago, as the office says it (3日4時間, 5時間12分)."""
    since = confirmation.aware(since)
    if since is None:
        return ""
    minutes = int(((now or m.utcnow()) - since).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}日{rest // 60}時間" if days else f"{rest // 60}時間{rest % 60}分"


def _row_label(conf: m.Confirmation) -> str:
    from renraku.sinks.records import application_view
    from renraku.validators.common import rows

    if conf.application is None:
        return ""
    for row in rows(application_view(conf.application)):
        if normalize.comparable("email", row.text("email")) == conf.email:
            return f"{row.n}行目"
    return ""


def _view(conf: m.Confirmation, now: dt.datetime, suspended: set[int]) -> dict[str, Any]:
    settings = _ctx().settings
    last = conf.mails[-1] if conf.mails else None
    return {"id": conf.id, "public_id": conf.public_id, "state": confirmation.state(conf, settings, now),
            "facility": conf.staff.facility.name, "name": conf.staff.name, "email": conf.email,
            "application": conf.application, "row": _row_label(conf), "sent_at": conf.sent_at,
            "reminded_at": conf.reminded_at, "decided_at": conf.decided_at, "reason": conf.reason,
            "message": conf.message, "mails": len(conf.mails), "attempts": last.attempts if last else 0,
            "last_error": last.last_error if last else "", "waiting_for": _elapsed(conf.sent_at, now),
            "export": conf.mcs_export, "active": conf.staff.active, "suspended": conf.staff_id in suspended}


def _all(s: Session, *where: Any) -> list[m.Confirmation]:
    return list(s.scalars(select(m.Confirmation).where(*where).order_by(m.Confirmation.id.desc()).options(
        selectinload(m.Confirmation.staff).selectinload(m.Staff.facility),
        selectinload(m.Confirmation.mails), selectinload(m.Confirmation.application)
        .selectinload(m.Application.sheets).selectinload(m.Sheet.fields))))


@bp.route("/confirmations")
@role_required(REVIEWER, SUPERVISOR, AUDITOR)
def index() -> Any:
    state = request.args.get("state", "")
    facility = normalize.compact(request.args.get("facility", ""))
    now = m.utcnow()
    with _ctx().sessions() as s:
        suspended = cases.suspended_staff(s)
        rows = [_view(c, now, suspended) for c in _all(s)]
        exports = s.scalars(select(m.McsExport).order_by(m.McsExport.id.desc())).all()
        ready = len(mcs.ready(s))
    counts = Counter(r["state"] for r in rows)
    shown = [r for r in rows if (not state or r["state"] == state)
             and (not facility or facility in normalize.compact(r["facility"]))]
    return render_template("confirmations.html", rows=shown, counts=counts, total=len(rows), state=state,
                           facility=request.args.get("facility", ""), states=STATES,
                           names=confirmation.STATE_NAMES, exports=exports, ready=ready,
                           remind_days=_ctx().settings.confirm_remind_days,
                           overdue_days=_ctx().settings.confirm_overdue_days)


def _back() -> Any:
    target = request.form.get("next", "")
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target  # never off-site
    return redirect(target if local else url_for("confirmations.index"))


@bp.route("/confirmations/<int:conf_id>/resend", methods=["POST"])
@role_required(SUPERVISOR)
def resend(conf_id: int) -> Any:
    try:
        with _ctx().sessions.begin() as s:
            new = confirmation.resend(s, conf_id, request.form.get("email", ""), current_user.name, _ctx().settings)
            flash(f"訂正したアドレスへの確認メール {new.public_id} を送信待ちにしました")
    except DecisionRefused as exc:
        flash(exc.reason)
    return _back()


@bp.route("/mcs/export.csv", methods=["POST"])
@role_required(SUPERVISOR)
def mcs_export() -> Any:
    again = request.form.get("again", type=int)
    try:
        with _ctx().sessions.begin() as s:
            record, data = mcs.export(s, _ctx().settings, current_user.actor, again=again)
            name = f"mcs-{record.id:04d}.csv"
    except DecisionRefused as exc:
        flash(exc.reason)
        return _back()
    return Response(data, mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={name}",
                                                        "Cache-Control": "no-store"})


@bp.route("/mcs/<int:export_id>/issued", methods=["POST"])
@role_required(SUPERVISOR)
def mcs_issued(export_id: int) -> Any:
    try:
        with _ctx().sessions.begin() as s:
            mcs.mark_issued(s, export_id, current_user.actor)
        flash(f"MCS 一覧 {export_id} の ID を発行済みにしました")
    except DecisionRefused as exc:
        flash(exc.reason)
    return _back()


# ------------------------------------------------------------------------------------ cases

@bp.route("/cases/<int:case_id>/<action>", methods=["POST"])
@role_required(REVIEWER, SUPERVISOR)
def case_action(case_id: int, action: str) -> Any:
    note = request.form.get("note", "")
    try:
        with _ctx().sessions.begin() as s:
            if action == "link":
                cases.link(s, case_id, request.form.get("staff_id", type=int) or 0, current_user.actor)
            elif action == "request":
                cases.request_suspension(s, case_id, note, current_user.actor)
            elif action == "resolve":
                cases.resolve(s, case_id, note, current_user.actor)
            else:
                abort(404)
    except (DecisionRefused, KeyError) as exc:
        flash(getattr(exc, "reason", "案件が見つかりません"))
    return _back()


# ------------------------------------------------------------------- for the other pages

def queue_attention() -> Any:
    """Approved applications whose addresses bounced or are overdue (a query): the queue shows them as open."""
    return confirmation.attention_query(_ctx().settings, m.utcnow())


def annotate_queue(s: Session, rows: list[dict[str, Any]], attention: Any) -> None:
    """Cases and confirmation trouble on the queue's rows: a lost-device row shows its case's state and
    the time since receipt; an application in the `attention` query shows what bounced or is overdue."""
    now = m.utcnow()
    apps = [int(r["id"][1:]) for r in rows if r["id"].startswith("A")]
    trouble = attention.subquery()
    attention = {a: {"bounced": int(b), "overdue": int(o)} for a, b, o in s.execute(
        select(trouble).where(trouble.c.application_id.in_(apps)))} if apps else {}
    numbers = [int(r["id"][1:]) for r in rows if r["id"].startswith("M")]
    by_message = {c.message_id: c for c in s.scalars(select(m.Case).where(m.Case.message_id.in_(numbers)))} \
        if numbers else {}
    for r in rows:
        number = int(r["id"][1:])
        if r["id"].startswith("M") and number in by_message:
            case = by_message[number]
            r["case"] = {"id": case.public_id, "state": cases.STATE_NAMES[case.state],
                         "elapsed": _elapsed(case.received_at, now) if case.state != "resolved" else ""}
        elif r["id"].startswith("A") and number in attention:
            r["confirm"] = attention[number]
            r["status"] = "attention"


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    def confirmations_of(app_id: int) -> list[dict[str, Any]]:
        now = m.utcnow()
        with _ctx().sessions() as s:
            suspended = cases.suspended_staff(s)
            found = _all(s, m.Confirmation.application_id == app_id)
            return [_view(c, now, suspended) for c in reversed(found)]

    def case_of(message_id: int) -> dict[str, Any] | None:
        with _ctx().sessions() as s:
            case = s.scalar(select(m.Case).where(m.Case.message_id == message_id)
                            .options(selectinload(m.Case.staff).selectinload(m.Staff.facility)))
            if case is None:
                return None
            people = [] if case.state == "resolved" else s.scalars(
                select(m.Staff).where(m.Staff.active).options(selectinload(m.Staff.facility))
                .order_by(m.Staff.facility_id, m.Staff.id)).all()
            return {"case": case, "state": cases.STATE_NAMES[case.state], "people": people,
                    "staff": case.staff, "facility": case.staff.facility.name if case.staff else "",
                    "elapsed": _elapsed(case.received_at)}

    return {"confirmations_of": confirmations_of, "case_of": case_of, "CONFIRM_STATES": confirmation.STATE_NAMES}
