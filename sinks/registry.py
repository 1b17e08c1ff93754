"""The registry: the secretariat's ledger of registered facilities and staff.

It starts from a CSV import and grows as applications are approved. CSV columns (UTF-8, with or
without BOM, or Shift_JIS as Excel writes it), one row per person, facility columns repeated:

    facility_name, facility_kana, postal_code, address, phone,
    staff_name, staff_kana, job, admin, email, registered_on

`admin` is ○/1/true/yes/有 or empty; `registered_on` any date SPEC §2 reads, or empty. A row with
empty staff columns registers the facility alone. Importing is all-or-nothing and idempotent:
facilities are matched by name, people by e-mail address within their facility.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import LargeBinary, Select, String, and_, case, cast, func, or_, select, type_coerce
from sqlalchemy.orm import Session, selectinload

from renraku import normalize
from renraku.errors import DecisionRefused, RegistryImportError
from renraku.sinks import models as m
from renraku.sinks.db import first_column_chunks
from renraku.validators import ApplicationView, KnownStaff, RuleContext
from renraku.validators.common import label, rows
from renraku.validators.emails import email_problem
from renraku.validators.identity import facility_key, names_match

COLUMNS = ["facility_name", "facility_kana", "postal_code", "address", "phone",
           "staff_name", "staff_kana", "job", "admin", "email", "registered_on"]
TRUE_WORDS = {"○", "〇", "◯", "1", "true", "yes", "y", "有", "あり", "はい", "管理者"}
FALSE_WORDS = {"", "0", "false", "no", "n", "無", "なし", "いいえ", "-"}
OPEN = ("incomplete", "needs_review", "ready")


# ------------------------------------------------------------------------------------ lookups

def find_facility(session: Session, name: str, config: dict[str, Any]) -> m.Facility | None:
    """The registered facility a sheet names (exact key, else tolerant of OCR slips)."""
    key = facility_key(name, config)
    found = session.scalar(select(m.Facility).where(m.Facility.key == key))
    if found is not None or not key:
        return found
    return next((f for f in session.scalars(select(m.Facility)) if names_match(name, f.name, config)), None)


def rule_context(session: Session, config: dict[str, Any], *, exclude: int | None = None,
                 today: dt.date | None = None) -> RuleContext:
    """What the rules may know: the registry and the addresses on the other open applications."""
    from renraku.sinks.records import application_view

    facilities = {f.key: f.name for f in session.scalars(select(m.Facility))}
    staff = [KnownStaff(s.facility.key, s.name, normalize.comparable("email", s.email), s.admin, s.facility.name,
                        "登録済み")
             for s in session.scalars(select(m.Staff).where(m.Staff.active).options(selectinload(m.Staff.facility)))]
    queued: list[KnownStaff] = []
    pending: set[str] = set()
    others = session.scalars(select(m.Application).where(m.Application.status.in_(OPEN))
                             .options(selectinload(m.Application.sheets).selectinload(m.Sheet.fields)))
    for app in others:
        if app.id == exclude:
            continue
        view = application_view(app)
        if app.kind == "new_facility" and app.facility_name:
            pending.add(app.facility_name)
        for row in rows(view):
            if row.prefix == "changes" and not set(row.kinds) & {"add", "modify"}:
                continue
            email = normalize.comparable("email", row.text("email"))
            if email:
                where = f"申請 {app.public_id}（{app.facility_name}）の{label(row.path('email'), config)}"
                queued.append(KnownStaff(facility_key(app.facility_name, config), row.text("name"), email,
                                         row.values.get("admin") is True, app.facility_name, where))
    return RuleContext(today=today or dt.date.today(), facilities=facilities, staff=staff, queued=queued,
                       pending_facilities=pending)


# ------------------------------------------------------------------------------------ import

@dataclass
class ImportReport:
    facilities_added: int = 0
    staff_added: int = 0
    staff_updated: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise RegistryImportError("CSV の文字コードが UTF-8 でも Shift_JIS でもありません", [])


@dataclass
class _Row:
    line: int
    facility: dict[str, str]
    person: dict[str, Any] | None


def _parse(text: str, config: dict[str, Any]) -> tuple[list[_Row], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("facility_name", "staff_name", "email") if c not in (reader.fieldnames or [])]
    if missing:
        raise RegistryImportError(f"CSV の列が足りません: {', '.join(missing)}（必要な列: {', '.join(COLUMNS)}）", [])
    parsed, problems = [], []
    seen: dict[str, tuple[int, str]] = {}
    for line, raw in enumerate(reader, start=2):
        rec = {k: normalize.text(raw.get(k)) for k in COLUMNS}
        errs = []
        if not rec["facility_name"]:
            errs.append("施設名が空です")
        person = None
        if rec["staff_name"] or rec["email"]:
            email = normalize.email(rec["email"])
            admin = rec["admin"].lower()
            if not rec["staff_name"]:
                errs.append("氏名が空です")
            if not email:
                errs.append("メールアドレスが空です")
            elif (problem := email_problem(email, config)) is not None:
                errs.append(f"メールアドレス「{email}」: {problem}")
            if admin not in TRUE_WORDS and admin not in FALSE_WORDS:
                errs.append(f"管理者欄「{rec['admin']}」を読めません（○ か空欄）")
            registered = None
            if rec["registered_on"]:
                registered = normalize.parse_date(rec["registered_on"]).iso
                if registered is None:
                    errs.append(f"登録日「{rec['registered_on']}」は日付として読めません")
            key = normalize.comparable("email", email)
            if key in seen and seen[key][1] != facility_key(rec["facility_name"], config):
                errs.append(f"メールアドレス「{email}」は {seen[key][0]} 行目にもあります（1人1メールアドレス）")
            seen.setdefault(key, (line, facility_key(rec["facility_name"], config)))
            person = {"name": rec["staff_name"], "name_kana": rec["staff_kana"], "job": rec["job"], "email": email,
                      "admin": admin in TRUE_WORDS,
                      "registered_on": dt.date.fromisoformat(registered) if registered else None}
        problems += [f"{line} 行目: {e}" for e in errs]
        parsed.append(_Row(line, {k: rec[k] for k in ("facility_name", "facility_kana", "postal_code", "address",
                                                       "phone")}, person))
    return parsed, problems


def import_csv(session: Session, data: bytes, config: dict[str, Any], *, actor: str = "import") -> ImportReport:
    """Import a registry CSV in the caller's transaction; raises RegistryImportError with every bad row."""
    from renraku.sinks import audit

    parsed, problems = _parse(_decode(data), config)
    if problems:
        raise RegistryImportError(f"取り込めない行が {len(problems)} 件あります。何も取り込んでいません", problems)
    report = ImportReport()
    for row in parsed:
        f = row.facility
        key = facility_key(f["facility_name"], config)
        facility = session.scalar(select(m.Facility).where(m.Facility.key == key))
        if facility is None:
            facility = m.Facility(key=key, name=f["facility_name"], name_kana=f["facility_kana"],
                                  postal_code=f["postal_code"], address=f["address"], phone=f["phone"],
                                  source="import")
            session.add(facility)
            session.flush()
            report.facilities_added += 1
        if row.person is None:
            continue
        changed = _upsert_staff(session, facility, row.person, source="import")
        if changed == "added":
            report.staff_added += 1
        elif changed == "updated":
            report.staff_updated += 1
        else:
            report.unchanged += 1
    audit.record(session, actor, "registry_import", "registry",
                 {"facilities_added": report.facilities_added, "staff_added": report.staff_added,
                  "staff_updated": report.staff_updated})
    return report


def _upsert_staff(session: Session, facility: m.Facility, person: dict[str, Any], source: str) -> str:
    key = normalize.comparable("email", person["email"])
    existing = next((s for s in facility.staff if normalize.comparable("email", s.email) == key), None)
    if existing is None:
        facility.staff.append(m.Staff(source=source, active=True, **person))
        session.flush()
        return "added"
    updates = {k: v for k, v in person.items() if v not in (None, "") and getattr(existing, k) != v}
    if not existing.active:
        updates |= {"active": True, "removed_on": None}
    for k, v in updates.items():
        setattr(existing, k, v)
    return "updated" if updates else "unchanged"


def _export_columns(session: Session) -> list[Any]:
    """The import columns, and `suspended` (○ while a lost-device case is open; import ignores it), each
    as the file writes it: ○ for admin and suspended, the date as ISO text, NULL for a value not there
    (a facility with no active staff has NULL staff columns)."""
    f, p = m.Facility, m.Staff
    suspended = select(m.Case.staff_id).where(m.Case.state != "resolved", m.Case.staff_id.is_not(None))
    if session.get_bind().dialect.name == "postgresql":
        registered_on: Any = func.to_char(p.registered_on, "YYYY-MM-DD")  # not DateStyle's choice
    else:
        registered_on = type_coerce(p.registered_on, String)  # SQLite keeps a Date as its ISO text
    return [f.name, f.name_kana, f.postal_code, f.address, f.phone, p.name, p.name_kana, p.job,
            case((p.admin, "○")), p.email, registered_on, case((p.id.in_(suspended), "○"))]


def _export_select(*columns: Any) -> Select[Any]:
    f, p = m.Facility, m.Staff
    return select(*columns).select_from(f).outerjoin(p, and_(p.facility_id == f.id, p.active)).order_by(f.id, p.id)


def export_rows(session: Session) -> Sequence[Sequence[Any]]:
    """The export's rows as values: what csv.writer takes when a value holds the byte `export_csv` joins with."""
    return session.connection().execute(_export_select(*_export_columns(session))).all()


def _joined_rows(session: Session) -> Iterator[list[bytes]]:
    """Each row's values joined by UNIT in the database, as UTF-8 bytes: one value per row, not twelve,
    in chunks, through the driver's cursor, without SQLAlchemy's Row.

    SQLite: format() (NULL as "") over the values ordered in a subquery, as SQLite's own UTF-8 bytes."""
    if session.get_bind().dialect.name == "postgresql":
        return _joined_rows_postgresql(session)
    columns = _export_columns(session)
    inner = _export_select(*(c.label(f"v{i}") for i, c in enumerate(columns)),
                           m.Facility.id.label("facility"), m.Staff.id.label("person")).subquery()
    values = [inner.c[f"v{i}"] for i in range(len(columns))]
    joined = cast(func.format(UNIT.join(["%s"] * len(values)), *values, type_=String), LargeBinary)
    return first_column_chunks(session, select(joined).order_by(inner.c.facility, inner.c.person), CHUNK)


def _joined_rows_postgresql(session: Session) -> Iterator[list[bytes]]:
    """The same lines as PostgreSQL makes them cheapest: its server's work was two thirds of the export.

    There format() of twelve values, to_char of the date and convert_to into bytes were 40 % of
    the server's time. Here `||` joins the values, each facility's five once, not once per person
    (OFFSET 0 keeps PostgreSQL from merging that subquery into the join); a person's seven values
    are NULL together only where a facility has no one (then seven empty values: all but the date
    are NOT NULL); the date is text by DateStyle ISO; and the text leaves the server as UTF-8
    (client_encoding) and is read as those bytes, not decoded and encoded again. Both settings are
    SET LOCAL: the caller's connection keeps its own afterwards."""
    f, p = m.Facility, m.Staff
    session.execute(select(func.set_config("client_encoding", "UTF8", True), func.set_config("DateStyle", "ISO", True)))
    facility = select(f.id, (_unit_joined(f.name, f.name_kana, f.postal_code, f.address, f.phone) + UNIT)
                      .label("head")).offset(0).subquery()
    suspended = select(m.Case.staff_id).where(m.Case.state != "resolved", m.Case.staff_id.is_not(None))
    person = _unit_joined(p.name, p.name_kana, p.job, case((p.admin, "○"), else_=""), p.email,
                          func.coalesce(cast(p.registered_on, String), ""), case((p.id.in_(suspended), "○"), else_=""))
    line = facility.c.head + func.coalesce(person, UNIT * 6, type_=String)
    lines = (select(line).select_from(facility).outerjoin(p, and_(p.facility_id == facility.c.id, p.active))
             .order_by(facility.c.id, p.id))
    return first_column_chunks(session, lines, CHUNK, text_as_bytes=True)


def _unit_joined(*values: Any) -> Any:
    """`a || UNIT || b || …` in SQL: NULL if any value is."""
    joined = values[0]
    for value in values[1:]:
        joined = joined + UNIT + value
    return joined


CHUNK = 1000  # rows read at a time (250 KB of the file): written while the database makes the next ones
UNIT = "\x1f"  # joins a row's values in the database: normalize.text makes it a space, so no value should hold it
HEADER = (",".join([*COLUMNS, "suspended"]) + "\r\n").encode()
_QUOTED = re.compile(b'[,"\r\n]')  # what makes csv.writer quote a value


def export_csv(session: Session, out: Path) -> int:
    """Write the registry in the import format (so it can be imported again), as csv.writer writes it.

    At 50,000 staff, Python code per person (a value, a row object, csv.writer's quoting) cost more
    than the query: the database joins each row's values, and the rows are written as they come, a
    chunk at a time while the database still works, with commas for the joins, when no value holds
    a comma, a quote or a line break (csv.writer would quote nothing). Otherwise so is each row that
    needs no quotes, and csv.writer writes the others from their values split again; should a value
    hold the joining byte itself, csv.writer writes every row from the values as the database has them."""
    with open(out, "wb") as fh:
        fh.write(HEADER)
        n = _write_joined(session, fh)
        if n is not None:
            return n
        fh.seek(len(HEADER))
        fh.truncate()
        rows = export_rows(session)
        with io.TextIOWrapper(fh, encoding="utf-8", newline="") as text:
            csv.writer(text).writerows(rows)
        return len(rows)


def _write_joined(session: Session, fh: BinaryIO) -> int | None:
    """The rows as the database joined them: how many, or None if a value holds UNIT (then nothing
    tells the values apart)."""
    unit, n = UNIT.encode(), 0
    with closing(_joined_rows(session)) as chunks:  # stopped early, the cursor is closed before export_rows
        for lines in chunks:
            values = b"".join(lines)  # no line breaks of the file's own: `in` finds one in a value at memchr's speed
            if values.count(unit) != len(COLUMNS) * len(lines):  # twelve values, eleven joins a row
                return None
            if any(byte in values for byte in (b",", b'"', b"\r", b"\n")):
                fh.writelines(map(_csv_line, lines))
            else:
                fh.write(b"\r\n".join([*lines, b""]).replace(unit, b","))  # nothing to quote
            n += len(lines)
    return n


def _csv_line(joined: bytes) -> bytes:
    """One row as csv.writer writes it, from its values joined by UNIT: quoted only if a value needs it."""
    if _QUOTED.search(joined) is None:
        return joined.replace(UNIT.encode(), b",") + b"\r\n"
    text = io.StringIO()
    csv.writer(text).writerow(joined.decode().split(UNIT))
    return text.getvalue().encode()


# ------------------------------------------------------------------------------------ search

STAFF_STATES = ("active", "removed", "suspended")  # what the search may narrow to ("" is everyone)


@dataclass(frozen=True)
class RegistryQuery:
    """What a person typed: words, a municipality, a facility number (F000012, 12) and a state."""

    words: str = ""
    municipality: str = ""
    facility: str = ""
    state: str = ""

    def facility_id(self) -> int | None:
        """The facility number typed (Ｆ000012, f12, 12), or -1 for something that is not one (finds none)."""
        typed = normalize.compact(self.facility).upper().removeprefix("F")
        if not typed:
            return None
        return int(typed) if typed.isdigit() and len(typed) < 10 else -1


@dataclass
class RegistryPage:
    rows: list[dict[str, Any]]  # one per person, or per facility without anyone matching its row
    matching: int
    page: int
    pages: int


def search(session: Session, query: RegistryQuery, page: int, page_size: int) -> RegistryPage:
    """One page of people (with their facility) and of facilities with no one, by facility and person.

    Words match a person's name, kana or e-mail, or their facility's name or kana, however they were
    written (normalize.searchable on both sides: a stored key, one LIKE per table). One query gives
    the page, in facility then person order, which the indexes already have, so the database stops
    after the page; one counts, unless the first page holds every match (a window count in the page's
    query made SQLite sort every match first: 250 ms at 50,000 staff); `details` adds the rest. A facility
    with no one registered has one row (no person), so the order by facility, then person, is total."""
    f, p = m.Facility, m.Staff
    where: list[Any] = []
    words = normalize.searchable(query.words)
    if words:
        named = select(f.id).where(f.search_key.contains(words, autoescape=True))
        where.append(or_(p.search_key.contains(words, autoescape=True), f.id.in_(named)))
    if query.municipality.strip():
        where.append(f.address.contains(normalize.text(query.municipality), autoescape=True))
    if (number := query.facility_id()) is not None:
        where.append(f.id == number)
    if query.state == "active":
        where.append(p.active)
    elif query.state == "removed":
        where.append(~p.active)
    elif query.state == "suspended":
        where.append(p.id.in_(select(m.Case.staff_id).where(m.Case.state != "resolved")))
    def count() -> int:
        return session.scalar(select(func.count()).select_from(f).outerjoin(p, p.facility_id == f.id)
                              .where(*where)) or 0

    def rows_of(page: int) -> list[Any]:
        return session.execute(
            select(f.id, f.name, f.name_kana, f.address, f.phone, f.source, p.id, p.name, p.name_kana, p.job,
                   p.email, p.admin, p.active, p.registered_on, p.removed_on, p.source)
            .outerjoin(p, p.facility_id == f.id).where(*where)
            .order_by(f.id, p.id).limit(page_size).offset((page - 1) * page_size)).all()

    if page <= 1:  # a name typed finds a few: then the first page is all there is, and no count is needed
        page, found = 1, rows_of(1)
        matching = len(found) if len(found) < page_size else count()
    else:
        matching = count()
        page = min(page, max(1, -(-matching // page_size)))  # past the end (a link kept too long): the last
        found = rows_of(page)
    pages = max(1, -(-matching // page_size))
    keys = ("facility_id", "facility", "facility_kana", "address", "phone", "facility_source", "staff_id", "name",
            "name_kana", "job", "email", "admin", "active", "registered_on", "removed_on", "source")
    rows = [dict(zip(keys, r, strict=True)) for r in found]
    return RegistryPage(rows, matching, page, pages)


def details(session: Session, rows: list[dict[str, Any]]) -> None:
    """What the page shows beside each row, one query per kind: each person's latest 送受信確認 and open
    lost-device case, and the applications that name each facility."""
    people = [r["staff_id"] for r in rows if r["staff_id"] is not None]
    latest: dict[int, m.Confirmation] = {}
    cases: dict[int, m.Case] = {}
    if people:
        for conf in session.scalars(select(m.Confirmation).where(m.Confirmation.staff_id.in_(people))
                                    .order_by(m.Confirmation.id)):
            latest[conf.staff_id] = conf  # a newer one (resent to a corrected address) replaces the older
        for case in session.scalars(select(m.Case).where(m.Case.staff_id.in_(people), m.Case.state != "resolved")
                                    .order_by(m.Case.id)):
            cases.setdefault(case.staff_id or 0, case)
    names = sorted({r["facility"] for r in rows})
    applications: dict[str, list[tuple[int, str, str]]] = {}
    for app_id, name, kind, status in session.execute(
            select(m.Application.id, m.Application.facility_name, m.Application.kind, m.Application.status)
            .where(m.Application.facility_name.in_(names)).order_by(m.Application.id)):
        applications.setdefault(name, []).append((app_id, kind, status))
    for r in rows:
        r["confirmation"] = latest.get(r["staff_id"])
        r["case"] = cases.get(r["staff_id"])
        r["applications"] = applications.get(r["facility"], [])


# ------------------------------------------------------------------------------ approvals

def apply_application(session: Session, app: m.Application, view: ApplicationView, config: dict[str, Any],
                      today: dt.date) -> None:
    """Make an approved application true in the registry, or refuse (DecisionRefused)."""
    if app.kind == "new_facility":
        _apply_new_facility(session, app, view, config, today)
    else:
        _apply_change(session, app, view, config, today)


def _apply_new_facility(session: Session, app: m.Application, view: ApplicationView, config: dict[str, Any],
                        today: dt.date) -> None:
    usage = view.sheet("usage_application")
    values = usage.values if usage else {}
    name = app.facility_name
    facility = find_facility(session, name, config)
    if facility is None:
        facility = m.Facility(key=facility_key(name, config), name=name,
                              name_kana=str(values.get("facility_name_kana", "")),
                              postal_code=str(values.get("postal_code", "")), address=str(values.get("address", "")),
                              phone=str(values.get("phone", "")), source=app.public_id)
        session.add(facility)
        session.flush()
    for row in rows(view):
        if row.prefix != "staff":
            continue
        _upsert_staff(session, facility, {
            "name": row.text("name"), "name_kana": row.text("name_kana"), "job": row.text("job"),
            "email": normalize.comparable("email", row.text("email")), "admin": row.values.get("admin") is True,
            "registered_on": today}, source=app.public_id)


def _apply_change(session: Session, app: m.Application, view: ApplicationView, config: dict[str, Any],
                  today: dt.date) -> None:
    notice = view.sheet("staff_change")
    name = str(notice.get("facility_name")) if notice else ""
    facility = find_facility(session, name, config)
    if facility is None:
        raise DecisionRefused(f"施設「{name}」が登録されていないため、変更を反映できません")
    for row in rows(view):
        if row.prefix != "changes" or len(row.kinds) != 1:
            continue
        email = normalize.comparable("email", row.text("email"))
        active = [s for s in facility.staff if s.active]
        person = next((s for s in active if email and normalize.comparable("email", s.email) == email), None) or next(
            (s for s in active if normalize.compact(s.name) == normalize.compact(row.text("name"))), None)
        kind = row.kinds[0]
        if kind == "remove":
            if person is None:
                raise DecisionRefused(f"{row.n}行目の削除の対象が登録簿にいません")
            person.active, person.removed_on = False, today
        elif kind == "modify" and person is not None:
            for attr, sub in (("name", "name"), ("name_kana", "name_kana"), ("job", "job"), ("email", "email")):
                if row.text(sub):
                    setattr(person, attr, normalize.comparable("email", row.text(sub)) if attr == "email"
                            else row.text(sub))
            person.admin = row.values.get("admin") is True
        elif kind == "modify":
            raise DecisionRefused(f"{row.n}行目の変更の対象が登録簿にいません")
        else:
            _upsert_staff(session, facility, {
                "name": row.text("name"), "name_kana": row.text("name_kana"), "job": row.text("job"),
                "email": email, "admin": row.values.get("admin") is True, "registered_on": today},
                source=app.public_id)
    session.flush()
    if not any(s.active and s.admin for s in facility.staff):
        raise DecisionRefused("この変更を反映すると施設の管理者が0名になるため、承認できません（no_admin）")
