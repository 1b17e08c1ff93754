"""Which sheet a page is: one of the templates, a fax cover sheet, or unknown.

Classifiers are chosen by the kind of page (text layer or image); a kind without a classifier yet
gives `unknown` with its reason, so the page is still recorded and shown, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from renraku import normalize
from renraku.errors import InputError
from renraku.extractors.templates import Template
from renraku.extractors.text_layer import Transform
from renraku.pipeline.pages import Glyph, Page, line_text, lines_of

COVER, UNKNOWN = "cover", "unknown"
# The identifying print (corner label, title) sits in the top part of every official sheet.
HEAD_SHARE = 0.15


@dataclass
class Classification:
    form_id: str
    score: float  # 0..1, how sure
    method: str
    transform: Transform = field(default_factory=Transform)  # text pages: template → page points
    reason: str = ""
    fit: Any = None  # image pages: extractors.image_reader.ImageFit

    @property
    def template_matched(self) -> bool:
        return self.form_id not in (COVER, UNKNOWN)


Classifier = Callable[[Page, list[Template], dict[str, Any]], Classification]
CLASSIFIERS: dict[str, Classifier] = {}


def register(kind: str) -> Callable[[Classifier], Classifier]:
    def wrap(fn: Classifier) -> Classifier:
        CLASSIFIERS[kind] = fn
        return fn
    return wrap


def classify(page: Page, templates: list[Template], config: dict[str, Any]) -> Classification:
    if page.note:
        return Classification(UNKNOWN, 0.0, "none", reason=page.note)
    try:
        page.load_image()
    except InputError as exc:  # a PDF page that cannot be rendered
        return Classification(UNKNOWN, 0.0, "none", reason=exc.reason)
    classifier = CLASSIFIERS.get(page.kind)
    if classifier is None:
        return Classification(UNKNOWN, 0.0, "none", reason=f"{page.kind} のページを分類する方法がありません")
    return classifier(page, templates, config)


def _has_phrase(lines: list[list[Glyph]], phrase: str) -> bool:
    target = normalize.compact(phrase)
    return any(target in normalize.compact("".join(g.text for g in line)) for line in lines)


def _register_rects(page: Page, t: Template) -> Transform:
    """The shift that lays the template's printed boxes onto the page's (same sheet, moved a bit).

    Votes over pairs of equally sized rectangles; without enough printed boxes on the page the
    sheet is taken as placed exactly (scaled to the page width).
    """
    scale = page.width / t.page_size[0]
    assert page.text_layer is not None
    rects = [s.box for s in page.text_layer.shapes if s.kind == "rect"]
    if not rects or not t.printed_rects:
        return Transform(scale)
    votes: dict[tuple[float, float], int] = {}
    for tr in t.printed_rects:
        tw, th = (tr[2] - tr[0]) * scale, (tr[3] - tr[1]) * scale
        for pr in rects:
            if abs(pr[2] - pr[0] - tw) <= 0.6 and abs(pr[3] - pr[1] - th) <= 0.6:
                key = (round(pr[0] - tr[0] * scale), round(pr[1] - tr[1] * scale))
                votes[key] = votes.get(key, 0) + 1
    if not votes:
        return Transform(scale)
    (dx, dy), count = max(votes.items(), key=lambda kv: kv[1])
    if count < len(t.printed_rects) / 2:
        return Transform(scale)
    return Transform(scale, float(dx), float(dy))


@register("text")
def classify_text_page(page: Page, templates: list[Template], config: dict[str, Any]) -> Classification:
    layer = page.text_layer
    assert layer is not None
    head = [g for g in layer.glyphs if g.cy <= page.height * HEAD_SHARE]
    head_lines = lines_of(head)
    corners = {normalize.compact(line_text([g for g in ln if g.cx > page.width * 0.6])) for ln in head_lines}
    best: Classification | None = None
    for t in templates:
        title_ok = _has_phrase(head_lines, t.identity.title)
        corner_ok = normalize.compact(t.identity.corner) in corners
        score = (0.6 if title_ok else 0.0) + (0.4 if corner_ok else 0.0)
        if score < 0.6:
            continue  # a corner label alone is too little: 別紙様式1 could head any attachment
        transform = _register_rects(page, t)
        if best is None or score > best.score:
            best = Classification(t.form_id, score, "text_layer", transform)
    if best is not None:
        return best
    text = normalize.compact("".join(g.text for g in layer.glyphs))
    keywords = config.get("cover", {}).get("keywords", [])
    if any(normalize.compact(k) in text for k in keywords):
        return Classification(COVER, 0.9, "text_layer", reason="送付状と判断しました")
    return Classification(UNKNOWN, 0.0, "text_layer", reason="どの様式にも当てはまりません")


@register("image")
def classify_image_page(page: Page, templates: list[Template], config: dict[str, Any]) -> Classification:
    """By how well each template's printed rules register on the page; else cover or unknown."""
    from renraku.extractors.image_reader import ImageFit
    from renraku.extractors.register import find_lines, prepare, register

    gray = page.image.pixels
    work = prepare(gray)
    fits = register(work, find_lines(work.gray), templates)
    best = fits[0]
    if best.score >= float(config.get("image", {}).get("register_min", 0.8)):
        return Classification(best.template.form_id, best.score, "image", fit=ImageFit(work, best))
    head = _head_text(work.gray)
    keywords = config.get("cover", {}).get("keywords", [])
    if any(normalize.compact(k) in head for k in keywords):
        return Classification(COVER, 0.9, "image", reason="送付状と判断しました")
    return Classification(UNKNOWN, best.score, "image", reason="どの様式にも当てはまりません")


def _head_text(work_gray: Any) -> str:
    """The top of the page read as Japanese text (a cover sheet names itself there)."""
    from renraku.extractors import ocr

    h = work_gray.shape[0]
    reading = ocr.read({"head": work_gray[: int(h * 0.45)]}, ocr.Setting("head", "jpn", psm=3))["head"][0]
    return normalize.compact(reading.text)
