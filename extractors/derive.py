"""Derive sheet templates from the blank official sheets (vector PDF).

The printed boxes (rectangles) and labels (words) of a blank sheet are read with pdfplumber; a small
mapping that is data (`samples/templates/labels.json`) says which printed label names which field
and how its box follows from the label. A revised sheet is onboarded by running
`renraku template derive BLANK.pdf` again, adjusting the mapping only if a label changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from renraku import normalize
from renraku.errors import TemplateError
from renraku.extractors.templates import Box, FieldSpec, Identity, PrintedWord, Template
from renraku.pipeline.pages import Glyph, Word, lines_of, load_pdf, words_of

CHECKBOX_MAX = 16.0  # points: a printed square at most this big is a check box, not a cell
INSET = 1.0  # points kept clear of the printed rules
TOL = 1.5


@dataclass(frozen=True)
class _Line:
    words: tuple[Word, ...]

    @property
    def top(self) -> float:
        return min(w.box[1] for w in self.words)

    @property
    def bottom(self) -> float:
        return max(w.box[3] for w in self.words)

    def has_phrase(self, phrase: str) -> bool:
        return bool(_find_phrase(self.words, phrase))


def _key(s: str) -> str:
    return normalize.compact(s)


def _find_phrase(words: tuple[Word, ...], phrase: str) -> list[tuple[int, int]]:
    """Spans (start, end) of consecutive words whose text together is exactly `phrase`."""
    target = _key(phrase)
    spans = []
    for i in range(len(words)):
        acc = ""
        for j in range(i, len(words)):
            acc += _key(words[j].text)
            if acc == target:
                spans.append((i, j + 1))
                break
            if not target.startswith(acc):
                break
    return spans


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _contains(outer: Box, x: float, y: float) -> bool:
    return outer[0] - 0.1 <= x <= outer[2] + 0.1 and outer[1] - 0.1 <= y <= outer[3] + 0.1


def _area(b: Box) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


def _round(b: Box) -> Box:
    return (round(b[0], 1), round(b[1], 1), round(b[2], 1), round(b[3], 1))


class _BlankPage:
    """The printed content of one blank page: cells, check boxes, words, lines."""

    def __init__(self, glyphs: list[Glyph], rects: list[Box], width: float, height: float) -> None:
        self.width, self.height = width, height
        self.rects = rects
        self.checkboxes = [r for r in rects if r[2] - r[0] <= CHECKBOX_MAX and r[3] - r[1] <= CHECKBOX_MAX]
        self.cells = [r for r in rects if r not in self.checkboxes]
        self.lines = [_Line(tuple(words_of(line))) for line in lines_of(glyphs)]
        self.words = [w for line in self.lines for w in line.words]

    def cell_at(self, x: float, y: float) -> Box | None:
        inside = [c for c in self.cells if _contains(c, x, y)]
        return min(inside, key=_area) if inside else None

    def find(self, spec: dict[str, Any]) -> list[tuple[_Line, Box]]:
        """Every place the label of `spec` is printed (line and label box), top to bottom."""
        found = []
        for line in self.lines:
            if spec.get("row") and not line.has_phrase(spec["row"]):
                continue
            for start, end in _find_phrase(line.words, spec["label"]):
                found.append((line, _union([w.box for w in line.words[start:end]])))
        return sorted(found, key=lambda f: (f[1][1], f[1][0]))

    # ------------------------------------------------------------------------ box strategies

    def after_label(self, line: _Line, label: Box, band: str | None) -> Box:
        cy = (label[1] + label[3]) / 2
        cell = self.cell_at((label[0] + label[2]) / 2, cy)
        if cell is None:
            right = [c for c in self.cells if c[0] >= label[2] - TOL and c[1] <= cy <= c[3]]
            if not right:
                raise TemplateError(f"ラベルの右に枠がありません: {label}")
            cell = min(right, key=lambda c: c[0])
            return (cell[0] + INSET, cell[1] + INSET, cell[2] - INSET, cell[3] - INSET)
        x1 = cell[2]
        for w in line.words:
            if w.box[0] >= label[2] - 0.1 and w.box[0] < x1 and _contains(cell, w.box[0], cy):
                x1 = w.box[0]
        top, bottom = cell[1], cell[3]
        if band == "line":
            others = [ln for ln in self.lines if ln is not line and cell[1] <= (ln.top + ln.bottom) / 2 <= cell[3]]
            above = [ln.bottom for ln in others if ln.bottom <= label[1]]
            below = [ln.top for ln in others if ln.top >= label[3]]
            if above:
                top = max(top, (max(above) + label[1]) / 2)
            if below:
                bottom = min(bottom, (min(below) + label[3]) / 2)
        return (label[2] + INSET, top + INSET, x1 - INSET, bottom - INSET)

    def checkbox(self, label: Box) -> Box:
        cy = (label[1] + label[3]) / 2
        left = [b for b in self.checkboxes if b[2] <= label[0] + TOL and b[1] - 3 <= cy <= b[3] + 3
                and label[0] - b[2] <= 20]
        if not left:
            raise TemplateError(f"ラベルの左にチェック欄がありません: {label}")
        return max(left, key=lambda b: b[2])

    def cell(self, label: Box) -> Box:
        cell = self.cell_at((label[0] + label[2]) / 2, (label[1] + label[3]) / 2)
        if cell is None:
            raise TemplateError(f"ラベルを囲む枠がありません: {label}")
        return cell

    def column(self, label: Box) -> list[Box]:
        header = self.cell(label)
        below = [c for c in self.cells
                 if abs(c[0] - header[0]) <= TOL and abs(c[2] - header[2]) <= TOL and c[1] >= header[3] - TOL]
        cells = sorted(below, key=lambda c: c[1])
        return [(c[0] + INSET, c[1] + INSET, c[2] - INSET, c[3] - INSET) for c in cells]

    def printed_inside(self, box: Box) -> list[PrintedWord]:
        return [PrintedWord(text=w.text, box=_round(w.box)) for w in self.words
                if _contains(box, (w.box[0] + w.box[2]) / 2, (w.box[1] + w.box[3]) / 2)]

    def identity(self) -> Identity:
        top_line = min(self.lines, key=lambda ln: ln.top)
        corner_words = [w for w in top_line.words if w.box[2] > 0.6 * self.width]
        if not corner_words:
            raise TemplateError("右上の様式番号が見つかりません")
        biggest = max(g.size for w in self.words for g in w.glyphs)
        title_words = [w for w in self.words if all(abs(g.size - biggest) < 0.5 for g in w.glyphs)]
        return Identity(
            corner="".join(w.text for w in corner_words),
            corner_box=_round(_union([w.box for w in corner_words])),
            title=" ".join(w.text for w in title_words),
            title_box=_round(_union([w.box for w in title_words])),
        )


def _expand(spec: dict[str, Any], blank: _BlankPage) -> list[tuple[int, Box]]:
    """The boxes a label mapping entry names, each with its row number ({n} in the path and hints)."""
    how = spec.get("box", "after_label")
    found = blank.find(spec)
    if not found:
        raise TemplateError(f"ラベル「{spec['label']}」が見つかりません（{spec['path']}）")
    if how == "column":
        if len(found) != 1:
            raise TemplateError(f"見出し「{spec['label']}」が {len(found)} か所にあります（{spec['path']}）")
        cells = blank.column(found[0][1])
        return [(i + 1, box) for i, box in enumerate(cells)]
    if not spec.get("each") and len(found) != 1:
        raise TemplateError(f"ラベル「{spec['label']}」が {len(found)} か所にあります（{spec['path']}）"
                            "。row で行を指定してください")
    out = []
    for i, (line, label) in enumerate(found):
        if how == "checkbox":
            box = blank.checkbox(label)
        elif how == "cell":
            box = blank.cell(label)
        elif how == "after_label":
            box = blank.after_label(line, label, spec.get("band"))
        else:
            raise TemplateError(f"不明な box の指定です: {how}")
        out.append((i + 1, box))
    return out


def load_label_map(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))["forms"]
    except (OSError, ValueError, KeyError) as exc:
        raise TemplateError(f"ラベル対応表を読めません: {path}: {exc}") from exc


def derive_templates(pdf_path: Path, label_map: dict[str, Any]) -> list[Template]:
    """One template per page of a blank sheet PDF, the form chosen by its printed corner label."""
    data = Path(pdf_path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    templates = []
    for page in load_pdf(data):
        if page.text_layer is None:
            raise TemplateError(f"{pdf_path.name} p.{page.number}: 文字のない PDF からは作れません")
        rects = [s.box for s in page.text_layer.shapes if s.kind == "rect"]
        blank = _BlankPage(page.text_layer.glyphs, rects, page.width, page.height)
        identity = blank.identity()
        form_id = next((fid for fid, m in label_map.items() if _key(m["corner"]) == _key(identity.corner)), None)
        if form_id is None:
            raise TemplateError(f"{pdf_path.name} p.{page.number}: 様式番号「{identity.corner}」は"
                                "ラベル対応表にありません")
        fields = []
        for spec in label_map[form_id]["fields"]:
            for n, box in _expand(spec, blank):
                box = _round(box)
                hints = {k: v.format(n=n) if isinstance(v, str) else v for k, v in spec.get("hints", {}).items()}
                fields.append(FieldSpec(path=spec["path"].format(n=n), kind=spec["kind"], box=box, hints=hints,
                                        printed=blank.printed_inside(box)))
        fields = _in_reading_order(fields)
        _check_unique(form_id, fields)
        templates.append(Template(
            form_id=form_id,
            source={"file": Path(pdf_path).name, "sha256": sha, "page": page.number},
            page_size=(round(page.width, 2), round(page.height, 2)),
            identity=identity,
            printed_rects=[_round(r) for r in rects],
            fields=fields,
        ))
    return templates


def _in_reading_order(fields: list[FieldSpec]) -> list[FieldSpec]:
    """Sheet-level fields first, then row by row (staff[1].*, staff[2].*, …) in mapping order."""
    def row(f: FieldSpec) -> int:
        m = re.search(r"\[(\d+)\]", f.path)
        return int(m.group(1)) if m else 0
    order = {id(f): i for i, f in enumerate(fields)}
    return sorted(fields, key=lambda f: (row(f), order[id(f)]))


def _check_unique(form_id: str, fields: list[FieldSpec]) -> None:
    seen: set[str] = set()
    for f in fields:
        if f.path in seen:
            raise TemplateError(f"{form_id}: 項目 {f.path} が重複しています")
        if re.search(r"\{n\}", f.path):
            raise TemplateError(f"{form_id}: 項目 {f.path} の番号が展開されていません")
        seen.add(f.path)
