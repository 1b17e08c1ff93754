"""The picture of a page that the review desk shows beside the fields read from it."""

from __future__ import annotations

import numpy as np

from renraku.errors import InputError
from renraku.pipeline.read import DocumentResult, PageResult

MAX_SIDE = 2400  # a photo is shown at most this large


def page_picture(doc: DocumentResult, page: PageResult, dpi: int) -> np.ndarray | None:
    """Text pages: the PDF page rendered at `dpi`. Image pages not read against a template: the page
    as received (those read against one come with their sheet in template space, `picture_png`)."""
    import cv2

    from renraku.pipeline.images import load_image_pages, render_pdf_page
    from renraku.pipeline.pages import IMAGE_TYPES, PDF

    try:
        if doc.media_type == PDF:
            return render_pdf_page(doc.data, page.number - 1, dpi).pixels
        if doc.media_type in IMAGE_TYPES:
            pixels = load_image_pages(doc.data, doc.media_type)[page.number - 1].pixels
            scale = MAX_SIDE / max(pixels.shape)
            if scale < 1:
                pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            return pixels
    except (InputError, IndexError):
        return None
    return None
