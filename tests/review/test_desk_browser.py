"""The desk as office staff meet it (issue 22, items 12-16), in Debian's Chromium through Playwright."""

from __future__ import annotations

import random

from sqlalchemy import select

from renraku.context import Context
from renraku.pipeline.run import Batch, Received
from renraku.samples.generator import invent_change, invent_set, render_pdf
from renraku.sinks import models as m
from renraku.sinks.queue import SUPERVISOR, Actor, correct_field
from tests.review.conftest import keyboard_login

WIDE = 1400


def _fields(ctx: Context, app_id: int) -> dict[str, int]:
    with ctx.sessions() as s:
        app = s.get(m.Application, app_id)
        return {f"{sh.form_id}/{f.path}": f.id for sh in app.sheets for f in sh.fields}


def _open(browser, served: str, who: str, url: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": WIDE, "height": 900}, locale="ja-JP")
    keyboard_login(page, served, who)
    page.goto(f"{served}{url}")
    page.wait_for_load_state("networkidle")
    return page


def _live_changes(page, action) -> str:  # type: ignore[no-untyped-def]
    before = page.inner_text("#live")
    action()
    page.wait_for_function("old => document.getElementById('live').textContent !== old", arg=before)
    return page.inner_text("#live")


def test_a_wide_crop_is_readable_and_its_zoom_leaves_the_input_free(browser, served: str, data, ctx) -> None:
    field_id = _fields(ctx, data["app"])["usage_application/facility_name"]
    page = _open(browser, served, "tanaka", f"/applications/{data['app']}")
    crop = f"tr[data-field-id='{field_id}'] td.crop img"
    page.wait_for_function("sel => document.querySelector(sel).complete && document.querySelector(sel).style.height",
                           arg=crop)
    size = page.eval_on_selector(crop, "i => ({w: i.naturalWidth, h: i.naturalHeight, shown: i.clientHeight})")
    assert size["w"] > 4 * size["h"]  # a wide box
    assert size["shown"] >= min(size["h"], 52), size  # a readable height, not shrunk to a strip of 13 px
    box = page.eval_on_selector(f"{crop}", "i => i.closest('.crop-scroll').scrollWidth > i.closest('.crop-scroll')"
                                           ".clientWidth")
    assert box  # the rest of the box is reached by scrolling sideways

    page.focus(f"input.fv[data-field-id='{field_id}']")
    page.keyboard.press("Alt+Z")
    page.wait_for_function("sel => document.querySelector(sel).clientHeight > 0 && "
                           "document.querySelector(sel).closest('tr').classList.contains('zoom')", arg=crop)
    zoomed = page.eval_on_selector(crop, "i => i.closest('.crop-scroll').getBoundingClientRect().toJSON()")
    field = page.eval_on_selector(f"input.fv[data-field-id='{field_id}']", "i => i.getBoundingClientRect().toJSON()")
    assert zoomed["height"] > size["shown"]
    apart = (zoomed["right"] <= field["left"] or field["right"] <= zoomed["left"]
             or zoomed["bottom"] <= field["top"] or field["bottom"] <= zoomed["top"])
    visible = page.evaluate("([x, y]) => document.elementFromPoint(x, y).matches('input.fv')",
                            [field["left"] + 5, field["top"] + field["height"] / 2])
    assert apart and visible, (zoomed, field)


def test_the_enter_of_a_japanese_conversion_does_not_save(browser, served: str, data, ctx) -> None:
    field_id = _fields(ctx, data["app"])["usage_application/contact_name"]
    page = _open(browser, served, "tanaka", f"/applications/{data['app']}")
    selector = f"input.fv[data-field-id='{field_id}']"
    page.focus(selector)
    page.keyboard.press("Control+A")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "わかば", "selectionStart": 3, "selectionEnd": 3})
    page.evaluate("""sel => { window.__keys = [];
        document.querySelector(sel).addEventListener('keydown', e => window.__keys.push([e.key, e.isComposing])); }""",
                  selector)
    page.keyboard.press("Enter")  # the IME's conversion Enter
    cdp.send("Input.insertText", {"text": "若葉"})  # the IME commits the converted text
    page.wait_for_timeout(400)
    assert [k for k, composing in page.evaluate("window.__keys") if composing] == ["Enter"]
    with ctx.sessions() as s:
        assert s.get(m.Field, field_id).method != "human"
        assert not s.scalars(select(m.AuditEntry).where(m.AuditEntry.action.in_(["correct_field", "confirm_field"]))
                             ).all()
    assert page.input_value(selector).endswith("若葉")
    _live_changes(page, lambda: page.keyboard.press("Enter"))  # the Enter after the conversion saves
    with ctx.sessions() as s:
        assert s.get(m.Field, field_id).method == "human"


def test_a_value_read_at_low_confidence_needs_a_second_enter_or_a_typed_value(browser, served: str, data,
                                                                             ctx) -> None:
    ids = _fields(ctx, data["app"])
    low, typed = ids["usage_application/phone"], ids["usage_application/fax"]
    with ctx.sessions.begin() as s:
        for fid in (low, typed):
            f = s.get(m.Field, fid)
            f.confidence, f.needs_review, f.method = 0.04, True, "ocr"
        read_fax = s.get(m.Field, typed).value
    page = _open(browser, served, "tanaka", f"/applications/{data['app']}")
    page.focus(f"input.fv[data-field-id='{low}']")
    said = _live_changes(page, lambda: page.keyboard.press("Enter"))
    assert "確信度の低い" in said and "4%" in said
    with ctx.sessions() as s:
        assert s.get(m.Field, low).needs_review  # one Enter accepted nothing
    said = _live_changes(page, lambda: page.keyboard.press("Enter"))
    assert "保存しました" in said
    with ctx.sessions() as s:
        assert not s.get(m.Field, low).needs_review
        assert s.scalars(select(m.AuditEntry.action).where(m.AuditEntry.action == "confirm_field")).all()

    page.focus(f"input.fv[data-field-id='{typed}']")
    page.keyboard.press("Control+A")
    page.keyboard.type(read_fax[:-1] + ("0" if read_fax[-1:] != "0" else "1"))
    said = _live_changes(page, lambda: page.keyboard.press("Enter"))
    assert "保存しました" in said  # a typed value needs one Enter


def test_read_only_people_are_told_so_and_alt_a_answers_in_japanese(browser, served: str, data) -> None:
    page = _open(browser, served, "kansa", f"/applications/{data['app']}")
    hint = page.inner_text(".keys")
    assert "閲覧のみ" in hint and "値を入力" not in hint
    assert "責任者" in _live_changes(page, lambda: page.keyboard.press("Alt+A"))
    page = _open(browser, served, "tanaka", f"/applications/{data['app']}")
    assert "承認は責任者" in _live_changes(page, lambda: page.keyboard.press("Alt+A"))


def test_after_an_override_alt_a_approves_as_the_button_would(browser, served: str, data, ctx) -> None:
    with ctx.sessions.begin() as s:  # every field checked; the shared address stays an error
        for sheet in s.get(m.Application, data["app"]).sheets:
            for f in sheet.fields:
                if f.needs_review:
                    correct_field(s, f.id, f.value, Actor("suzuki", SUPERVISOR))
        blocking = [f.rule for f in s.get(m.Application, data["app"]).findings if f.blocking]
    assert "shared_email" in blocking
    page = _open(browser, served, "suzuki", f"/applications/{data['app']}")
    for rule in blocking:  # a supervisor overrides each error with a reason
        page.fill(f"#findings li[data-rule={rule}] input[name=reason]", "電話で本人に確認済み")
        with page.expect_navigation():
            page.click(f"#findings li[data-rule={rule}] button")
        page.wait_for_load_state("networkidle")
    page.keyboard.press("Alt+A")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('承認済み')")


def test_an_unknown_facility_shows_before_approving(browser, served: str, ctx) -> None:
    notice = invent_change(random.Random(8))
    with Batch(ctx) as batch:
        batch.receive(Received(render_pdf([notice]), "change.pdf", "change.pdf"))
    with ctx.sessions() as s:
        app = s.scalars(select(m.Application).where(m.Application.kind == "staff_change")).one()
    page = _open(browser, served, "suzuki", f"/applications/{app.id}")
    shown = page.inner_text("#findings")
    assert "unknown_facility" in shown and "登録簿にありません" in shown


def test_error_pages_and_the_audit_log_are_japanese_and_fit_the_window(browser, served: str, app, data,
                                                                        ctx) -> None:
    def boom() -> str:
        raise RuntimeError("a bug")
    app.add_url_rule("/boom", "boom", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the handler answers, not the test
    page = _open(browser, served, "tanaka", "/applications/99999")
    assert "見つかりません" in page.inner_text("h1") and "Not Found" not in page.content()
    page.goto(f"{served}/users")
    assert "権限がありません" in page.inner_text("h1")
    page.goto(f"{served}/boom")
    assert "サーバーでエラーが起きました" in page.inner_text("h1") and "Internal Server Error" not in page.content()

    field_id = _fields(ctx, data["app"])["usage_application/facility_name"]
    with ctx.sessions.begin() as s:
        correct_field(s, field_id, "若葉会" + "x" * 190, Actor("suzuki", SUPERVISOR))
    page = _open(browser, served, "kansa", "/audit")
    text = page.inner_text("table.audit")
    assert "若葉会" in text and "\\u82e5" not in text and "項目の修正" in text and "correct_field" not in text
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDE


def test_the_batch_page_speaks_japanese_and_shows_no_server_paths(browser, served: str, ctx, tmp_path) -> None:
    folder = tmp_path / "受付" / "2025"
    folder.mkdir(parents=True)
    (folder / "申込.pdf").write_bytes(render_pdf(invent_set(random.Random(12))))
    (folder / "壊れた.pdf").write_bytes(b"%PDF-1.4 not really")
    from renraku.pipeline.run import process_paths

    report = process_paths(ctx, [tmp_path / "受付"])
    page = _open(browser, served, "suzuki", f"/batches/{report.batch_id}")
    text = page.inner_text("main")
    assert "受け付けた件数" in text and "完了" in text and "申込.pdf" in text
    assert "items:" not in text and "recorded" not in text and str(tmp_path) not in text
    labels = page.eval_on_selector_all("svg.chart text", "ts => ts.map(t => t.getBBox().x + t.getBBox().width)")
    width = page.eval_on_selector("svg.chart", "s => s.viewBox.baseVal.width")
    assert labels and all(right <= width for right in labels)
