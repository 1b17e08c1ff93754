"""What reading a sheet produces, independent of how it was read (text layer, OCR, marks, human)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from renraku.errors import ConfigError

Method = Literal["text_layer", "ocr", "mark", "human"]
Box = tuple[float, float, float, float]


@dataclass
class FieldReading:
    path: str
    kind: str
    value: str | bool
    confidence: float
    method: Method
    box: Box  # points on the page, top-left origin
    raw: str = ""  # what was read before normalisation
    note: str = ""  # why the value is doubtful (Japanese, for the reviewer)
    needs_review: bool = False
    evidence: Any = field(default=None, repr=False, compare=False)  # what confidence was built from


@dataclass
class SheetReading:
    form_id: str
    fields: list[FieldReading] = field(default_factory=list)

    def value(self, path: str) -> str | bool | None:
        for f in self.fields:
            if f.path == path:
                return f.value
        return None


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"読み取り設定を読めません: {path}: {exc}") from exc


def reading_config(path: Path) -> dict[str, Any]:
    return _load(str(Path(path).resolve()))


def flag_for_review(readings: list[FieldReading], threshold: float | Callable[[FieldReading], float]) -> None:
    """A field is flagged when its confidence is below the threshold (one number, or one per reading,
    e.g. by channel) or a reader noted a doubt."""
    for r in readings:
        limit = threshold(r) if callable(threshold) else threshold
        r.needs_review = r.confidence < limit or bool(r.note)
