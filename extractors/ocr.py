"""Tesseract, called few times: crops that are read the same way share one call.

Tesseract runs in this process through its C API (tesserocr), each language model loaded once and
kept: a process per call loading its model cost about a fifth of the OCR time. Reading field by
field would still cost an image per field, so the crops of a setting are stacked on a canvas (one
canvas per variant: plain, enlarged, binarised) and all canvases go to one call as a list of
images; every word is given back to the crop whose band holds its centre. A variant named
`…/alone` puts each crop on an image of its own instead, in the same call. The two miss different
things: stacked, Tesseract sees a consistent text size (better on photos and handwriting), but
specks and rules of neighbouring crops can throw its line finding off (a typed fax page read 78 %
stacked, 84 % alone); doubtful crops are read both ways and vote.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

GAP = 28  # white pixels between stacked crops: Tesseract keeps them on separate lines
PAD = 16  # white border around each crop


@dataclass(frozen=True)
class Setting:
    """How a group of crops is read."""

    name: str
    lang: str
    psm: int = 6
    whitelist: str | None = None
    spaced: bool = False  # text with spaces between words (e-mail, Latin) rather than Japanese
    more_langs: tuple[str, ...] = ()  # other models a doubtful crop is read with too
    symbols: bool = False  # keep each character's box (where a separator may have been lost unread)
    choices: bool = False  # keep how well another character was read in each place (Word.rival)

    def with_lang(self, lang: str) -> Setting:
        return dataclasses.replace(self, name=f"{self.name}@{lang}", lang=lang, more_langs=())

    def config(self) -> str:
        parts = [f"--psm {self.psm}", "-c preserve_interword_spaces=1"]  # psm 7: one line of text
        if self.whitelist:
            parts.append(f"-c tessedit_char_whitelist={self.whitelist}")
        return " ".join(parts)


Box = tuple[int, int, int, int]  # x0, y0, x1, y1


@dataclass
class Word:
    text: str
    conf: float  # 0..100 as Tesseract gives it
    box: Box  # within the crop
    symbols: tuple[tuple[str, Box], ...] = ()  # each character and its box, for settings that ask
    # the best score (0..100) Tesseract's LSTM gave another character in place of one of the word's,
    # for settings with `choices`: 9 at 61 beside an 8 at 94 is a digit it nearly read otherwise
    rival: float = 0.0

    def moved(self, dx: int, dy: int) -> Word:
        def shift(b: Box) -> Box:
            return (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)

        return Word(self.text, self.conf, shift(self.box), tuple((c, shift(b)) for c, b in self.symbols), self.rival)


@dataclass
class Reading:
    text: str
    words: list[Word] = field(default_factory=list)

    @property
    def mean_conf(self) -> float:
        return float(np.mean([w.conf for w in self.words])) / 100 if self.words else 0.0

    @property
    def min_conf(self) -> float:
        return min((w.conf for w in self.words), default=0.0) / 100

    @property
    def rival(self) -> float:
        return max((w.rival for w in self.words), default=0.0)


def stack(crops: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """One canvas with the crops one under another; the vertical band of each."""
    width = max(c.shape[1] for c in crops) + 2 * PAD
    height = sum(c.shape[0] for c in crops) + GAP * (len(crops) - 1) + 2 * PAD
    canvas = np.full((height, width), 255, np.uint8)
    bands, y = [], PAD
    for c in crops:
        canvas[y:y + c.shape[0], PAD:PAD + c.shape[1]] = c
        bands.append((y, y + c.shape[0]))
        y += c.shape[0] + GAP
    return canvas, bands


def _on_line(word: Word, line: list[Word], unit: float) -> bool:
    """Whether a word stands on a line: its centre near the line's, or its height mostly within the
    line's (a speck above a character makes its box tall, and its centre high: サー of けやきデイ
    サービスセンター would otherwise start a line of its own, and come first)."""
    centre = (word.box[1] + word.box[3]) / 2
    if abs(centre - np.mean([(x.box[1] + x.box[3]) / 2 for x in line])) < 0.6 * unit:
        return True
    top, bottom = float(np.median([x.box[1] for x in line])), float(np.median([x.box[3] for x in line]))
    overlap = min(word.box[3], bottom) - max(word.box[1], top)
    return overlap >= 0.8 * min(word.box[3] - word.box[1], bottom - top)


def _join(words: list[Word], spaced: bool) -> str:
    """Words of one crop as text: lines top to bottom; a space only where the gap is wide."""
    if not words:
        return ""
    heights = [w.box[3] - w.box[1] for w in words]
    unit = float(np.median(heights)) or 1.0
    lines: list[list[Word]] = []
    for w in sorted(words, key=lambda w: ((w.box[1] + w.box[3]) / 2, w.box[0])):
        if lines and _on_line(w, lines[-1], unit):
            lines[-1].append(w)
        else:
            lines.append([w])
    out = []
    for line in lines:
        line.sort(key=lambda w: w.box[0])
        text = line[0].text
        for prev, w in itertools.pairwise(line):
            gap = w.box[0] - prev.box[2]
            wide = gap > (0.35 if spaced else 0.6) * unit
            text += (" " if wide else "") + w.text
        out.append(text)
    return " ".join(out)


VARIANTS = {
    "plain": lambda c: c,
    # Otsu per crop: a different cut between ink and paper, a second opinion on faint or bold print.
    "otsu": lambda c: _otsu(c),
    "large": lambda c: _scaled(c, 1.5),
    "xl": lambda c: _scaled(c, 2.0),
    "large_otsu": lambda c: _otsu(_scaled(c, 1.5)),
    # Strokes a pixel wider: thin Mincho print on a clean scan can be no text at all to Tesseract.
    "bold": lambda c: _bold(c),
}


def _bold(crop: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.erode(crop, np.ones((2, 2), np.uint8))  # dark ink on white: erosion widens it


def _otsu(crop: np.ndarray) -> np.ndarray:
    import cv2

    _t, bw = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return bw


def _scaled(crop: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    return cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)


@lru_cache(maxsize=1)
def installed_langs() -> frozenset[str]:
    """Tesseract's models in its data folder (capitalised script models such as `Japanese` too)."""
    return frozenset(_tesserocr().get_languages()[1])


def check_langs(setting: Setting) -> Setting:
    """A setting whose models are all installed; otherwise a ConfigError naming the missing one."""
    from renraku.errors import ConfigError

    missing = sorted({setting.lang, *setting.more_langs} - installed_langs())
    if missing:
        raise ConfigError(f"Tesseract model(s) {missing} of OCR setting {setting.name!r} are not installed "
                          "(Debian: tesseract-ocr-jpn, tesseract-ocr-script-jpan for 'Japanese')")
    return setting


def _tesserocr() -> Any:
    # OpenMP reads its thread limit when libtesseract is first loaded: one core per reader, as the
    # page workers and the second reader thread take the other
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    import tesserocr

    return tesserocr


_ENGINES: dict[str, list[Any]] = defaultdict(list)  # loaded models, free for the next call
_ENGINES_LOCK = threading.Lock()


@contextmanager
def _engine(lang: str) -> Iterator[Any]:
    """Tesseract with `lang` loaded, kept for the next call: starting a process and loading the model
    for every call cost a fifth of the OCR time. One instance per concurrent call (an instance is not
    thread-safe); the model is loaded as many times as calls of that language ever overlapped."""
    with _ENGINES_LOCK:
        free = _ENGINES[lang]
        api = free.pop() if free else None
    if api is None:
        tesserocr = _tesserocr()
        api = tesserocr.PyTessBaseAPI(lang=lang, variables={"preserve_interword_spaces": "1"})
    try:
        yield api
    finally:
        api.Clear()  # the image and its results (10–15 MB an instance); the model stays loaded
        with _ENGINES_LOCK:
            _ENGINES[lang].append(api)


def drop_engines() -> None:
    """End the loaded models: a page worker reads with one only for the head of a page no template
    fits (a fax cover), and would keep it (about 40 MB) while it waits."""
    with _ENGINES_LOCK:
        for free in _ENGINES.values():
            while free:
                free.pop().End()


def _tesseract(paths: list[str], setting: Setting) -> Iterator[tuple[int, Word]]:
    """Read image files with Tesseract's API, the model already loaded: (image index, word).

    The words are those Tesseract's own TSV output gives (same engine, same settings: checked on
    the dev set's calls, word for word), confidence truncated to a whole number as TSV writes it.
    """
    tesserocr = _tesserocr()
    word = tesserocr.RIL.WORD
    with _engine(setting.lang) as api:
        api.SetPageSegMode(setting.psm)
        api.SetVariable("tessedit_char_whitelist", setting.whitelist or "")
        api.SetVariable("lstm_choice_mode", "2" if setting.choices else "0")  # the words stay the same
        for i, path in enumerate(paths):
            api.SetImageFile(path)
            api.Recognize()
            found = api.GetIterator()
            for w in tesserocr.iterate_level(found, word):
                if w.Empty(word):
                    continue
                text, conf = (w.GetUTF8Text(word) or "").strip(), w.Confidence(word)
                if text and conf >= 0:
                    symbols, rival = (_characters(w, tesserocr.RIL, setting.choices)
                                      if setting.symbols or setting.choices else ((), 0.0))
                    yield i, Word(text, float(int(conf)), w.BoundingBox(word), symbols if setting.symbols else (),
                                  rival)


def _characters(word_iterator: Any, ril: Any, choices: bool) -> tuple[tuple[tuple[str, Box], ...], float]:
    """The characters of the iterator's current word with their boxes, and the best score of another
    character in place of any of them (with `choices`); the iterator is left at the word's last."""
    out, rival = [], 0.0
    while True:
        text = word_iterator.GetUTF8Text(ril.SYMBOL)
        box = word_iterator.BoundingBox(ril.SYMBOL)
        if text and box:
            out.append((text, box))
        if text and choices:
            rival = max([rival, *(c.Confidence() for c in word_iterator.GetChoiceIterator()
                                  if c.GetUTF8Text() != text)])
        if word_iterator.IsAtFinalElement(ril.WORD, ril.SYMBOL) or not word_iterator.Next(ril.SYMBOL):
            return tuple(out), rival


def widest_letter_gap(reading: Reading) -> float:
    """How many times the usual gap the widest gap between two letters before an address's @ is (0
    when it cannot be told). A dot, hyphen or underscore Tesseract dropped leaves one: aoi-takahashi
    read aoitakahashi by every reading, 2.8–3.2 times the usual gap, which no vote can notice.
    Needs a setting with `symbols`; gaps under a quarter of the letters' height do not count."""
    symbols = [s for w in reading.words for s in w.symbols]
    local = list(itertools.takewhile(lambda s: s[0] != "@", symbols))
    if len(local) == len(symbols) or len(local) < 4:  # no @ read, or too few letters to compare
        return 0.0
    gaps = [(a[0], b[0], b[1][0] - a[1][2]) for a, b in itertools.pairwise(local)]
    usual = [g for _a, _b, g in gaps if g > 0]
    if len(usual) < 3:
        return 0.0
    floor = 0.25 * float(np.median([box[3] - box[1] for _c, box in local]))
    widest = max((g for a, b, g in gaps if a.isalpha() and b.isalpha() and g > floor), default=0)
    return widest / float(np.median(usual))


@dataclass
class Request:
    """Crops of one page read with one setting, once per variant: stacked on a canvas, or each crop
    on an image of its own for a variant named `…/alone`."""

    setting: Setting
    crops: dict[Hashable, np.ndarray]
    variants: tuple[str, ...] = ("plain",)


@dataclass
class _Image:
    request: int
    variant: int
    path: str  # the image file: written as soon as made, so that a batch's images are not all in memory
    bands: list[tuple[Hashable, int, int]]  # crop key and its rows on the image (top, bottom)
    offset: int  # left margin of the crops on the image
    pixels: int = 0  # its size, a measure of Tesseract's work on it


ALONE = "/alone"  # variant suffix: each crop on its own image rather than stacked


def alone(names: Sequence[str]) -> tuple[str, ...]:
    """The same variants, each crop on an image of its own."""
    return tuple(n if n.endswith(ALONE) else n + ALONE for n in names)


def check_variants(names: Sequence[str]) -> tuple[str, ...]:
    """Variant names from configuration, refused early when one is unknown."""
    from renraku.errors import ConfigError

    unknown = [n for n in names if n.removesuffix(ALONE) not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown OCR variant(s) {unknown}; known: {sorted(VARIANTS)} (each also with {ALONE!r})")
    return tuple(names)


def _images(i: int, request: Request, folder: str) -> list[_Image]:
    import cv2

    def saved(pixels: np.ndarray, v: int, n: int) -> str:
        # uncompressed: encoding PNGs took this process about 1 ms an image, a second on a 30-page fax
        path = os.path.join(folder, f"{i}-{v}-{n}.pgm")
        cv2.imwrite(path, pixels)
        return path

    keys = list(request.crops)
    out = []
    for v, name in enumerate(request.variants):
        transform = VARIANTS[name.removesuffix(ALONE)]
        if name.endswith(ALONE):
            for n, k in enumerate(keys):
                padded = cv2.copyMakeBorder(transform(request.crops[k]), PAD, PAD, PAD, PAD,
                                            cv2.BORDER_CONSTANT, value=255)
                out.append(_Image(i, v, saved(padded, v, n), [(k, PAD, padded.shape[0] - PAD)], PAD, padded.size))
        else:
            canvas, layout = stack([transform(request.crops[k]) for k in keys])
            bands = [(k, b0, b1) for k, (b0, b1) in zip(keys, layout, strict=True)]
            out.append(_Image(i, v, saved(canvas, v, 0), bands, PAD, canvas.size))
    return out


def read_requests(requests: Sequence[Request], workers: int = 1) -> list[dict[Hashable, list[Reading]]]:
    """Read the crops of many pages with few Tesseract calls: the images of all requests of one
    setting go to `workers` calls at once (threads; Tesseract releases the GIL while it reads).

    The images are cut the same way whatever the number of workers (a page's canvas holds only that
    page's crops) and Tesseract reads each image of a list on its own, so the readings do not depend
    on `workers`. Returns, per request, one reading per variant for each crop.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="renraku-ocr-") as folder:
        images: dict[Setting, list[_Image]] = {}
        for i, request in enumerate(requests):
            if request.crops:
                images.setdefault(request.setting, []).extend(_images(i, request, folder))
        words = _read_images(images, workers)
    return [{k: [Reading(_join(words[(i, v, k)], r.setting.spaced), words[(i, v, k)]) for v in range(len(r.variants))]
             for k in r.crops} for i, r in enumerate(requests)]


def _read_images(images: dict[Setting, list[_Image]], workers: int) -> dict[tuple[int, int, Hashable], list[Word]]:
    """Every image read with its setting, `workers` at a time, largest first (the threads finish
    together: no call waits for a model to load, so one image is as good a share as a setting's
    whole list); each word given to the crop whose band holds its centre, in the crop's own
    coordinates."""
    from concurrent.futures import ThreadPoolExecutor

    words: dict[tuple[int, int, Hashable], list[Word]] = defaultdict(list)
    queue = sorted(((setting, image) for setting, items in images.items() for image in items),
                   key=lambda pair: pair[1].pixels, reverse=True)

    def run(pair: tuple[Setting, _Image]) -> tuple[_Image, list[Word]]:
        setting, image = pair
        return image, [w for _j, w in _tesseract([image.path], setting)]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as threads:  # Tesseract reads without the GIL
        for image, found in threads.map(run, queue):
            for word in found:
                cy = (word.box[1] + word.box[3]) / 2
                for key, b0, b1 in image.bands:
                    if b0 - GAP / 2 <= cy < b1 + GAP / 2:
                        words[(image.request, image.variant, key)].append(word.moved(-image.offset, -b0))
                        break
    return words


def read(crops: dict[Hashable, np.ndarray], setting: Setting,
         variants: Sequence[str] = ("plain",)) -> dict[Hashable, list[Reading]]:
    """Read every crop, once per variant, in a single Tesseract call (see `read_requests`)."""
    return read_requests([Request(setting, crops, tuple(variants))])[0]

