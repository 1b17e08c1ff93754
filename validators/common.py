"""Small helpers the rules share: which rows are used, where the e-mail addresses are."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from renraku.validators import ApplicationView, SheetView

CHANGE_KINDS = ("add", "remove", "modify")


@dataclass(frozen=True)
class Row:
    """One person on a sheet: a staff row of 様式1(2枚目) or a change row of 様式3."""

    sheet: SheetView
    prefix: str  # staff | changes
    n: int
    values: dict[str, Any]

    def path(self, sub: str) -> str:
        return f"{self.prefix}[{self.n}].{sub}"

    def text(self, sub: str) -> str:
        v = self.values.get(sub)
        return v if isinstance(v, str) else ""

    @property
    def kinds(self) -> list[str]:
        return [k for k in CHANGE_KINDS if self.values.get(f"kind.{k}") is True]


def _used(values: dict[str, Any]) -> bool:
    return any((isinstance(v, str) and v.strip()) or v is True for v in values.values())


def rows(app: ApplicationView) -> Iterator[Row]:
    """The used rows of the application's staff and change sheets."""
    for sheet in app.sheets:
        prefix = {"staff_registration": "staff", "staff_change": "changes"}.get(sheet.form_id)
        if prefix is None:
            continue
        for n, values in sheet.rows(prefix):
            if _used(values):
                yield Row(sheet, prefix, n, values)


def email_fields(app: ApplicationView) -> Iterator[tuple[SheetView, str, str]]:
    """Every non-empty e-mail field: (sheet, path, value)."""
    for sheet in app.sheets:
        for path, value in sheet.values.items():
            if path.endswith("email") and isinstance(value, str) and value.strip():
                yield sheet, path, value


def label(path: str, config: dict[str, Any]) -> str:
    """A field path as staff read it: 「2行目のメールアドレス」."""
    names = config.get("field_names", {})
    if "[" in path:
        head, _, sub = path.partition("].")
        n = head.split("[")[1]
        return f"{n}行目の{names.get(sub, sub)}"
    return names.get(path, path)
