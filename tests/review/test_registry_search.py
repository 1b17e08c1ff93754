"""The registry search (登録簿) on the desk: every key however typed, pages, links, and no query per row."""

from __future__ import annotations

import random
import re
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import event, select

from renraku.bench.scale_db import fill
from renraku.context import Context
from renraku.review.listing import PAGE_SIZE
from renraku.samples.generator import invent_set
from renraku.sinks import models as m
from renraku.sinks.queue import Actor, approve
from renraku.sinks.registry import import_csv
from renraku.validators import load_rule_config
from tests.review.conftest import login, token_for
from tests.sinks.test_registry import app_of, receive

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "registry.csv"
ROW = re.compile(r'<tr data-staff="(\d*)"')


def searched(client, **args: str) -> str:  # type: ignore[no-untyped-def]
    """The search form posted as a person does (then the page it leads to): its URL must not carry the words."""
    response = client.post("/registry", data={**args, "csrf_token": token_for(client, "/registry")})
    assert response.status_code == 303
    url = response.headers["Location"]
    assert not args.get("q") or args["q"] not in unquote(url)
    return url


def names(client, **args: str) -> list[str]:  # type: ignore[no-untyped-def]
    html = client.get(searched(client, **args)).get_data(as_text=True)
    return [n.strip() for n in re.findall(r'<td class="person">([^<]+)', html)]


def table(client, **args: str) -> str:  # type: ignore[no-untyped-def]
    """The results of a search (without the form, whose choices name every state)."""
    html = client.get(searched(client, **args)).get_data(as_text=True)
    return html[html.index('<table class="queue" id="registry">'):]


def imported(ctx: Context) -> None:
    with ctx.sessions.begin() as s:
        import_csv(s, SAMPLE.read_bytes(), load_rule_config())


def test_a_person_is_found_by_name_kana_mail_facility_number_and_town_however_typed(app, ctx: Context) -> None:
    imported(ctx)  # 3 facilities, 5 people, readings in hiragana with spaces
    client = app.test_client()
    login(client, "tanaka")
    assert 'href="/registry"' in client.get("/").get_data(as_text=True)  # on the desk's navigation

    assert names(client, q="ｻｲﾄｳ") == ["斎藤 誠"]  # half-width katakana, the reading is in hiragana
    assert names(client, q="マツモト　ジロウ") == ["松本 次郎"]  # full-width space, katakana
    assert names(client, q="大塚花子") == ["大塚 花子"]  # the name without its space
    assert names(client, q="ＩＴＯ．ＫＯＪＩ＠") == ["伊藤 浩二"]  # full-width, upper-case mail
    assert names(client, q="みどり薬局") == ["斎藤 誠", "松本 次郎", "西村 由美", "大塚 花子"]  # a facility's people
    assert names(client, q="わかばざいたく") == ["伊藤 浩二"]  # the facility's reading
    assert names(client, municipality="真岡市") == ["大塚 花子"]
    with ctx.sessions() as s:
        moka = s.scalar(select(m.Facility.id).where(m.Facility.name == "みどり薬局 真岡店"))
    assert names(client, facility=f"Ｆ{moka:06d}") == names(client, facility=str(moka)) == ["大塚 花子"]
    assert names(client, facility="F99999999999") == names(client, facility="薬局") == []
    assert names(client, q="%") == names(client, q="_") == []  # typed, not a wildcard
    assert len(names(client)) == 5  # nothing typed: the whole registry, a page at a time
    assert "もう一度検索してください" in client.get("/registry?w=old-key").get_data(as_text=True)  # after a logout

    with ctx.sessions.begin() as s:  # a removal, a renamed person, a lost device: what the page says of each
        people = {p.name: p for p in s.scalars(select(m.Staff))}
        people["西村 由美"].active = False
        people["松本 次郎"].name, people["松本 次郎"].name_kana = "松本 二郎", "まつもと にろう"
        doc = m.Document(sha256="1" * 64, size=1, media_type="message/rfc822", file_name="lost.eml", channel="imap",
                         status="message")
        s.add(m.Case(message=m.Message(document=doc, kind="lost_device", urgent=True), staff=people["斎藤 誠"]))
    assert names(client, q="にろう") == ["松本 二郎"] and names(client, q="じろう") == []  # the key follows the name
    assert names(client, state="removed") == ["西村 由美"]
    assert names(client, state="suspended") == ["斎藤 誠"]
    assert "西村 由美" not in names(client, state="active") and len(names(client, state="active")) == 4
    assert "停止中" in table(client, q="さいとう") and 'href="/messages/1"' in table(client, q="さいとう")  # the case
    assert "削除済み" in table(client, q="にしむら") and "登録中" not in table(client, q="にしむら")


def test_a_person_registered_by_an_approved_application_links_to_it_and_shows_the_confirmation(
        app, ctx: Context) -> None:
    sheets = invent_set(random.Random(21))
    sheets[0].truth["policy_agreed"] = True
    sheets[1].truth["staff[1].admin"] = True
    receive(ctx, sheets, "set.pdf")
    app_id, _blocking, _status = app_of(ctx, "new_facility")
    with ctx.sessions.begin() as s:
        approve(s, app_id, Actor("鈴木 主任", "supervisor"))
    client = app.test_client()
    login(client, "kansa")  # every role may read the registry

    kana = sheets[1].truth["staff[1].name_kana"]
    html = table(client, q=kana)
    assert sheets[1].truth["staff[1].name"] in names(client, q=kana)
    assert f'href="/applications/{app_id}">A{app_id:06d}</a>' in html  # registered by, and the facility's
    assert "送信待ち" in html  # its 送受信確認 is queued on approval


def test_pages_of_a_large_registry_hold_every_match_once_with_a_fixed_number_of_queries(app, ctx: Context) -> None:
    counts = fill(ctx.engine, scale=0.006)  # 300 people at 75 facilities, confirmations, a few cases
    client = app.test_client()
    login(client, "tanaka")

    def every_page(url: str) -> tuple[list[str], str]:
        ids, first = [], ""
        while url:
            html = client.get(url).get_data(as_text=True)
            first = first or html
            ids += ROW.findall(html)
            link = re.search(r'<a href="([^"]+)" rel="next">', html)
            url = link.group(1).replace("&amp;", "&") if link else ""
        return ids, first

    everyone, html = every_page("/registry")
    assert len(everyone) == counts["staff"] and len(set(everyone)) == counts["staff"]
    assert f"{counts['staff']} 件 1 / 3 ページ" in html
    with ctx.sessions() as s:
        order = [str(i) for i in s.scalars(select(m.Staff.id).order_by(m.Staff.facility_id, m.Staff.id))]
        # the slow way: everyone whose reading, or whose facility's name or reading, however stored, holds
        # 「やま」 (山田, 山本, 山口 …, やまゆり薬局)
        wanted = [str(p.id) for p in s.scalars(select(m.Staff).order_by(m.Staff.facility_id, m.Staff.id))
                  if any("やま" in v.translate(KATAKANA).replace(" ", "")
                         for v in (p.name_kana, p.facility.name, p.facility.name_kana))]
    assert everyone == order
    yama, _html = every_page(searched(client, q="ヤマ"))
    assert yama == wanted and 0 < len(wanted) < counts["staff"]

    statements: list[str] = []
    event.listen(ctx.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for url, rows in (("/registry", PAGE_SIZE), (searched(client, q="yama"), len(wanted)), ("/registry?page=3", 100),
                      (searched(client, q=html_name(ctx)), 1)):
        statements.clear()
        html = client.get(url).get_data(as_text=True)
        assert len(ROW.findall(html)) == min(rows, PAGE_SIZE)
        registry = [q for q in statements if re.search(r"\b(staff|facilities|confirmations|cases|applications)\b", q)]
        # the page, its count (unless the first page holds every match), confirmations, cases, applications
        assert len(registry) <= 5, registry


KATAKANA = {c: c - 0x60 for c in range(ord("ァ"), ord("ヶ") + 1)}


def html_name(ctx: Context) -> str:
    """The e-mail address of one person: a search with one row."""
    with ctx.sessions() as s:
        return s.scalar(select(m.Staff.email).order_by(m.Staff.id).limit(1))


def test_the_registry_needs_a_login(app) -> None:
    client = app.test_client()
    token = token_for(client, "/login")  # a form token, but no login
    for response in (client.get("/registry?state=active"), client.post("/registry", data={"q": "やまだ",
                                                                                           "csrf_token": token})):
        assert response.status_code == 302 and "/login" in response.headers["Location"]
