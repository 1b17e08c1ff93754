"""Marks: a tick, an empty box, and a faint tick a person must look at (reading.toml [marks_image])."""

from __future__ import annotations

import numpy as np
import pytest

from renraku.config import Settings
from renraku.extractors.fields import reading_config
from renraku.extractors.ink import Blank, read_mark
from renraku.extractors.templates import FieldSpec

DPI = 200
SPEC = FieldSpec(path="changes[1].kind.add", kind="checkbox", box=(72.0, 72.0, 86.4, 86.4))  # a 14.4 pt box


def _box_with(height: int, width: int) -> tuple[np.ndarray, Blank]:
    """A page whose check box (40 × 40 px at 200 dpi) holds one stroke of height × width px, on a
    blank with no print."""
    ink = np.zeros((400, 400), bool)
    ink[210:210 + height, 210:210 + width] = True
    empty = np.zeros_like(ink)
    return ink, Blank(empty, empty)


@pytest.mark.parametrize(("stroke", "value", "to_a_person"), [
    ((16, 20), True, False),  # a tick: 0.2 of the box
    ((0, 0), False, False),   # empty
    ((7, 3), False, True),    # 0.013: a thin pen's tick on a fax (held-out fonts), not passed as empty
    ((8, 7), False, True),    # 0.035: fainter than half way, shown to a person as unticked
])
def test_a_mark_between_clearly_on_and_clearly_off_goes_to_a_person(stroke: tuple[int, int], value: bool,
                                                                     to_a_person: bool) -> None:
    marks = reading_config(Settings().reading_config)["marks_image"]
    ink, blank = _box_with(*stroke)
    reading = read_mark(SPEC, ink, blank, "fax_fine", marks, DPI)
    assert reading.value is value and bool(reading.note) is to_a_person
