"""The wide value source really lies outside the reader's lists, and the truth says which fields do."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from renraku.samples import generator
from renraku.samples.degrade import FaxParams, fax_tiff, make_labelled_set
from renraku.samples.generator import FACILITY_TYPES, invent_change, invent_set, render_pdf, wide_hand_style
from renraku.samples.values_wide import (
    NAME_DICTIONARY,
    RULES_FILE,
    VOCABULARY_FILE,
    WideValues,
    data,
    font_files,
    out_of_lists,
    romaji,
)

pytestmark = pytest.mark.skipif(not NAME_DICTIONARY.exists(), reason="mecab-ipadic is not installed")


def _toml(path: Path) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


@pytest.fixture(scope="module")
def mecab() -> dict[str, set[str]]:
    """Surnames and given names of MeCab's dictionary, read here on their own (EUC-JP CSV)."""
    out: dict[str, set[str]] = {"姓": set(), "名": set()}
    with open(NAME_DICTIONARY, encoding="euc-jp", errors="replace", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) > 11 and row[7] in out:
                out[row[7]].add(row[0])
    return out


@pytest.fixture(scope="module")
def wide_sheets() -> list[list]:
    """The sheets of 120 wide sets and 40 wide change notices."""
    values = WideValues()
    sets = [invent_set(random.Random(f"t/{i}"), values=values) for i in range(120)]
    return sets + [[invent_change(random.Random(f"c/{i}"), values=values)] for i in range(40)]


def _fields(sets: list[list], suffix: str) -> list[tuple[str, str, dict]]:
    return [(path, v, s.truth) for sheets in sets for s in sheets for path, v in s.truth.items()
            if path.endswith(suffix) and isinstance(v, str) and v]


def test_out_of_dictionary_names_are_in_no_list_of_mecab(wide_sheets: list[list], mecab: dict) -> None:
    """Every person name labelled out of the lists is made of a surname and a given name that
    Noun.name.csv does not hold, and no two names of it make it up either."""
    people = data("people")
    assert not {s for s, _k in people["surnames"]} & mecab["姓"]
    assert not {g for g, _k in people["given"]} & mecab["名"]
    surnames = sorted((s for s, _k in people["surnames"]), key=len, reverse=True)
    labelled = 0
    for sheets in wide_sheets:
        for s in sheets:
            oov = out_of_lists(s.truth)
            for path, value in s.truth.items():
                if not re.search(r"(^|\.)(name|representative_name|contact_name|notifier_name)$", path) or not value:
                    continue
                text = value.replace(" ", "")
                splits = [(text[:i], text[i:]) for i in range(1, len(text))]
                known = any(a in mecab["姓"] and b in mecab["名"] for a, b in splits)
                if path in oov:
                    labelled += 1
                    assert not known, value
                    family = next(n for n in surnames if text.startswith(n))
                    assert family not in mecab["姓"] and text[len(family):] not in mecab["名"]
                else:
                    assert known or text in {a[0] + b[0] for a in generator.SURNAMES for b in generator.GIVEN}
    assert labelled > 300  # most people of a wide set are outside the dictionary


def test_wide_facilities_tick_the_box_of_their_kind(wide_sheets: list[list]) -> None:
    seen = set()
    for sheets in wide_sheets:
        usage = sheets[0].truth
        if sheets[0].form_id != "usage_application":
            continue
        ticked = [t for t in FACILITY_TYPES if usage[f"facility_type.{t}"]]
        assert len(ticked) == 1
        assert bool(usage["facility_type_other"]) == (ticked == ["other"])
        name = usage["facility_name"]
        seen.add(ticked[0])
        if name.endswith("役所") or name.endswith("役場"):
            assert ticked == ["government"]
        if name.endswith("社会福祉協議会"):
            assert ticked == ["other"] and usage["facility_type_other"] == "社会福祉協議会"
        if name.endswith("歯科口腔外科"):
            assert ticked == ["dental_clinic"]
        assert usage["facility_name_kana"] and re.fullmatch(r"[ぁ-んー]+", usage["facility_name_kana"])
    assert seen == set(FACILITY_TYPES)


def test_facility_kinds_outside_the_vocabulary_are_labelled_so(wide_sheets: list[list]) -> None:
    suffixes = _toml(VOCABULARY_FILE)["facility_suffixes"]
    inside = outside = 0
    for path, value, truth in _fields(wide_sheets, "facility_name"):
        words = sorted((k["word"] for k in data("facilities")["kind"] if k["word"]), key=len, reverse=True)
        kind = next((w for w in words if value.endswith(w)), "")
        listed = kind in suffixes or (not kind and any(value.endswith(s) for s in suffixes))
        assert (path in out_of_lists(truth)) == (not listed), value
        inside += listed
        outside += not listed
    assert outside > 3 * inside > 0  # both sides, most outside


def test_labels_name_what_the_reader_lists_hold() -> None:
    truth = {"facility_name": "あすなろ眼科医院", "address": "栃木県那須町大字寺子1234番地",
             "contact_email": "hanako.sato@example-mail.jp", "staff[1].email": "sato_hanako@example-mail.jp",
             "staff[2].email": "hanako.sato@k-mobile.example.jp", "staff[1].name": "佐藤花子",
             "staff[2].name": "大豆生田 陽翔", "staff[1].job": "医師", "phone": "0287-11-2222",
             "representative_title": "院長", "facility_type.other": False}
    oov = out_of_lists(truth)
    assert "医院" in oov["facility_name"]  # its ending is listed, the kind 眼科医院 is not
    assert set(oov) == {"facility_name", "address", "staff[1].email", "staff[2].email", "staff[2].name"}
    assert out_of_lists({"facility_name": "さくら病院", "address": "栃木県小山市本町1-2-3"}) == {}


def test_usual_sets_are_inside_every_list() -> None:
    for i in range(60):
        rng = random.Random(i)
        for s in [*invent_set(rng), invent_change(rng)]:
            assert out_of_lists(s.truth) == {}, s.truth


def test_addresses_reach_every_municipality_and_leave_the_usual_towns(wide_sheets: list[list]) -> None:
    rules = _toml(RULES_FILE)["area"]["municipalities"]
    municipalities = [m for m in rules if not m.endswith("郡")]
    assert len(municipalities) == 25
    values, rng = WideValues(), random.Random(5)
    addresses = [values.address(rng)[0] for _ in range(800)]
    for m in municipalities:
        assert any(m in a for a in addresses), m
    for word in ("大字", "字", "番地", "丁目", "号", "階"):
        assert any(word in a for a in addresses), word
    towns = {t for m in data("tochigi")["municipality"] for t in m["towns"]}
    assert not towns & set(generator.TOWNS)
    for _path, value, truth in _fields(wide_sheets, "address"):
        assert "address" in out_of_lists(truth) or value.startswith("栃木県"), value


def test_mail_addresses_are_outside_the_lists_with_separators_and_digits_everywhere(wide_sheets: list[list]) -> None:
    vocabulary = _toml(VOCABULARY_FILE)
    shared = _toml(RULES_FILE)["emails"]["shared_local_parts"]
    locals_ = []
    for path, value, truth in _fields(wide_sheets, "email"):
        local, _at, domain = value.partition("@")
        assert domain not in vocabulary["mail_domains"] and domain not in generator.FREE_MAIL
        assert re.fullmatch(r"[a-z0-9]+([._-]+[a-z0-9]+)*", local), value  # valid: no separator at either end
        assert local not in shared
        assert path in out_of_lists(truth)
        locals_.append(local)
    for sep in "._-":
        assert any(sep in x for x in locals_)
    assert any(x[0].isdigit() for x in locals_) and any(x[-1].isdigit() for x in locals_)
    assert any(re.search(r"[a-z]\d+[a-z]", x) or re.search(r"\d[._-]", x) for x in locals_)


def test_wide_values_are_the_same_for_a_seed() -> None:
    a = [s.truth for s in invent_set(random.Random(3), values=WideValues())]
    b = [s.truth for s in invent_set(random.Random(3), values=WideValues())]
    assert a == b


def test_a_wide_labelled_set_says_so_and_keeps_its_values_in_other_fonts(tmp_path: Path) -> None:
    kw = {"channels": ("typed_pdf",), "values": "wide"}
    fit = make_labelled_set(tmp_path / "fit", 2, seed=8, **kw)
    again = make_labelled_set(tmp_path / "again", 2, seed=8, **kw)
    heldout = make_labelled_set(tmp_path / "heldout", 2, seed=8, fonts="heldout", **kw)
    assert fit == again
    for t in fit:
        assert (tmp_path / "fit" / t["file"]).read_bytes() == (tmp_path / "again" / t["file"]).read_bytes()
    assert [t["fields"] for t in fit] == [t["fields"] for t in heldout]  # the same values, other fonts
    assert {t["font"] for t in fit} == {"ipaex-gothic"}
    assert {t["font"] for t in heldout} <= set(font_files("typed", "heldout"))
    for t in fit:
        assert t["values"] == "wide" and t["oov"] == out_of_lists(t["fields"])
        assert all(path in t["fields"] for path in t["oov"])
    assert any(t["oov"] for t in fit)
    sets = [json.loads(line) for line in (tmp_path / "heldout" / "sets.jsonl").read_text().splitlines()]
    assert all(s["values"] == "wide" and s["font"] in font_files("typed", "heldout") for s in sets)


def test_font_splits_do_not_overlap_and_embed_in_pdfs() -> None:
    for style in ("typed", "hand"):
        fit, heldout = set(font_files(style, "fit")), set(data("fonts")[style]["heldout"])
        assert not fit & heldout
    sheets = invent_set(random.Random(2), values=WideValues())
    for name, path in font_files("hand", "all").items():
        pdf = render_pdf(sheets[:1], wide_hand_style(random.Random(name), path))
        fonts = {str(f) for p in PdfReader(io.BytesIO(pdf)).pages
                 for f in p["/Resources"]["/Font"].values()}
        assert fonts, name


def test_romaji_of_readings() -> None:
    assert romaji("おおまめうだ") == "omameuda"
    assert romaji("さいとう", "keep") == "saitou" and romaji("さいとう", "h") == "saitoh"
    assert romaji("はっとり") == "hattori" and romaji("しょうた") == "shota"


def test_fax_halftone_mode_dithers_grey() -> None:
    """A grey area stays grey as dots on a dithered fax; thresholded it turns all black or all white."""
    page = np.full((2339, 1654), 255, np.uint8)
    page[800:1400, 300:1300] = 150
    clean = FaxParams(skew_deg=0, shift_mm=0, speckle=0, streak=0, noise=0, blur=0, threshold=(0.5, 0.5))
    for dither, lo, hi in ((0.0, 0.0, 0.01), (1.0, 0.2, 0.8)):
        params = dataclasses.replace(clean, dither=dither)
        tif = Image.open(io.BytesIO(fax_tiff([page], "fine", random.Random(1), params=params)))
        received = np.asarray(tif.convert("L")) < 128
        assert lo <= received[900:1300, 500:1100].mean() <= hi
        assert received[1500:2200, 200:1500].mean() < 0.001  # white paper stays white
