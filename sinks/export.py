"""The export of SPEC §3: sheets.jsonl, applications.jsonl and staff.csv of approved staff."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from renraku.sinks import models as m

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may take as the start of a formula
STAFF_COLUMNS = ["facility_name", "name", "name_kana", "job", "admin", "email", "source", "registered_on",
                 "suspended"]


@dataclass
class ExportSummary:
    directory: Path
    sheets: int
    applications: int
    staff: int


def sheet_record(sheet: m.Sheet) -> dict[str, Any]:
    doc = sheet.page.document
    return {
        "sheet_id": sheet.public_id,
        "application_id": sheet.application.public_id if sheet.application else None,
        "form_id": sheet.form_id,
        "source": {
            "channel": doc.channel,
            "file": doc.file_name,
            "message_id": doc.message_id,
            "page": sheet.page.number,
            "sha256": doc.sha256,
        },
        "fields": {
            f.path: {"value": f.value, "confidence": round(f.confidence, 4),
                     "needs_review": f.needs_review, "method": f.method}
            for f in sheet.fields
        },
        "status": sheet.status,
    }


def application_record(app: m.Application) -> dict[str, Any]:
    return {
        "application_id": app.public_id,
        "kind": app.kind,
        "facility_name": app.facility_name,
        "sheets": [s.public_id for s in app.sheets],
        "missing": list(app.missing),
        "findings": [{"rule": f.rule, "field": f.field, "severity": f.severity, "message": f.message}
                     for f in app.findings],
        "status": app.status,
    }


def approved_staff(session: Session) -> Iterator[dict[str, Any]]:
    """The registry's active staff: imported, or added by approved applications; `suspended` while a
    lost-device case about them is open."""
    from renraku.sinks.cases import suspended_staff

    suspended = suspended_staff(session)
    p = m.Staff
    staff = session.execute(select(p.id, m.Facility.name, p.name, p.name_kana, p.job, p.admin, p.email, p.source,
                                   p.registered_on).join(m.Facility, m.Facility.id == p.facility_id)
                            .where(p.active).order_by(p.id))
    for staff_id, facility, name, kana, job, admin, email, source, registered_on in staff:
        yield {"facility_name": facility, "name": name, "name_kana": kana, "job": job, "admin": admin, "email": email,
               "source": source, "registered_on": registered_on.isoformat() if registered_on else "",
               "suspended": staff_id in suspended}


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text that a spreadsheet would run as a formula (=HYPERLINK(…), +cmd, @SUM…) gets a leading
    apostrophe, as Excel itself shows typed text: the file opens as data, never as a formula."""
    def cell(value: Any) -> Any:
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
    return frame.map(cell)


def xlsx_bytes(frame: pd.DataFrame) -> bytes:
    """An Excel workbook in which every text cell is text (a value typed as `=…` is not a formula)."""
    import io

    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook()
    sheet = book.active
    sheet.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in row])
    for row in sheet.iter_rows():
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def _sheet_records(session: Session) -> Iterator[dict[str, Any]]:
    """sheet_record of every sheet, from plain rows: a sheet's head, then its fields in one ordered stream
    (millions of fields at a prefecture's size: no object per field)."""
    d, p, sh, f = m.Document, m.Page, m.Sheet, m.Field
    heads = session.execute(select(sh.id, sh.application_id, sh.form_id, sh.status, d.channel, d.file_name,
                                   d.message_id, p.number, d.sha256)
                            .join(p, p.id == sh.page_id).join(d, d.id == p.document_id).order_by(sh.id)).all()
    fields = iter(session.execute(select(f.sheet_id, f.path, f.value, f.confidence, f.needs_review, f.method)
                                  .order_by(f.sheet_id, f.id).execution_options(yield_per=20_000)))
    pending = next(fields, None)
    for sheet_id, app_id, form_id, status, channel, file_name, message_id, page, sha256 in heads:
        values = {}
        while pending is not None and pending[0] <= sheet_id:
            if pending[0] == sheet_id:
                values[pending[1]] = {"value": pending[2], "confidence": round(pending[3], 4),
                                      "needs_review": pending[4], "method": pending[5]}
            pending = next(fields, None)
        yield {"sheet_id": m.public_id("S", sheet_id),
               "application_id": m.public_id("A", app_id) if app_id is not None else None,
               "form_id": form_id,
               "source": {"channel": channel, "file": file_name, "message_id": message_id, "page": page,
                          "sha256": sha256},
               "fields": values, "status": status}


def _application_records(session: Session) -> Iterator[dict[str, Any]]:
    """application_record of every application, from plain rows (one query per table)."""
    sheets: dict[int, list[str]] = {}
    for app_id, sheet_id in session.execute(select(m.Sheet.application_id, m.Sheet.id)
                                            .where(m.Sheet.application_id.is_not(None)).order_by(m.Sheet.id)):
        sheets.setdefault(app_id, []).append(m.public_id("S", sheet_id))
    findings: dict[int, list[dict[str, Any]]] = {}
    for app_id, rule, field, severity, message in session.execute(
            select(m.Finding.application_id, m.Finding.rule, m.Finding.field, m.Finding.severity, m.Finding.message)
            .order_by(m.Finding.id)):
        findings.setdefault(app_id, []).append({"rule": rule, "field": field, "severity": severity, "message": message})
    for app_id, kind, facility_name, missing, status in session.execute(
            select(m.Application.id, m.Application.kind, m.Application.facility_name, m.Application.missing,
                   m.Application.status).order_by(m.Application.id)):
        yield {"application_id": m.public_id("A", app_id), "kind": kind, "facility_name": facility_name,
               "sheets": sheets.get(app_id, []), "missing": list(missing), "findings": findings.get(app_id, []),
               "status": status}


def export(session: Session, out_dir: Path) -> ExportSummary:
    """Write the three export files into `out_dir` (created 0700: the export holds personal data)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    n_sheets = _write_jsonl(out_dir / "sheets.jsonl", _sheet_records(session))
    n_apps = _write_jsonl(out_dir / "applications.jsonl", _application_records(session))
    staff = pd.DataFrame(list(approved_staff(session)), columns=STAFF_COLUMNS)
    csv_safe(staff).to_csv(out_dir / "staff.csv", index=False, encoding="utf-8")
    return ExportSummary(out_dir, n_sheets, n_apps, len(staff))
