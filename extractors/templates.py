"""Sheet templates: where each field of an official sheet is, what kind it is, how to read it.

Templates are data (`samples/templates/<form_id>.json`), derived from the blank sheets by
`renraku template derive` (see derive.py) and never edited by hand. Coordinates are PDF points
with the origin at the top-left corner of the page: (x0, top, x1, bottom).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from renraku.errors import TemplateError

FieldKind = Literal[
    "text", "kana", "name", "job", "email", "phone", "postal_code", "date",
    "checkbox", "admin_mark", "seal",
]
MARK_KINDS = frozenset({"checkbox", "admin_mark", "seal"})

Box = tuple[float, float, float, float]


class PrintedWord(BaseModel):
    """Printed text inside a field box (e.g. 印 in the seal box): not part of the value."""

    text: str
    box: Box


class FieldSpec(BaseModel):
    path: str
    kind: FieldKind
    box: Box
    hints: dict[str, Any] = Field(default_factory=dict)
    printed: list[PrintedWord] = Field(default_factory=list)

    @property
    def is_mark(self) -> bool:
        return self.kind in MARK_KINDS


class Identity(BaseModel):
    corner: str
    corner_box: Box
    title: str
    title_box: Box


class BlankSource(BaseModel):
    file: str
    sha256: str
    page: int


class Template(BaseModel):
    form_id: str
    schema_version: int = 1
    source: BlankSource
    page_size: tuple[float, float]
    identity: Identity
    printed_rects: list[Box] = Field(default_factory=list)
    fields: list[FieldSpec]

    def field(self, path: str) -> FieldSpec:
        for f in self.fields:
            if f.path == path:
                return f
        raise KeyError(path)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=1) + "\n"


def template_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.json") if p.name != "labels.json")


def load_templates(directory: Path) -> list[Template]:
    """All templates of a folder, sorted by form_id; a broken file is a configuration error."""
    return list(_load_cached(str(Path(directory).resolve())))


@lru_cache(maxsize=8)
def _load_cached(directory: str) -> tuple[Template, ...]:
    out = []
    for path in template_files(Path(directory)):
        try:
            out.append(Template.model_validate_json(path.read_text(encoding="utf-8")))
        except (ValidationError, ValueError) as exc:
            raise TemplateError(f"テンプレート {path.name} を読めません: {exc}") from exc
    if not out:
        raise TemplateError(f"テンプレートがありません: {directory}")
    return tuple(sorted(out, key=lambda t: t.form_id))
