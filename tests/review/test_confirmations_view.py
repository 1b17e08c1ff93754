"""The desk's pages for life after approval: the confirmations view (in a real browser), the MCS
download, cases and confirmation trouble in the queue."""

from __future__ import annotations

import csv
import datetime as dt

from sqlalchemy import select

from renraku.config import load_settings
from renraku.context import Context
from renraku.sinks import cases, confirmation
from renraku.sinks import models as m
from renraku.sinks.registry import import_csv
from renraku.validators import load_rule_config
from tests.review.conftest import keyboard_login, login, token_for

FACILITY = "ひまわり訪問看護ステーション"
PEOPLE = [("佐藤 花子", "sato@himawari.example.jp", "confirmed", 3),
          ("高橋 健一", "takahashi@himawari.example.jp", "sent", 2),
          ("伊藤 美咲", "ito@himawari.example.jp", "sent", 20),  # past M = 14 days: overdue
          ("渡辺 翔太", "watanabe@himawari.example.jp", "bounced", 5)]


def seeded(ctx: Context) -> int:
    """Four people of one approved application, one in each state; returns the application id."""
    rows = "facility_name,staff_name,email,admin\n" + "".join(
        f"{FACILITY},{name},{email},{'○' if n == 0 else ''}\n" for n, (name, email, _s, _d) in enumerate(PEOPLE))
    settings = load_settings()
    with ctx.sessions.begin() as s:
        import_csv(s, rows.encode(), load_rule_config())
        app = m.Application(kind="new_facility", facility_name=FACILITY, status="approved", missing=[])
        s.add(app)
        s.flush()
        for _name, email, state, days in PEOPLE:
            person = s.scalars(select(m.Staff).where(m.Staff.email == email)).one()
            conf = confirmation._queue(s, person, app, email, settings, confirmation.load_config(settings))
            conf.mails[0].status = "sent"
            conf.status, conf.sent_at = state, m.utcnow() - dt.timedelta(days=days)
            if state in ("confirmed", "bounced"):
                conf.decided_at = m.utcnow()
        return app.id


def test_the_confirmations_view_counts_filters_resends_and_hands_out_the_mcs_list(
        browser, served: str, ctx: Context, tmp_path) -> None:
    seeded(ctx)
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="ja-JP")
    keyboard_login(page, served, "suzuki")
    page.click("text=送受信確認")
    page.wait_for_selector("#confirmations")
    counts = {st: page.inner_text(f"#counts a[data-state={st}] b") for st in confirmation.STATE_NAMES}
    assert counts == {"waiting": "0", "sent": "1", "overdue": "1", "confirmed": "1", "bounced": "1", "cancelled": "0"}
    page.screenshot(path=str(tmp_path / "confirmations.png"))

    page.select_option("select[name=state]", "bounced")
    page.click("#filters button")
    page.wait_for_url("**state=bounced**")
    assert page.eval_on_selector_all("#confirmations tbody tr", "rs => rs.map(r => r.dataset.state)") == ["bounced"]
    assert "渡辺 翔太" in page.inner_text("#confirmations")
    page.fill("#confirmations input[name=email]", "s.watanabe@himawari.example.jp")
    page.click("#confirmations button:has-text('訂正して再送')")
    page.wait_for_selector(".flash")
    assert "送信待ち" in page.inner_text(".flash")

    page.goto(f"{served}/confirmations")
    assert page.inner_text("#counts a[data-state=waiting] b") == "1"  # the corrected address waits to be sent
    assert page.inner_text("#mcs-ready") == "1"
    with page.expect_download() as info:
        page.click("#mcs-download")
    with open(info.value.path(), encoding="utf-8-sig") as fh:
        listed = [(r["氏名"], r["メールアドレス"], r["管理者"]) for r in csv.DictReader(fh)]
    assert listed == [("佐藤 花子", "sato@himawari.example.jp", "1")]
    page.goto(f"{served}/confirmations")
    assert page.inner_text("#mcs-ready") == "0" and page.is_disabled("#mcs-download")
    page.click("#mcs tr[data-export='1'] button.issued")
    page.wait_for_selector(".flash")
    assert "suzuki" in page.inner_text("#mcs tr[data-export='1']")
    with ctx.sessions() as s:
        record = s.get(m.McsExport, 1)
        assert (record.rows, record.by, record.issued_by) == (1, "suzuki", "suzuki")
        staff = s.scalars(select(m.Staff).where(m.Staff.name == "渡辺 翔太")).one()
        assert staff.email == "s.watanabe@himawari.example.jp"


def test_only_a_supervisor_downloads_the_mcs_list(app, ctx: Context) -> None:
    seeded(ctx)
    for name, allowed in (("tanaka", False), ("kansa", False), ("suzuki", True)):
        client = app.test_client()
        login(client, name)
        token = token_for(client, "/confirmations")
        response = client.post("/mcs/export.csv", data={"csrf_token": token})
        assert (response.status_code == 200) is allowed, name
        if allowed:
            assert response.headers["Content-Disposition"] == "attachment; filename=mcs-0001.csv"


def test_trouble_after_approval_brings_the_application_back_to_the_queue(app, ctx: Context) -> None:
    app_id = seeded(ctx)
    client = app.test_client()
    login(client, "tanaka")
    html = client.get("/").get_data(as_text=True)
    assert f"A{app_id:06d}" in html and "確認メール要対応" in html and "不達 1" in html and "期限切れ 1" in html
    page = client.get(f"/applications/{app_id}").get_data(as_text=True)
    for state in ("確認済み", "返信待ち", "期限切れ", "不達"):
        assert state in page.split('id="app-confirmations"')[1]


def test_a_case_is_worked_from_the_message_page_and_shows_in_the_queue(app, ctx: Context) -> None:
    seeded(ctx)
    with ctx.sessions.begin() as s:
        message = m.Message(document=m.Document(sha256="1" * 64, size=1, media_type="message/rfc822",
                                                file_name="lost.eml", channel="imap", status="message"),
                            kind="lost_device", urgent=True, subject="スマホ紛失", note="至急")
        s.add(message)
        s.flush()
        case = cases.open_case(s, message, "佐藤 <sato@himawari.example.jp>")
        case_id, message_id = case.id, message.id
    client = app.test_client()
    login(client, "tanaka")
    queue = client.get("/").get_data(as_text=True)
    assert f"K{case_id:06d} 受付（受付から 0時間0分）" in queue
    token = token_for(client, "/")
    client.post(f"/cases/{case_id}/request", data={"csrf_token": token, "note": "運営窓口へ電話",
                                                   "next": f"/messages/{message_id}"})
    assert "停止依頼済み" in client.get("/").get_data(as_text=True)
    response = client.post(f"/cases/{case_id}/resolve", data={"csrf_token": token, "note": "端末発見、停止解除",
                                                               "next": "//evil.example.com/"})
    assert response.headers["Location"] == "/confirmations"  # never sent off-site
    with ctx.sessions() as s:
        case = s.get(m.Case, case_id)
        assert (case.state, case.requested_by, case.resolved_by) == ("resolved", "tanaka", "tanaka")
