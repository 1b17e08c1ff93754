"""The picture of a page that the review desk shows beside the fields read from it."""

from __future__ import annotations

from renraku.errors import InputError
from renraku.pipeline.read import DocumentResult, PageResult

MAX_SIDE = 2400  # a photo is shown at most this large


def page_png(doc: DocumentResult, page: PageResult, dpi: int) -> bytes | None:
    """Image pages read against a template: the sheet in template space (the boxes' coordinates),
    encoded by the page's worker. Text pages: the PDF page rendered at `dpi`. Other image pages:
    the page as received."""
    import cv2

    from renraku.pipeline.images import load_image_pages, render_pdf_page
    from renraku.pipeline.pages import IMAGE_TYPES, PDF

    if page.picture_png is not None:
        return page.picture_png
    try:
        if doc.media_type == PDF:
            pixels = render_pdf_page(doc.data, page.number - 1, dpi).pixels
        elif doc.media_type in IMAGE_TYPES:
            pixels = load_image_pages(doc.data, doc.media_type)[page.number - 1].pixels
            scale = MAX_SIDE / max(pixels.shape)
            if scale < 1:
                pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            return None
    except (InputError, IndexError):
        return None
    ok, png = cv2.imencode(".png", pixels)
    return png.tobytes() if ok else None
