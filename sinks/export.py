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
from sqlalchemy.orm import Session, selectinload

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
    staff = session.scalars(select(m.Staff).where(m.Staff.active).order_by(m.Staff.id)
                            .options(selectinload(m.Staff.facility)))
    for s in staff:
        yield {"facility_name": s.facility.name, "name": s.name, "name_kana": s.name_kana, "job": s.job,
               "admin": s.admin, "email": s.email, "source": s.source,
               "registered_on": s.registered_on.isoformat() if s.registered_on else "", "suspended": s.id in suspended}


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


def export(session: Session, out_dir: Path) -> ExportSummary:
    """Write the three export files into `out_dir` (created 0700: the export holds personal data)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    sheets = session.scalars(select(m.Sheet).order_by(m.Sheet.id).options(
        selectinload(m.Sheet.fields), selectinload(m.Sheet.page).selectinload(m.Page.document),
        selectinload(m.Sheet.application)))
    n_sheets = _write_jsonl(out_dir / "sheets.jsonl", (sheet_record(s) for s in sheets))
    apps = session.scalars(select(m.Application).order_by(m.Application.id).options(
        selectinload(m.Application.sheets), selectinload(m.Application.findings)))
    n_apps = _write_jsonl(out_dir / "applications.jsonl", (application_record(a) for a in apps))
    staff = pd.DataFrame(list(approved_staff(session)), columns=STAFF_COLUMNS)
    csv_safe(staff).to_csv(out_dir / "staff.csv", index=False, encoding="utf-8")
    return ExportSummary(out_dir, n_sheets, n_apps, len(staff))
