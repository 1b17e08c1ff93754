"""The ceiling: whether any of Tesseract's readings of a crop gives the truth, as it stands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from renraku.bench.ceiling import gives, page_ceiling, table
from renraku.bench.labelled import load_set
from renraku.pipeline.pages import load_pages, sniff_media_type
from renraku.pipeline.read import ReadContext


def test_a_reading_gives_the_truth_only_as_it_stands() -> None:
    assert gives("application_date", "date", ["令和7年7月29日"], "2025-07-29")
    assert gives("phone", "phone", ["0282 35 0725"], "0282-35-0725")
    assert gives("staff[1].name", "name", ["佐藤 花子"], "佐藤花子")
    assert not gives("facility_name", "text", ["あすなろ歯科医院", "あすなろ眼料医院"], "あすなろ眼科医院")


def test_a_typed_fax_page_of_the_dev_set(dev_set: Path, read_ctx: ReadContext) -> None:
    page = next(p for p in load_set(dev_set) if p.degrade == "fax_fine" and p.style == "typed"
                and p.form_id == "usage_application")
    fields = dict(page.fields, facility_name="ありえない名前の施設")  # a truth no reading can give
    page = dataclasses.replace(page, fields=fields)
    image = load_pages(page.data, sniff_media_type(page.data, page.name))[page.page - 1]
    rows = {r.path: r for r in page_ceiling(page, image, read_ctx, "dev-set")}
    filled = {p for p, t in fields.items() if not isinstance(t, bool) and str(t).strip()}
    assert set(rows) == filled
    made_up = rows["facility_name"]
    assert not (made_up.right or made_up.pipeline or made_up.any_reading)
    assert rows["facility_name_kana"].right and rows["facility_name_kana"].pipeline
    shares = table(list(rows.values()))
    assert shares["all/typed/-"]["fields"] == len(filled)
    assert shares["all/typed/-"]["any_reading"] == (len(filled) - 1) / len(filled)
