"""The registry: CSV import and export, and what approvals do to it."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from renraku.context import Context
from renraku.errors import DecisionRefused, RegistryImportError
from renraku.pipeline.run import Batch, Received
from renraku.samples.generator import FilledSheet, invent_set, render_pdf
from renraku.sinks import models as m
from renraku.sinks.queue import Actor, approve, override_finding
from renraku.sinks.registry import export_csv, import_csv
from renraku.validators import load_rule_config
from tests.sinks.test_db import postgres_url  # noqa: F401 (a fixture)

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "registry.csv"
BOSS = Actor("鈴木 主任", "supervisor")
CONFIG = load_rule_config()


def imported(ctx: Context, data: bytes | None = None):
    with ctx.sessions.begin() as s:
        return import_csv(s, data if data is not None else SAMPLE.read_bytes(), CONFIG)


def registry(ctx: Context) -> dict[str, list[tuple[str, bool, bool]]]:
    with ctx.sessions() as s:
        return {f.name: [(st.email, st.admin, st.active) for st in f.staff] for f in s.scalars(select(m.Facility))}


def test_import_is_idempotent_and_round_trips(ctx: Context, tmp_path: Path) -> None:
    report = imported(ctx)
    assert (report.facilities_added, report.staff_added) == (3, 5)
    again = imported(ctx)
    assert (again.facilities_added, again.staff_added, again.staff_updated, again.unchanged) == (0, 0, 0, 5)
    assert registry(ctx)["みどり薬局 芳賀店"][0] == ("saito@midori-haga.example.jp", True, True)
    with ctx.sessions() as s:
        assert export_csv(s, tmp_path / "out.csv") == 5
        dates = {st.email: st.registered_on for st in s.scalars(select(m.Staff))}
    assert str(dates["nishimura@midori-haga.example.jp"]) == "2023-04-01"  # 令和5年4月1日
    assert imported(ctx, (tmp_path / "out.csv").read_bytes()).unchanged == 5


def test_shift_jis_as_excel_writes_it(ctx: Context) -> None:
    assert imported(ctx, SAMPLE.read_text(encoding="utf-8").encode("cp932")).staff_added == 5


def test_bad_rows_are_all_named_and_nothing_is_imported(ctx: Context) -> None:
    bad = SAMPLE.read_text(encoding="utf-8").splitlines()
    bad[2] = bad[2].replace("matsumoto@midori-haga.example.jp", "matsumoto＠midori-haga。example.jp")
    bad.append(",,,,,名無し,,,,nanashi@x.example.jp,")
    bad.append("若葉在宅クリニック,,,,,伊藤 浩二,,医師,たぶん,ito.koji@wakaba-cl.example.jp,昨日")
    with pytest.raises(RegistryImportError) as err:
        imported(ctx, "\n".join(bad).encode("utf-8"))
    problems = "\n".join(err.value.problems)
    assert "3 行目" in problems and "「。」" in problems
    assert "7 行目: 施設名が空です" in problems
    assert "8 行目" in problems and "管理者欄「たぶん」" in problems and "登録日「昨日」" in problems
    assert registry(ctx) == {}


def test_missing_columns_are_explained(ctx: Context) -> None:
    with pytest.raises(RegistryImportError, match="列が足りません"):
        imported(ctx, b"name,mail\nx,y\n")


def receive(ctx: Context, sheets: list[FilledSheet], name: str, channel: str = "upload") -> None:
    with Batch(ctx) as batch:
        batch.receive(Received(render_pdf(sheets), name, name, channel))


def app_of(ctx: Context, kind: str) -> tuple[int, list[str], str]:
    with ctx.sessions() as s:
        query = select(m.Application).where(m.Application.kind == kind).order_by(m.Application.id.desc())
        app = s.scalars(query).first()
        return app.id, sorted({f.rule for f in app.findings if f.blocking}), app.status


def test_approving_a_new_facility_registers_it(ctx: Context) -> None:
    sheets = invent_set(random.Random(21))
    sheets[0].truth["policy_agreed"] = True
    sheets[1].truth["staff[1].admin"] = True
    receive(ctx, sheets, "set.pdf")
    app_id, blocking, status = app_of(ctx, "new_facility")
    assert blocking == [] and status == "ready"
    with ctx.sessions.begin() as s:
        approve(s, app_id, BOSS)
    facility = sheets[0].truth["facility_name"]
    staff = registry(ctx)[facility]
    people = [n for n in range(1, 9) if sheets[1].truth[f"staff[{n}].name"]]
    assert [e for e, _a, _ in staff] == [sheets[1].truth[f"staff[{n}].email"] for n in people]
    assert staff[0][1] is True


def change_notice(rows: list[tuple[str, str, str, bool]], facility: str = "みどり薬局 芳賀店") -> FilledSheet:
    truth = {"notice_date": "2025-10-01", "facility_name": facility, "phone": "028-677-0001",
             "notifier_name": "斎藤 誠"}
    for n in range(1, 7):
        kind, name, email, admin = rows[n - 1] if n <= len(rows) else ("", "", "", False)
        truth |= {f"changes[{n}].kind.{k}": k == kind for k in ("add", "remove", "modify")}
        truth |= {f"changes[{n}].name": name, f"changes[{n}].name_kana": "",
                  f"changes[{n}].job": "薬剤師" if name else "", f"changes[{n}].admin": admin,
                  f"changes[{n}].effective_date": "", f"changes[{n}].email": email}
    return FilledSheet("staff_change", truth)


def test_a_change_notice_that_adds(ctx: Context) -> None:
    imported(ctx)
    receive(ctx, [change_notice([("add", "大橋 恵", "ohashi@midori-haga.example.jp", False)])], "chg.pdf")
    app_id, blocking, _ = app_of(ctx, "staff_change")
    assert blocking == []
    with ctx.sessions.begin() as s:
        approve(s, app_id, BOSS)
    assert ("ohashi@midori-haga.example.jp", False, True) in registry(ctx)["みどり薬局 芳賀店"]


def test_a_change_that_removes_the_last_admin_is_refused(ctx: Context) -> None:
    imported(ctx)
    receive(ctx, [change_notice([("remove", "斎藤 誠", "saito@midori-haga.example.jp", False)])], "chg.pdf")
    app_id, blocking, status = app_of(ctx, "staff_change")
    assert blocking == ["no_admin"] and status == "needs_review"
    with ctx.sessions.begin() as s, pytest.raises(DecisionRefused, match="no_admin"):
        approve(s, app_id, BOSS)
    with ctx.sessions.begin() as s:  # even a supervisor's override cannot leave the facility without an admin
        finding = s.scalars(select(m.Finding).where(m.Finding.rule == "no_admin")).one()
        override_finding(s, finding.id, "後任は別途届出予定", BOSS)
    with pytest.raises(DecisionRefused, match="0名"), ctx.sessions.begin() as s:
        approve(s, app_id, BOSS)
    assert ("saito@midori-haga.example.jp", True, True) in registry(ctx)["みどり薬局 芳賀店"]


def test_registry_findings_on_change_notices(ctx: Context) -> None:
    imported(ctx)
    receive(ctx, [change_notice([("add", "斎藤 誠", "saito@midori-haga.example.jp", False),
                                 ("remove", "大塚 花子", "otsuka@midori-haga.example.jp", False)])], "a.pdf")
    _, blocking, _ = app_of(ctx, "staff_change")
    assert blocking == ["already_registered", "unknown_staff"]
    receive(ctx, [change_notice([("add", "大橋 恵", "ohashi@x.example.jp", False)], facility="ひまわり薬局")], "b.pdf")
    _, blocking, _ = app_of(ctx, "staff_change")
    assert blocking == ["unknown_facility"]


# The registry export as written before it was made fast (issue 20): the same bytes, quoting and all.
EXPORTED = ('facility_name,facility_kana,postal_code,address,phone,staff_name,staff_kana,job,admin,email,'
            'registered_on,suspended\r\n'
            '"クリニック ""あさひ"", 本院",アサヒ,320-0001,"栃木県宇都宮市1-1\n2階",028-000-0001,=山田 花子,'
            'ヤマダ ハナコ,看護師,○,hanako@a.example.jp,2025-04-01,\r\n'
            '"クリニック ""あさひ"", 本院",アサヒ,320-0001,"栃木県宇都宮市1-1\n2階",028-000-0001,佐藤 一郎,,,,'
            'ichiro@a.example.jp,,○\r\n'
            '空の施設,,,,,,,,,,,\r\n')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, home: Path) -> Context:
    from renraku.config import Settings
    from renraku.context import open_context

    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    ctx = open_context(Settings(home=home, db_url=url) if url else Settings(home=home))
    request.addfinalizer(ctx.close)
    return ctx


def suspend(s, staff: m.Staff) -> None:
    """A lost-device case about the person, still open: the export marks them suspended."""
    doc = m.Document(sha256=f"{staff.id:064x}", size=1, media_type="message/rfc822", file_name="x.eml",
                     channel="imap", status="message")
    message = m.Message(document=doc, kind="lost_device", urgent=True)
    s.add(message)
    s.flush()
    s.add(m.Case(message_id=message.id, staff_id=staff.id, state="received"))


def exported(ctx: Context, out: Path) -> bytes:
    with ctx.sessions() as s:
        export_csv(s, out)
    return out.read_bytes()


def registered_for_export(ctx: Context) -> None:
    """What EXPORTED holds: quotes, a comma, a line break, `=`, an admin, a suspended person, people removed,
    and a facility with no one active."""
    with ctx.sessions.begin() as s:
        a = m.Facility(key="a", name='クリニック "あさひ", 本院', name_kana="アサヒ", postal_code="320-0001",
                       address="栃木県宇都宮市1-1\n2階", phone="028-000-0001", source="import")
        b = m.Facility(key="b", name="空の施設", source="A000003")
        s.add_all([a, b])
        s.flush()
        ichiro = m.Staff(facility=a, name="佐藤 一郎", email="ichiro@a.example.jp", source="A000002")
        s.add_all([m.Staff(facility=a, name="=山田 花子", name_kana="ヤマダ ハナコ", job="看護師",
                           email="hanako@a.example.jp", admin=True, registered_on=dt.date(2025, 4, 1), source="import"),
                   ichiro,
                   m.Staff(facility=a, name="削除 済子", email="gone@a.example.jp", active=False, source="import"),
                   m.Staff(facility=b, name="停止 中男", email="lost@b.example.jp", active=False, source="import")])
        s.flush()
        suspend(s, ichiro)  # 佐藤 一郎 lost a device: suspended


def test_the_registry_export_writes_active_people_suspended_marks_and_empty_facilities_byte_for_byte(
        any_database: Context, tmp_path: Path) -> None:
    registered_for_export(any_database)
    with any_database.sessions() as s:
        assert export_csv(s, tmp_path / "registry.csv") == 3
    assert (tmp_path / "registry.csv").read_bytes() == EXPORTED.encode("utf-8")


@pytest.mark.parametrize("chunked", [True, False], ids=["rows-in-chunks", "libpq-before-17"])
def test_the_postgresql_export_is_iso_dates_and_utf8_whatever_the_connection_is_set_to(
        postgres_url: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool,  # noqa: F811
) -> None:
    """The server sends the rows' text as it is and the date by DateStyle: a connection set to Shift_JIS
    and to day-first dates (as an office's server may be) must still give UTF-8 and ISO dates, and keep
    its own settings after the export. Read in chunks as they come, or, where libpq cannot (before 17),
    in one result."""
    from psycopg import capabilities
    from sqlalchemy import text

    from renraku.config import Settings
    from renraku.context import open_context

    if not chunked:
        monkeypatch.setattr(capabilities, "has_stream_chunked", lambda check=False: False)
    ctx = open_context(Settings(home=home, db_url=postgres_url))
    try:
        registered_for_export(ctx)
        with ctx.sessions() as s:
            s.execute(text("SET DateStyle = 'SQL, DMY'"))
            s.execute(text("SET client_encoding = 'SJIS'"))
            s.commit()
            assert export_csv(s, tmp_path / "registry.csv") == 3
            s.rollback()
            assert (s.scalar(text("SHOW DateStyle")), s.scalar(text("SHOW client_encoding"))) == ("SQL, DMY", "SJIS")
    finally:
        ctx.close()
    assert (tmp_path / "registry.csv").read_bytes() == EXPORTED.encode("utf-8")


# The same file for values with nothing to quote, for a carriage return, and for the byte the export joins a
# row's values with in the database (\x1f): as csv.writer wrote them before the export was made fast.
HEADER = ("facility_name,facility_kana,postal_code,address,phone,staff_name,staff_kana,job,admin,email,"
          "registered_on,suspended\r\n")
HIKARI = "ひかり薬局,,321-0001,栃木県日光市2-2,0288-00-0002,"
MARUKO = HIKARI + "高橋 〇子,たかはし まるこ,薬剤師,○,maruko@c.example.jp,2024-12-31,\r\n"
PLAIN = HIKARI + "鈴木 健二,,,,kenji@c.example.jp,,○\r\n" + MARUKO
WITH_CR = HIKARI + '鈴木 健二,,"薬剤師\r主任",,kenji@c.example.jp,,○\r\n' + MARUKO
WITH_SEPARATOR = HIKARI + "鈴木\x1f健二,,薬剤師,,kenji@c.example.jp,,○\r\n" + MARUKO


@pytest.mark.parametrize("chunk", [1000, 1], ids=["one-read", "a-read-a-row"])
def test_the_registry_export_is_the_same_bytes_whatever_the_values_hold(
        any_database: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """No one, plain values (nothing to quote), a carriage return, then the byte the database joins values with;
    the rows read all at once, or one at a time (the joining byte then stops the reading after the first row)."""
    monkeypatch.setattr("renraku.sinks.registry.CHUNK", chunk)
    ctx = any_database
    assert exported(ctx, tmp_path / "empty.csv") == HEADER.encode("utf-8")
    with ctx.sessions.begin() as s:
        c = m.Facility(key="c", name="ひかり薬局", name_kana="", postal_code="321-0001", address="栃木県日光市2-2",
                       phone="0288-00-0002", source="import")
        kenji = m.Staff(facility=c, name="鈴木 健二", name_kana="", job=None, email="kenji@c.example.jp",
                        source="import")
        s.add_all([c, m.Staff(facility=c, name="高橋 〇子", name_kana="たかはし まるこ", job="薬剤師",
                              email="maruko@c.example.jp", admin=True, registered_on=dt.date(2024, 12, 31),
                              source="import"), kenji])
        s.flush()
        suspend(s, kenji)
    assert exported(ctx, tmp_path / "plain.csv") == (HEADER + PLAIN).encode("utf-8")
    with ctx.sessions.begin() as s:
        s.scalar(select(m.Staff).where(m.Staff.email == "kenji@c.example.jp")).job = "薬剤師\r主任"
    assert exported(ctx, tmp_path / "cr.csv") == (HEADER + WITH_CR).encode("utf-8")
    with ctx.sessions.begin() as s:
        kenji = s.scalar(select(m.Staff).where(m.Staff.email == "kenji@c.example.jp"))
        kenji.name, kenji.job = "鈴木\x1f健二", "薬剤師"
    assert exported(ctx, tmp_path / "separator.csv") == (HEADER + WITH_SEPARATOR).encode("utf-8")


def test_the_registry_written_before_the_search_existed_gets_its_search_keys(tmp_path: Path) -> None:
    from sqlalchemy import text

    from renraku.sinks.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0007")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO facilities (id, key, name, name_kana, postal_code, address, phone, source, "
                          "created_at) VALUES (1, 'k', 'ﾐﾄﾞﾘ薬局', 'ミドリ ヤッキョク', '', '', '', 'import', "
                          "'2024-04-01')"))
        conn.execute(text("INSERT INTO staff (id, facility_id, name, name_kana, job, email, admin, active, source, "
                          "updated_at) VALUES (1, 1, '斎藤　誠', 'サイトウ マコト', '', 'Saito@X.example.jp', 1, 1, "
                          "'import', '2024-04-01')"))
    migrate(engine)
    with engine.connect() as conn:
        facility, person = (conn.execute(text(f"SELECT search_key FROM {t}")).scalar() for t in ("facilities", "staff"))
    assert facility == "みどり薬局\nみどりやっきょく"
    assert person == "斎藤誠\nさいとうまこと\nsaito@x.example.jp"
    engine.dispose()
