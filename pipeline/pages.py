"""Pages: what a received document is made of, as plain data the later stages can read.

A PDF page drawn by a program carries a text layer (glyphs with their boxes, vector shapes, placed
images); a scanned page, a fax or a photo is only an image. Both are a `Page`; readers and
classifiers choose by `page.kind`, so image reading plugs in without changing callers.
"""

from __future__ import annotations

import io
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from renraku.errors import BrokenInput, UnsupportedInput

Box = tuple[float, float, float, float]  # x0, top, x1, bottom (points, origin top-left)

MAX_PDF_PAGES = 50
# A page image covering this share of the page is a scan: any text on it is an OCR layer added by
# scanner software, not what the sender typed, so the page is read as an image.
SCAN_IMAGE_COVERAGE = 0.85


@dataclass(frozen=True)
class Glyph:
    text: str
    box: Box
    size: float

    @property
    def cx(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2


@dataclass(frozen=True)
class Shape:
    """A vector object: printed rules and boxes, or a mark someone drew (tick, circle, stamp)."""

    kind: Literal["rect", "line", "curve"]
    box: Box
    filled: bool = False


@dataclass
class TextLayer:
    glyphs: list[Glyph] = field(default_factory=list)
    shapes: list[Shape] = field(default_factory=list)
    images: list[Box] = field(default_factory=list)


@dataclass
class Page:
    number: int  # 1-based within the document
    width: float  # points
    height: float
    text_layer: TextLayer | None = None
    image: Any = None  # PageImage (pipeline/images.py) of a scanned, faxed or photographed page
    note: str = ""
    pdf: bytes | None = field(default=None, repr=False)  # an image-only PDF page, not rendered yet

    @property
    def kind(self) -> Literal["text", "image"]:
        return "text" if self.text_layer is not None else "image"

    def load_image(self) -> None:
        """Render an image-only PDF page where it is read, in a page worker: the batch's own process
        then neither spends the time (85 ms a page at 200 dpi) nor holds the pixels, and the workers
        are not left waiting while it renders every page of a scanned PDF. Raises BrokenInput."""
        if self.image is None and self.pdf is not None:
            from renraku.pipeline.images import render_pdf_page

            self.image, self.pdf = render_pdf_page(self.pdf, self.number - 1), None

    @property
    def pixel_bytes(self) -> int:
        """The bytes of the page's pixels, rendered or to be rendered (what a window of pages holds)."""
        if self.image is not None:
            return int(self.image.pixels.nbytes)
        if self.pdf is not None:
            from renraku.pipeline.images import PDF_DPI

            return round(self.width * PDF_DPI / 72) * round(self.height * PDF_DPI / 72)
        return 0


# ---------------------------------------------------------------------------------- PDF loading

def _is_visible(char: dict) -> bool:
    colour = char.get("non_stroking_color")
    # White text is not something a reader of the paper sees.
    return not (isinstance(colour, (tuple, list)) and len(colour) in (1, 3)
                and all(isinstance(c, (int, float)) and c >= 0.99 for c in colour))


def _box(obj: dict) -> Box:
    return (float(obj["x0"]), float(obj["top"]), float(obj["x1"]), float(obj["bottom"]))


def text_layer_of(plumber_page: Any) -> TextLayer:
    """The glyphs, shapes and images of a pdfplumber page as plain data."""
    glyphs = [
        Glyph(c["text"], _box(c), float(c.get("size") or (c["bottom"] - c["top"])))
        for c in plumber_page.chars
        if _is_visible(c)
    ]
    shapes = [Shape("rect", _box(r), bool(r.get("fill"))) for r in plumber_page.rects]
    shapes += [Shape("line", _box(ln)) for ln in plumber_page.lines]
    shapes += [Shape("curve", _box(c), bool(c.get("fill"))) for c in plumber_page.curves]
    images = [_box(i) for i in plumber_page.images]
    return TextLayer(glyphs, shapes, images)


def _covered_by_image(layer: TextLayer, width: float, height: float) -> bool:
    page_area = width * height
    return any((x1 - x0) * (bottom - top) >= SCAN_IMAGE_COVERAGE * page_area for x0, top, x1, bottom in layer.images)


def load_pdf(data: bytes, *, max_pages: int = MAX_PDF_PAGES) -> list[Page]:
    """Every page of a PDF; raises BrokenInput for files pdfplumber cannot open."""
    import pdfplumber
    from pdfminer.pdfdocument import PDFPasswordIncorrect

    try:
        pdf = pdfplumber.open(io.BytesIO(data))
    except Exception as exc:  # pdfminer raises many unrelated types on bad input; pdfplumber wraps them
        inner = next((c for c in (exc.__cause__, *exc.args) if isinstance(c, Exception)), exc)
        if isinstance(inner, PDFPasswordIncorrect):
            raise BrokenInput("パスワードで保護された PDF は読めません", code="encrypted") from exc
        raise BrokenInput(f"PDF として読めません（{type(inner).__name__}）", code="broken_pdf") from exc
    with pdf:
        try:
            count = len(pdf.pages)
        except Exception as exc:
            raise BrokenInput(f"PDF のページを数えられません（{type(exc).__name__}）",
                              code="broken_pdf") from exc
        if count == 0:
            raise BrokenInput("ページのない PDF です", code="empty_pdf")
        if count > max_pages:
            raise BrokenInput(f"ページ数が多すぎます（{count} ページ、上限 {max_pages}）",
                              code="too_many_pages")
        pages = []
        for plumber_page in pdf.pages:
            width, height = float(plumber_page.width), float(plumber_page.height)
            try:
                layer = text_layer_of(plumber_page)
            except Exception as exc:
                pages.append(Page(plumber_page.page_number, width, height,
                                  note=f"ページの内容を読めません（{type(exc).__name__}）"))
                continue
            if not layer.glyphs or _covered_by_image(layer, width, height):
                pages.append(Page(plumber_page.page_number, width, height, pdf=data))  # see Page.load_image
            else:
                pages.append(Page(plumber_page.page_number, width, height, text_layer=layer))
        return pages


def load_image_file(data: bytes, media_type: str) -> list[Page]:
    """Image files as image pages (one per frame of a multi-page TIFF), sizes in points."""
    from renraku.pipeline.images import load_image_pages

    pages = []
    for index, image in enumerate(load_image_pages(data, media_type)):
        h, w = image.pixels.shape
        dpi = image.dpi or 72.0
        pages.append(Page(index + 1, w * 72 / dpi, h * 72 / dpi, image=image))
    return pages


# ------------------------------------------------------------------------------- media types

PDF, TIFF, JPEG, PNG, EML = (
    "application/pdf", "image/tiff", "image/jpeg", "image/png", "message/rfc822",
)
IMAGE_TYPES = frozenset({TIFF, JPEG, PNG})


def sniff_media_type(data: bytes, name: str = "") -> str:
    """The type by content (file names lie, especially in mail); the name only for e-mail."""
    head = data[:4096]
    if head.lstrip(b"\r\n\t ").startswith(b"%PDF") or b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    for magic, media in _OTHER_MAGIC:
        if head.startswith(magic):
            return media
    if len(head) > 7 and head[2:5] == b"-lh" and head[6:7] == b"-":
        return "application/x-lzh-compressed"
    if name.lower().endswith(".eml") or _looks_like_mail(head):
        return EML
    return "application/octet-stream"


_OTHER_MAGIC = (
    (b"PK\x03\x04", "application/zip"),
    (b"\xd0\xcf\x11\xe0", "application/x-ole-storage"),
    (b"\x78\x9f\x3e\x22", "application/ms-tnef"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x1f\x8b", "application/gzip"),
)
# Why a type is not read, for the person who sees the record (and may ask the sender again).
UNSUPPORTED_REASONS = {
    "application/ms-tnef": "Outlook の TNEF 形式（winmail.dat）は開けません。PDF で送り直してもらってください",
    "application/zip": "圧縮ファイル・Office 文書は開きません。様式は PDF か画像で送ってもらってください",
    "application/vnd.rar": "圧縮ファイルは開きません。展開した PDF か画像で送ってもらってください",
    "application/x-7z-compressed": "圧縮ファイルは開きません。展開した PDF か画像で送ってもらってください",
    "application/x-lzh-compressed": "圧縮ファイルは開きません。展開した PDF か画像で送ってもらってください",
    "application/gzip": "圧縮ファイルは開きません。展開した PDF か画像で送ってもらってください",
    "application/x-ole-storage": "古い Office 形式の文書は読めません。PDF で送り直してもらってください",
}


_MAIL_HEADERS = {"from", "to", "subject", "date", "message-id", "mime-version", "received", "return-path",
                 "content-type", "delivered-to", "reply-to", "cc", "sender", "x-mailer"}


def _looks_like_mail(head: bytes) -> bool:
    """Header lines (`Name: value`) up to the first empty line, some of them mail's own."""
    lines = head.decode("latin-1", "replace").splitlines()
    if lines and lines[0].startswith("From "):  # an mbox separator line
        lines = lines[1:]
    names = set()
    for line in lines[:60]:
        if not line.strip():
            break
        if line[:1] in " \t":
            continue  # a folded continuation
        name, colon, _ = line.partition(":")
        if not colon or not re.fullmatch(r"[!-9;-~]+", name):
            return False
        names.add(name.lower())
    return len(names & _MAIL_HEADERS) >= 2


def load_pages(data: bytes, media_type: str) -> list[Page]:
    if media_type == PDF:
        return load_pdf(data)
    if media_type in IMAGE_TYPES:
        return load_image_file(data, media_type)
    reason = UNSUPPORTED_REASONS.get(media_type, "この形式のファイルは読み取りの対象外です")
    raise UnsupportedInput(f"{reason}（{media_type}）", code="unsupported_type")


# ------------------------------------------------------------------------- words and lines

@dataclass(frozen=True)
class Word:
    text: str
    box: Box
    glyphs: tuple[Glyph, ...]


def _cluster_lines(glyphs: Iterable[Glyph]) -> list[list[Glyph]]:
    lines: list[list[Glyph]] = []
    for g in sorted(glyphs, key=lambda g: (g.cy, g.box[0])):
        if lines:
            line = lines[-1]
            ref = statistics.median(x.cy for x in line)
            size = max(max(x.size for x in line), g.size)
            if abs(g.cy - ref) <= 0.4 * size:
                line.append(g)
                continue
        lines.append([g])
    return [sorted(line, key=lambda g: g.box[0]) for line in lines]


def lines_of(glyphs: Iterable[Glyph]) -> list[list[Glyph]]:
    """Glyphs grouped into text lines, top to bottom, each left to right."""
    return _cluster_lines(glyphs)


def words_of(glyphs: Iterable[Glyph], gap: float = 0.5) -> Iterator[Word]:
    """Words: runs of glyphs on a line without white space or a gap wider than `gap` × size."""
    for line in lines_of(glyphs):
        run: list[Glyph] = []
        for g in line:
            if not g.text.strip():
                if run:
                    yield _word(run)
                run = []
                continue
            if run and g.box[0] - run[-1].box[2] > gap * max(g.size, run[-1].size):
                yield _word(run)
                run = []
            run.append(g)
        if run:
            yield _word(run)


def _word(run: list[Glyph]) -> Word:
    return Word(
        "".join(g.text for g in run),
        (min(g.box[0] for g in run), min(g.box[1] for g in run),
         max(g.box[2] for g in run), max(g.box[3] for g in run)),
        tuple(run),
    )


def line_text(line: list[Glyph], gap: float = 0.5) -> str:
    """A line as text; a space where the PDF has one or where glyphs stand apart."""
    out: list[str] = []
    prev: Glyph | None = None
    for g in line:
        if not g.text.strip():
            if out and out[-1] != " ":
                out.append(" ")
            prev = None
            continue
        apart = prev is not None and g.box[0] - prev.box[2] > gap * max(g.size, prev.size)
        if apart and out and out[-1] != " ":
            out.append(" ")
        out.append(g.text)
        prev = g
    return "".join(out).strip()
