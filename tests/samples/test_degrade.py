"""The labelled image documents look to a reader the way the real channels' files do."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from pypdf import PdfReader

from renraku.samples.degrade import (
    FaxParams,
    PhotoParams,
    ScanParams,
    expected_issues,
    fax_header,
    fax_tiff,
    make_labelled_set,
    photo_jpeg,
    render_pages,
    scan_pdf,
    scan_png,
)
from renraku.samples.generator import (
    FilledSheet,
    Style,
    available_hand_fonts,
    hand_style,
    invent_change,
    invent_set,
    render_pdf,
)

A4_RATIO = 297 / 210
CLEAN_FAX = FaxParams(skew_deg=0, shift_mm=0, speckle=0, streak=0, noise=0)
SMALL_PHOTO = PhotoParams(sizes=((600, 800),))
STILL_PHOTO = PhotoParams(sizes=((600, 800),), light=0, vignette=0, shadow=0, rotate_deg=0, perspective=0,
                          orientation=1.0)


@pytest.fixture(scope="module")
def sheets() -> list:
    return invent_set(random.Random(11))


@pytest.fixture(scope="module")
def pages(sheets: list) -> list[np.ndarray]:
    return render_pages(render_pdf(sheets), dpi=200)


def a4_page(marks: list[tuple[int, int, int, int]], dpi: int = 200) -> np.ndarray:
    """A white A4 page at dpi with black rectangles (x0, y0, x1, y1 in pixels)."""
    page = np.full((round(297 / 25.4 * dpi), round(210 / 25.4 * dpi)), 255, np.uint8)
    for x0, y0, x1, y1 in marks:
        page[y0:y1, x0:x1] = 0
    return page


def black_box(img: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(img < 128)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_render_pages_gives_a4_grayscale(pages: list[np.ndarray]) -> None:
    assert len(pages) == 3
    for page in pages:
        assert page.dtype == np.uint8 and page.ndim == 2
        assert page.shape[0] / page.shape[1] == pytest.approx(A4_RATIO, rel=0.01)
        assert page.mean() > 200  # white paper, black print


@pytest.mark.parametrize(("mode", "compression", "lines", "rows"),
                         [("fine", "group4", 196, 2292), ("standard", "group3", 98, 1146)])
def test_fax_tiff_is_a_multipage_ccitt_tiff_with_fax_resolution(pages: list[np.ndarray], mode: str,
                                                                compression: str, lines: int, rows: int) -> None:
    data = fax_tiff(pages, mode, random.Random(1), "FAX 0282-35-0725 2025/07/31 08:23", compression=compression)
    tif = Image.open(io.BytesIO(data))
    assert tif.format == "TIFF" and tif.n_frames == len(pages)
    for k in range(tif.n_frames):
        tif.seek(k)
        assert tif.mode == "1"
        assert tif.size == (1728, rows)
        assert tif.info["compression"] == compression
        assert tif.info["dpi"] == (204, lines)
        assert tif.tag_v2[262] == 0  # WhiteIsZero, as fax servers write
        assert np.asarray(tif.convert("L")).mean() > 200  # and still white paper, not inverted


def test_fax_resampled_to_square_pixels_is_an_a4_page_with_square_shapes() -> None:
    page = a4_page([(500, 900, 1100, 1500)])  # a 3-inch square at 200 dpi
    tif = Image.open(io.BytesIO(fax_tiff([page], "standard", random.Random(2), params=CLEAN_FAX)))
    xdpi, ydpi = tif.info["dpi"]
    square = tif.convert("L").resize((tif.width, round(tif.height * xdpi / ydpi)), Image.Resampling.BILINEAR)
    assert square.height / xdpi * 25.4 == pytest.approx(297, abs=2)  # the page is A4 long
    assert square.width / xdpi * 25.4 == pytest.approx(215, abs=1)  # on the fax's 215 mm scan line
    x0, y0, x1, y1 = black_box(np.asarray(square))
    assert (x1 - x0) == pytest.approx(3 * xdpi, rel=0.02)
    assert (y1 - y0) / (x1 - x0) == pytest.approx(1, abs=0.03)


def test_fax_header_line_is_printed_at_the_top_of_every_page() -> None:
    blank = [a4_page([]), a4_page([])]
    header = fax_header(random.Random(3), dt.datetime(2025, 7, 31, 8, 23), "0282-35-0725", "すずらん調剤薬局")
    with_header = Image.open(io.BytesIO(fax_tiff(blank, "fine", random.Random(4), header, params=CLEAN_FAX)))
    without = Image.open(io.BytesIO(fax_tiff(blank, "fine", random.Random(4), None, params=CLEAN_FAX)))
    for k in range(2):
        with_header.seek(k)
        without.seek(k)
        top = np.asarray(with_header.convert("L"))[:60]
        assert (top < 128).sum() > 200
        assert (np.asarray(without.convert("L")) < 128).sum() == 0
        assert (np.asarray(with_header.convert("L"))[60:] < 128).sum() == 0  # nothing but the header line


def test_scan_pdf_is_image_only_a4_with_one_image_per_page(pages: list[np.ndarray]) -> None:
    for bilevel, filt in ((0.0, "/DCTDecode"), (1.0, "/CCITTFaxDecode")):
        data = scan_pdf(pages[:2], random.Random(5), params=ScanParams(bilevel=bilevel))
        reader = PdfReader(io.BytesIO(data))
        assert len(reader.pages) == 2
        for page in reader.pages:
            assert page.extract_text().strip() == ""
            assert float(page.mediabox.width) == pytest.approx(595.3, abs=1)
            assert float(page.mediabox.height) == pytest.approx(841.9, abs=1)
            images = list(page["/Resources"]["/XObject"].values())
            assert len(images) == 1
            found = images[0].get_object()["/Filter"]
            assert [str(f) for f in (found if isinstance(found, list) else [found])] == [filt]
        back = render_pages(data, dpi=72)
        assert all(img.mean() > 180 for img in back)  # white paper, not inverted


def test_scan_png_is_gray_a4_with_its_resolution(pages: list[np.ndarray]) -> None:
    img = Image.open(io.BytesIO(scan_png(pages[0], random.Random(6))))
    assert img.format == "PNG" and img.mode == "L"
    dpi = round(img.info["dpi"][0])
    assert dpi in (200, 300)
    assert img.width / dpi * 25.4 == pytest.approx(210, abs=1)
    assert img.height / img.width == pytest.approx(A4_RATIO, rel=0.01)


@pytest.mark.parametrize("orientation", [6, 3])
def test_photo_with_exif_orientation_turns_upright_with_exif_transpose(orientation: int) -> None:
    page = a4_page([(0, 0, 1654, 470)])  # the top fifth of the sheet is black
    params = PhotoParams(**{**STILL_PHOTO.__dict__, "orientations": (orientation,)})
    img = Image.open(io.BytesIO(photo_jpeg(page, random.Random(7), params=params)))
    assert img.format == "JPEG"
    assert img.getexif()[0x0112] == orientation
    if orientation == 6:
        assert img.width > img.height  # stored sideways: a reader ignoring EXIF sees it on its side
    upright = np.asarray(ImageOps.exif_transpose(img).convert("L"), dtype=np.float32)
    assert upright.shape == (800, 600)
    middle = upright[:, 200:400]
    assert middle[:400].mean() < middle[400:].mean() - 20  # the black band is at the top again


def test_photo_is_a_jpeg_of_the_sheet_on_a_darker_table(pages: list[np.ndarray]) -> None:
    img = Image.open(io.BytesIO(photo_jpeg(pages[0], random.Random(8), params=SMALL_PHOTO)))
    upright = np.asarray(ImageOps.exif_transpose(img).convert("L"), dtype=np.float32)
    h, w = upright.shape
    assert (w, h) == (600, 800)
    assert upright[h // 3:2 * h // 3, w // 3:2 * w // 3].mean() > upright[:, :8].mean() + 40


def test_degradations_are_deterministic_for_a_seed(pages: list[np.ndarray]) -> None:
    low = ScanParams(dpis=(100,))
    makers = [
        lambda rng: fax_tiff(pages[:1], "fine", rng, "FAX {page}/{pages}"),
        lambda rng: scan_pdf(pages[:1], rng, params=low),
        lambda rng: scan_png(pages[0], rng, params=low),
        lambda rng: photo_jpeg(pages[0], rng, params=SMALL_PHOTO),
    ]
    for make in makers:
        assert make(random.Random(9)) == make(random.Random(9))
        assert make(random.Random(9)) != make(random.Random(10))


def _hashes(set_dir: Path, ref: str) -> str:
    if "#" in ref:
        eml, name = ref.split("#", 1)
        msg = email.message_from_bytes((set_dir / eml).read_bytes(), policy=email.policy.default)
        parts = {p.get_filename(): p.get_payload(decode=True) for p in msg.walk() if p.get_filename()}
        return hashlib.sha256(parts[name]).hexdigest()
    return hashlib.sha256((set_dir / ref).read_bytes()).hexdigest()


def _page_count(data: bytes) -> int:
    if data[:4] == b"%PDF":
        return len(PdfReader(io.BytesIO(data)).pages)
    return getattr(Image.open(io.BytesIO(data)), "n_frames", 1)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("labelled")
    truth = make_labelled_set(out, 5, seed=3, email_share=1.0, photo=SMALL_PHOTO)
    return out, truth


def test_labelled_set_truth_names_every_page_of_the_written_files(labelled: tuple[Path, list[dict]]) -> None:
    out, truth = labelled
    lines = [json.loads(line) for line in (out / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == truth
    assert {t["degrade"] for t in truth} == {"typed_pdf", "scan", "fax_fine", "fax_standard", "photo"}
    by_file: dict[str, list[int]] = {}
    for t in truth:
        # the dev set's keys, and what issue 18 added: the value source, the font, the fields outside the lists
        assert set(t) == {"file", "page", "form_id", "set_id", "style", "degrade", "fields", "values", "font", "oov"}
        assert t["values"] == "usual" and t["oov"] == {}
        by_file.setdefault(t["file"], []).append(t["page"])
    keys = set()
    for ref, page_numbers in by_file.items():
        sha = _hashes(out, ref)
        if "#" in ref:
            eml, name = ref.split("#", 1)
            msg = email.message_from_bytes((out / eml).read_bytes(), policy=email.policy.default)
            data = next(p.get_payload(decode=True) for p in msg.walk() if p.get_filename() == name)
        else:
            data = (out / ref).read_bytes()
        assert page_numbers == list(range(1, _page_count(data) + 1))  # every page, in order, once
        keys |= {(sha, n) for n in page_numbers}
    assert len(keys) == len(truth)  # score.py matches pages by (sha256, page): no two alike


def test_labelled_set_sets_list_their_files(labelled: tuple[Path, list[dict]]) -> None:
    out, truth = labelled
    sets = [json.loads(line) for line in (out / "sets.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(sets) == 5
    assert len({s["set_id"] for s in sets}) == 5
    for s in sets:
        assert s["kind"] in ("new_facility", "staff_change")
        assert s["files"] == list(dict.fromkeys(t["file"] for t in truth if t["set_id"] == s["set_id"]))
        assert isinstance(s["expected_issues"], list)
        if s["degrade"] in ("fax_fine", "fax_standard"):
            assert s["email"] is None and all(f.startswith("files/") and f.endswith(".tif") for f in s["files"])
        else:  # email_share=1.0: everything else came by e-mail
            assert s["email"] and all(f.startswith(s["email"] + "#") for f in s["files"])


def test_labelled_set_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    a = make_labelled_set(tmp_path / "a", 2, seed=4, channels=("fax_standard", "typed_pdf"))
    b = make_labelled_set(tmp_path / "b", 2, seed=4, channels=("fax_standard", "typed_pdf"))
    assert a == b
    for t in a:
        assert (tmp_path / "a" / t["file"]).read_bytes() == (tmp_path / "b" / t["file"]).read_bytes()


def test_score_py_reads_a_labelled_set(labelled: tuple[Path, list[dict]], dev_set: Path, tmp_path: Path) -> None:
    """An export that reads every page right scores 100 % with the acceptance scorer."""
    out, truth = labelled
    sheets = []
    for n, t in enumerate(truth):
        fields = {k: {"value": v, "confidence": 1.0, "needs_review": False, "method": "human"}
                  for k, v in t["fields"].items()}
        sheets.append({"sheet_id": f"S{n}", "application_id": None, "form_id": t["form_id"], "status": "ready",
                       "source": {"channel": "scan", "file": t["file"], "page": t["page"],
                                  "sha256": _hashes(out, t["file"])}, "fields": fields})
    export = tmp_path / "export"
    export.mkdir()
    (export / "sheets.jsonl").write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in sheets),
                                         encoding="utf-8")
    dev_keys = set(json.loads((dev_set / "truth.jsonl").read_text(encoding="utf-8").splitlines()[0]))
    assert dev_keys <= set(truth[0])  # score.py reads the dev set's keys; the generator only adds some
    run = subprocess.run([sys.executable, str(dev_set.parent / "tools" / "score.py"), str(out), str(export)],
                         capture_output=True, text=True, check=True)
    summary = run.stdout.strip().splitlines()[-1]
    assert "missing=0" in summary and "class=100.00%" in summary and "field=100.00%" in summary


def test_hand_style_writes_with_a_handwriting_font_and_default_style_is_unchanged(sheets: list) -> None:
    if not available_hand_fonts():
        pytest.skip("no handwriting font installed (fonts-klee, fonts-kiloji, fonts-seto, fonts-yusei-magic)")

    def fonts(pdf: bytes) -> set[str]:
        names = set()
        for page in PdfReader(io.BytesIO(pdf)).pages:
            for font in page["/Resources"]["/Font"].values():
                names.add(str(font.get_object()["/BaseFont"]).split("+")[-1])
        return names

    typed = render_pdf(sheets)
    style = hand_style(random.Random(12))
    hand = render_pdf(sheets, style)
    assert Style() == Style(tick="✓", admin="○", seal="drawn", size=10.5, font="gothic", ink=None, jitter=0.0)
    assert render_pdf(sheets, Style(font="gothic")) == typed
    assert fonts(hand) - fonts(typed)  # a handwriting font the typed sheets do not use
    assert render_pdf(sheets, hand_style(random.Random(12))) == hand  # repeatable


def test_expected_issues_name_what_the_sheets_make_certain(sheets: list) -> None:
    usage, staff, pledge = (FilledSheet(s.form_id, dict(s.truth), dict(s.written)) for s in sheets)
    usage.truth["policy_agreed"] = True
    pledge.truth["seal"] = True
    assert expected_issues([usage, staff, pledge]) == []
    usage.truth["policy_agreed"] = False
    pledge.truth["seal"] = False
    assert expected_issues([usage, staff, pledge]) == [
        {"rule": "policy_not_agreed", "form_id": "usage_application", "field": "policy_agreed"},
        {"rule": "missing_seal", "form_id": "facility_pledge", "field": "seal"}]
    change = invent_change(random.Random(1))
    unknown = {"rule": "unknown_facility", "form_id": "staff_change", "field": "facility_name"}
    assert unknown in expected_issues([change])  # a labelled set has no registry
    assert unknown not in expected_issues([change], registered=True)


def test_sets_of_a_labelled_set_share_no_facility_and_no_address(tmp_path: Path) -> None:
    make_labelled_set(tmp_path, 12, seed=5, channels=("typed_pdf",))
    sets = [json.loads(line) for line in (tmp_path / "sets.jsonl").read_text(encoding="utf-8").splitlines()]
    truth = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len({s["facility_name"] for s in sets}) == 12
    addresses = [v for t in truth for k, v in t["fields"].items() if k.endswith("].email") and v]
    assert len(addresses) == len(set(addresses))
