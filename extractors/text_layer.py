"""Reading fields from the text layer of a PDF filled on a computer.

The value of a box is the glyphs whose centre lies inside it (in reading order); ticks are glyphs
(✓ ○ レ …), drawn vector shapes or placed images inside a check box; the seal is anything inside
the seal box that the blank sheet does not print there. Confidence is 1.0 when the layer leaves no
doubt, lower (and the field flagged) when something spills over a box edge or has the wrong shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from renraku import normalize
from renraku.extractors.fields import FieldReading
from renraku.extractors.templates import Box, FieldSpec, Template
from renraku.pipeline.pages import Glyph, Page, TextLayer, line_text, lines_of


@dataclass(frozen=True)
class Transform:
    """Template coordinates → page coordinates (the same sheet printed a little off or scaled)."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def box(self, b: Box) -> Box:
        return (b[0] * self.scale + self.dx, b[1] * self.scale + self.dy,
                b[2] * self.scale + self.dx, b[3] * self.scale + self.dy)


def _inside(box: Box, x: float, y: float, margin: float = 0.0) -> bool:
    return box[0] - margin <= x <= box[2] + margin and box[1] - margin <= y <= box[3] + margin


def _centre(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def _same_box(a: Box, b: Box, tol: float = 1.0) -> bool:
    return all(abs(p - q) <= tol for p, q in zip(a, b, strict=True))


class TextLayerReader:
    """Reads every field of a template from one text page."""

    def __init__(self, template: Template, config: dict[str, Any], transform: Transform | None = None):
        self.template = template
        self.t = transform or Transform()
        cfg = config.get("text_layer", {})
        self.ambiguous = float(cfg.get("ambiguous", 0.5))
        self.mark_margin = float(cfg.get("mark_margin", 3.0))
        self.spill = float(cfg.get("spill", 0.5))
        marks = config.get("marks", {})
        self.checkbox_signs = {normalize.text(s) for s in marks.get("checkbox", [])}
        self.admin_signs = {normalize.text(s) for s in marks.get("admin", [])}
        self.admin_negative = {normalize.text(s) for s in marks.get("admin_negative", [])}
        self.printed_rects = [self.t.box(r) for r in template.printed_rects]

    def read(self, page: Page) -> list[FieldReading]:
        layer = page.text_layer
        if layer is None:
            raise ValueError("text layer reader needs a page with a text layer")
        return [self.read_field(spec, layer) for spec in self.template.fields]

    def read_field(self, spec: FieldSpec, layer: TextLayer) -> FieldReading:
        box = self.t.box(spec.box)
        printed = [self.t.box(p.box) for p in spec.printed]
        glyphs = [g for g in layer.glyphs
                  if g.text.strip() and not any(_inside(p, g.cx, g.cy) for p in printed)]
        if spec.kind == "checkbox":
            return self._checkbox(spec, box, glyphs, layer)
        if spec.kind == "seal":
            return self._seal(spec, box, glyphs, layer)
        if spec.kind == "admin_mark":
            return self._admin(spec, box, glyphs, layer)
        return self._text(spec, box, layer.glyphs, printed)

    # ------------------------------------------------------------------------------- text

    def _text(self, spec: FieldSpec, box: Box, all_glyphs: list[Glyph], printed: list[Box]) -> FieldReading:
        inside = [g for g in all_glyphs
                  if _inside(box, g.cx, g.cy) and not any(_inside(p, g.cx, g.cy) for p in printed)]
        raw = _join_lines(lines_of(inside))
        notes = []
        if _spills(inside, all_glyphs, box, self.spill):
            notes.append("枠からはみ出した文字があります")
        norm = normalize.normalise(spec.kind, raw)
        if not norm.ok:
            notes.append(norm.note)
        confidence = 1.0 if not notes else self.ambiguous
        return FieldReading(spec.path, spec.kind, norm.value, confidence, "text_layer", box,
                            raw=raw, note="；".join(notes))

    # ------------------------------------------------------------------------------ marks

    def _checkbox(self, spec: FieldSpec, box: Box, glyphs: list[Glyph], layer: TextLayer) -> FieldReading:
        signs = [g.text for g in glyphs if _inside(box, g.cx, g.cy, self.mark_margin)]
        drawn = self._drawn_inside(box, layer)
        raw = "".join(signs) + ("[図形]" if drawn else "")
        if not signs and not drawn:
            return FieldReading(spec.path, spec.kind, False, 1.0, "text_layer", box, raw="")
        unusual = [s for s in signs if normalize.text(s) not in self.checkbox_signs]
        if unusual:
            return FieldReading(spec.path, spec.kind, True, self.ambiguous, "text_layer", box, raw=raw,
                                note=f"チェック欄に見慣れない記号「{''.join(unusual)}」があります")
        return FieldReading(spec.path, spec.kind, True, 1.0, "text_layer", box, raw=raw)

    def _admin(self, spec: FieldSpec, box: Box, glyphs: list[Glyph], layer: TextLayer) -> FieldReading:
        inside = [g for g in glyphs if _inside(box, g.cx, g.cy)]
        raw = normalize.compact("".join(g.text for g in inside))
        drawn = self._drawn_inside(box, layer)
        if not raw and not drawn:
            return FieldReading(spec.path, spec.kind, False, 1.0, "text_layer", box)
        if not raw:  # a circle drawn with a shape tool
            return FieldReading(spec.path, spec.kind, True, 1.0, "text_layer", box, raw="[図形]")
        if raw in self.admin_signs or all(ch in self.admin_signs for ch in raw):
            return FieldReading(spec.path, spec.kind, True, 1.0, "text_layer", box, raw=raw)
        if raw in self.admin_negative or all(ch in self.admin_negative for ch in raw):
            return FieldReading(spec.path, spec.kind, False, self.ambiguous, "text_layer", box, raw=raw,
                                note=f"管理者欄に「{raw}」とあります（管理者ではないと読みました）")
        return FieldReading(spec.path, spec.kind, True, self.ambiguous, "text_layer", box, raw=raw,
                            note=f"管理者欄に「{raw}」とあります")

    def _seal(self, spec: FieldSpec, box: Box, glyphs: list[Glyph], layer: TextLayer) -> FieldReading:
        signs = [g.text for g in glyphs if _inside(box, g.cx, g.cy)]
        drawn = self._drawn_inside(box, layer)
        present = bool(signs or drawn)
        raw = "".join(signs) + ("[画像・図形]" if drawn else "")
        return FieldReading(spec.path, spec.kind, present, 1.0, "text_layer", box, raw=raw)

    def _drawn_inside(self, box: Box, layer: TextLayer) -> bool:
        """A shape or image inside the box that the blank sheet does not print."""
        for shape in layer.shapes:
            if any(_same_box(shape.box, r) for r in self.printed_rects):
                continue
            if _inside(box, *_centre(shape.box)) and not _encloses(shape.box, box):
                return True
        return any(_inside(box, *_centre(img)) for img in layer.images)


def _encloses(outer: Box, inner: Box) -> bool:
    """A shape larger than the box around it (a table cell, a frame) is not a mark in it."""
    return outer[0] <= inner[0] + 0.5 and outer[1] <= inner[1] + 0.5 and \
        outer[2] >= inner[2] - 0.5 and outer[3] >= inner[3] - 0.5


def _spills(inside: list[Glyph], all_glyphs: list[Glyph], box: Box, share: float) -> bool:
    """Does the value run over the box edge (glyphs sticking out, or the text going on outside)?"""
    inside = [g for g in inside if g.text.strip()]
    if any(_sticks_out(g, box, share) for g in inside):
        return True
    outside = [g for g in all_glyphs if g.text.strip() and not _inside(box, g.cx, g.cy)
               and box[1] <= g.cy <= box[3]]
    for g in inside:
        for o in outside:
            gap = max(o.box[0] - g.box[2], g.box[0] - o.box[2])
            if abs(o.cy - g.cy) < 0.4 * g.size and gap < 0.3 * max(g.size, o.size):
                return True
    return False


def _sticks_out(g: Glyph, box: Box, share: float) -> bool:
    w, h = g.box[2] - g.box[0], g.box[3] - g.box[1]
    out_x = max(0.0, box[0] - g.box[0]) + max(0.0, g.box[2] - box[2])
    out_y = max(0.0, box[1] - g.box[1]) + max(0.0, g.box[3] - box[3])
    return (w > 0 and out_x / w > share) or (h > 0 and out_y / h > share)


def _join_lines(lines: Iterable[list[Glyph]]) -> str:
    """Lines of a wrapped value joined: no space between Japanese characters, one otherwise."""
    out = ""
    for line in lines:
        text = line_text(line)
        if not text:
            continue
        if out and not (_is_cjk(out[-1]) and _is_cjk(text[0])):
            out += " "
        out += text
    return out


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef"
