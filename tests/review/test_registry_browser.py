"""The registry search (登録簿) in Debian's Chromium through Playwright: an office worker on the phone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import select

from renraku.context import Context
from renraku.sinks import models as m
from tests.review.conftest import DOCS, keyboard_login, screenshot
from tests.review.test_registry_search import imported


def test_an_office_worker_finds_a_person_by_kana_and_sees_the_state(browser, served: str, ctx: Context,
                                                                    tmp_path: Path) -> None:
    imported(ctx)  # the sample registry: readings in hiragana
    with ctx.sessions.begin() as s:
        people = {p.name: p for p in s.scalars(select(m.Staff))}
        s.add(m.Confirmation(staff=people["松本 次郎"], email=people["松本 次郎"].email, token="t" * 32, status="sent",
                             sent_at=m.utcnow()))
        doc = m.Document(sha256="2" * 64, size=1, media_type="message/rfc822", file_name="lost.eml", channel="imap",
                         status="message")
        s.add(m.Case(message=m.Message(document=doc, kind="lost_device", urgent=True), staff=people["斎藤 誠"]))

    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="ja-JP")
    keyboard_login(page, served, "tanaka")
    with page.expect_navigation():
        page.click("header nav >> text=登録簿")
    page.wait_for_selector("input[name=q]:focus")  # the search box has the focus: type at once
    page.keyboard.type("ﾏﾂﾓﾄ ｼﾞﾛｳ")  # as heard on the phone, in half-width katakana
    with page.expect_navigation():
        page.keyboard.press("Enter")
    rows = page.locator("#registry tbody tr")
    assert rows.count() == 1 and page.inner_text("#matching").startswith("1 件")
    row = rows.first
    assert "松本 次郎" in row.inner_text() and "みどり薬局 芳賀店" in row.inner_text()
    assert "登録中" in row.locator("td.state").inner_text()
    assert "返信待ち" in row.inner_text()  # the 送受信確認 sent, no reply yet
    screenshot(page, tmp_path / "registry.png", 330)
    if os.environ.get("RENRAKU_DOCS_SCREENSHOTS"):  # the picture in docs/staff.md
        shutil.copy(tmp_path / "registry.png", DOCS / "staff" / "registry.png")

    page.fill("input[name=q]", "サイトウ")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    state = page.locator("#registry tbody tr td.state").inner_text()
    assert "停止中" in state  # a lost-device case is open
    with page.expect_navigation():
        page.click("#registry td.state a")
    assert "/messages/" in page.url  # the report itself, one click away
