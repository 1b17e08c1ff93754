"""The review desk in a real browser (Debian's Chromium through Playwright), keyboard only."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sqlalchemy import select

from renraku.bench.labelled import same
from renraku.context import Context
from renraku.pipeline.run import Batch, Received
from renraku.sinks import models as m
from renraku.sinks.export import export
from tests.conftest import load_jsonl
from tests.review.conftest import DOCS, keyboard_login, screenshot

FAX = "files/FAX_20250508_113920_0285918598.tif"  # a handwritten set by standard-resolution fax


def _value_of(kind_is_mark: bool, shown: str):
    return shown.strip() in ("○", "1", "✓") if kind_is_mark else shown


def test_a_faxed_application_is_corrected_by_keyboard_and_approved(
        browser, served: str, ctx: Context, dev_set: Path, tmp_path: Path) -> None:
    with Batch(ctx) as batch:
        batch.receive(Received((dev_set / FAX).read_bytes(), Path(FAX).name, FAX, "scan"))
    inbox = Path(__file__).resolve().parents[2] / "samples" / "inbox"
    with Batch(ctx) as batch:  # more in the queue, as on a working day
        batch.receive_many([Received(p.read_bytes(), p.name, str(p), "imap") for p in sorted(inbox.iterdir())])
    truth = {(t["form_id"], p): v for t in load_jsonl(dev_set / "truth.jsonl") if t["file"] == FAX
             for p, v in t["fields"].items()}
    with ctx.sessions() as s:
        app = s.scalars(select(m.Application).order_by(m.Application.id)).first()
        app_id = app.id
        form_of = {f.id: (sh.form_id, f.path, f.kind) for sh in app.sheets for f in sh.fields}

    page = browser.new_page(viewport={"width": 1600, "height": 1000}, locale="ja-JP")
    keyboard_login(page, served, "tanaka")
    screenshot(page, tmp_path / "queue.png", 480)
    page.goto(f"{served}/applications/{app_id}")
    page.wait_for_load_state("networkidle")
    screenshot(page, tmp_path / "application.png")
    listed = "els => els.map(e => [e.dataset.rule, e.dataset.field])"
    findings_before = page.eval_on_selector_all("#findings li[data-rule]", listed)

    corrected: list[tuple[str, str]] = []
    for _ in range(200):  # each flagged field once
        field_id = page.evaluate("document.activeElement && document.activeElement.dataset.fieldId || null")
        if field_id is None:
            break
        form_id, path, kind = form_of[int(field_id)]
        mark = kind in ("checkbox", "admin_mark", "seal")
        shown = page.evaluate("document.activeElement.value")
        expected = truth[(form_id, path)]
        if not same(path, _value_of(mark, shown), expected):
            page.keyboard.type(("○" if expected else "") if mark else str(expected))  # replaces the selection
            if mark and not expected:
                page.keyboard.press("Backspace")
            corrected.append((form_id, path))
        live = page.inner_text("#live")
        page.keyboard.press("Enter")
        page.wait_for_function("old => document.getElementById('live').textContent !== old || "
                               "document.activeElement.dataset.fieldId === undefined", arg=live)
        page.wait_for_timeout(50)
    assert corrected  # the fax has flagged fields read wrong, put right by keyboard
    findings_after = page.eval_on_selector_all("#findings li[data-rule]", listed)
    gone = [f for f in findings_before if f not in findings_after]
    assert all(field in {p for _f, p in corrected} for _rule, field in gone), (findings_before, findings_after)
    assert "Alt+A" in page.inner_text("#live")

    # A slip while correcting shows at once as a finding, and goes once put right.
    address_id = next(i for i, (form, path, _k) in form_of.items() if (form, path) == ("usage_application", "address"))
    address = f"input.fv[data-field-id='{address_id}']"

    def enter_address(value: str, finding_shown: bool) -> None:
        page.focus(address)
        page.keyboard.press("Control+A")
        page.keyboard.type(value)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => !!document.querySelector('#findings li[data-rule=outside_area]') === "
                               f"{str(finding_shown).lower()}")
    enter_address("東京都千代田区丸の内1-1-1", True)
    enter_address(truth[("usage_application", "address")], False)
    corrected.append(("usage_application", "address"))

    with page.expect_navigation():
        page.click("header form.who button")  # log out
    keyboard_login(page, served, "suzuki")
    page.goto(f"{served}/applications/{app_id}")
    page.wait_for_load_state("networkidle")
    page.keyboard.press("Alt+A")
    try:
        # a function, not an expression: the desk's Content-Security-Policy forbids eval of a string
        page.wait_for_function("() => document.getElementById('status').textContent.includes('承認済み')",
                               timeout=15000)
    except Exception:
        raise AssertionError(page.inner_text("#live") + " / " + page.inner_text("#findings")) from None

    out = tmp_path / "export"
    with ctx.sessions() as s:
        export(s, out)
    sheets = load_jsonl(out / "sheets.jsonl")
    fields = {(sh["form_id"], p): f for sh in sheets if sh["application_id"] == f"A{app_id:06d}"
              for p, f in sh["fields"].items()}
    for form_path in corrected:
        f = fields[form_path]
        assert f["method"] == "human" and same(form_path[1], f["value"], truth[form_path])
    assert json.loads((out / "applications.jsonl").read_text().splitlines()[0])["status"] == "approved"
    with ctx.sessions() as s:
        actions = [(e.actor, e.action) for e in s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id))]
    assert ("tanaka", "correct_field") in actions and ("suzuki", "approve") in actions
    if os.environ.get("RENRAKU_DOCS_SCREENSHOTS"):  # refresh the pictures in docs/
        for name in ("queue.png", "application.png"):
            shutil.copy(tmp_path / name, DOCS / name)
