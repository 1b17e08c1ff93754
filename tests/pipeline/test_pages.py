"""Loading pages: media types by content, broken and encrypted files, limits."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from renraku.errors import BrokenInput, UnsupportedInput
from renraku.pipeline import pages
from renraku.pipeline.read import ReadContext
from renraku.samples.generator import FORMS_DIR


def _tiff(frames: int, dpi: tuple[int, int] = (204, 196)) -> bytes:
    imgs = [Image.new("1", (1728, 1100), 1) for _ in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "TIFF", save_all=True, append_images=imgs[1:], compression="group4", dpi=dpi)
    return buf.getvalue()


@pytest.mark.parametrize(("data", "name", "media"), [
    (b"%PDF-1.4\n...", "scan.bin", pages.PDF),
    (b"\r\n%PDF-1.7\n", "x", pages.PDF),
    (b"II*\x00....", "fax", pages.TIFF),
    (b"MM\x00*....", "fax", pages.TIFF),
    (b"\xff\xd8\xff\xe0....", "photo.png", pages.JPEG),  # the name lies, the bytes do not
    (b"\x89PNG\r\n\x1a\n....", "x.jpg", pages.PNG),
    (b"PK\x03\x04....", "guide.docx", "application/zip"),
    (b"From: a@example.jp\r\nTo: b@example.jp\r\nSubject: x\r\n\r\nbody", "noext", pages.EML),
    (b"anything", "mail.eml", pages.EML),
    (b"hello", "notes.txt", "application/octet-stream"),
])
def test_media_type_is_sniffed_from_content(data: bytes, name: str, media: str) -> None:
    assert pages.sniff_media_type(data, name) == media


def test_a_text_pdf_has_text_pages() -> None:
    loaded = pages.load_pdf((FORMS_DIR / "application_set_blank.pdf").read_bytes())
    assert [(p.number, p.kind) for p in loaded] == [(1, "text"), (2, "text"), (3, "text")]
    assert loaded[0].width == pytest.approx(595.28, abs=0.01)


def test_a_truncated_pdf_is_broken_not_a_crash() -> None:
    data = (FORMS_DIR / "form2_facility_pledge.pdf").read_bytes()
    with pytest.raises(BrokenInput):
        pages.load_pdf(data[: len(data) // 3].replace(b"%%EOF", b""))


def test_garbage_claiming_to_be_pdf_is_broken() -> None:
    with pytest.raises(BrokenInput):
        pages.load_pdf(b"%PDF-1.4\n" + b"\x00garbage" * 100)


def test_an_encrypted_pdf_is_refused_with_a_reason() -> None:
    writer = PdfWriter(clone_from=PdfReader(FORMS_DIR / "form2_facility_pledge.pdf"))
    writer.encrypt(user_password="secret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(BrokenInput) as err:
        pages.load_pdf(buf.getvalue())
    assert err.value.code == "encrypted" and "パスワード" in err.value.reason


def test_too_many_pages_is_refused() -> None:
    writer = PdfWriter()
    for _ in range(pages.MAX_PDF_PAGES + 1):
        writer.add_blank_page(595, 842)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(BrokenInput, match="ページ数"):
        pages.load_pdf(buf.getvalue())


def test_a_multi_page_fax_tiff_has_one_page_per_frame() -> None:
    loaded = pages.load_pages(_tiff(3), pages.TIFF)
    assert [p.kind for p in loaded] == ["image"] * 3
    # 1728 px at 204 dpi is a sheet of A4 width in points
    assert loaded[0].width == pytest.approx(1728 * 72 / 204, rel=0.01)


def test_an_unsupported_type_says_so() -> None:
    with pytest.raises(UnsupportedInput, match="開きません"):
        pages.load_pages(b"PK\x03\x04", "application/zip")


def test_words_and_lines_follow_the_page() -> None:
    page, = pages.load_pdf((FORMS_DIR / "form2_facility_pledge.pdf").read_bytes())
    words = [w.text for w in pages.words_of(page.text_layer.glyphs)]
    assert words[:2] == ["別紙様式2", "施設又は組織誓約書"]
    assert "代表者" in words and "印" in words


def test_a_scanned_pdf_page_is_rendered_where_it_is_read_and_counted_before() -> None:
    from tests.helpers import image_only_pdf

    page, = pages.load_pdf(image_only_pdf())
    assert page.kind == "image" and page.image is None  # the batch's own process renders nothing
    expected = page.pixel_bytes  # what a window counts for it before it is rendered
    page.load_image()
    assert page.image.pixels.nbytes == expected and page.image.pixels.min() == 255


def test_a_pdf_page_that_cannot_be_rendered_is_unknown_with_the_reason(read_ctx: ReadContext) -> None:
    from renraku.pipeline.classify import classify

    page = pages.Page(1, 595.0, 842.0, pdf=b"%PDF-1.4\nnot really a pdf")
    result = classify(page, read_ctx.templates, read_ctx.config)
    assert result.form_id == "unknown" and result.method == "none" and "画像にできません" in result.reason
