"""Rules about the shape of values: phone numbers, postal codes, dates, the address's area."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

from renraku import normalize
from renraku.validators import ApplicationView, Finding, RuleContext, rule
from renraku.validators.common import label

DATE_FIELDS = ("application_date", "pledge_date", "notice_date", "effective_date")
REMARK = re.compile(r"[(（].*$|内線.*$|ext\.?.*$", re.IGNORECASE)


def phone_problem(value: str, config: dict[str, Any]) -> str | None:
    """Why a number is not a Japanese phone number, or None."""
    number = REMARK.sub("", normalize.text(value)).strip()
    digits = normalize.digits(number)
    plans = config.get("phones", {}).get("plans", [])
    plan = next((p for p in plans if re.match(p["pattern"], digits)), None)
    if plan is None:
        return f"日本の電話番号の桁数・番号体系に合いません（{len(digits)}桁）"
    groups = [g for g in re.split(r"[-\s]+", number) if g]
    fixed = plan["name"] == "固定電話"
    if fixed and len(groups) == 3 and (len(groups[-1]) != 4 or len(groups[0]) + len(groups[1]) != 6):
        return "市外局番・市内局番・加入者番号の区切りが合いません"
    return None


@rule("invalid_phone")
def invalid_phone(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    fields = config.get("phones", {}).get("fields", ["phone"])
    for sheet in app.sheets:
        for path in fields:
            value = sheet.get(path)
            if isinstance(value, str) and value.strip() and (problem := phone_problem(value, config)):
                yield Finding("invalid_phone", "error", f"{label(path, config)}「{value}」: {problem}",
                              field=path, form_id=sheet.form_id, sheet_key=sheet.key)


@rule("invalid_postal_code")
def invalid_postal_code(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    for sheet in app.sheets:
        value = sheet.get("postal_code")
        if isinstance(value, str) and value.strip() and not re.fullmatch(r"\d{3}-\d{4}", normalize.postal_code(value)):
            yield Finding("invalid_postal_code", "error", f"郵便番号「{value}」は NNN-NNNN の形ではありません",
                          field="postal_code", form_id=sheet.form_id, sheet_key=sheet.key)


def date_problem(path: str, value: str, today: dt.date, config: dict[str, Any]) -> str | None:
    reading = normalize.parse_date(value)
    if reading.iso is None:
        return reading.problem
    day = dt.date.fromisoformat(reading.iso)
    allowed = config.get("dates", {}).get("future_allowed_days", {}).get(path.rsplit(".", 1)[-1], 0)
    if day > today + dt.timedelta(days=int(allowed)):
        return "未来の日付です"
    return None


@rule("invalid_date")
def invalid_date(app: ApplicationView, ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    for sheet in app.sheets:
        for path, value in sheet.values.items():
            if path.rsplit(".", 1)[-1] not in DATE_FIELDS or not isinstance(value, str) or not value.strip():
                continue
            problem = date_problem(path, value, ctx.today, config)
            if problem:
                yield Finding("invalid_date", "error", f"{label(path, config)}「{value}」: {problem}",
                              field=path, form_id=sheet.form_id, sheet_key=sheet.key)


def outside_tochigi(address: str, config: dict[str, Any]) -> bool:
    area = config.get("area", {})
    s = normalize.compact(address)
    if s.startswith(area.get("prefecture", "栃木県")):
        return False
    if any(s.startswith(p) for p in area.get("prefectures", [])):
        return True
    return not any(s.startswith(m) for m in area.get("municipalities", []))


@rule("outside_area")
def outside_area(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    for sheet in app.sheets:
        value = sheet.get("address")
        if isinstance(value, str) and value.strip() and outside_tochigi(value, config):
            yield Finding("outside_area", "warning", f"所在地「{value}」は栃木県外のようです",
                          field="address", form_id=sheet.form_id, sheet_key=sheet.key)
