"""Writing what the pipeline read into the database, and reading it back as domain views."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from renraku.pipeline.grouping import facility_name, group_sheets
from renraku.pipeline.read import DocumentResult, PageResult
from renraku.sinks import models as m
from renraku.validators import ApplicationView, SheetView, check
from sqlalchemy import select
from sqlalchemy.orm import Session

NOT_A_FORM = "cover"


def document_by_sha(session: Session, digest: str) -> m.Document | None:
    return session.scalar(select(m.Document).where(m.Document.sha256 == digest))


def _px(v: float, dpi: int) -> int:
    return round(v * dpi / 72.0)


def _sheet_status(page: PageResult) -> str:
    cls = page.classification
    if page.reason and cls.form_id == "unknown" and cls.method == "none":
        return "unreadable"
    if cls.form_id == NOT_A_FORM:
        return "not_a_form"
    if cls.form_id == "unknown":
        return "needs_review"
    return "needs_review" if any(r.needs_review for r in page.readings) else "ready"


def record_document(session: Session, result: DocumentResult, *, channel: str, batch: m.Batch,
                    dpi: int, parent: m.Document | None = None, message_id: str | None = None) -> list[m.Sheet]:
    """Add a document (and an e-mail's attachments) with its pages, sheets and fields.

    Returns the new sheet records. A document whose bytes are already recorded is not added again.
    """
    if result.status == "duplicate" or document_by_sha(session, result.sha256) is not None:
        return []
    if result.message is not None:
        message_id = result.message.message_id
    doc = m.Document(sha256=result.sha256, size=result.size, media_type=result.media_type,
                     file_name=result.name, channel=channel, message_id=message_id, parent=parent,
                     status=result.status, reason=result.reason or None, batch_id=batch.id)
    session.add(doc)
    sheets: list[m.Sheet] = []
    for page in result.pages:
        page_row = m.Page(document=doc, number=page.number, kind=page.kind,
                          width_pt=page.width, height_pt=page.height, dpi=dpi)
        cls = page.classification
        sheet = m.Sheet(page=page_row, form_id=cls.form_id, score=cls.score, method=cls.method,
                        status=_sheet_status(page), reason=page.reason or None)
        for r in page.readings:
            sheet.fields.append(m.Field(
                path=r.path, kind=r.kind, value=r.value, raw=r.raw, confidence=r.confidence,
                needs_review=r.needs_review, method=r.method, note=r.note,
                x0=_px(r.box[0], dpi), y0=_px(r.box[1], dpi), x1=_px(r.box[2], dpi), y1=_px(r.box[3], dpi)))
        session.add(sheet)
        sheets.append(sheet)
    for child in result.children:
        sheets += record_document(session, child, channel=channel, batch=batch, dpi=dpi,
                                  parent=doc, message_id=message_id)
    session.flush()
    return sheets


def sheet_view(sheet: m.Sheet) -> SheetView:
    return SheetView(key=sheet.id, form_id=sheet.form_id, values={f.path: f.value for f in sheet.fields})


def application_status(app: m.Application) -> str:
    if app.status in ("approved", "rejected"):
        return app.status
    if app.missing:
        return "incomplete"
    needs_review = any(f.needs_review for s in app.sheets for f in s.fields)
    if needs_review or any(f.severity == "error" for f in app.findings):
        return "needs_review"
    return "ready"


def record_applications(session: Session, sheets: Iterable[m.Sheet], *, batch: m.Batch,
                        rule_config: dict[str, Any] | None = None) -> list[m.Application]:
    """Group new sheet records into applications and store the rules' findings on them."""
    by_id = {s.id: s for s in sheets}
    out = []
    for view in group_sheets([sheet_view(s) for s in by_id.values()]):
        app = m.Application(kind=view.kind, facility_name=facility_name(view), missing=view.missing,
                            status="incomplete", batch_id=batch.id)
        session.add(app)
        for sv in view.sheets:
            by_id[sv.key].application = app
        store_findings(app, view, rule_config)
        app.status = application_status(app)
        out.append(app)
    session.flush()
    return out


def store_findings(app: m.Application, view: ApplicationView, rule_config: dict[str, Any] | None) -> None:
    """Replace the application's findings with what the rules say now."""
    app.findings.clear()
    for f in check(view, rule_config):
        app.findings.append(m.Finding(rule=f.rule, field=f.field, severity=f.severity,
                                      message=f.message, sheet_id=f.sheet_key))
