"""Rules about which sheets an application has and whether they belong together."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from renraku.validators import ApplicationView, Finding, RuleContext, rule, sheet_name
from renraku.validators.identity import names_match, names_near


@rule("missing_sheet")
def missing_sheet(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    if app.kind != "new_facility":
        return
    for form_id in app.missing:
        yield Finding("missing_sheet", "error",
                      f"{sheet_name(form_id, config)}が届いていません（新規申込は計3枚が必要です）", form_id=form_id)


@rule("facility_mismatch")
def facility_mismatch(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    named = [s for s in app.sheets if isinstance(s.values.get("facility_name"), str) and s.values["facility_name"]]
    if len(named) < 2:
        return
    reference = next((s for s in named if s.form_id == "usage_application"), named[0])
    for sheet in named:
        name, other = sheet.values["facility_name"], reference.values["facility_name"]
        if sheet is reference or names_match(name, other, config):
            continue
        if "facility_name" in sheet.doubtful | reference.doubtful and names_near(name, other, config):
            continue  # likelier a misreading, already flagged: judged once a person has checked it
        yield Finding("facility_mismatch", "error",
                      f"{sheet_name(sheet.form_id, config)}の施設名「{name}」が"
                      f"{sheet_name(reference.form_id, config)}の「{other}」と違います",
                      field="facility_name", form_id=sheet.form_id, sheet_key=sheet.key)
