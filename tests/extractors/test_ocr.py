"""Crops read stacked and alone: few Tesseract calls, each crop gets its own text, as the command reads it."""

from __future__ import annotations

import numpy as np
import pytest

from renraku.config import Settings
from renraku.errors import ConfigError
from renraku.extractors import glyphs, ocr
from renraku.extractors.fields import reading_config
from renraku.extractors.image_reader import ImageReader, vocabulary


def _line(text: str, size: int = 34) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(glyphs.gothic_font(), size)
    image = Image.new("L", (size * (len(text) + 1), size * 2), 255)
    ImageDraw.Draw(image).text((size // 2, size // 3), text, font=font, fill=0)
    return np.asarray(image)


def test_stacked_and_alone_readings_keep_crops_apart(monkeypatch) -> None:
    calls = []
    real = ocr._tesseract

    def counting(images, setting):
        calls.append(len(images))
        return real(images, setting)
    monkeypatch.setattr(ocr, "_tesseract", counting)
    crops = {"address": _line("栃木県宇都宮市本町"), "job": _line("看護師")}
    found = ocr.read(crops, ocr.Setting("jpn", "jpn"), ["plain", "plain/alone"])
    assert sum(calls) == 3  # one canvas with both crops, and each crop on its own
    assert [r.text for r in found["address"]] == ["栃木県宇都宮市本町"] * 2
    assert [r.text for r in found["job"]] == ["看護師"] * 2


def test_a_digit_tesseract_nearly_read_as_another_has_a_rival() -> None:
    """An 0 with a faint 8 over it is read 8 at 80 (a confident word): the score Tesseract gave the
    other digit in that place tells it; the words read are the same with or without asking."""
    from PIL import Image, ImageDraw, ImageFont

    clean = _line("0289-95-8051")
    image = Image.fromarray(clean.copy())
    draw, font = ImageDraw.Draw(image), ImageFont.truetype(glyphs.gothic_font(), 34)
    draw.text((17 + draw.textlength("0289-95-8", font=font), 34 // 3), "8", font=font, fill=170)
    asking = ocr.Setting("digits", "Japanese", 7, "0123456789-", choices=True)
    plain = ocr.Setting("digits", "Japanese", 7, "0123456789-")
    for crop in (clean, np.asarray(image)):
        with_rival, without = (ocr.read({"x": crop}, s)["x"][0] for s in (asking, plain))
        assert [(w.text, w.conf, w.box) for w in with_rival.words] == [(w.text, w.conf, w.box) for w in without.words]
        assert without.rival == 0.0
    assert ocr.read({"x": clean}, asking)["x"][0].rival < 40
    smeared = ocr.read({"x": np.asarray(image)}, asking)["x"][0]
    assert smeared.text == "0289-95-8851" and smeared.mean_conf > 0.6 and smeared.rival >= 40


def test_an_unknown_variant_in_the_reading_configuration_is_refused_by_name(templates) -> None:
    config = reading_config(Settings().reading_config)
    config = {**config, "image": {**config["image"], "escalation": [{"variants": ["plain/alone", "larg"]}]}}
    with pytest.raises(ConfigError, match="larg"):
        ImageReader(templates[0], config, vocabulary())


def test_a_missing_ocr_model_is_named_with_its_package(templates, monkeypatch) -> None:
    monkeypatch.setattr(ocr, "installed_langs", lambda: frozenset({"jpn", "eng", "osd"}))
    with pytest.raises(ConfigError, match="tesseract-ocr-script-jpan"):
        ImageReader(templates[0], reading_config(Settings().reading_config), vocabulary())


def test_a_word_made_tall_by_a_speck_above_it_stays_in_its_place() -> None:
    words = [ocr.Word("けやき", 90, (5, 38, 82, 63)), ocr.Word("ディ", 94, (93, 36, 138, 63)),
             ocr.Word("サー", 88, (152, 1, 202, 63)),  # a speck above サ: its box reaches the top
             ocr.Word("ビス", 87, (211, 36, 259, 62)), ocr.Word("センター", 96, (266, 38, 376, 63))]
    assert ocr._join(words, spaced=False) == "けやきディサービスセンター"
    two_lines = [ocr.Word("栃木県宇都宮市", 90, (0, 0, 200, 25)), ocr.Word("本町ビル", 90, (0, 40, 110, 64))]
    assert ocr._join(two_lines, spaced=False) == "栃木県宇都宮市 本町ビル"


def test_a_doubtful_crop_is_read_again_until_its_readings_agree_and_no_further(templates) -> None:
    from renraku.extractors.escalation import ocr_prepared
    from renraku.extractors.image_reader import PreparedPage

    reader = ImageReader(next(t for t in templates if t.form_id == "staff_registration"),
                         reading_config(Settings().reading_config), vocabulary())
    speckles = np.where(np.random.default_rng(1).random((40, 200)) < 0.15, 0, 255).astype(np.uint8)
    small = np.where(_line("介護支援専門員", 14) < 128, 120, 255).astype(np.uint8)  # small print: doubted
    page = PreparedPage("staff_registration", "scan", b"")
    page.crops = {"jpn": {"staff[1].job": _line("看護師"), "staff[2].job": small},
                  "email": {"staff[3].email": speckles}}
    found = ocr_prepared([(reader, page)])[0]
    stage = [len(s.variants) + len(s.other_models) for s in reader.stages]  # jpn has another model, e-mail not
    assert len(reader.stages) >= 2 and reader.stages[0].settled
    assert [r.text for r in found["staff[1].job"]] == ["看護師"]  # sure at once: read once
    assert len(found["staff[2].job"]) == 1 + stage[0]  # doubtful, then agreed: no later stage
    assert reader.settled("staff[2].job", found["staff[2].job"], 0)
    assert len(found["staff[3].email"]) == 1 + sum(len(s.variants) for s in reader.stages)  # never agreed


def test_a_confident_name_is_read_once_more_to_confirm_it_without_changing_other_crops(templates, monkeypatch) -> None:
    from renraku.extractors.escalation import ocr_prepared
    from renraku.extractors.image_reader import PreparedPage

    reader = ImageReader(next(t for t in templates if t.form_id == "staff_registration"),
                         reading_config(Settings().reading_config), vocabulary())
    assert "name" in reader.read_again_kinds
    small = np.where(_line("介護支援専門員", 14) < 128, 120, 255).astype(np.uint8)  # doubted

    def read(crops: dict) -> tuple[dict, list]:
        page = PreparedPage("staff_registration", "scan", b"")
        page.crops = {"jpn": crops}
        asked: list = []
        real = ocr.read_requests
        monkeypatch.setattr(ocr, "read_requests", lambda rs, w=1: asked.extend(rs) or real(rs, w))
        found = ocr_prepared([(reader, page)])[0]
        monkeypatch.setattr(ocr, "read_requests", real)
        return found, asked

    alone, _ = read({"staff[2].job": small})
    found, asked = read({"staff[2].job": small, "staff[1].name": _line("池田和子")})
    confirming = sum(len(variants) for _s, variants in reader.confirmation(reader.settings_by_name["jpn"]))
    assert found["staff[1].name"][0].text == "池田和子" and found["staff[1].name"][0].min_conf >= reader.escalate_below
    assert confirming and len(found["staff[1].name"]) == 1 + confirming  # confirmed or not: read no more
    # read again on canvases of their own (the plain reading of a page shares one): the doubtful
    # crop's readings are those it has without the name
    assert {"staff[1].name", "staff[2].job"} <= set(asked[0].crops)
    assert not any({"staff[1].name", "staff[2].job"} <= set(r.crops) for r in asked[1:])
    assert [r.text for r in found["staff[2].job"]] == [r.text for r in alone["staff[2].job"]]


def _cli_words(path: str, setting: ocr.Setting) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    """What the tesseract command itself gives for an image (TSV; confidence to a whole number, as the
    calibration was fitted on), to hold the API to it."""
    import csv
    import subprocess

    command = ["tesseract", path, "stdout", "-l", setting.lang, *setting.config().split(), "tsv"]
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin"})
    rows = csv.DictReader(out.stdout.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    words = []
    for r in rows:
        if r["text"] and r["text"].strip() and float(r["conf"]) >= 0:
            x, y = int(r["left"]), int(r["top"])
            box = (x, y, x + int(r["width"]), y + int(r["height"]))
            words.append((r["text"].strip(), float(int(float(r["conf"]))), box))
    return words


def test_the_loaded_model_reads_what_the_tesseract_command_reads_and_forgets_the_last_whitelist(tmp_path) -> None:
    import cv2

    images = {"address": _line("栃木県宇都宮市本町2-5"), "phone": _line("028-622-0111")}
    paths = {k: str(tmp_path / f"{k}.pgm") for k in images}
    for k, pixels in images.items():
        cv2.imwrite(paths[k], cv2.copyMakeBorder(pixels, 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=255))
    digits = ocr.Setting("digits", "jpn", whitelist="0123456789-")
    free = ocr.Setting("jpn", "jpn")
    for setting, key in ((free, "address"), (digits, "phone"), (free, "address")):  # the same engine each time
        api = [(w.text, w.conf, w.box) for _i, w in ocr._tesseract([paths[key]], setting)]
        assert api == _cli_words(paths[key], setting)
    assert "栃木" in "".join(w.text for _i, w in ocr._tesseract([paths["address"]], free))  # no digits-only left over


def test_readings_are_the_same_whether_one_or_two_calls_run_at_once() -> None:
    crops = {f"c{i}": _line(text) for i, text in enumerate(["看護師", "宇都宮市", "介護支援専門員", "薬剤師"] * 3)}
    requests = [ocr.Request(ocr.Setting("jpn", "jpn"), crops, ("plain", "plain/alone")),
                ocr.Request(ocr.Setting("Japanese", "Japanese"), crops, ("plain",))]
    one = ocr.read_requests(requests, workers=1)
    for _ in range(3):
        assert [{k: [r.text for r in rs] for k, rs in found.items()} for found in ocr.read_requests(requests, 2)] \
            == [{k: [r.text for r in rs] for k, rs in found.items()} for found in one]


def test_a_separator_lost_unread_leaves_a_gap_between_two_letters_of_the_address() -> None:
    email = ocr.Setting("email", "eng", whitelist="abcdefghijklmnopqrstuvwxyz0123456789@._-", spaced=True,
                        symbols=True)
    found = ocr.read({"lost": _line("aoi takahashi@sano.example.org"),  # where a faint hyphen was
                      "whole": _line("aoitakahashi@sano.example.org"),
                      "dotted": _line("aoi.takahashi@sano.example.org")}, email)
    gaps = {k: ocr.widest_letter_gap(rs[0]) for k, rs in found.items()}
    assert gaps["lost"] > 2.5 > max(gaps["whole"], gaps["dotted"]), gaps
