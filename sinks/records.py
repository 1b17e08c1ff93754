"""Writing what the pipeline read into the database, grouping it into applications, checking them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from renraku import normalize
from renraku.pipeline.grouping import NEW_FACILITY_FORMS, facility_identity, facility_name, group_sheets
from renraku.pipeline.mail import MailContent
from renraku.pipeline.read import DocumentResult, PageResult
from renraku.sinks import models as m
from renraku.validators import ApplicationView, SheetView, check, load_rule_config

NOT_A_FORM = "cover"
OPEN = ("incomplete", "needs_review", "ready")


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
    return SheetView(key=sheet.id, form_id=sheet.form_id, values={f.path: f.value for f in sheet.fields},
                     raw={f.path: f.raw for f in sheet.fields},
                     doubtful=frozenset(f.path for f in sheet.fields if f.needs_review))


def application_view(app: m.Application) -> ApplicationView:
    return ApplicationView(app.kind, [sheet_view(s) for s in app.sheets], list(app.missing), key=app.id,
                           label=app.public_id)


def application_status(app: m.Application) -> str:
    if app.status in ("approved", "rejected"):
        return app.status
    if app.missing:
        return "incomplete"
    needs_review = any(f.needs_review for s in app.sheets for f in s.fields)
    if needs_review or any(f.blocking for f in app.findings):
        return "needs_review"
    return "ready"


def _open_set_for(session: Session, view: ApplicationView, config: dict[str, Any]) -> m.Application | None:
    """An open new-facility set of the same facility that still lacks every sheet `view` brings."""
    identity = facility_identity(view)
    if not identity.name:
        return None
    forms = {s.form_id for s in view.sheets}
    candidates = session.scalars(
        select(m.Application).where(m.Application.kind == "new_facility", m.Application.status.in_(OPEN))
        .order_by(m.Application.id.desc())
        .options(selectinload(m.Application.sheets).selectinload(m.Sheet.fields)))
    for app in candidates:
        if not forms <= set(app.missing):
            continue
        if facility_identity(application_view(app)).same_as(identity, config):
            return app
    return None


def record_applications(session: Session, sheets: Iterable[m.Sheet], *, batch: m.Batch,
                        rule_config: dict[str, Any] | None = None,
                        shared: Mapping[str, Mapping[str, str]] | None = None) -> list[m.Application]:
    """Group new sheet records into applications, joining sets that wait for a late sheet.

    `shared` names, per form, the boxes every sheet of a set repeats (the templates' `shared`
    hints): where sheets that came separately read one of them differently, the new readings go to
    a person (`doubt_disagreeing`). Returns the applications that were created or completed, after
    their rules ran.
    """
    config = rule_config if rule_config is not None else load_rule_config()
    by_id = {s.id: s for s in sheets}
    touched: list[m.Application] = []
    for view in group_sheets([sheet_view(s) for s in by_id.values()]):
        app = _open_set_for(session, view, config) if view.kind == "new_facility" else None
        if app is None:
            app = m.Application(kind=view.kind, facility_name="", missing=[], status="incomplete",
                                batch_id=batch.id)
            session.add(app)
        for sv in view.sheets:
            by_id[sv.key].application = app
        session.flush()
        touched.append(app)
        if shared:
            session.refresh(app, ["sheets"])
            doubt_disagreeing(app.sheets, shared)
    for app in touched:
        revalidate(session, app, config)
    for other in _sharing_addresses(session, touched):
        revalidate(session, other, config)
    session.flush()
    return touched


SHARED_DISAGREE = "shared_across_items"  # notes.toml


def doubt_disagreeing(sheets: list[m.Sheet], shared: Mapping[str, Mapping[str, str]]) -> list[m.Field]:
    """The boxes a set repeats (facility, address, phone, representative), read differently on sheets
    that came separately: at least one reading is wrong, and none may be accepted unseen. Each OCR
    reading of such a box that another item's sheet reads otherwise goes to a person, unless it is
    what a typed PDF or a person gave there. Sheets of one item were read together and their boxes
    pooled already (item rule `pooled_shared`); dates are left out (sheets may be signed on
    different days)."""
    from renraku.extractors import notes

    boxes: dict[str, list[tuple[int, m.Field]]] = {}
    for sheet in sheets:
        item = _item_of(sheet.page.document)
        for f in sheet.fields:
            key = shared.get(sheet.form_id, {}).get(f.path)
            if key and f.kind != "date" and isinstance(f.value, str) and f.value:
                boxes.setdefault(key, []).append((item, f))
    doubted = []
    for fields in boxes.values():
        certain = {normalize.comparable(f.kind, f.value) for _i, f in fields if f.method in ("text_layer", "human")}
        for item, f in fields:
            mine = normalize.comparable(f.kind, f.value)
            if f.method == "ocr" and mine not in certain and any(
                    i != item and normalize.comparable(o.kind, o.value) != mine for i, o in fields):
                f.needs_review = True
                f.note = f.note or notes.text(SHARED_DISAGREE)
                doubted.append(f)
    return doubted


def _item_of(document: m.Document) -> int:
    """The received item a document came in (a mail's attachments belong to the mail)."""
    while document.parent is not None:
        document = document.parent
    return document.id


def _sharing_addresses(session: Session, apps: list[m.Application]) -> list[m.Application]:
    """Open applications that name an address one of `apps` names: their duplicate findings change."""
    from renraku.validators.common import rows

    def addresses(app: m.Application) -> set[str]:
        return {normalize.comparable("email", r.text("email")) for r in rows(application_view(app))} - {""}

    mine = set().union(*(addresses(a) for a in apps)) if apps else set()
    ids = {a.id for a in apps}
    others = session.scalars(select(m.Application).where(m.Application.status.in_(OPEN))
                             .options(selectinload(m.Application.sheets).selectinload(m.Sheet.fields)))
    return [o for o in others if o.id not in ids and addresses(o) & mine]


def revalidate(session: Session, app: m.Application, config: dict[str, Any] | None = None,
               today: dt.date | None = None) -> None:
    """Re-run the rules of one application (after a sheet joined or a field was corrected).

    Findings are replaced; a supervisor's override is kept while the same rule still finds the same
    field. The status follows.
    """
    from renraku.sinks.registry import rule_context

    config = config if config is not None else load_rule_config()
    session.flush()
    session.refresh(app, ["sheets"])
    view = application_view(app)
    if app.kind == "new_facility":
        present = {s.form_id for s in app.sheets}
        required = config.get("new_facility", {}).get("required_sheets", list(NEW_FACILITY_FORMS))
        view.missing = [f for f in required if f not in present]
        app.missing = view.missing
    app.facility_name = facility_name(view)
    overrides = {(f.rule, f.field, f.sheet_id): f for f in app.findings if f.overridden_by}
    app.findings.clear()
    session.flush()
    context = rule_context(session, config, exclude=app.id, today=today)
    for f in check(view, context, config):
        finding = m.Finding(rule=f.rule, field=f.field, severity=f.severity, message=f.message, sheet_id=f.sheet_key)
        kept = overrides.get((f.rule, f.field, f.sheet_key))
        if kept is not None:
            finding.overridden_by, finding.overridden_at = kept.overridden_by, kept.overridden_at
            finding.override_reason = kept.override_reason
        app.findings.append(finding)
    app.status = application_status(app)


def record_message(session: Session, result: DocumentResult, sheets: list[m.Sheet], *, batch: m.Batch,
                   keywords: list[str]) -> m.Message | None:
    """A message record for mail that is not (only) a form: a lost-device report, or mail to read."""
    mail = result.message
    if mail is None:
        return None
    from renraku.sinks import cases, confirmation

    doc = document_by_sha(session, result.sha256)
    assert doc is not None
    text = normalize.compact(f"{mail.subject}\n{mail.body}")
    lost = [k for k in keywords if normalize.compact(k) in text]
    verdict = confirmation.recognise(session, result.data, mail.sender, mail.subject, mail.body)
    if verdict is not None and not (lost and verdict.action == "confirm"):  # a reply or bounce of a 送受信確認
        message = _message(session, doc, mail, batch, kind=verdict.kind, urgent=False, note=verdict.note,
                           status="done" if verdict.done else "open")
        confirmation.apply(session, verdict, message)
        return message
    forms = [s for s in sheets if s.form_id not in ("cover", "unknown")]
    if lost:  # even in a reply to a 送受信確認: the report comes first, and it confirms nothing
        kind, urgent, note = "lost_device", True, "端末の紛失・盗難の報告です（至急対応）"
        if verdict is not None:
            note += f"。{verdict.note}。送受信確認の返信でもありますが、確認はしていません"
    elif forms:
        return None  # an ordinary application by mail: its sheets are the record
    else:
        kind, urgent = "other", False
        unread = [c for c in result.children if c.status in ("unsupported", "unreadable")]
        if unread:
            note = "添付を読めませんでした: " + "、".join(sorted({c.reason for c in unread}))
        elif result.children:
            note = "添付に様式が見当たりません"
        else:
            note = "様式の添付がないメールです"
        if mail.notes:
            note += "（" + "、".join(mail.notes) + "）"
    message = _message(session, doc, mail, batch, kind=kind, urgent=urgent, note=note)
    if kind == "lost_device":
        cases.open_case(session, message, mail.sender)
    return message


def _message(session: Session, doc: m.Document, mail: MailContent, batch: m.Batch, *, kind: str, urgent: bool,
             note: str, status: str = "open") -> m.Message:
    message = m.Message(document_id=doc.id, kind=kind, urgent=urgent, subject=mail.subject[:500],
                        sender=mail.sender[:500], sent=mail.date[:100], note=note, status=status, batch_id=batch.id)
    session.add(message)
    session.flush()
    return message
