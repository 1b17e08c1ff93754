"""Reading fields from the text layer of PDFs filled on a computer."""

from __future__ import annotations

import random

import pytest

from renraku import normalize
from renraku.extractors.fields import FieldReading
from renraku.pipeline.pages import load_pdf
from renraku.pipeline.read import ReadContext, read_page
from renraku.samples.generator import FilledSheet, Style, invent_change, invent_set, render_pdf
from tests.helpers import draw_on_blank


def read_all(pdf: bytes, ctx: ReadContext) -> list[tuple[str, dict[str, FieldReading]]]:
    out = []
    for page in load_pdf(pdf):
        result = read_page(page, ctx)
        out.append((result.classification.form_id, {r.path: r for r in result.readings}))
    return out


def assert_reads_truth(sheets: list[FilledSheet], pdf: bytes, ctx: ReadContext) -> None:
    pages = read_all(pdf, ctx)
    assert [form for form, _ in pages] == [s.form_id for s in sheets]
    for sheet, (_form, readings) in zip(sheets, pages, strict=True):
        assert set(readings) == set(sheet.truth)
        for path, truth in sheet.truth.items():
            r = readings[path]
            expected = truth if isinstance(truth, bool) else normalize.text(truth)
            assert (path, r.value) == (path, expected)
            assert r.confidence == 1.0 and not r.needs_review, (path, r.note)
            assert r.method == "text_layer"


@pytest.mark.parametrize("seed", range(6))
def test_a_filled_set_reads_back_exactly(seed: int, read_ctx: ReadContext) -> None:
    rng = random.Random(seed)
    sheets = invent_set(rng)
    style = Style(tick=["✓", "○", "レ", "■", "●", "drawn"][seed], admin=["○", "〇", "drawn"][seed % 3],
                  seal=["drawn", "image", "text"][seed % 3], size=[10.0, 10.5, 11.0][seed % 3])
    assert_reads_truth(sheets, render_pdf(sheets, style), read_ctx)


@pytest.mark.parametrize("seed", range(4))
def test_a_change_notice_reads_back_exactly(seed: int, read_ctx: ReadContext) -> None:
    sheet = invent_change(random.Random(100 + seed))
    assert_reads_truth([sheet], render_pdf([sheet], Style(tick=["✓", "レ", "drawn", "×"][seed])), read_ctx)


def test_dates_written_every_way_are_iso(read_ctx: ReadContext) -> None:
    for written in ("令和７年４月１日", "R7.4.1", "2025/4/1", "2025年4月1日", "2025-04-01"):
        sheet = FilledSheet("facility_pledge", {"pledge_date": "2025-04-01", "seal": False},
                            {"pledge_date": written})
        (_form, readings), = read_all(render_pdf([sheet]), read_ctx)
        assert readings["pledge_date"].value == "2025-04-01"
        assert readings["pledge_date"].raw == written


def _reading(form_id: str, draw, path: str, ctx: ReadContext, **kw) -> FieldReading:
    (_form, readings), = read_all(draw_on_blank(form_id, draw, **kw), ctx)
    return readings[path]


def test_a_date_that_is_no_date_is_kept_and_flagged(read_ctx: ReadContext) -> None:
    def draw(c, y, font):
        c.setFont(font, 10)
        c.drawString(410, y(112), "令和7年2月30日")
    r = _reading("facility_pledge", draw, "pledge_date", read_ctx)
    assert r.value == "令和7年2月30日"
    assert r.needs_review and r.confidence < 0.9 and "存在しない" in r.note


def test_text_spilling_over_the_box_edge_is_flagged(read_ctx: ReadContext) -> None:
    def draw(c, y, font):  # the phone number runs past the cell into the FAX cell
        c.setFont(font, 14)
        c.drawString(300, y(388), "0282-99-1799-1234")
    r = _reading("usage_application", draw, "phone", read_ctx)
    assert r.needs_review and "はみ出" in r.note


def test_an_unusual_sign_in_a_check_box_is_true_but_flagged(read_ctx: ReadContext) -> None:
    def draw(c, y, font):
        c.setFont(font, 11)
        c.drawString(50, y(546), "？")
    r = _reading("usage_application", draw, "policy_agreed", read_ctx)
    assert r.value is True and r.needs_review


def test_a_tick_in_one_box_does_not_tick_its_neighbours(read_ctx: ReadContext) -> None:
    def draw(c, y, font):
        c.setFont(font, 13)
        c.drawCentredString(277.8, y(276.4) - 4.5, "✓")  # 居宅介護支援事業所
    (_form, readings), = read_all(draw_on_blank("usage_application", draw), read_ctx)
    ticked = [p for p, r in readings.items() if p.startswith("facility_type.") and r.value]
    assert ticked == ["facility_type.care_management"]


@pytest.mark.parametrize(("sign", "value", "flagged"), [
    ("○", True, False), ("◯", True, False), ("レ", True, False), ("管理者", True, False),
    ("×", True, True), ("－", False, True), ("なし", False, True), ("", False, False),
])
def test_the_admin_column(sign: str, value: bool, flagged: bool, read_ctx: ReadContext) -> None:
    def draw(c, y, font):
        c.setFont(font, 10)
        c.drawString(500, y(233), sign)
    r = _reading("staff_registration", draw, "staff[1].admin", read_ctx)
    assert (r.value, r.needs_review) == (value, flagged)


def test_a_seal_is_any_mark_in_the_seal_box_but_not_the_printed_印(read_ctx: ReadContext) -> None:
    assert _reading("facility_pledge", lambda c, y, f: None, "seal", read_ctx).value is False

    def stamp(c, y, font):
        c.circle(528.7, y(602.4), 15, stroke=1, fill=0)
    assert _reading("facility_pledge", stamp, "seal", read_ctx).value is True


def test_white_text_is_not_read(read_ctx: ReadContext) -> None:
    def draw(c, y, font):
        c.setFont(font, 10)
        c.setFillColorRGB(1, 1, 1)
        c.drawString(150, y(472), "隠し文字")
    assert _reading("facility_pledge", draw, "facility_name", read_ctx).value == ""


def test_a_sheet_printed_a_little_off_is_still_read(read_ctx: ReadContext) -> None:
    def draw(c, y, font):
        c.setFont(font, 11)
        c.drawString(150, y(472), "さくら在宅クリニック")
        c.drawString(150, y(517), "栃木県宇都宮市本町1-2-3")
    (_form, readings), = read_all(draw_on_blank("facility_pledge", draw, shift=(6, 9)), read_ctx)
    assert readings["facility_name"].value == "さくら在宅クリニック"
    assert readings["address"].value == "栃木県宇都宮市本町1-2-3"
    assert readings["facility_name"].box[1] == pytest.approx(454.5 + 9, abs=1)


def test_boxes_are_where_the_values_are(read_ctx: ReadContext) -> None:
    sheets = invent_set(random.Random(3))
    (_f, readings), *_ = read_all(render_pdf(sheets), read_ctx)
    x0, top, x1, bottom = readings["postal_code"].box
    assert 80 < x0 < 90 and 300 < top < 310 and x1 > 540 and 325 < bottom < 335
