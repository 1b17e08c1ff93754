"""A full database: the desk's pages and the exports at a prefecture's size, on SQLite and PostgreSQL.

    python -m renraku.bench.scale_db [--scale 1.0] [--repeat 20] [--db sqlite,postgresql] [--only registry]

Fills a fresh database (through the migrations) with generated rows, by default 20,000
applications, 60,000 sheets with their fields (as many per sheet as the printed form has), 50,000
registry staff with a confirmation each, 2,000 messages and their findings, documents and pages;
then times, with warm caches, the queue page with each filter, an application page, the batch CSV
export, the registry search with typical queries (through the Flask test client, logged in), the
registry export and the SPEC §3 export.
Prints p50/p95 in milliseconds per database as JSON lines. PostgreSQL runs in a private cluster
(tests/servers.py `private_postgres`). Every value is invented.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from renraku.sinks import models as m

FORMS = {  # form_id: the field paths of the printed sheet (SPEC §2), with their kinds
    "usage_application": [("application_date", "date"), ("facility_name_kana", "text"), ("facility_name", "text")]
    + [(f"facility_type.{t}", "checkbox") for t in ("hospital", "clinic", "dental_clinic", "pharmacy",
                                                     "home_nursing", "care_management", "community_support_center",
                                                     "care_service", "government", "other")]
    + [(p, "text") for p in ("facility_type_other", "postal_code", "address", "phone", "fax", "representative_title",
                             "representative_name", "contact_name", "contact_phone", "contact_email",
                             "medical_association")] + [("policy_agreed", "checkbox")],
    "staff_registration": [("facility_name", "text")] + [
        (f"staff[{i}].{p}", k) for i in range(1, 9)
        for p, k in (("name", "text"), ("name_kana", "text"), ("job", "text"), ("admin", "admin_mark"),
                     ("email", "email"))],
    "facility_pledge": [("pledge_date", "date"), ("facility_name", "text"), ("address", "text"),
                        ("representative_title", "text"), ("representative_name", "text"), ("seal", "seal")],
    "staff_change": [("notice_date", "date"), ("facility_name", "text"), ("phone", "text"), ("notifier_name", "text")]
    + [(f"changes[{i}].{p}", k) for i in range(1, 7)
       for p, k in (("kind.add", "checkbox"), ("kind.remove", "checkbox"), ("kind.modify", "checkbox"),
                    ("name", "text"), ("name_kana", "text"), ("job", "text"), ("admin", "admin_mark"),
                    ("effective_date", "date"), ("email", "email"))],
}
STATUSES = [("approved", 60), ("rejected", 5), ("needs_review", 15), ("ready", 10), ("incomplete", 10)]
RULES = [("missing_required", "error"), ("invalid_email", "error"), ("shared_email", "error"),
         ("missing_seal", "warning"), ("outside_area", "warning"), ("invalid_phone", "error")]
CHANNELS = ["imap", "scan", "scan", "upload"]
T0 = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)


class Rows:
    """Collects generated rows per table and writes them in chunks (executemany)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pending: dict[Any, list[dict[str, Any]]] = {}

    def add(self, model: Any, **row: Any) -> None:
        table = model.__table__
        rows = self.pending.setdefault(table, [])
        rows.append(row)
        if len(rows) >= 20_000:
            self.flush()

    def flush(self) -> None:
        """Every table, parents first (foreign keys hold at each statement)."""
        for t in m.Base.metadata.sorted_tables:
            if self.pending.get(t):
                self.conn.execute(insert(t), self.pending[t])
                self.pending[t] = []


def fill(engine: Any, scale: float = 1.0, seed: int = 20) -> dict[str, int]:
    """Generated rows in every table the desk reads (ids given here, so the tables are filled in order)."""
    rnd = random.Random(seed)
    n_apps, n_staff, n_messages = int(20_000 * scale), int(50_000 * scale), int(2_000 * scale)
    n_covers = int(8_000 * scale)
    counts = dict.fromkeys(("batches", "documents", "sheets", "fields", "findings", "applications", "staff",
                            "messages", "confirmations"), 0)
    ids = dict.fromkeys(("doc", "page", "sheet", "field", "finding"), 0)
    sorted_tables = [t for t in m.Base.metadata.sorted_tables]
    with engine.begin() as conn:
        rows = Rows(conn)

        def doc(batch: int, when: dt.datetime, channel: str, kind: str = "read", pages: int = 1,
                message_id: str | None = None) -> list[int]:
            ids["doc"] += 1
            rows.add(m.Document, id=ids["doc"], sha256=f"{ids['doc']:064x}", size=50_000, media_type="application/pdf",
                     file_name=f"doc-{ids['doc']}.pdf", channel=channel, message_id=message_id, parent_id=None,
                     status=kind, reason=None, received_at=when, batch_id=batch)
            rows.add(m.Receipt, batch_id=batch, document_id=ids["doc"], source_ref=f"bench/doc-{ids['doc']}",
                     duplicate=False, received_at=when)
            pages_ = []
            for n in range(1, pages + 1):
                ids["page"] += 1
                rows.add(m.Page, id=ids["page"], document_id=ids["doc"], number=n, kind=rnd.choice(["text", "image"]),
                         width_pt=595.0, height_pt=842.0, dpi=200)
                pages_.append(ids["page"])
            return pages_

        def sheet(page: int, form: str, app: int | None, status: str, when: dt.datetime) -> None:
            ids["sheet"] += 1
            rows.add(m.Sheet, id=ids["sheet"], page_id=page, form_id=form, score=0.9, method="text_layer",
                     status=status, reason=None, application_id=app, created_at=when)
            for path, kind in FORMS.get(form, []):
                review = rnd.random() < 0.05
                mark = kind in ("checkbox", "admin_mark", "seal")
                value: Any = rnd.random() < 0.3 if mark else f"値{rnd.randrange(10**6)}"
                rows.add(m.Field, sheet_id=ids["sheet"], path=path, kind=kind, value=value, raw="",
                         confidence=0.6 if review else 0.97, needs_review=review, method="text_layer", note="",
                         x0=10, y0=10, x1=200, y1=40)
                counts["fields"] += 1

        n_batches = max(1, n_apps // 100)
        for b in range(1, n_batches + 1):
            rows.add(m.Batch, id=b, kind="run", started_at=T0 + dt.timedelta(hours=b), finished_at=None,
                     status="done", stats={}, error=None)
        rows.flush()
        weights = [w for _, w in STATUSES]
        for a in range(1, n_apps + 1):
            batch = 1 + (a - 1) * n_batches // n_apps
            when = T0 + dt.timedelta(minutes=37 * a)
            kind = "new_facility" if a % 5 else "staff_change"
            status = rnd.choices([s for s, _ in STATUSES], weights)[0]
            forms = ["usage_application", "staff_registration", "facility_pledge"] if kind == "new_facility" \
                else ["staff_change"]
            missing = ["facility_pledge"] if status == "incomplete" and kind == "new_facility" else []
            rows.add(m.Application, id=a, kind=kind, facility_name=f"施設{a}", status=status, missing=missing,
                     created_at=when, updated_at=when, batch_id=batch, decided_by=None, decided_at=None,
                     decision_note=None)
            pages = doc(batch, when, rnd.choice(CHANNELS), pages=len(forms))
            for page, form in zip(pages, forms, strict=True):
                sheet(page, form, a, "ready", when)
            for _ in range(rnd.choice([0, 0, 1, 1, 2, 4])):
                rule, severity = rnd.choice(RULES)
                rows.add(m.Finding, application_id=a, rule=rule, field="address", sheet_id=None, severity=severity,
                         message="生成された所見", created_at=when, overridden_by=None, overridden_at=None,
                         override_reason=None)
                counts["findings"] += 1
        for c in range(n_covers):  # fax cover pages: sheets of no application
            when = T0 + dt.timedelta(minutes=91 * c)
            (page,) = doc(1 + c * n_batches // max(1, n_covers), when, "scan")
            sheet(page, "cover", None, "not_a_form", when)
        for k in range(1, n_messages + 1):
            when = T0 + dt.timedelta(minutes=301 * k)
            batch = 1 + (k - 1) * n_batches // n_messages
            urgent = k % 97 == 5  # a few lost-device reports
            doc(batch, when, "imap", kind="message", pages=0, message_id=f"<bench{k}@example.jp>")
            rows.add(m.Message, id=k, document_id=ids["doc"], kind="lost_device" if urgent else "other",
                     urgent=urgent, subject=f"件名{k}", sender="", sent="", status="open" if k % 3 else "done",
                     note="", notified=urgent, created_at=when, batch_id=batch)
        rows.flush()
        n_facilities = max(1, n_staff // 4)
        _registry(rows, rnd, n_facilities, n_staff, n_apps)
        for p in range(1, n_staff + 1):  # one 送受信確認 per person: most confirmed, some sent, a few bounced
            state = rnd.choices(["confirmed", "sent", "bounced"], [95, 4, 1])[0]
            sent = T0 + dt.timedelta(days=rnd.randrange(900))
            rows.add(m.Confirmation, id=p, staff_id=p, application_id=1 + p % n_apps, email=f"staff{p}@example.jp",
                     token=f"t{p:020d}", status=state, reason="", created_at=sent, sent_at=sent, reminded_at=None,
                     decided_at=None, message_id=None, mcs_export_id=None)
        for k in range(1, n_messages + 1):  # each lost-device report is a case about a person: suspended
            if k % 97 == 5:
                rows.add(m.Case, message_id=k, staff_id=1 + k * 7919 % n_staff, linked_by="sender",
                         state="received" if k % 2 else "resolved", received_at=T0, requested_at=None,
                         requested_by=None, request_note="", resolved_at=None, resolved_by=None, resolution_note="")
        rows.flush()
        _reset_sequences(conn, sorted_tables)
    counts.update(batches=n_batches, documents=ids["doc"], sheets=ids["sheet"], applications=n_apps,
                  staff=n_staff, messages=n_messages, confirmations=n_staff)
    return counts


def _registry(rows: Rows, rnd: random.Random, n_facilities: int, n_staff: int, n_apps: int) -> None:
    """Facilities and people as the generator invents them (names, readings, addresses, addresses of
    mail), a third of the readings in katakana as some sheets write them; the search keys as the
    models would store them. One facility in ten came from an application, and so did its people."""
    from renraku import normalize
    from renraku.samples.generator import USUAL

    domains = []
    for f in range(1, n_facilities + 1):
        facility = USUAL.facility(rnd)
        name, kana = f"{facility.name} {f}号", facility.kana
        address, _area, postal = USUAL.address(rnd)
        source = m.public_id("A", f % n_apps + 1) if f % 10 == 0 else "import"
        rows.add(m.Facility, id=f, key=f"bench{f}", name=name, name_kana=kana, postal_code=postal, address=address,
                 phone="028-000-0000", source=source, created_at=T0, search_key=normalize.search_key(name, kana))
        domains.append((USUAL.domain(rnd, facility), source))
    rows.flush()
    for p in range(1, n_staff + 1):
        facility = 1 + (p - 1) % n_facilities
        domain, source = domains[facility - 1]
        person = USUAL.person(rnd, spaced=True)
        kana = normalize.text(person.kana) if p % 3 else _katakana(person.kana)
        email = f"{person.romaji}.{p}@{domain}"
        rows.add(m.Staff, id=p, facility_id=facility, name=person.name, name_kana=kana, job="看護師", email=email,
                 admin=p % 4 == 0, active=p % 50 != 0, registered_on=T0.date(), removed_on=None, source=source,
                 updated_at=T0, search_key=normalize.search_key(person.name, kana, email))
    rows.flush()


def _katakana(hiragana: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in hiragana)


def _reset_sequences(conn: Any, tables: list[Any]) -> None:
    """Rows were given ids: on PostgreSQL the id sequences must continue after them."""
    if conn.dialect.name != "postgresql":
        return
    from sqlalchemy import text

    for t in tables:
        if "id" in t.c:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
                              f"COALESCE((SELECT MAX(id) FROM {t.name}), 0) + 1, false)"))


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1), "p95_ms": round(p95 * 1000, 1)}


def timed(action: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Wall-clock p50/p95, and the median CPU time of this process (SQLite works in it; PostgreSQL's
    server does not): on a shared machine the CPU time says what the wall clock's queueing hides,
    and so does the load average (1 min) at the end."""
    action()  # warm: caches, compiled queries, the database's pages
    samples, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        action()
        samples.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return percentiles(samples) | {"cpu_p50_ms": round(statistics.median(cpu) * 1000, 1),
                                   "load_1min": round(os.getloadavg()[0], 1)}


def server_cpu_ms(session: Any) -> float:
    """CPU time so far of the PostgreSQL backend serving the session (the bench's cluster runs on this
    machine): the server's share of a request, which the wall clock mixes with waiting for a core."""
    from sqlalchemy import text

    pid = session.scalar(text("SELECT pg_backend_pid()"))
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6


@contextmanager
def database(kind: str, home: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{home / 'renraku.db'}"
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder beside the package
    from tests.servers import private_postgres

    with private_postgres() as url:
        yield url


def measure(kind: str, scale: float, repeat: int, only: str = "") -> list[dict[str, Any]]:
    from renraku.config import Settings
    from renraku.context import open_context
    from renraku.review import create_app
    from renraku.review.auth import add_user
    from renraku.sinks.export import export
    from renraku.sinks.registry import export_csv

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="renraku-scale-") as tmp, database(kind, Path(tmp)) as url:
        home = Path(tmp) / "home"
        ctx = open_context(Settings(home=home, db_url=url))
        try:
            t0 = time.perf_counter()
            counts = fill(ctx.engine, scale)
            if kind == "postgresql":
                with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE")
            else:
                with ctx.engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
            results.append({"db": kind, "what": "fill", "seconds": round(time.perf_counter() - t0, 1), **counts})
            with ctx.sessions.begin() as s:
                add_user(s, "bench", "bench-password-1", "supervisor")
            app = create_app(ctx)
            app.config["TESTING"] = True
            client = app.test_client()
            token = _login(client)
            mid = counts["applications"] // 2
            pages = {
                "queue (open)": "/", "queue (all)": "/?status=all", "queue (all, page 50)": "/?status=all&page=50",
                "queue status=needs_review": "/?status=needs_review", "queue status=approved": "/?status=approved",
                "queue kind=staff_change": "/?status=all&kind=staff_change",
                "queue channel=upload": "/?status=all&channel=upload", "queue batch=7": "/?status=all&batch=7",
                "application page": f"/applications/{mid}", "batch CSV export": "/batches/7/export.csv",
                **registry_searches(ctx, counts),
            }
            for what, path in pages.items():
                if only not in what:
                    continue

                def get(path: str | dict[str, str] = path) -> None:
                    if isinstance(path, dict):  # a search form posted, and the page it leads to
                        response = client.post("/registry", data={**path, "csrf_token": token},
                                               follow_redirects=True)
                    else:
                        response = client.get(path)
                    assert response.status_code == 200, (path, response.status_code)
                results.append({"db": kind, "what": what, **timed(get, repeat)})
            out = Path(tmp) / "out"

            server: list[float] = []

            def registry() -> None:
                with ctx.sessions() as s:
                    before = server_cpu_ms(s) if kind == "postgresql" else 0.0
                    export_csv(s, out.with_suffix(".csv"))
                    if kind == "postgresql":
                        server.append(server_cpu_ms(s) - before)

            def full_export() -> None:
                with ctx.sessions() as s:
                    export(s, out)
            if only in "registry export":
                row = {"db": kind, "what": "registry export", **timed(registry, repeat)}
                if server:  # the warm-up left out
                    row["server_cpu_p50_ms"] = round(statistics.median(server[1:]), 1)
                results.append(row)
            if only in "renraku export (SPEC §3)":
                results.append({"db": kind, "what": "renraku export (SPEC §3)", **timed(full_export, 1)})
        finally:
            ctx.close()
    return results


def registry_searches(ctx: Any, counts: dict[str, int]) -> dict[str, str | dict[str, str]]:
    """What an office worker types into the registry search (登録簿): a form posted (the page it leads
    to included), or a link followed (pages, a facility's number)."""
    from sqlalchemy import select

    with ctx.sessions() as s:
        email = s.scalar(select(m.Staff.email).where(m.Staff.id == counts["staff"] // 2))
    return {
        "registry: everything": "/registry", "registry: everything, page 50": "/registry?page=50",
        "registry: full name in half-width kana (ｻﾄｳ ﾊﾅｺ)": {"q": "ｻﾄｳ ﾊﾅｺ"},
        "registry: family name in kanji (佐藤)": {"q": "佐藤"},
        "registry: e-mail address": {"q": email.upper()},
        "registry: facility name (すずらん)": {"q": "すずらん"},
        "registry: municipality (宇都宮市)": {"municipality": "宇都宮市"},
        "registry: facility number": f"/registry?facility={m.public_id('F', max(1, counts['staff'] // 8))}",
        "registry: suspended": "/registry?state=suspended",
        "registry: nothing found": {"q": "該当なし"},
    }


def _login(client: Any) -> str:
    """Log the bench's supervisor in; the form token of the session."""
    import re

    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    response = client.post("/login", data={"name": "bench", "password": "bench-password-1", "csrf_token": token})
    assert response.status_code == 302
    return re.search(r'name="csrf_token" value="([^"]+)"',  # type: ignore[union-attr]
                     client.get("/registry").get_data(as_text=True)).group(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 20,000 applications")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page (after one warm-up)")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--only", default="", help="time only what is named so (e.g. 'registry')")
    args = parser.parse_args(argv)
    for kind in args.db.split(","):
        for row in measure(kind, args.scale, args.repeat, args.only):
            print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
