"""Rules about which sheets an application has."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from renraku.validators import ApplicationView, Finding, rule


@rule("missing_sheet")
def missing_sheet(app: ApplicationView, config: dict[str, Any]) -> Iterator[Finding]:
    if app.kind != "new_facility":
        return
    names = config.get("sheet_names", {})
    for form_id in app.missing:
        yield Finding("missing_sheet", "error",
                      f"{names.get(form_id, form_id)}が届いていません（新規申込は計3枚が必要です）",
                      form_id=form_id)
