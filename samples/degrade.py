"""Labelled image documents as the channels deliver them: fax TIFFs, scanner PDFs and PNGs, phone photos.

The generator fills the official sheets on a computer (`samples/generator.py`). Most sheets reach
the secretariat as images, so reading has to be measured on images whose truth is known. This
module renders the generated PDFs and degrades them the way a fax machine, an office scanner or a
smartphone does, and writes a labelled set (`truth.jsonl`, `sets.jsonl`) in the format of
`../shared/dev-set` that `../shared/tools/score.py SET_DIR EXPORT_DIR` scores.

Every degradation takes a seeded `random.Random` and returns the file bytes a facility would send:
the same seed gives the same bytes. Strengths are the fields of `FaxParams`, `ScanParams` and
`PhotoParams`.

    python -m renraku.samples.degrade --out /tmp/labelled --n 10 --seed 1
    python -m renraku.samples.degrade --out /tmp/wide --n 10 --values wide --fonts heldout --variation wide
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import random
import struct
import time
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from renraku.extractors.glyphs import gothic_font
from renraku.samples.generator import (
    FilledSheet,
    Style,
    hand_style,
    invent_change,
    invent_cover,
    invent_set,
    random_style,
    render_pdf,
    wide_hand_style,
)
from renraku.samples.values_wide import font_files, out_of_lists, value_source

A4_MM = (210.0, 297.0)
MM_PER_INCH = 25.4
FAX_WIDTH = 1728  # pixels across the 215 mm scan line of a G3 fax (ITU-T T.4)
FAX_DPI_X = 204
FAX_LINES = {"fine": 196, "standard": 98}
CHANNELS = ("typed_pdf", "scan", "fax_fine", "fax_standard", "photo")
STYLES = ("typed", "hand")
VALUES = ("usual", "wide", "mixed")  # value sources (samples/values_wide.py); mixed: each set one or the other
FONT_SPLITS = ("fit", "heldout", "all")  # font families (samples/values/fonts.toml)
JST = dt.timezone(dt.timedelta(hours=9))


# ------------------------------------------------------------------------------- parameters

@dataclasses.dataclass(frozen=True)
class FaxParams:
    """How badly a fax machine treats the page. No skew, shift, noise, speckle, streak: a clean fax."""

    skew_deg: float = 0.8  # the page is fed at most this crooked
    shift_mm: float = 2.0  # and this far off its place
    blur: float = 0.5  # optics, in fax pixels, before thresholding
    noise: float = 10.0  # sensor noise (grey levels) before thresholding: ragged strokes
    threshold: tuple[float, float] = (0.45, 0.62)  # fraction of white below which a pixel turns black
    speckle: float = 1.2e-4  # isolated black dots per pixel (dust, line noise)
    streak: float = 0.3  # probability per page of a thin streak (dirty glass or a line error)
    dither: float = 0.0  # probability per page of halftone ("photo") mode: dithered instead of thresholded


@dataclasses.dataclass(frozen=True)
class ScanParams:
    """An office scanner or multifunction printer set to 'document'."""

    dpis: tuple[int, ...] = (200, 300)
    rotate_deg: float = 1.5
    shift_mm: float = 3.0
    blur: float = 0.7  # at the scan resolution
    noise: float = 3.0  # grey levels
    paper: tuple[int, int] = (232, 250)  # the grey the white paper comes out as
    ink: tuple[int, int] = (10, 45)  # and the black
    jpeg_quality: tuple[int, int] = (55, 85)
    bilevel: float = 0.2  # probability of a black-and-white scan (CCITT G4 in the PDF)
    edge_shadow: float = 0.3  # probability of a dark edge where the lid did not cover the glass


@dataclasses.dataclass(frozen=True)
class PhotoParams:
    """A smartphone photo of the sheet lying on a table."""

    sizes: tuple[tuple[int, int], ...] = ((1536, 2048), (2268, 3024), (3024, 4032))  # portrait, pixels
    fill: tuple[float, float] = (0.78, 0.92)  # sheet height as a fraction of the frame height
    rotate_deg: float = 5.0
    perspective: float = 0.04  # corners move up to this fraction of the frame width
    light: float = 0.3  # strength of the light gradient
    vignette: float = 0.25
    shadow: float = 0.3  # probability of a soft shadow (hand, phone) across the sheet
    blur: tuple[float, float] = (0.4, 1.4)  # at 1536 px wide; scales with the frame
    noise: tuple[float, float] = (2.0, 5.0)
    jpeg_quality: tuple[int, int] = (80, 92)
    orientation: float = 0.3  # probability that the pixels are stored turned, with an EXIF Orientation
    orientations: tuple[int, ...] = (6, 6, 3)  # 6: phone held upright, pixels stored sideways; 3: upside down


# Degradations by strength: "usual" as the sets the reader was calibrated on, "wide" further
# (fax thresholds, halftone dithering, skew; low JPEG quality and blur; shadows and perspective).
VARIATIONS: dict[str, tuple[FaxParams, ScanParams, PhotoParams]] = {
    "usual": (FaxParams(), ScanParams(), PhotoParams()),
    "wide": (FaxParams(skew_deg=1.5, shift_mm=3.0, blur=0.7, noise=14.0, threshold=(0.36, 0.7), speckle=3e-4,
                       streak=0.5, dither=0.25),
             ScanParams(rotate_deg=3.0, blur=1.1, noise=5.0, paper=(212, 250), ink=(10, 70), jpeg_quality=(25, 85),
                        bilevel=0.3, edge_shadow=0.5),
             PhotoParams(rotate_deg=8.0, perspective=0.06, light=0.45, shadow=0.6, blur=(0.4, 2.2),
                         noise=(2.0, 8.0), jpeg_quality=(55, 92))),
}


# ------------------------------------------------------------------------------- rendering

def render_pages(pdf: bytes, dpi: int = 200, *, color: bool = False) -> list[np.ndarray]:
    """Each page of a PDF as an image (grayscale uint8 H×W; H×W×3 RGB with color=True)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        pages = []
        for page in doc:
            bitmap = page.render(scale=dpi / 72, grayscale=not color)
            img = bitmap.to_pil().convert("RGB" if color else "L")
            pages.append(np.asarray(img).copy())
        return pages
    finally:
        doc.close()


def _np_rng(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(64))


def _page_dpi(page: np.ndarray, src_dpi: float | None) -> float:
    """Resolution of a rendered page: given, or read from its width as an A4 sheet (210 mm)."""
    return src_dpi or page.shape[1] / (A4_MM[0] / MM_PER_INCH)


def _gray(page: np.ndarray) -> np.ndarray:
    return page if page.ndim == 2 else cv2.cvtColor(page, cv2.COLOR_RGB2GRAY)


def _place(page: np.ndarray, src_dpi: float, out_size: tuple[int, int], dpi_xy: tuple[float, float],
           angle_deg: float, shift_px: tuple[float, float], border: float | tuple[float, ...],
           origin: tuple[float, float] | None = None) -> np.ndarray:
    """Lay the page on a device's pixel grid: rotate it on the glass, move it, sample at dpi_xy.

    The rotation happens on paper (square), the sampling may be anisotropic (fax). `origin` is
    where the page's top-left corner lands when straight (default: centred).
    """
    h, w = page.shape[:2]
    sx, sy = dpi_xy[0] / src_dpi, dpi_xy[1] / src_dpi
    if max(sx, sy) < 0.75:  # shrink first so that the warp does not alias
        k = max(sx, sy) / 0.9
        page = cv2.resize(page, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        h2, w2 = page.shape[:2]
        sx, sy = sx * w / w2, sy * h / h2
        h, w = h2, w2
    ow, oh = out_size
    if origin is None:
        origin = ((ow - w * sx) / 2, (oh - h * sy) / 2)
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    cx, cy = w / 2, h / 2
    # source pixel -> rotate about the page centre (square paper) -> scale to the device grid -> place
    m = np.array([[sx * cos, -sx * sin, 0.0], [sy * sin, sy * cos, 0.0]])
    m[:, 2] = [origin[0] + w * sx / 2 + shift_px[0], origin[1] + h * sy / 2 + shift_px[1]]
    m[:, 2] -= m[:, :2] @ np.array([cx, cy])
    return cv2.warpAffine(page, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border)


# ------------------------------------------------------------------------------- fax

def fax_header(rng: random.Random, when: dt.datetime, fax_number: str, sender: str) -> str:
    """The sending machine's header line (TTI) in one of the layouts machines use; {page}/{pages} filled per page."""
    digits = "".join(ch for ch in fax_number if ch.isdigit())
    stamp = when.strftime("%Y/%m/%d %H:%M")
    return rng.choice([
        f"{stamp}  FROM: {fax_number}  {sender}  P.{{page}}/{{pages}}",
        f"FAX {fax_number}  {stamp}  P.{{page}}/{{pages}}",
        f"{stamp} {sender} {digits} P.{{page:03d}}/{{pages:03d}}",
        f"{when.strftime('%b.%d.%Y %I:%M%p').upper()}  {sender}  NO.{rng.randint(100, 9999)}  P. {{page}}",
    ])


def _header_font(px: int) -> ImageFont.FreeTypeFont:
    path = gothic_font()
    if path is None:
        raise RuntimeError("No Japanese font for the fax header: install fonts-ipaexfont-gothic")
    return ImageFont.truetype(path, px)


def _header_bits(text: str, lines_per_inch: int) -> np.ndarray:
    """The header text as the machine prints it: bilevel, at 204 dpi across and the fax's lines down."""
    font = _header_font(20)  # about 2.5 mm high characters
    _left, _top, right, bottom = font.getbbox(text)
    img = Image.new("L", (right + 4, bottom + 4), 255)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"  # no anti-aliasing: a fax prints whole dots
    draw.text((2, 2), text, font=font, fill=0)
    height = max(1, round(img.height * lines_per_inch / FAX_DPI_X))
    img = img.resize((img.width, height), Image.Resampling.NEAREST)
    return np.asarray(img) < 128


def _fax_page(page: np.ndarray, lines: int, rng: random.Random, p: FaxParams, src_dpi: float | None,
              header: str | None) -> np.ndarray:
    """One page as the receiving fax stores it: True where black, 1728 wide, `lines` per inch down."""
    nrng = _np_rng(rng)
    dpi = _page_dpi(page, src_dpi)
    fine_rows = round(A4_MM[1] / MM_PER_INCH * FAX_LINES["fine"])  # 2292 lines for an A4 page
    shift = (rng.uniform(-1, 1) * p.shift_mm / MM_PER_INCH * FAX_DPI_X,
             rng.uniform(-0.5, 1) * p.shift_mm / MM_PER_INCH * FAX_LINES["fine"])
    origin = ((FAX_WIDTH - page.shape[1] * FAX_DPI_X / dpi) / 2, 0.0)
    gray = _place(_gray(page), dpi, (FAX_WIDTH, fine_rows), (FAX_DPI_X, FAX_LINES["fine"]),
                  rng.uniform(-p.skew_deg, p.skew_deg), shift, 255, origin).astype(np.float32)
    if lines != FAX_LINES["fine"]:
        # one standard line spans two fine ones; the sensor sees ink anywhere in it, so a thin
        # rule comes out thicker rather than vanishing (a plain average would halve its darkness)
        a, b = gray[0:-1:2], gray[1::2]
        gray = 0.6 * np.minimum(a, b) + 0.2 * (a + b)
    if p.blur > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), p.blur)
    if p.noise > 0:
        gray += nrng.standard_normal(gray.shape, dtype=np.float32) * np.float32(p.noise)
    threshold = rng.uniform(*p.threshold)
    black = _dither(gray, threshold, rng) if p.dither > 0 and rng.random() < p.dither else gray < 255 * threshold
    h, w = black.shape
    n_dots = int(nrng.poisson(p.speckle * h * w)) if p.speckle > 0 else 0
    if n_dots:
        ys, xs = nrng.integers(0, h - 1, n_dots), nrng.integers(0, w - 1, n_dots)
        black[ys, xs] = True
        big = nrng.random(n_dots) < 0.3
        black[ys[big] + 1, xs[big]] = True
        black[ys[big], xs[big] + 1] = True
    if rng.random() < p.streak:
        kind = rng.choice(["vertical", "line_error", "dropout"])
        if kind == "vertical":  # dirt on the scanner glass: a thin line down the page
            x, y0 = rng.randrange(40, w - 40), rng.randrange(0, h // 2)
            black[y0:rng.randrange(y0 + h // 4, h + 1), x:x + rng.choice([1, 1, 2])] = True
        elif kind == "line_error":  # a corrupted scan line: a black run across part of the page
            for _ in range(rng.randint(1, 4)):
                y, x0 = rng.randrange(h), rng.randrange(0, w // 2)
                black[y:y + rng.choice([1, 2]), x0:x0 + rng.randrange(w // 8, w // 2)] = True
        else:  # lost lines: the previous line repeated
            y = rng.randrange(h // 5, h - 20)
            black[y:y + rng.randint(2, 8)] = black[y - 1]
    if header:
        bits = _header_bits(header, lines)
        top = max(2, round(0.08 * lines))  # about 2 mm from the top edge
        left = rng.choice([24, 40, 120, 190])
        bh, bw = bits.shape
        bw = min(bw, w - left - 16)
        black[top:top + bh, left:left + bw] |= bits[:, :bw]
    return black


_BAYER = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32) / 16 + 1 / 32


def _dither(gray: np.ndarray, threshold: float, rng: random.Random) -> np.ndarray:
    """A fax machine in halftone mode: grey becomes a pattern of dots, and so do the edges of
    strokes; white paper stays white (the machine takes the lightest tenth for paper, so sensor
    noise does not print). Error diffusion (Floyd-Steinberg) or an ordered 4×4 Bayer screen; True
    where black. The threshold bends the grey scale (a gamma) so that its grey dithers half black,
    as a darker or lighter setting of the machine does."""
    level = 255 * np.clip(gray / (0.9 * 255), 0, 1) ** (math.log(0.5) / math.log(threshold))
    if rng.random() < 0.5:
        return ~np.asarray(Image.fromarray(level.astype(np.uint8)).convert("1"))
    h, w = level.shape
    screen = np.tile(_BAYER, (h // 4 + 1, w // 4 + 1))[:h, :w]
    return level < 255 * screen


def _tiff_min_is_white(data: bytes) -> bytes:
    """Mark every page of a TIFF PhotometricInterpretation 0 (WhiteIsZero), as fax TIFFs are.

    Pillow writes bilevel images as BlackIsZero and inverts pixel by pixel in Python when asked
    for WhiteIsZero (seconds per page); instead the caller writes the inverted image and this
    sets the tag, which also makes the CCITT stream code the paper as white runs, like a real fax.
    """
    buf = bytearray(data)
    order = "<" if buf[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", buf[4:8])[0]
    seen = set()
    while offset and offset not in seen:
        seen.add(offset)
        (count,) = struct.unpack(order + "H", buf[offset:offset + 2])
        for k in range(count):
            entry = offset + 2 + 12 * k
            tag, kind, n = struct.unpack(order + "HHI", buf[entry:entry + 8])
            if tag == 262 and kind == 3 and n == 1:
                buf[entry + 8:entry + 10] = struct.pack(order + "H", 0)
        (offset,) = struct.unpack(order + "I", buf[offset + 2 + 12 * count:offset + 6 + 12 * count])
    return bytes(buf)


def fax_tiff(pages: list[np.ndarray], mode: Literal["fine", "standard"], rng: random.Random,
             header: str | None = None, *, compression: Literal["group3", "group4"] | None = None,
             params: FaxParams | None = None, src_dpi: float | None = None) -> bytes:
    """A received fax as the fax server stores it: multi-page bilevel TIFF, CCITT G3 or G4.

    1728 px across at 204 dpi, 196 (fine) or 98 (standard) lines per inch: the pixels are not
    square, and the resolution tags say so. `header` is the sending machine's line printed at the
    top of each page ({page} and {pages} are filled in; without them " P.n/N" is appended).
    """
    if mode not in FAX_LINES:
        raise ValueError(f"fax mode is fine or standard, not {mode!r}")
    if not pages:
        raise ValueError("a fax has at least one page")
    p = params or FaxParams()
    compression = compression or rng.choice(["group4", "group3"])
    if compression not in ("group3", "group4"):
        raise ValueError(f"fax compression is group3 or group4, not {compression!r}")
    lines = FAX_LINES[mode]
    frames = []
    for i, page in enumerate(pages, start=1):
        text = None
        if header is not None:
            text = (header.format(page=i, pages=len(pages)) if "{page" in header
                    else f"{header}  P.{i}/{len(pages)}")
        black = _fax_page(page, lines, rng, p, src_dpi, text)
        frames.append(Image.fromarray(black))  # black = 1 bits, see _tiff_min_is_white
    # G3 as one-dimensional MH (no T4Options tag), two-dimensional MR (1), or MR with fill bits (5)
    t4 = rng.choice([None, 1, 5]) if compression == "group3" else None
    out = io.BytesIO()
    frames[0].save(out, "TIFF", compression=compression, dpi=(FAX_DPI_X, lines), save_all=True,
                   append_images=frames[1:], tiffinfo={292: t4} if t4 else {})
    return _tiff_min_is_white(out.getvalue())


# ------------------------------------------------------------------------------- scanner

def _scan_image(page: np.ndarray, rng: random.Random, dpi: int, p: ScanParams,
                src_dpi: float | None) -> np.ndarray:
    """A gray scan of the page on an A4 glass at `dpi`: slightly turned and moved, paper grey, noise."""
    nrng = _np_rng(rng)
    sdpi = _page_dpi(page, src_dpi)
    size = (round(A4_MM[0] / MM_PER_INCH * dpi), round(A4_MM[1] / MM_PER_INCH * dpi))
    shift = tuple(rng.uniform(-1, 1) * p.shift_mm / MM_PER_INCH * dpi for _ in range(2))
    gray = _place(_gray(page), sdpi, size, (dpi, dpi), rng.uniform(-p.rotate_deg, p.rotate_deg),
                  shift, 255).astype(np.float32)
    if p.blur > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), p.blur * rng.uniform(0.7, 1.3))
    paper, ink = rng.uniform(*p.paper), rng.uniform(*p.ink)
    gray = ink + (paper - ink) * (gray / 255.0)
    h, w = gray.shape
    # uneven lamp: a faint gradient across the glass
    gray *= (1 - rng.uniform(0, 0.04) * np.linspace(0, 1, w, dtype=np.float32))[None, :]
    if rng.random() < p.edge_shadow:  # the lid did not cover the glass to the edge
        band = max(2, int(dpi * rng.uniform(0.03, 0.12)))
        ramp = np.linspace(rng.uniform(0.35, 0.7), 1.0, band, dtype=np.float32)
        edge = rng.choice(["left", "right", "top", "bottom"])
        if edge == "left":
            gray[:, :band] *= ramp[None, :]
        elif edge == "right":
            gray[:, w - band:] *= ramp[::-1][None, :]
        elif edge == "top":
            gray[:band] *= ramp[:, None]
        else:
            gray[h - band:] *= ramp[::-1][:, None]
    if p.noise > 0:
        gray += nrng.normal(0, p.noise, gray.shape).astype(np.float32)
    return np.clip(gray, 0, 255).astype(np.uint8)


def _scan_mode(rng: random.Random, p: ScanParams) -> tuple[int, bool, int]:
    return rng.choice(p.dpis), rng.random() < p.bilevel, rng.randint(*p.jpeg_quality)


def scan_pdf(pages: list[np.ndarray], rng: random.Random, *, params: ScanParams | None = None,
             src_dpi: float | None = None, when: dt.datetime | None = None) -> bytes:
    """An image-only PDF as a scanner writes it: one A4 page per sheet, gray JPEG or bilevel G4."""
    p = params or ScanParams()
    dpi, bilevel, quality = _scan_mode(rng, p)
    images = []
    for page in pages:
        gray = _scan_image(page, rng, dpi, p, src_dpi)
        if bilevel:
            images.append(Image.fromarray(gray > rng.uniform(0.5, 0.6) * 255))
        else:
            images.append(Image.fromarray(gray))
    stamp = (when or dt.datetime(2025, 1, 1, tzinfo=JST)).astimezone(dt.UTC)
    out = io.BytesIO()
    # fixed dates: Pillow would write the current time and the same seed would give other bytes
    # Pillow hands these options to the G4 encoder of bilevel pages too, which refuses `quality`
    jpeg = {} if bilevel else {"quality": quality}
    images[0].save(out, "PDF", resolution=float(dpi), save_all=True, append_images=images[1:],
                   creationDate=stamp.timetuple(), modDate=stamp.timetuple(), **jpeg)
    return out.getvalue()


def scan_png(page: np.ndarray, rng: random.Random, *, params: ScanParams | None = None,
             src_dpi: float | None = None) -> bytes:
    """One scanned page sent as a PNG (8-bit gray, resolution in pHYs), as some scanners mail it."""
    p = params or ScanParams()
    dpi, _bilevel, _quality = _scan_mode(rng, p)
    out = io.BytesIO()
    Image.fromarray(_scan_image(page, rng, dpi, p, src_dpi)).save(out, "PNG", dpi=(dpi, dpi), optimize=False)
    return out.getvalue()


# ------------------------------------------------------------------------------- photo

def _background(nrng: np.random.Generator, rng: random.Random, w: int, h: int) -> np.ndarray:
    """A table, a desk mat or a cloth under the sheet (RGB float 0-255), darker than paper."""
    sw, sh = max(8, w // 8), max(8, h // 8)
    kind = rng.choice(["wood", "wood", "cloth", "desk"])
    if kind == "wood":
        base = np.array([rng.uniform(90, 140), rng.uniform(55, 85), rng.uniform(25, 50)], np.float32)
        rows = nrng.normal(0, 1, (sh, 1)).astype(np.float32)
        rows = cv2.GaussianBlur(rows, (0, 0), rng.uniform(0.6, 2.0))
        grain = np.repeat(rows, sw, axis=1) + 0.3 * nrng.normal(0, 1, (sh, sw)).astype(np.float32)
        tex = 1 + 0.18 * grain
    elif kind == "cloth":
        base = np.array([rng.uniform(25, 60), rng.uniform(30, 60), rng.uniform(45, 90)], np.float32)
        tex = 1 + 0.08 * cv2.GaussianBlur(nrng.normal(0, 1, (sh, sw)).astype(np.float32), (0, 0), 2.0)
    else:
        v = rng.uniform(90, 150)
        base = np.array([v, v * rng.uniform(0.95, 1.02), v * rng.uniform(0.88, 1.0)], np.float32)
        tex = 1 + 0.04 * cv2.GaussianBlur(nrng.normal(0, 1, (sh, sw)).astype(np.float32), (0, 0), 1.5)
    tex = cv2.resize(tex.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.merge([tex * float(b) for b in base])


def photo_jpeg(page: np.ndarray, rng: random.Random, *, params: PhotoParams | None = None) -> bytes:
    """A smartphone photo of the sheet on a table: perspective, uneven light, blur, noise, JPEG.

    Sometimes the pixels are stored turned with an EXIF Orientation (6: turned right, 3: upside
    down), as phones do: a reader that ignores EXIF sees the sheet on its side.
    """
    p = params or PhotoParams()
    nrng = _np_rng(rng)
    fw, fh = rng.choice(p.sizes)
    scale = fw / 1536
    rgb = page if page.ndim == 3 else cv2.cvtColor(page, cv2.COLOR_GRAY2RGB)
    ph, pw = rgb.shape[:2]
    # where the sheet lies in the frame
    sheet_h = fh * rng.uniform(*p.fill)
    sheet_w = sheet_h * pw / ph
    cx, cy = fw / 2 + rng.uniform(-0.04, 0.04) * fw, fh / 2 + rng.uniform(-0.03, 0.03) * fh
    a = math.radians(rng.uniform(-p.rotate_deg, p.rotate_deg))
    corners = []
    for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        x, y = dx * sheet_w / 2, dy * sheet_h / 2
        corners.append([cx + x * math.cos(a) - y * math.sin(a) + rng.uniform(-1, 1) * p.perspective * fw,
                        cy + x * math.sin(a) + y * math.cos(a) + rng.uniform(-1, 1) * p.perspective * fw])
    dst = np.array(corners, np.float32)
    # bring the page near its size in the frame first, so that the warp does not alias
    k = min(1.0, 1.15 * sheet_h / ph)
    if k < 1.0:
        rgb = cv2.resize(rgb, (round(pw * k), round(ph * k)), interpolation=cv2.INTER_AREA)
        ph, pw = rgb.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 1.0)], np.float32)  # white or cream paper
    sheet = cv2.warpPerspective(rgb, m, (fw, fh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    mask8 = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, (fw, fh), flags=cv2.INTER_LINEAR)
    mask = mask8.astype(np.float32)[:, :, None] / 255.0
    bg = _background(nrng, rng, fw, fh)
    # smooth fields (shadow, light) are computed on a small grid and scaled up: the frame is 12 Mpx
    lw, lh = max(16, fw // 8), max(16, fh // 8)
    off = (rng.uniform(2, 12) / 8 * scale, rng.uniform(2, 12) / 8 * scale)
    small = cv2.resize(mask8, (lw, lh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    shadow = cv2.warpAffine(small, np.float32([[1, 0, off[0]], [0, 1, off[1]]]), (lw, lh))
    shadow = cv2.GaussianBlur(shadow, (0, 0), 10 / 8 * scale)  # the sheet's drop shadow on the table
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = ((xx - lw / 2) * math.cos(direction) + (yy - lh / 2) * math.sin(direction)) / max(lw, lh)
    # light: a gradient from the window, a vignette, sometimes the shadow of the phone or a hand
    light = 1 - p.light * rng.uniform(0.3, 1.0) * (ramp + 0.5)
    r2 = ((xx - lw / 2) / (lw / 2)) ** 2 + ((yy - lh / 2) / (lh / 2)) ** 2
    light *= 1 - p.vignette * rng.uniform(0.4, 1.0) * r2 / 2
    if rng.random() < p.shadow:
        sx, sy = rng.uniform(0, lw), rng.uniform(0, lh)
        blob = np.exp(-(((xx - sx) / (0.3 * lw)) ** 2 + ((yy - sy) / (0.2 * lh)) ** 2))
        light *= 1 - rng.uniform(0.15, 0.35) * blob
    shadow = cv2.resize(shadow, (fw, fh), interpolation=cv2.INTER_LINEAR)
    light = cv2.resize(light.astype(np.float32), (fw, fh), interpolation=cv2.INTER_LINEAR)
    bg *= (1 - 0.55 * shadow)[:, :, None]
    img = sheet.astype(np.float32)
    img *= tint
    img -= bg
    img *= mask
    img += bg  # the sheet where it lies, the table elsewhere
    gain = np.array([rng.uniform(0.95, 1.05), 1.0, rng.uniform(0.9, 1.05)], np.float32) * rng.uniform(0.9, 1.05)
    img *= light[:, :, None]
    img *= gain
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(*p.blur) * scale)
    noise = nrng.standard_normal(img.shape, dtype=np.float32)
    noise *= rng.uniform(*p.noise)
    img += noise
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    extra: dict[str, Any] = {}
    if rng.random() < p.orientation:
        orientation = rng.choice(p.orientations)
        # stored so that turning by the tag shows the sheet upright (what ImageOps.exif_transpose does)
        stored = {6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180, 8: Image.Transpose.ROTATE_270}
        pil = pil.transpose(stored[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    out = io.BytesIO()
    pil.save(out, "JPEG", quality=rng.randint(*p.jpeg_quality), **extra)
    return out.getvalue()


# ------------------------------------------------------------------------------- labelled sets

def expected_issues(sheets: list[FilledSheet], *, registered: bool = False) -> list[dict[str, Any]]:
    """The rule findings (SPEC §4) the sheets make certain, for a registry without the facility.

    A labelled set comes without a registry, so a change notice's facility is unknown to it
    (`unknown_facility`); what its rows then yield (unknown_staff, no_admin) is left open.
    """
    found: list[dict[str, Any]] = []
    for s in sheets:
        if s.form_id == "staff_change" and not registered:
            found.append({"rule": "unknown_facility", "form_id": s.form_id, "field": "facility_name"})
        if s.form_id == "usage_application" and not s.truth.get("policy_agreed"):
            found.append({"rule": "policy_not_agreed", "form_id": s.form_id, "field": "policy_agreed"})
        if s.form_id == "facility_pledge" and not s.truth.get("seal"):
            found.append({"rule": "missing_seal", "form_id": s.form_id, "field": "seal"})
        if s.form_id == "staff_change":
            seen: dict[str, int] = {}
            for n in range(1, 7):
                email = s.truth.get(f"changes[{n}].email", "")
                if email and email in seen:
                    found.append({"rule": "duplicate_email", "form_id": s.form_id, "field": f"changes[{n}].email"})
                seen.setdefault(email, n)
    return found


def _eml(attachments: list[tuple[str, bytes]], *, subject: str, sender: str, when: dt.datetime, key: str) -> bytes:
    """An e-mail with the files attached, byte-for-byte the same for the same key (no random ids)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "どこでも連絡帳事務局 <jimukyoku@renraku.example.jp>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    digest = hashlib.sha256(key.encode()).hexdigest()
    msg["Message-ID"] = f"<{digest[:24]}@sender.example.jp>"
    msg.set_content("お世話になっております。\n申込書類を添付いたします。よろしくお願いいたします。\n")
    types = {".pdf": ("application", "pdf"), ".jpg": ("image", "jpeg"), ".png": ("image", "png"),
             ".tif": ("image", "tiff")}
    for name, data in attachments:
        maintype, subtype = types.get(Path(name).suffix.lower(), ("application", "octet-stream"))
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    msg.set_boundary(f"=_{digest[24:48]}")
    return msg.as_bytes()


def _unique(name: str, taken: set[str]) -> str:
    """A file name not yet used in this run (a second run with the same seed rewrites the same names)."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, k = name, 1
    while candidate in taken:
        k += 1
        candidate = f"{stem}_{k}{suffix}"
    taken.add(candidate)
    return candidate


_SHEET_LABEL = {"usage_application": "利用申込書", "staff_registration": "登録申請書",
                "facility_pledge": "誓約書", "staff_change": "従事者登録変更通知書"}


@dataclasses.dataclass
class _Run:
    out_dir: Path
    seed: int
    email_share: float
    fax: FaxParams
    scan: ScanParams
    photo: PhotoParams
    counters: dict[str, int]
    taken: set[str]
    values: str = "usual"
    fonts: str = "fit"
    variation: str = "usual"
    facilities: set[str] = dataclasses.field(default_factory=set)
    addresses: set[str] = dataclasses.field(default_factory=set)


def _addresses(sheets: list[FilledSheet]) -> list[str]:
    """The people's e-mail addresses on the sheets (the contact is staff 1 again, not counted twice)."""
    return [v for s in sheets for k, v in s.truth.items() if k.endswith("].email") and v]


def _style(rng: random.Random, side: random.Random, style_name: str, run: _Run) -> tuple[Style, str]:
    """How the set is filled, and the name of its font. The fit fonts with the usual variation
    take exactly the random numbers they always did (sets made before stay the same)."""
    kind = "hand" if style_name == "hand" else "typed"
    if run.fonts == "fit" and run.variation == "usual":
        style = hand_style(rng) if kind == "hand" else random_style(rng)
        return style, style.font if kind == "hand" else "ipaex-gothic"
    files = font_files(kind, run.fonts)
    name = side.choice(sorted(files))
    if kind == "hand":
        return (wide_hand_style if run.variation == "wide" else hand_style)(rng, files[name]), name
    style = random_style(rng)
    return (style if name == "ipaex-gothic" else dataclasses.replace(style, font=files[name])), name


def _make_one(i: int, channel: str, style_name: str, run: _Run) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One set (an application of three sheets or a change notice) through one channel."""
    # Sets must not share a facility name or an address with each other: the intake joins sheets by
    # facility and flags one address for two people, so a chance repeat would be a finding that
    # expected_issues does not list. Invent again (another stream, still set by seed and i) instead.
    # Choices of value source and font come from a stream of their own, so that a set holds the
    # same values whatever font it is written in (fit and heldout sets of one seed differ in fonts).
    side = random.Random(f"renraku-degrade/{run.seed}/{i}/side")
    values_name = side.choice(["usual", "wide"]) if run.values == "mixed" else run.values
    source = value_source(values_name)
    for attempt in range(40):
        rng = random.Random(f"renraku-degrade/{run.seed}/{i}" + (f"/{attempt}" if attempt else ""))
        when = dt.datetime(2025, 4, 1, 8, tzinfo=JST) + dt.timedelta(
            days=rng.randrange(200), hours=rng.randrange(11), minutes=rng.randrange(60), seconds=rng.randrange(60))
        change = rng.random() < 0.25
        sheets = ([invent_change(rng, today=when.date(), values=source)] if change
                  else invent_set(rng, today=when.date(), values=source))
        addresses = _addresses(sheets)
        if (sheets[0].truth["facility_name"] not in run.facilities and len(set(addresses)) == len(addresses)
                and not run.addresses.intersection(addresses)):
            break
    run.facilities.add(sheets[0].truth["facility_name"])
    run.addresses.update(addresses)
    kind = "staff_change" if change else "new_facility"
    run.counters[kind] += 1
    set_id = f"{'CHG' if change else 'APP'}-{run.counters[kind]:03d}"
    facility = sheets[0].truth["facility_name"]
    fax_number = sheets[0].truth.get("fax") or sheets[0].truth.get("phone", "")
    style, font = _style(rng, side, style_name, run)

    # the pages each file carries, then the file bytes
    docs: list[tuple[str, list[FilledSheet], bytes]] = []
    stamp = when.strftime("%Y%m%d_%H%M%S")
    if channel == "typed_pdf":
        if len(sheets) > 1 and rng.random() < 0.35:
            parts = [([s], f"{_SHEET_LABEL[s.form_id]}_{facility}.pdf") for s in sheets]
        else:
            label = "申込書一式" if len(sheets) > 1 else _SHEET_LABEL[sheets[0].form_id]
            parts = [(sheets, rng.choice([f"【{facility}】{label}.pdf", f"{label}_{facility}.pdf"]))]
        docs = [(name, part, render_pdf(part, style)) for part, name in parts]
    elif channel == "scan":
        if rng.random() < 0.25:  # the scanner mailed one PNG per page
            for s in sheets:
                page = render_pages(render_pdf([s], style), dpi=300)[0]
                docs.append((f"{_SHEET_LABEL[s.form_id]}_{facility}.png", [s], scan_png(page, rng, params=run.scan)))
        else:
            pages = render_pages(render_pdf(sheets, style), dpi=300)
            name = rng.choice([f"SCAN_{stamp}.pdf", f"{stamp}.pdf", f"申込書_{facility}.pdf",
                               f"doc{rng.randint(1, 99999):05d}.pdf"])
            docs = [(name, sheets, scan_pdf(pages, rng, params=run.scan, when=when))]
    elif channel in ("fax_fine", "fax_standard"):
        pages_sheets = list(sheets)
        if rng.random() < 0.4:
            pages_sheets.insert(0, invent_cover(rng, facility, len(sheets) + 1))
        pages = render_pages(render_pdf(pages_sheets, style), dpi=200)
        header = fax_header(rng, when, fax_number, facility) if rng.random() < 0.85 else None
        digits = "".join(ch for ch in fax_number if ch.isdigit())
        name = rng.choice([f"FAX_{stamp}_{digits}.tif", f"RX{rng.randint(10000, 99999)}.tif",
                           f"fax{when.strftime('%Y%m%d%H%M%S')}.tif"])
        mode: Literal["fine", "standard"] = "fine" if channel == "fax_fine" else "standard"
        docs = [(name, pages_sheets, fax_tiff(pages, mode, rng, header, params=run.fax))]
    elif channel == "photo":
        numbered, phone = rng.randint(1000, 9000), rng.choice(["iphone", "android", "pixel"])
        size = rng.choice(run.photo.sizes)  # one phone takes all the pictures of a set
        for k, s in enumerate(sheets):
            page = render_pages(render_pdf([s], style), dpi=200 if size[0] <= 1536 else 300, color=True)[0]
            shot = when + dt.timedelta(seconds=40 * k + rng.randrange(30))
            name = {"iphone": f"IMG_{numbered + k}.jpg", "android": f"IMG_{shot.strftime('%Y%m%d_%H%M%S')}.jpg",
                    "pixel": f"PXL_{shot.strftime('%Y%m%d_%H%M%S')}{rng.randint(100, 999)}.jpg"}[phone]
            docs.append((name, [s], photo_jpeg(page, rng, params=dataclasses.replace(run.photo, sizes=(size,)))))
    else:
        raise ValueError(f"unknown channel {channel!r}: {', '.join(CHANNELS)}")

    by_mail = channel in ("typed_pdf", "scan", "photo") and rng.random() < run.email_share
    out_dir, taken = run.out_dir, run.taken
    truth: list[dict[str, Any]] = []
    files: list[str] = []
    email_path = None
    if by_mail:
        (out_dir / "emails").mkdir(parents=True, exist_ok=True)
        eml_name = _unique(f"emails/{stamp}.eml", taken).removeprefix("emails/")
        email_path = f"emails/{eml_name}"
        names: set[str] = set()
        attachments = []
        for name, _part, data in docs:
            n = name
            while n in names:
                n = f"{Path(n).stem}_{len(names)}{Path(n).suffix}"
            names.add(n)
            attachments.append((n, data))
        docs = [(n, part, data) for (n, data), (_o, part, _d) in zip(attachments, docs, strict=True)]
        sender_name = sheets[0].truth.get("contact_name") or sheets[0].truth.get("notifier_name", "")
        sender_mail = (sheets[0].truth.get("contact_email")
                       or "office@" + sheets[0].truth.get("changes[1].email", "@sender.example.jp").split("@")[-1])
        subject = (f"どこでも連絡帳 利用申込書の送付（{facility}）" if not change
                   else f"従事者登録変更通知書の送付（{facility}）")
        (out_dir / email_path).write_bytes(_eml(attachments, subject=subject, sender=f"{sender_name} <{sender_mail}>",
                                                when=when, key=f"{run.seed}/{i}"))
        refs = [f"{email_path}#{name}" for name, _p, _d in docs]
    else:
        (out_dir / "files").mkdir(parents=True, exist_ok=True)
        refs = []
        for name, _part, data in docs:
            unique = _unique(f"files/{name}", taken).removeprefix("files/")
            (out_dir / "files" / unique).write_bytes(data)
            refs.append(f"files/{unique}")
    for ref, (_name, part, _data) in zip(refs, docs, strict=True):
        files.append(ref)
        for page_no, s in enumerate(part, start=1):
            truth.append({"file": ref, "page": page_no, "form_id": s.form_id, "set_id": set_id, "style": style_name,
                          "degrade": channel, "fields": s.truth, "values": values_name, "font": font,
                          "oov": out_of_lists(s.truth)})
    record = {"set_id": set_id, "kind": kind, "facility_name": facility, "files": files, "email": email_path,
              "received": when.replace(tzinfo=None).isoformat(), "degrade": channel, "style": style_name,
              "expected_issues": expected_issues(sheets), "values": values_name, "font": font,
              "variation": run.variation}
    return record, truth


def make_labelled_set(out_dir: Path, n: int, seed: int, channels: Sequence[str] = CHANNELS,
                      styles: Sequence[str] = STYLES, *, email_share: float = 0.3, fax: FaxParams | None = None,
                      scan: ScanParams | None = None, photo: PhotoParams | None = None, values: str = "usual",
                      fonts: str = "fit", variation: str = "usual") -> list[dict[str, Any]]:
    """Write n invented sets through the channels, with truth.jsonl and sets.jsonl; return the truth lines.

    Set i goes through channels[i % len(channels)], filled in styles[(i // len(channels)) % len(styles)]
    (a typed_pdf is always typed: it was filled on a computer). Files go to out_dir/files, e-mailed
    ones (a share of typed PDFs, scans and photos) to out_dir/emails as attachments, and truth lines
    name them as dev-set does (`emails/X.eml#NAME`). Each set has its own random stream, so set i
    is the same whatever n is. Use an empty folder: files already there are left alone (and a
    `renraku process` of the folder would read them too); the same seed rewrites the same files.
    fax, scan and photo set the strength of each channel's degradation (default: `variation`'s).
    values (usual | wide | mixed) is the value source, fonts (fit | heldout | all) the font
    families, variation (usual | wide) how much fill style and degradations vary. Every truth
    line says its `values`, `font` and, in `oov`, the fields whose value is outside every list the
    reader holds, with why (samples/values_wide.py).
    """
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels:
        raise ValueError(f"channels are {', '.join(CHANNELS)}; got {list(channels)}")
    if not styles or any(s not in STYLES for s in styles):
        raise ValueError(f"styles are {', '.join(STYLES)}; got {list(styles)}")
    if values not in VALUES or fonts not in FONT_SPLITS or variation not in VARIATIONS:
        raise ValueError(f"values are {', '.join(VALUES)}; fonts {', '.join(FONT_SPLITS)}; "
                         f"variation {', '.join(VARIATIONS)}; got {values!r}, {fonts!r}, {variation!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    strength = VARIATIONS[variation]
    run = _Run(out_dir, seed, email_share, fax or strength[0], scan or strength[1], photo or strength[2],
               {"new_facility": 0, "staff_change": 0}, set(), values, fonts, variation)
    records, truth = [], []
    for i in range(n):
        channel = channels[i % len(channels)]
        style_name = "typed" if channel == "typed_pdf" else styles[(i // len(channels)) % len(styles)]
        record, lines = _make_one(i, channel, style_name, run)
        records.append(record)
        truth += lines
    with open(out_dir / "truth.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in truth)
    with open(out_dir / "sets.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return truth


def write_demo_images(out: Path, seed: int = 7) -> list[dict[str, Any]]:
    """Image samples for the demo inbox: a set by fax behind a cover page, a change notice as a photo."""
    from renraku.samples.generator import invent_change, invent_cover, invent_set, random_style, render_pdf

    rng = random.Random(seed + 1000)
    sheets = invent_set(rng)
    cover = invent_cover(rng, sheets[0].truth["facility_name"], len(sheets) + 1)
    pdf = render_pdf([cover, *sheets], random_style(rng))
    header = fax_header(rng, dt.datetime(2025, 9, 12, 9, 41), sheets[0].truth["fax"], sheets[0].truth["facility_name"])
    name = "FAX_20250912_094100.tif"
    (out / name).write_bytes(fax_tiff(render_pages(pdf), "fine", rng, header))
    truth = [{"file": name, "page": i + 1, "form_id": s.form_id, "fields": s.truth}
             for i, s in enumerate([cover, *sheets])]
    change = invent_change(rng)
    name = "IMG_20251002_103146.jpg"
    (out / name).write_bytes(photo_jpeg(render_pages(render_pdf([change]), color=True)[0], rng))
    truth.append({"file": name, "page": 1, "form_id": "staff_change", "fields": change.truth})
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10, help="number of sets (applications or change notices)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--channels", default=",".join(CHANNELS))
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--email-share", type=float, default=0.3, help="share of PDFs, scans, photos sent by e-mail")
    parser.add_argument("--values", choices=VALUES, default="usual",
                        help="usual: the generator's own lists; wide: values outside the reader's lists")
    parser.add_argument("--fonts", choices=FONT_SPLITS, default="fit",
                        help="font families (samples/values/fonts.toml): fit, heldout (never used to fit), all")
    parser.add_argument("--variation", choices=tuple(VARIATIONS), default="usual",
                        help="wide: more varied fill (slant, size, pen, ink) and stronger degradations")
    args = parser.parse_args()
    start = time.monotonic()
    truth = make_labelled_set(args.out, args.n, args.seed, tuple(args.channels.split(",")),
                              tuple(args.styles.split(",")), email_share=args.email_share, values=args.values,
                              fonts=args.fonts, variation=args.variation)
    files = {t["file"] for t in truth}
    print(f"{args.n} sets, {len(files)} files, {len(truth)} pages written to {args.out} "
          f"in {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    main()
