"""The benchmark reports values in and out of the reader's lists apart, and what repairs changed."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from renraku.bench.labelled import LabelledPage, changed_from_raw
from renraku.bench.run import RAW_FILE, score, split_rows


def _export(tmp_path: Path, fields: dict[str, tuple], raws: dict[str, str]) -> Path:
    out = tmp_path / "export"
    out.mkdir()
    sheet = {"sheet_id": "S1", "application_id": None, "form_id": "usage_application", "status": "ready",
             "source": {"channel": "scan", "file": "a.pdf", "page": 1, "sha256": "abc"},
             "fields": {p: {"value": v, "confidence": c, "needs_review": r, "method": "ocr"}
                        for p, (v, c, r) in fields.items()}}
    (out / "sheets.jsonl").write_text(json.dumps(sheet, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / RAW_FILE).write_text("".join(json.dumps({"sha256": "abc", "page": 1, "path": p, "raw": r, "note": ""},
                                                   ensure_ascii=False) + "\n" for p, r in raws.items()),
                                encoding="utf-8")
    return out


def test_in_and_out_of_vocabulary_fields_are_counted_apart(tmp_path: Path) -> None:
    truth = {"facility_name": "あすなろ眼科医院", "address": "栃木県那須町大字寺子1番地", "phone": "0287-11-2222",
             "representative_name": "佐藤花子", "contact_email": "hanako.sato@k-mobile.example.jp",
             "facility_type.clinic": True}
    page = LabelledPage("a.pdf", 1, "usage_application", "APP-001", "typed", "scan", truth, "a.pdf", "abc",
                        values="wide", oov={"facility_name": "kind", "address": "town",
                                            "contact_email": "local part"}, font="takao-pgothic")
    export = _export(tmp_path, {
        "facility_name": ("あすなろ歯科医院", 0.98, False),  # mended toward the list, accepted: the case
        "address": ("栃木県那須町大字寺子1番地", 0.97, False),
        "phone": ("0287-11-2222", 0.99, False),
        "representative_name": ("佐藤花子", 0.6, True),
        "contact_email": ("hanakosato@k-mobile.example.jp", 0.95, False),
        "facility_type.clinic": (True, 0.99, False),
    }, {"facility_name": "あすなろ眼科医院", "address": "栃木県那須町大字寺子1番地",
        "contact_email": "hanakosato@k-mobile.example.jp"})
    wrong: list[dict] = []
    by_field: dict = defaultdict(Counter)
    rows = {r["split"]: r for r in split_rows(score([page], export, wrong, by_field))}
    assert rows["oov"]["fields"] == 3 and rows["oov"]["auto_fields"] == 3 and rows["oov"]["auto_wrong"] == 2
    assert rows["oov"]["changed_auto"] == 1 and rows["oov"]["changed_auto_wrong"] == 1  # the mended kind
    assert rows["in"]["fields"] == 2 and rows["in"]["stp"] == 0.5 and rows["in"]["auto_precision"] == 1.0
    assert {(w["path"], w["split"], w["value"]) for w in wrong} == {
        ("facility_name", "oov", "あすなろ歯科医院"), ("contact_email", "oov", "hanakosato@k-mobile.example.jp")}
    assert by_field[("typed", "oov", "facility_name")] == Counter(fields=1, auto=1, wrong=1)
    assert by_field[("typed", "oov", "address")] == Counter(fields=1, ok=1, auto=1)
    assert by_field[("typed", "in", "name")] == Counter(fields=1, ok=1)  # the representative, sent to review
    assert by_field[("typed", "oov", "font:takao-pgothic")] == Counter(fields=3, ok=1, auto=3, wrong=2)


def test_an_unlabelled_set_has_no_split(tmp_path: Path) -> None:
    page = LabelledPage("a.pdf", 1, "usage_application", "S", "typed", "scan", {"facility_name": "x"}, "a.pdf", "abc")
    export = _export(tmp_path, {"facility_name": ("x", 0.99, False)}, {})
    assert split_rows(score([page], export)) == []


def test_changed_from_raw_ignores_normalisation() -> None:
    assert not changed_from_raw("staff[1].name_kana", "さとう はなこ", "サトウ ハナコ")
    assert not changed_from_raw("contact_email", "a.b@x.jp", "A.B@x.jp ")
    assert changed_from_raw("staff[1].email", "a_b@x.jp", "a.b@x.jp")
    assert not changed_from_raw("facility_type.clinic", True, "0.412")


def test_fields_holding_a_character_no_ocr_model_has_are_counted_apart(tmp_path: Path) -> None:
    from renraku.bench.charset import beyond, model_characters

    chars = model_characters(frozenset({"jpn", "Japanese"}))
    assert beyond("宇梶 一颯", chars) == "颯" and beyond("栃木県宇都宮市", chars) == ""  # 颯: in no model
    truth = {"representative_name": "宇梶 一颯", "contact_name": "佐藤花子", "address": "栃木県那須町1番地"}
    page = LabelledPage("a.pdf", 1, "usage_application", "APP-001", "typed", "scan", truth, "a.pdf", "abc",
                        values="wide", oov={"representative_name": "surname", "contact_name": "surname",
                                            "address": "town"})
    export = _export(tmp_path, {"representative_name": ("宇梶 一編", 0.5, True),
                                "contact_name": ("佐藤花子", 0.9, False), "address": ("栃木県那須町1番地", 0.5, True)},
                     {})
    oov = split_rows(score([page], export, model_chars=chars))[0]
    assert oov["fields"] == 3 and oov["beyond_model"] == 1
    assert oov["field_accuracy"] == 2 / 3 and oov["readable_accuracy"] == 1.0
