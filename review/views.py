"""Pages of the review desk: the queue, an application, a message, batches, the audit trail."""

from __future__ import annotations

import io
import json
import zipfile
from collections import defaultdict
from typing import Any

import cv2
import numpy as np
import pandas as pd
from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from renraku.errors import DecisionRefused, PermissionDenied
from renraku.review import desk
from renraku.review.auth import ROLE_NAMES, role_required
from renraku.review.confirmations import annotate_queue, queue_attention
from renraku.review.listing import QueueFilter, queue_page
from renraku.sinks import audit
from renraku.sinks import models as m
from renraku.sinks.export import application_record, csv_safe, export, sheet_record, xlsx_bytes
from renraku.sinks.queue import (
    AUDITOR,
    REVIEWER,
    SUPERVISOR,
    approve,
    correct_field,
    override_finding,
    reject,
    value_for,
)
from renraku.validators import load_rule_config
from renraku.validators.common import label

bp = Blueprint("views", __name__)
STATUS_NAMES = {"incomplete": "不足あり", "needs_review": "要確認", "ready": "承認待ち", "approved": "承認済み",
                "rejected": "却下", "open": "未対応", "done": "対応済み", "attention": "確認メール要対応"}
KIND_NAMES = {"new_facility": "新規申込", "staff_change": "変更届", "lost_device": "紛失・盗難", "other": "メール",
              "confirmation": "確認の返信", "bounce": "不達通知"}
FORM_NAMES = {"usage_application": "利用申込書", "staff_registration": "登録申請書（利用者一覧）",
              "facility_pledge": "誓約書", "staff_change": "従事者登録変更通知書", "cover": "送付状", "unknown": "不明"}
CROP_MARGIN = 12


def ctx():  # type: ignore[no-untyped-def]
    return current_app.extensions["renraku"]


def db() -> Session:
    return ctx().sessions()


@bp.app_context_processor
def _names() -> dict[str, Any]:
    return {"STATUS_NAMES": STATUS_NAMES, "KIND_NAMES": KIND_NAMES, "FORM_NAMES": FORM_NAMES,
            "ROLE_NAMES": ROLE_NAMES, "SUPERVISOR": SUPERVISOR, "AUDITOR": AUDITOR, "REVIEWER": REVIEWER}


@bp.app_errorhandler(PermissionDenied)
def _denied(_exc: PermissionDenied) -> Any:
    abort(403)


def field_label(path: str) -> str:
    return label(path, load_rule_config())


# ------------------------------------------------------------------------------------ queue

@bp.route("/")
@login_required
def queue() -> Any:
    flt = QueueFilter(status=request.args.get("status", "open"), kind=request.args.get("kind", ""),
                      channel=request.args.get("channel", ""), batch=request.args.get("batch", ""))
    number = request.args.get("page", "1")
    with db() as s:
        attention = queue_attention()  # approved applications whose addresses bounced: open again
        found = queue_page(s, flt, int(number) if number.isdigit() and len(number) < 7 else 1, attention)
        for r in found.rows:
            r["url"] = url_for("views.application", app_id=r["app_id"]) if "app_id" in r \
                else url_for("views.message", message_id=r["message_id"])
            r["missing"] = [FORM_NAMES.get(x, x) for x in r["missing"]]
        annotate_queue(s, found.rows, attention)  # lost-device cases; confirmation trouble
    args = {k: v for k, v in (("status", flt.status), ("kind", flt.kind), ("channel", flt.channel),
                              ("batch", flt.batch)) if v}
    return render_template("queue.html", rows=found.rows, counts=found.counts, status=flt.status, kind=flt.kind,
                           channel=flt.channel, batch=flt.batch, total=found.total, matching=found.matching,
                           page=found.page, pages=found.pages,
                           prev_url=url_for("views.queue", **args, page=found.page - 1) if found.page > 1 else None,
                           next_url=url_for("views.queue", **args, page=found.page + 1)
                           if found.page < found.pages else None)


# ------------------------------------------------------------------------------ application

def _application(s: Session, app_id: int) -> m.Application:
    app = s.scalar(select(m.Application).where(m.Application.id == app_id).options(
        selectinload(m.Application.findings),
        selectinload(m.Application.sheets).selectinload(m.Sheet.fields),
        selectinload(m.Application.sheets).selectinload(m.Sheet.page).selectinload(m.Page.document)))
    if app is None:
        abort(404)
    return app


def _field_rows(sheet: m.Sheet, findings: list[m.Finding]) -> list[dict[str, Any]]:
    flagged_paths = {f.field for f in findings if f.sheet_id in (None, sheet.id) and f.field and not f.overridden_by}
    rows = []
    for f in sheet.fields:
        rows.append({"id": f.id, "path": f.path, "label": field_label(f.path), "kind": f.kind,
                     "value": f.value, "confidence": f.confidence, "needs_review": f.needs_review,
                     "method": f.method, "note": f.note, "finding": f.path in flagged_paths,
                     "box": [f.x0, f.y0, f.x1, f.y1], "is_mark": f.kind in ("checkbox", "admin_mark", "seal")})
    # What needs a person comes first; the rest keeps the sheet's order.
    return sorted(rows, key=lambda r: (not (r["needs_review"] or r["finding"]),))


@bp.route("/applications/<int:app_id>")
@login_required
def application(app_id: int) -> Any:
    with db() as s:
        app = _application(s, app_id)
        findings = list(app.findings) + desk.approval_notices(s, app)
        sheets = []
        for sh in app.sheets:
            picture = ctx().pictures.get(sh.page.document.sha256, sh.page.number)
            size = _png_size(picture) if picture else None
            sheets.append({"sheet": sh, "rows": _field_rows(sh, list(app.findings)), "size": size,
                           "document": sh.page.document, "page": sh.page})
        data = {"app": app, "findings": findings, "sheets": sheets,
                "missing": [FORM_NAMES.get(x, x) for x in app.missing],
                "labels": {f.id: field_label(f.field) if f.field else "" for f in app.findings}}
    return render_template("application.html", **data)


def _png_size(png: bytes) -> tuple[int, int]:
    # width and height from the IHDR chunk
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _findings_json(s: Session, app: m.Application) -> list[dict[str, Any]]:
    return [{"id": f.id, "rule": f.rule, "field": f.field, "label": field_label(f.field) if f.field else "",
             "severity": f.severity, "message": f.message, "overridden": bool(f.overridden_by),
             "sheet": f.sheet_id} for f in app.findings] + [
            {**n, "label": field_label(n["field"]), "overridden": False, "sheet": None}
            for n in desk.approval_notices(s, app)]


@bp.route("/fields/<int:field_id>", methods=["POST"])
@role_required(REVIEWER, SUPERVISOR)
def field(field_id: int) -> Any:
    value: Any = request.form.get("value", "")
    with ctx().sessions.begin() as s:
        f = s.get(m.Field, field_id)
        if f is None:
            abort(404)
        if f.kind in ("checkbox", "admin_mark", "seal"):
            value = value in ("1", "true", "on", "○", "✓")
        refused = desk.input_problem(f.kind, value) if isinstance(value, str) else None
        if refused:
            return _answer({"error": refused}, 422, f.sheet.application_id)
        if desk.needs_second_key(f.confidence, f.method, value_for(f.kind, value) == f.value,
                                 request.form.get("confirm_low") == "1"):
            return _answer({"error": desk.low_confidence_message(f.confidence), "low_confidence": True}, 409,
                           f.sheet.application_id)
        try:
            f = correct_field(s, field_id, value, current_user.actor)
        except DecisionRefused as exc:
            return _answer({"error": exc.reason}, 409, f.sheet.application_id)
        app = f.sheet.application
        result = {"field": {"id": f.id, "value": f.value, "method": f.method, "needs_review": f.needs_review,
                            "confidence": f.confidence},
                  "findings": _findings_json(s, app) if app else [], "status": app.status if app else None}
        app_id = app.id if app else None
    return _answer(result, 200, app_id)


def _answer(result: dict[str, Any], status: int, app_id: int | None) -> Any:
    """JSON for the page's script; a redirect back for a plain form post (no JavaScript)."""
    if request.accept_mimetypes.best == "application/json" or request.headers.get("X-Requested-With"):
        return jsonify(result), status
    if "error" in result:
        flash(result["error"])
    return redirect(url_for("views.application", app_id=app_id) if app_id else url_for("views.queue"))


@bp.route("/applications/<int:app_id>/approve", methods=["POST"])
@role_required(SUPERVISOR)
def approve_application(app_id: int) -> Any:
    try:
        with ctx().sessions.begin() as s:
            approve(s, app_id, current_user.actor)
        flash("承認しました")
        return _answer({"status": "approved"}, 200, app_id)
    except DecisionRefused as exc:
        return _answer({"error": exc.reason}, 409, app_id)
    except KeyError:  # no such application
        abort(404)


@bp.route("/applications/<int:app_id>/reject", methods=["POST"])
@role_required(SUPERVISOR)
def reject_application(app_id: int) -> Any:
    try:
        with ctx().sessions.begin() as s:
            reject(s, app_id, request.form.get("reason", ""), current_user.actor)
        flash("却下しました")
        return _answer({"status": "rejected"}, 200, app_id)
    except DecisionRefused as exc:
        return _answer({"error": exc.reason}, 409, app_id)
    except KeyError:
        abort(404)


@bp.route("/findings/<int:finding_id>/override", methods=["POST"])
@role_required(SUPERVISOR)
def override(finding_id: int) -> Any:
    with ctx().sessions.begin() as s:
        finding = s.get(m.Finding, finding_id)
        if finding is None:
            abort(404)
        app_id = finding.application_id
        try:
            override_finding(s, finding_id, request.form.get("reason", ""), current_user.actor)
        except DecisionRefused as exc:
            return _answer({"error": exc.reason}, 409, app_id)
    return _answer({"status": "overridden"}, 200, app_id)


# ---------------------------------------------------------------------------------- images

@bp.route("/pages/<int:page_id>/picture")
@login_required
def picture(page_id: int) -> Any:
    with db() as s:
        page = s.get(m.Page, page_id)
        if page is None:
            abort(404)
        png = ctx().pictures.get(page.document.sha256, page.number)
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=3600"})


@bp.route("/fields/<int:field_id>/crop")
@login_required
def crop(field_id: int) -> Any:
    with db() as s:
        f = s.get(m.Field, field_id)
        if f is None:
            abort(404)
        page = f.sheet.page
        png = ctx().pictures.get(page.document.sha256, page.number)
        box = (f.x0, f.y0, f.x1, f.y1)
    if png is None:
        abort(404)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    h, w = image.shape
    x0, y0 = max(0, box[0] - CROP_MARGIN), max(0, box[1] - CROP_MARGIN)
    x1, y1 = min(w, box[2] + CROP_MARGIN), min(h, box[3] + CROP_MARGIN)
    if x1 <= x0 or y1 <= y0:
        abort(404)
    _ok, out = cv2.imencode(".png", image[y0:y1, x0:x1])
    return Response(out.tobytes(), mimetype="image/png", headers={"Cache-Control": "private, max-age=60"})


@bp.route("/documents/<int:document_id>/original")
@role_required(SUPERVISOR, AUDITOR)
def original(document_id: int) -> Any:
    with ctx().sessions.begin() as s:
        doc = s.get(m.Document, document_id)
        if doc is None:
            abort(404)
        audit.record(s, current_user.name, "download_original", f"document:{doc.id}", {"sha256": doc.sha256})
        data = ctx().store.get(doc.sha256)
        name = doc.file_name
    return Response(data, mimetype="application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_quote(name)}"})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


# -------------------------------------------------------------------------------- messages

@bp.route("/messages/<int:message_id>", methods=["GET", "POST"])
@login_required
def message(message_id: int) -> Any:
    if request.method == "POST":
        if current_user.role == AUDITOR:
            abort(403)
        with ctx().sessions.begin() as s:
            msg = s.get(m.Message, message_id)
            if msg is None:
                abort(404)
            msg.status = "done"
            audit.record(s, current_user.name, "message_done", f"message:{msg.public_id}")
        return redirect(url_for("views.queue"))
    with db() as s:
        msg = s.get(m.Message, message_id)
        if msg is None:
            abort(404)
        from renraku.pipeline.mail import open_message

        mail = open_message(ctx().store.get(msg.document.sha256))
        children = list(msg.document.children)
        return render_template("message.html", msg=msg, mail=mail, children=children)


# --------------------------------------------------------------------------------- batches

@bp.route("/batches")
@role_required(REVIEWER, SUPERVISOR, AUDITOR)
def batches() -> Any:
    with db() as s:
        rows = s.scalars(select(m.Batch).order_by(m.Batch.id.desc()).limit(200)).all()
    return render_template("batches.html", batches=rows)


def channel_stats(s: Session, batch_id: int) -> list[dict[str, Any]]:
    """Mean confidence and the share of fields accepted without review, per channel and page kind."""
    rows = s.execute(select(m.Document.channel, m.Page.kind, m.Field.confidence, m.Field.needs_review)
                     .join(m.Page, m.Page.document_id == m.Document.id).join(m.Sheet, m.Sheet.page_id == m.Page.id)
                     .join(m.Field, m.Field.sheet_id == m.Sheet.id).where(m.Document.batch_id == batch_id)).all()
    groups: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for channel, kind, conf, review in rows:
        groups[f"{channel} / {'文字' if kind == 'text' else '画像'}"].append((conf, review))
    return [{"name": k, "fields": len(v), "confidence": sum(c for c, _ in v) / len(v),
             "stp": sum(1 for _, r in v if not r) / len(v)} for k, v in sorted(groups.items())]


@bp.route("/batches/<int:batch_id>")
@role_required(REVIEWER, SUPERVISOR, AUDITOR)
def batch(batch_id: int) -> Any:
    with db() as s:
        row = s.get(m.Batch, batch_id)
        if row is None:
            abort(404)
        docs = s.scalars(select(m.Document).where(m.Document.batch_id == batch_id).order_by(m.Document.id)).all()
        stats = channel_stats(s, batch_id)
        return render_template("batch.html", batch=row, docs=docs, chart=stats, read=row.stats.get("read", []))


@bp.route("/batches/<int:batch_id>/export.<fmt>")
@role_required(SUPERVISOR, AUDITOR)
def batch_export(batch_id: int, fmt: str) -> Any:
    if fmt not in ("csv", "xlsx"):
        abort(404)
    with ctx().sessions.begin() as s:
        if s.get(m.Batch, batch_id) is None:
            abort(404)  # not an empty file and an audit entry for a batch that never was
        # Plain rows in one query (no object per field): a batch of a hundred sets has thousands of fields.
        found = s.execute(select(m.Sheet.id, m.Sheet.form_id, m.Document.file_name, m.Page.number, m.Document.sha256,
                                 m.Field.path, m.Field.value, m.Field.confidence, m.Field.needs_review,
                                 m.Field.method)
                          .join(m.Page, m.Page.id == m.Sheet.page_id)
                          .join(m.Document, m.Document.id == m.Page.document_id)
                          .join(m.Field, m.Field.sheet_id == m.Sheet.id)
                          .where(m.Document.batch_id == batch_id).order_by(m.Sheet.id, m.Field.id))
        rows = [{"sheet_id": m.public_id("S", r[0]), "form_id": r[1], "file": r[2], "page": r[3], "sha256": r[4],
                 "field": r[5], "value": r[6], "confidence": r[7], "needs_review": r[8], "method": r[9]}
                for r in found]
        audit.record(s, current_user.name, "export", f"batch:{batch_id}", {"format": fmt, "rows": len(rows)})
    frame = pd.DataFrame(rows, columns=["sheet_id", "form_id", "file", "page", "sha256", "field", "value",
                                        "confidence", "needs_review", "method"])
    if fmt == "csv":
        body = csv_safe(frame).to_csv(index=False).encode("utf-8-sig")  # with a BOM: Excel opens it right
        mimetype = "text/csv"
    else:
        body = xlsx_bytes(frame)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f"attachment; filename=batch-{batch_id}.{fmt}"})


@bp.route("/export.zip")
@role_required(SUPERVISOR, AUDITOR)
def export_all() -> Any:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="renraku-export-") as tmp:
        with ctx().sessions.begin() as s:
            summary = export(s, Path(tmp))
            audit.record(s, current_user.name, "export", "export", {"sheets": summary.sheets,
                                                                    "applications": summary.applications})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("sheets.jsonl", "applications.jsonl", "staff.csv"):
                z.write(Path(tmp) / name, name)
    return Response(buf.getvalue(), mimetype="application/zip",
                    headers={"Content-Disposition": "attachment; filename=renraku-export.zip"})


# ---------------------------------------------------------------------------------- audit

@bp.route("/audit")
@role_required(SUPERVISOR, AUDITOR)
def audit_log() -> Any:
    with db() as s:
        entries = s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id.desc()).limit(500)).all()
        chain = audit.verify(s)
    return render_template("audit.html", entries=entries, chain=chain)


@bp.route("/trace/fields/<int:field_id>")
@role_required(REVIEWER, SUPERVISOR, AUDITOR)
def trace(field_id: int) -> Any:
    """From a value to the page, box and crop it came from, and everyone who touched it."""
    with db() as s:
        f = s.get(m.Field, field_id)
        if f is None:
            abort(404)
        sheet = f.sheet
        target = f"sheet:{sheet.public_id}"
        touched = [e for e in s.scalars(select(m.AuditEntry).where(m.AuditEntry.target == target)
                                        .order_by(m.AuditEntry.id))
                   if e.detail.get("field") == f.path]
        app_events = []
        if sheet.application is not None:
            app_events = s.scalars(select(m.AuditEntry).where(
                m.AuditEntry.target == f"application:{sheet.application.public_id}").order_by(m.AuditEntry.id)).all()
        export_view = json.dumps(sheet_record(sheet)["fields"].get(f.path), ensure_ascii=False)
        app_view = json.dumps(application_record(sheet.application), ensure_ascii=False) if sheet.application else ""
        return render_template("trace.html", f=f, sheet=sheet, doc=sheet.page.document, page=sheet.page,
                               touched=touched, app_events=app_events, label=field_label(f.path),
                               export_view=export_view, app_view=app_view)


@bp.route("/healthz")
@login_required
def healthz() -> Any:
    with db() as s:
        return jsonify({"applications": s.scalar(select(func.count()).select_from(m.Application))})
