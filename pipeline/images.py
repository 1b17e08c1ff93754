"""Image pages: scans, faxes and photos as grayscale arrays with their true resolution.

Faxes come at 204×196 or 204×98 dpi (pixels twice as tall as wide in "standard" mode): they are
resampled to square pixels using the resolution tags, or every circle would be an ellipse to the
readers. Photos are turned upright by their EXIF orientation. Files too large to be a sheet
(decompression bombs) or with too many pages are refused with a reason, never loaded blindly.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

from renraku.errors import BrokenInput

MAX_PIXELS = 60_000_000  # a 600 dpi A4 scan is 35 Mpx; a 12 Mpx phone photo is common
MAX_PAGES = 50
PDF_DPI = 200  # image-only PDF pages are rendered at this resolution
ORIENTATION = 0x0112  # the EXIF tag of which way up a photo was taken


@dataclass
class PageImage:
    """A page as pixels. `dpi` is the true resolution after resampling to square pixels (None for
    photos, whose scale only the registration to a template can tell)."""

    pixels: np.ndarray  # 2-D uint8, 255 = white
    dpi: float | None
    channel: str = "scan"  # fax_fine | fax_standard | photo | scan: how the page was made, as far as seen


def _pil_to_gray(img) -> np.ndarray:  # type: ignore[no-untyped-def]
    if img.mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    if img.mode == "RGB":
        # Luma, but keep red ink (seals) dark enough to be seen on a white page. In strips of rows:
        # a phone photo (3024×4032) as floats at once is 146 MB, and as much again in temporaries.
        # Each strip is taken from Pillow's pixels on its own: np.asarray of the whole photo is a
        # copy of its 36 MB of colour, beside Pillow's own.
        width, height = img.size
        gray = np.empty((height, width), dtype=np.uint8)
        floats = np.empty((GRAY_STRIP_ROWS, width, 3), dtype=np.float32)  # one strip's, reused
        for top in range(0, height, GRAY_STRIP_ROWS):
            strip = floats[:min(GRAY_STRIP_ROWS, height - top)]
            strip[...] = np.asarray(img.crop((0, top, width, top + len(strip))))
            luma = strip[..., 0] * np.float32(0.299)
            luma += strip[..., 1] * np.float32(0.587)
            luma += strip[..., 2] * np.float32(0.114)
            gray[top:top + len(strip)] = luma  # 0 ≤ luma < 256: the cast truncates, as clip and astype did
        return gray
    return np.asarray(img, dtype=np.uint8)


GRAY_STRIP_ROWS = 256

# How to turn a page's pixels upright for each EXIF orientation, as ImageOps.exif_transpose turns
# the photo: done on the grey page (12 MB for a 12 Mpx photo) instead of the colour one (36 MB).
_UPRIGHT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.T,
    6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].T, 8: lambda a: np.rot90(a),
}


def upright(gray: np.ndarray, orientation: int) -> np.ndarray:
    """The page as the photographer held it (EXIF orientation 1–8; other values leave it as it is)."""
    turn = _UPRIGHT.get(orientation)
    return gray if turn is None else np.ascontiguousarray(turn(gray))


def _square_pixels(gray: np.ndarray, xdpi: float, ydpi: float) -> tuple[np.ndarray, float]:
    import cv2

    if abs(xdpi - ydpi) / max(xdpi, ydpi) < 0.02:
        return gray, xdpi
    target = max(xdpi, ydpi)
    h, w = gray.shape
    size = (round(w * target / xdpi), round(h * target / ydpi))
    interpolation = cv2.INTER_LINEAR if target > min(xdpi, ydpi) else cv2.INTER_AREA
    return cv2.resize(gray, size, interpolation=interpolation), target


def load_image_pages(data: bytes, media_type: str) -> list[PageImage]:
    """Every frame of a TIFF, or the one image of a JPEG/PNG, upright and with square pixels."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            frames = getattr(img, "n_frames", 1)
            if frames > MAX_PAGES:
                raise BrokenInput(f"ページ数が多すぎます（{frames} ページ、上限 {MAX_PAGES}）", code="too_many_pages")
            pages = []
            for index in range(frames):
                img.seek(index)
                if img.width * img.height > MAX_PIXELS:
                    raise BrokenInput(f"画像が大きすぎます（{img.width}×{img.height} 画素）", code="too_large")
                img.load()
                dpi = img.info.get("dpi")
                gray = _pil_to_gray(img)
                if index == 0 and media_type == "image/jpeg":
                    gray = upright(gray, img.getexif().get(ORIENTATION, 1))
                if dpi and media_type == "image/tiff":
                    xdpi, ydpi = float(dpi[0]), float(dpi[1])
                    gray, true_dpi = _square_pixels(gray, xdpi, ydpi)
                    fax = "fax_standard" if ydpi < 0.75 * xdpi else "fax_fine" if 190 <= xdpi <= 210 else "scan"
                    pages.append(PageImage(gray, true_dpi, fax))
                elif dpi and media_type == "image/png" and float(dpi[0]) > 72:
                    pages.append(PageImage(gray, float(dpi[0])))
                else:
                    pages.append(PageImage(gray, None, "photo" if media_type == "image/jpeg" else "scan"))
            return pages
    except BrokenInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BrokenInput("画像が大きすぎます（展開すると上限を超えます）", code="too_large") from exc
    except (UnidentifiedImageError, OSError, ValueError, EOFError, TypeError, KeyError, SyntaxError,
            IndexError, ZeroDivisionError) as exc:  # what Pillow raises on damaged files, seen in the wild
        raise BrokenInput(f"画像として読めません（{type(exc).__name__}）", code="broken_image") from exc


def render_pdf_page(data: bytes, index: int, dpi: int = PDF_DPI) -> PageImage:
    """A PDF page as pixels (for scanned PDFs: the scan as the reader of the paper sees it)."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
        try:
            page = pdf[index]
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            pixels = np.array(bitmap.to_numpy(), dtype=np.uint8)
        finally:
            pdf.close()
    except pdfium.PdfiumError as exc:
        raise BrokenInput(f"PDF のページを画像にできません（{exc}）", code="broken_pdf") from exc
    if pixels.ndim == 3:
        pixels = pixels[..., 0]
    return PageImage(pixels, float(dpi))
