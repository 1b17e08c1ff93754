"""The MCS account list (step ③): confirmed people not yet exported, in MCS's import columns.

Each export is recorded (who, when, how many, the file's sha256) and marks the people in it, so the
next export holds only new ones; an export can be written again on purpose (`again`). When the
IDs have been sent to the people, a supervisor records it: the export's people are `issued`.
The columns are data (sinks/mcs.toml), so the list can follow MCS's import format.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tomllib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from renraku.config import Settings
from renraku.errors import ConfigError, DecisionRefused
from renraku.sinks import audit
from renraku.sinks import models as m
from renraku.sinks.cases import suspended_staff
from renraku.sinks.queue import Actor, allow

VALUES = ("facility_name", "facility_kana", "facility_address", "facility_phone", "name", "name_kana", "job",
          "admin", "email", "application", "confirmed_on")


def load_layout(settings: Settings) -> dict[str, Any]:
    try:
        with open(settings.mcs_config, "rb") as fh:
            layout = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"MCS 一覧の列の設定 {settings.mcs_config} を読めません: {exc}") from exc
    bad = [c.get("value") for c in layout.get("columns", []) if c.get("value") not in VALUES]
    if bad or not layout.get("columns"):
        raise ConfigError(f"MCS 一覧の列 {bad or '（なし）'} は使えません（使える値: {', '.join(VALUES)}）")
    return layout


def _value(conf: m.Confirmation, key: str, layout: dict[str, Any]) -> str:
    s, f = conf.staff, conf.staff.facility
    decided = conf.decided_at
    return {
        "facility_name": f.name, "facility_kana": f.name_kana, "facility_address": f.address,
        "facility_phone": f.phone, "name": s.name, "name_kana": s.name_kana, "job": s.job,
        "admin": str(layout.get("admin_true", "1") if s.admin else layout.get("admin_false", "0")),
        "email": conf.email, "application": conf.application.public_id if conf.application else "",
        "confirmed_on": decided.date().isoformat() if decided else "",
    }[key]


def ready(session: Session) -> list[m.Confirmation]:
    """Confirmed, not exported, the person still registered with that address and not suspended."""
    suspended = suspended_staff(session)
    found = session.scalars(select(m.Confirmation).where(m.Confirmation.status == "confirmed",
                                                         m.Confirmation.mcs_export_id.is_(None))
                            .order_by(m.Confirmation.id))
    return [c for c in found if c.staff.active and c.staff.email == c.email and c.staff_id not in suspended]


def render(confs: list[m.Confirmation], layout: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c["header"] for c in layout["columns"]])
    for conf in confs:
        writer.writerow([_value(conf, c["value"], layout) for c in layout["columns"]])
    return buf.getvalue().encode(layout.get("encoding", "utf-8-sig"))


def export(session: Session, settings: Settings, actor: Actor, *,
           again: int | None = None) -> tuple[m.McsExport, bytes]:
    """The next list (new people only), or export `again` written once more; recorded and audited."""
    allow(actor, "mcs")
    layout = load_layout(settings)
    if again is not None:
        previous = session.get(m.McsExport, again)
        if previous is None:
            raise DecisionRefused(f"MCS 一覧 {again} はありません")
        confs = list(session.scalars(select(m.Confirmation).where(m.Confirmation.mcs_export_id == again)
                                     .order_by(m.Confirmation.id)))
        data = render(confs, layout)
        audit.record(session, actor.name, "mcs_export_again", f"mcs_export:{again}",
                     {"rows": len(confs), "sha256": hashlib.sha256(data).hexdigest()})
        return previous, data
    confs = ready(session)
    data = render(confs, layout)
    record = m.McsExport(by=actor.name, rows=len(confs), sha256=hashlib.sha256(data).hexdigest())
    session.add(record)
    session.flush()
    for conf in confs:
        conf.mcs_export = record
    audit.record(session, actor.name, "mcs_export", f"mcs_export:{record.id}",
                 {"rows": len(confs), "sha256": record.sha256, "confirmations": [c.public_id for c in confs]})
    return record, data


def mark_issued(session: Session, export_id: int, actor: Actor) -> m.McsExport:
    """A supervisor records that the IDs of an export's people were sent to them."""
    allow(actor, "mcs")
    record = session.get(m.McsExport, export_id)
    if record is None:
        raise DecisionRefused(f"MCS 一覧 {export_id} はありません")
    if record.issued_at is not None:
        raise DecisionRefused(f"MCS 一覧 {export_id} は既に発行済みです")
    record.issued_at, record.issued_by = m.utcnow(), actor.name
    audit.record(session, actor.name, "mcs_issued", f"mcs_export:{export_id}", {"rows": record.rows})
    return record
