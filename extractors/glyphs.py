"""How alike two characters look, for taking a misread value for the word it looks like (an
entry of a closed list, a dictionary spelling of a name's kana).

Tesseract's slips keep the look of the character, not its code: 謙 for 護, 陸 for 院, 剤 read as 前.
Counting such a slip as a whole wrong character (plain edit distance) leaves 大謙師 as far from
看護師 as from 薬剤師; weighing each substitution by how alike the two glyphs are, drawn in a
Japanese font, tells them apart. The font is the one the sample sheets are drawn with (Debian's
IPAex Gothic); without it, characters are only equal or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.ImageFont import FreeTypeFont

# Japanese gothic fonts of Debian's packages, the first one installed is used (the sample sheets
# are drawn with it too: samples/generator.py).
FONT_CANDIDATES = [
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
]
SIZE = 32


def gothic_font() -> str | None:
    """The first installed of FONT_CANDIDATES."""
    return next((p for p in FONT_CANDIDATES if Path(p).exists()), None)


@lru_cache(maxsize=1)
def _font() -> FreeTypeFont | None:
    from PIL import ImageFont

    path = gothic_font()
    return ImageFont.truetype(path, SIZE) if path else None


@lru_cache(maxsize=8192)
def _glyph(ch: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The character's strokes on a SIZE×SIZE grid, and how far each pixel is from a stroke."""
    import cv2
    from PIL import Image, ImageDraw

    font = _font()
    if font is None:
        return None
    image = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(image).text((0, 0), ch, fill=255, font=font)
    strokes = np.asarray(image) > 96
    if not strokes.any():
        return None
    return strokes, cv2.distanceTransform((~strokes).astype(np.uint8), cv2.DIST_L2, 3)


@lru_cache(maxsize=65536)
def similarity(a: str, b: str) -> float:
    """1 for the same character, 0 for glyphs whose strokes lie on average a pixel or more from the
    other's (chamfer distance on a 32-pixel grid): 護/謙 0.66, 院/陸 0.51, 看/大 0."""
    if a == b:
        return 1.0
    ga, gb = _glyph(a), _glyph(b)
    if ga is None or gb is None:
        return 0.0
    apart = (float(gb[1][ga[0]].mean()) + float(ga[1][gb[0]].mean())) / 2
    return max(0.0, 1.0 - apart)


def distance(read: str, word: str) -> float:
    """Edit distance where putting one character for another costs how unlike they look."""
    previous = [float(j) for j in range(len(word) + 1)]
    for i, a in enumerate(read, 1):
        current = [float(i)]
        for j, b in enumerate(word, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + 1 - similarity(a, b)))
        previous = current
    return previous[-1]


def nearest(read: str, words: list[str]) -> tuple[str, float, float]:
    """The word of the list that `read` looks most like: (word, its score, the runner-up's score),
    a score being 1 - distance / length of the longer (1 = the same)."""
    return _nearest(read, tuple(words))


@lru_cache(maxsize=4096)
def _nearest(read: str, words: tuple[str, ...]) -> tuple[str, float, float]:
    """(A crop's readings are weighed again after each stage and once more at the end.)"""
    scored = sorted(((1 - distance(read, w) / max(len(read), len(w), 1), w) for w in words), reverse=True)
    if not scored:
        return "", 0.0, 0.0
    return scored[0][1], scored[0][0], scored[1][0] if len(scored) > 1 else 0.0


def best_end(text: str, words: Iterable[str], least: float, slack: int = 1,
             at_end: bool = True) -> tuple[str, int] | None:
    """The word the end (or the start) of `text` looks most like, the part compared being up to
    `slack` characters longer or shorter than the word and never all of `text`: (the word, the
    part's length). None when no word scores `least` (a score as in `nearest`). Handwriting on a
    fax loses several characters of a known word at once (話間看議ステーション for 訪問看護…)."""
    best: tuple[float, str, int] | None = None
    for word in words:
        n = len(word)
        for m in range(n - slack, n + slack + 1):
            if 0 < m < len(text):
                score = 1 - distance(text[-m:] if at_end else text[:m], word) / max(m, n)
                if score >= least and (best is None or score > best[0]):
                    best = (score, word, m)
    return (best[1], best[2]) if best else None


@dataclass(frozen=True)
class Match:
    """How near a reading must look to a word to be taken for it: a score of at least `min_score`,
    `margin` ahead of the runner-up (reading.toml, [closed_lists]). Taken with a score below
    `weak_below`, it is a weak match: evidence for the confidence model, not a reason to refuse it."""

    min_score: float = 0.5
    margin: float = 0.05
    weak_below: float = 0.6

    def best(self, read: str, words: list[str]) -> tuple[str, float] | None:
        """The word `read` clearly looks most like, with its score; None when none clearly does."""
        word, score, runner_up = nearest(read, words)
        if score < self.min_score or score - runner_up < self.margin:
            return None
        return word, score


USUAL = Match()
