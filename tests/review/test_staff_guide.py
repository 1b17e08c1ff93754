"""The office's day at the review desk, as docs/staff.md tells it, in a real browser.

Each step asserts what the staff guide says happens, and leaves a screenshot; with
RENRAKU_DOCS_SCREENSHOTS=1 the screenshots replace those in docs/staff/ (small: one viewport, 256 colours).
"""

from __future__ import annotations

import email.message
import os
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from renraku.context import Context
from renraku.pipeline.run import Batch, Received
from renraku.samples.generator import invent_set, render_pdf
from renraku.sinks import models as m
from tests.review.conftest import DOCS, keyboard_login, screenshot

STAFF_DOCS = DOCS / "staff"
WRONG, RIGHT = "kato.yumi@motegi。example.jp", "kato.yumi@motegi.example.jp"
REASON = "本人専用のアドレスであることを電話で確認済み"


def _complete(sheets, staff: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """An invented set with its consent ticked and an admin, and these staff-row values."""
    sheets[0].truth["policy_agreed"] = True
    sheets[1].truth["staff[1].admin"] = True
    sheets[1].truth.update(staff or {})
    return sheets


def _lost_device_mail() -> bytes:
    msg = email.message.EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = "スマートフォン紛失のご報告", "sato@example.jp", "jimu@example.jp"
    msg["Message-ID"], msg["Date"] = "<lost-1@example.jp>", "Mon, 08 Sep 2025 10:00:00 +0900"
    msg.set_content("本日、業務用のスマートフォンを紛失しました。アカウントの停止をお願いします。")
    return bytes(msg)


@pytest.fixture
def working_day(ctx: Context) -> dict[str, int]:
    """A queue as on a working day: a lost phone, a set with a slip in an address, a set with a shared
    address, and a set still missing its pledge."""
    bad = _complete(invent_set(random.Random(41)), {"staff[1].email": WRONG})
    shared = _complete(invent_set(random.Random(12)))
    domain = shared[1].truth["staff[2].email"].split("@")[1]
    shared[1].truth["staff[2].email"] = f"info@{domain}"
    partial = _complete(invent_set(random.Random(5)))[:2]
    with Batch(ctx) as batch:
        batch.receive(Received(render_pdf(bad), "申込書一式.pdf", "申込書一式.pdf", "imap"))
        batch.receive(Received(render_pdf(shared), "scan0001.pdf", "scan0001.pdf", "scan"))
        batch.receive(Received(render_pdf(partial), "scan0002.pdf", "scan0002.pdf", "scan"))
        batch.receive(Received(_lost_device_mail(), "lost.eml", "lost.eml", "imap", "message/rfc822"))
    with ctx.sessions() as s:
        by_rule = {f.rule: f.application_id for f in s.scalars(select(m.Finding))}
    return {"bad_email": by_rule["invalid_email"], "shared": by_rule["shared_email"]}


class Shots:
    def __init__(self, page, folder: Path) -> None:  # type: ignore[no-untyped-def]
        self.page, self.folder, self.taken = page, folder, []

    def __call__(self, name: str, height: int | None = None) -> None:
        self.taken.append(screenshot(self.page, self.folder / f"{name}.png", height))


def _status(page) -> str:  # type: ignore[no-untyped-def]
    return page.inner_text("#status").strip()


def test_the_staff_guide(browser, served: str, ctx: Context, working_day: dict[str, int], tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 760}, locale="ja-JP")
    shot = Shots(page, tmp_path)

    # ログインと受付一覧: 紛失・盗難の報告がいちばん上。
    page.goto(f"{served}/login")
    shot("login", 420)
    keyboard_login(page, served, "tanaka")
    rows = page.locator("table.queue tbody tr")
    assert "至急" in rows.nth(0).inner_text()
    assert "不足あり" in page.inner_text("table.queue") and "要確認" in page.inner_text("table.queue")
    shot("queue", 520)

    # 申請を開く: カーソルは最初の要確認項目（指摘のあるメールアドレス）にある。
    page.goto(f"{served}/applications/{working_day['bad_email']}")
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => document.activeElement && document.activeElement.classList.contains('fv')")
    assert page.evaluate("document.activeElement.value") == WRONG
    assert page.locator("#findings li[data-rule=invalid_email]").count() == 1
    assert _status(page) == "要確認"
    page.evaluate("window.scrollTo(0, 0)")
    shot("application")

    # キーボードで訂正: 打てば置き換わり、Enter で保存。指摘が消え、状態が変わる。
    page.evaluate("document.activeElement.scrollIntoView({block: 'center'})")
    page.keyboard.type(RIGHT)
    shot("correct-typing")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('live').textContent.includes('保存しました')")
    assert page.locator("#findings li[data-rule=invalid_email]").count() == 0
    assert _status(page) == "承認待ち"
    assert "Alt+A" in page.inner_text("#live")
    assert page.locator("input.fv").evaluate_all(f"els => els.some(e => e.value === '{RIGHT}')")
    page.evaluate("window.scrollTo(0, 0)")
    shot("correct-saved", 300)
    with page.expect_navigation():
        page.click("header form.who button")  # ログアウト

    # 承認（管理者）: Alt+A。
    keyboard_login(page, served, "suzuki")
    page.goto(f"{served}/applications/{working_day['bad_email']}")
    page.wait_for_load_state("networkidle")
    page.keyboard.press("Alt+A")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('承認済み')")
    shot("approved", 420)

    # 理由を書いて上書き（管理者）: 共用アドレスの指摘。
    page.goto(f"{served}/applications/{working_day['shared']}")
    page.wait_for_load_state("networkidle")
    finding = "#findings li[data-rule=shared_email]"
    page.focus(f"{finding} input[name=reason]")
    page.keyboard.type(REASON)
    page.evaluate("window.scrollTo(0, 0)")
    shot("override-reason", 420)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert f"suzuki が上書き: {REASON}" in page.inner_text(finding)
    assert "overridden" in (page.get_attribute(finding, "class") or "")
    assert _status(page) == "承認待ち"  # the overridden error no longer blocks
    page.evaluate("window.scrollTo(0, 0)")
    shot("override-done", 420)

    # 監査ログ: 誰が何をしたか、記録の連鎖が改ざんされていないこと。
    page.click("header nav a:has-text('監査ログ')")
    page.wait_for_url(f"{served}/audit")
    log = page.inner_text("table.queue")
    for actor, action in (("tanaka", "項目の修正"), ("suzuki", "承認"), ("suzuki", "指摘の上書き")):  # in Japanese
        assert any(actor in line and action in line for line in log.splitlines()), (actor, action, log)
    assert REASON in log  # as written, readable
    assert "改ざんされていません" in page.inner_text("main")
    shot("audit", 520)

    with ctx.sessions() as s:
        assert s.get(m.Application, working_day["bad_email"]).status == "approved"
    assert all(p.stat().st_size < 200_000 for p in shot.taken), [(p.name, p.stat().st_size) for p in shot.taken]
    if os.environ.get("RENRAKU_DOCS_SCREENSHOTS"):  # refresh the pictures of docs/staff.md
        STAFF_DOCS.mkdir(exist_ok=True)
        for path in shot.taken:
            (STAFF_DOCS / path.name).write_bytes(path.read_bytes())
