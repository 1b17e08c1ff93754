"""Which sheet a page is: templates by title and corner, fax covers, unknown pages, image pages."""

from __future__ import annotations

import random

import pytest

from renraku.pipeline.classify import classify
from renraku.pipeline.pages import load_pdf
from renraku.pipeline.read import ReadContext
from renraku.samples.generator import FORMS_DIR, invent_change, invent_cover, invent_set, render_pdf
from tests.helpers import image_only_pdf, text_pdf


def forms_of(pdf: bytes, ctx: ReadContext) -> list[str]:
    return [classify(p, ctx.templates, ctx.config).form_id for p in load_pdf(pdf)]


@pytest.mark.parametrize(("blank", "form_ids"), [
    ("form1_usage_application.pdf", ["usage_application"]),
    ("form1b_staff_registration.pdf", ["staff_registration"]),
    ("form2_facility_pledge.pdf", ["facility_pledge"]),
    ("form3_staff_change.pdf", ["staff_change"]),
    ("application_set_blank.pdf", ["usage_application", "staff_registration", "facility_pledge"]),
])
def test_blank_sheets_are_recognised(blank: str, form_ids: list[str], read_ctx: ReadContext) -> None:
    assert forms_of((FORMS_DIR / blank).read_bytes(), read_ctx) == form_ids


def test_a_set_with_a_cover_and_a_change_notice(read_ctx: ReadContext) -> None:
    rng = random.Random(5)
    sheets = invent_set(rng)
    pdf = render_pdf([invent_cover(rng, "さくら在宅クリニック", 5), *sheets, invent_change(rng)])
    assert forms_of(pdf, read_ctx) == ["cover", "usage_application", "staff_registration",
                                       "facility_pledge", "staff_change"]


def test_a_letter_that_is_no_form_is_unknown_with_a_reason(read_ctx: ReadContext) -> None:
    page, = load_pdf(text_pdf(["いつもお世話になっております。", "研修会のご案内をお送りします。"]))
    result = classify(page, read_ctx.templates, read_ctx.config)
    assert result.form_id == "unknown" and result.reason


def test_a_corner_label_alone_is_not_enough(read_ctx: ReadContext) -> None:
    assert forms_of(text_pdf(["別紙様式1", "会議資料"]), read_ctx) == ["unknown"]


def test_a_fax_cover_is_recognised_by_its_words(read_ctx: ReadContext) -> None:
    assert forms_of(text_pdf(["ＦＡＸ送信票", "宛先：どこでも連絡帳事務局", "枚数：4枚"]), read_ctx) == ["cover"]


def test_a_blank_scanned_page_is_unknown_with_a_reason(read_ctx: ReadContext) -> None:
    page, = load_pdf(image_only_pdf())
    assert page.kind == "image"
    result = classify(page, read_ctx.templates, read_ctx.config)
    assert result.form_id == "unknown" and result.reason
