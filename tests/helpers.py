"""Small builders for test PDFs: a blank sheet with arbitrary marks and text put on it."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from pypdf import PdfReader, PdfWriter, Transformation

from renraku.samples.generator import FORMS_DIR, _font

BLANKS = {
    "usage_application": "form1_usage_application.pdf",
    "staff_registration": "form1b_staff_registration.pdf",
    "facility_pledge": "form2_facility_pledge.pdf",
    "staff_change": "form3_staff_change.pdf",
}


def draw_on_blank(form_id: str, draw: Callable, *, shift: tuple[float, float] = (0, 0)) -> bytes:
    """The blank sheet with whatever `draw(canvas, top_to_y, font)` puts on it, as a PDF."""
    from reportlab.pdfgen import canvas

    reader = PdfReader(FORMS_DIR / BLANKS[form_id])
    width, height = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(width, height))
    draw(c, lambda top: height - top, _font())
    c.showPage()
    c.save()
    writer = PdfWriter()
    page = writer.add_page(reader.pages[0])
    page.merge_page(PdfReader(io.BytesIO(buf.getvalue())).pages[0])
    if shift != (0, 0):
        page.add_transformation(Transformation().translate(shift[0], -shift[1]))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def text_pdf(lines: list[str]) -> bytes:
    """A plain page of text (a cover letter, a stray page)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.setFont(_font(), 12)
    for i, line in enumerate(lines):
        c.drawString(60, A4[1] - 80 - 24 * i, line)
    c.showPage()
    c.save()
    return buf.getvalue()


def image_only_pdf(path: Path | None = None) -> bytes:
    """A scanner's PDF: one page that is only a picture."""
    from PIL import Image
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    img = Image.new("L", (827, 1169), 255)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.drawImage(ImageReader(img), 0, 0, A4[0], A4[1])
    c.showPage()
    c.save()
    data = buf.getvalue()
    if path:
        path.write_bytes(data)
    return data
