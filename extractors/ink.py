"""Ink on a registered page that the blank sheet does not print: what the sender wrote.

The blank sheet is rendered in template space at the reading resolution and its ink, widened by a
few pixels to forgive the last pixel of registration error, is taken away from the page's ink. What
remains in a field box is the value (or the tick, the circle, the seal); an empty box is known
without asking Tesseract.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from renraku.extractors.calibration import Evidence, confidence
from renraku.extractors.fields import FieldReading
from renraku.extractors.templates import FieldSpec, Template
from renraku.pipeline.images import render_pdf_page

FORGIVE_PX = 2  # widening of the printed ink, each side


@dataclass(frozen=True)
class Blank:
    """The blank sheet's ink in template space: exact (to align on) and widened (to take away)."""

    exact: np.ndarray
    widened: np.ndarray


@lru_cache(maxsize=16)
def _blank(path: str, page: int, dpi: int) -> Blank:
    pixels = render_pdf_page(Path(path).read_bytes(), page - 1, dpi).pixels
    ink = (pixels < 160).astype(np.uint8)
    k = 2 * FORGIVE_PX + 1
    return Blank(ink.astype(bool), cv2.dilate(ink, np.ones((k, k), np.uint8)).astype(bool))


def blank_ink(template: Template, forms_dir: Path, dpi: int) -> Blank:
    """Where the blank sheet prints, as boolean images in template space."""
    return _blank(str(forms_dir / template.source.file), template.source.page, dpi)


def local_shift(ink: np.ndarray, blank: Blank, box: tuple[int, int, int, int], radius: int = 5,
                context: int = 24) -> tuple[int, int]:
    """The few-pixel shift that best lays the blank's print onto the page around a box.

    A page registered as a whole can still be off by a few pixels in places (paper not flat,
    scanner or fax feed not even); marks and small text need the print taken away exactly.
    """
    h, w = ink.shape
    x0, y0 = max(0, box[0] - context), max(0, box[1] - context)
    x1, y1 = min(w, box[2] + context), min(h, box[3] + context)
    printed = blank.exact[y0:y1, x0:x1].astype(np.float32)
    if printed.sum() < 20:
        return 0, 0
    gx0, gy0 = max(0, x0 - radius), max(0, y0 - radius)
    gx1, gy1 = min(w, x1 + radius), min(h, y1 + radius)
    page = ink[gy0:gy1, gx0:gx1].astype(np.float32)
    if page.shape[0] < printed.shape[0] or page.shape[1] < printed.shape[1]:
        return 0, 0
    score = cv2.matchTemplate(page, printed, cv2.TM_CCORR)
    _min, _max, _minloc, (bx, by) = cv2.minMaxLoc(score)
    return gx0 + bx - x0, gy0 + by - y0


def without_streaks(ink: np.ndarray, blank: Blank, vertical_px: int, horizontal_px: int) -> np.ndarray:
    """The page's ink without lines the blank does not print: a fax's streak, a scanner's line.

    Such a line runs through several boxes (a tick box, a date) and would be read as a tick or a
    character. Nothing a sender writes in one box is that long, so straight runs of ink longer than
    the given lengths, off the print, are taken away.
    """
    u8 = ink.astype(np.uint8)
    lines = np.zeros_like(u8)
    # Each column (row) is opened on its own: only those holding that much ink can keep any.
    cols = np.flatnonzero(np.count_nonzero(ink, axis=0) >= vertical_px)
    if len(cols):
        lines[:, cols] = cv2.morphologyEx(np.ascontiguousarray(u8[:, cols]), cv2.MORPH_OPEN,
                                          np.ones((vertical_px, 1), np.uint8))
    rows = np.flatnonzero(np.count_nonzero(ink, axis=1) >= horizontal_px)
    if len(rows):
        lines[rows] |= cv2.morphologyEx(u8[rows], cv2.MORPH_OPEN, np.ones((1, horizontal_px), np.uint8))
    lines &= ~blank.widened
    if not lines.any():
        return ink
    streaks = cv2.dilate(lines, np.ones((3, 3), np.uint8))
    return ink & ~streaks.astype(bool)


def page_ink(gray: np.ndarray) -> np.ndarray:
    """Dark marks on the paper, robust to uneven light (photos) and grey scans."""
    ink = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, 31, 18)
    # Specks of fax and scanner noise are not ink.
    return cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool)


def box_px(box: tuple[float, float, float, float], dpi: int, shape: tuple[int, int],
           grow_pt: float = 0.0) -> tuple[int, int, int, int]:
    s = dpi / 72.0
    h, w = shape
    x0, y0 = max(0, round((box[0] - grow_pt) * s)), max(0, round((box[1] - grow_pt) * s))
    x1, y1 = min(w, round((box[2] + grow_pt) * s)), min(h, round((box[3] + grow_pt) * s))
    return x0, y0, x1, y1


def written(ink: np.ndarray, blank: Blank, box: tuple[int, int, int, int],
            shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The sender's ink in a box: page ink minus the blank's (widened) ink, the blank shifted."""
    x0, y0, x1, y1 = box
    dx, dy = shift
    h, w = ink.shape
    region = ink[y0:y1, x0:x1]
    sx0, sy0, sx1, sy1 = x0 - dx, y0 - dy, x1 - dx, y1 - dy
    printed = np.zeros_like(region)
    cx0, cy0, cx1, cy1 = max(0, sx0), max(0, sy0), min(w, sx1), min(h, sy1)
    if cx1 > cx0 and cy1 > cy0:
        printed[cy0 - sy0:cy1 - sy0, cx0 - sx0:cx1 - sx0] = blank.widened[cy0:cy1, cx0:cx1]
    return region & ~printed


def components(mask: np.ndarray, min_size: int = 1) -> tuple[int, np.ndarray, np.ndarray]:
    """cv2.connectedComponentsWithStats (8-connected): the count, labels and stats, the labels in 16
    bits where they cannot run out (a third of the time of 32). Two pixels of one 2×2 block touch, so
    there are no more pieces than blocks, nor than the ink over the least size of a piece."""
    h, w = mask.shape
    most = min(((h + 1) // 2) * ((w + 1) // 2), cv2.countNonZero(mask) // min_size)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8,
                                                           ltype=cv2.CV_16U if most < 65535 else cv2.CV_32S)
    return n, labels, stats


def piece_heights(crop: np.ndarray, min_area: int = 4) -> tuple[int, ...]:
    """The heights of the pieces of ink in an OCR crop (Otsu's cut, specks under `min_area` left out):
    how many characters a number holds, whatever Tesseract read (digits_whole)."""
    _t, ink = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    _n, _labels, stats = components(ink)
    return tuple(int(h) for h, a in zip(stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA], strict=True)
                 if a >= min_area)


def has_writing(mask: np.ndarray, min_pixels: int = 30, min_component: int = 12) -> bool:
    """Is there something written: enough ink in pieces bigger than specks?"""
    if int(mask.sum()) < min_pixels:
        return False
    _n, _labels, stats = components(mask.astype(np.uint8))
    return int(sum(a for a in stats[1:, cv2.CC_STAT_AREA] if a >= min_component)) >= min_pixels


def flatten_light(gray: np.ndarray) -> np.ndarray:
    """Divide out uneven light (photos, shadows, grey scans) so the paper is white everywhere."""
    background = _median(cv2.dilate(gray, np.ones((15, 15), np.uint8)), 31)
    table = _quotients()
    if int(background.min()) == 255:  # white all over (a fax): one row of the table
        return cv2.LUT(gray, table[255])
    index = background.astype(np.uint16)
    index <<= 8
    index |= gray
    return table.ravel()[index]


@lru_cache(maxsize=1)
def _quotients() -> np.ndarray:
    """gray / background · 255 for every (background, gray) pair, in float32 and truncated as the
    page's own arithmetic was: a lookup is a third of its time (a fax: a tenth)."""
    gray = np.arange(256, dtype=np.float32)
    background = np.maximum(np.arange(256, dtype=np.float32), 1.0)
    return np.clip(gray[None, :] / background[:, None] * 255.0, 0, 255).astype(np.uint8)


def _median(image: np.ndarray, k: int) -> np.ndarray:
    """cv2.medianBlur(image, k), computed only around pieces of a white page that are not white.

    A fax page is white after dilation but for a few blots; a window holding fewer than half its
    pixels of them has white for its median. So the median is taken only around clusters of blots
    with that many pixels (or near the border, which medianBlur replicates): the same result, at a
    fraction of the full page's cost (0.16 s)."""
    dark = (image < 255).astype(np.uint8)
    if dark.mean() > 0.05:
        return cv2.medianBlur(image, k)
    out = np.full_like(image, 255)
    if not dark.any():
        return out
    r, (h, w) = k // 2, image.shape
    grouped = cv2.dilate(dark, np.ones((k, k), np.uint8))  # blots one window could hold together
    # Each cluster's box from its outline (labelling the page cost 30 ms). A cluster inside another's
    # hole lies in that one's box: counted with it, and taken with it when the box is.
    outlines, _ = cv2.findContours(grouped, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for outline in outlines:
        x0, y0, bw, bh = cv2.boundingRect(outline)
        x1, y1 = x0 + bw, y0 + bh  # the pixels whose window holds blots of this cluster
        near_border = x0 <= r or y0 <= r or x1 >= w - r or y1 >= h - r
        if not near_border and int(dark[y0:y1, x0:x1].sum()) <= k * k // 2:
            continue  # too few to be any window's median (the box's count is at least the cluster's)
        cx0, cy0, cx1, cy1 = max(0, x0 - r), max(0, y0 - r), min(w, x1 + r), min(h, y1 + r)
        part = cv2.medianBlur(np.ascontiguousarray(image[cy0:cy1, cx0:cx1]), k)[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        out[y0:y1, x0:x1] = np.minimum(out[y0:y1, x0:x1], part)
    return out


def keep_writing(mask: np.ndarray) -> np.ndarray:
    """The sender's strokes only: rule remnants (long thin pieces) and specks dropped."""
    h, w = mask.shape
    n, labels, stats = components(mask.astype(np.uint8))
    keep = np.zeros(n, bool)
    for i in range(1, n):
        _x, _y, bw, bh, area = stats[i]
        if area < 6:
            continue
        if (bw <= 4 and bh > 0.6 * h) or (bh <= 4 and bw > 0.3 * w):
            continue  # a stretch of a printed rule the blank did not quite cover
        keep[i] = True
    return keep[labels]


def ocr_crop(page: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The field's pixels where the sender wrote (grey levels kept), white elsewhere, cut to the ink."""
    strokes = keep_writing(mask)
    if not strokes.any():
        return None
    ys, xs = np.nonzero(strokes)
    x0, y0, _x1, _y1 = box
    near = cv2.dilate(strokes.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    crop = np.where(near, page[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]], 255).astype(np.uint8)
    pad = 6
    top, bottom = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + pad + 1)
    left, right = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + pad + 1)
    return crop[top:bottom, left:right]


def read_mark(spec: FieldSpec, ink: np.ndarray, printed: Blank, channel: str, marks: dict[str, Any],
              dpi: int) -> FieldReading:
    """A check box, the 管理者 column or the seal, by the share of its box the sender's ink covers:
    clearly on, clearly off, or between the two (the side of the midpoint, shown to a person)."""
    kind = spec.kind
    prefix = {"checkbox": "checkbox", "admin_mark": "admin", "seal": "seal"}[kind]
    grow = float(marks.get("checkbox_grow", 3.0)) if kind == "checkbox" else 0.0
    box = box_px(spec.box, dpi, ink.shape, grow_pt=grow)
    mask = written(ink, printed, box, local_shift(ink, printed, box))
    inner = box_px(spec.box, dpi, ink.shape)
    area = max(1, (inner[2] - inner[0]) * (inner[3] - inner[1]))
    share = float(keep_writing(mask).sum()) / area
    on, off = float(marks.get(f"{prefix}_on", 0.05)), float(marks.get(f"{prefix}_off", 0.01))
    value = share >= (on + off) / 2
    evidence = Evidence(kind=kind, mark_share=share, mark_on=on, mark_off=off, channel=channel)
    note = "" if share >= on or share <= off else "印の有無がはっきりしません"
    return FieldReading(spec.path, kind, value, confidence(evidence), "mark", spec.box, raw=f"{share:.3f}",
                        note=note, evidence=evidence)
