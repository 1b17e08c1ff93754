"""Rules that need the registry: does the facility exist, is the person to change registered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from renraku import normalize
from renraku.validators import ApplicationView, Finding, RuleContext, rule
from renraku.validators.common import rows
from renraku.validators.identity import facility_key, names_match


def registered_facility(name: str, ctx: RuleContext, config: dict[str, Any]) -> str | None:
    """The registry key of the facility a sheet names, tolerating OCR slips and legal-entity words."""
    key = facility_key(name, config)
    if key in ctx.facilities:
        return key
    return next((k for k, registered in ctx.facilities.items() if names_match(name, registered, config)), None)


def registry_loaded(ctx: RuleContext, config: dict[str, Any]) -> bool:
    """Registry rules judge only once the registry has been imported (an empty one knows nothing)."""
    return bool(ctx.facilities) or not config.get("registry", {}).get("require_loaded", True)


@rule("unknown_facility")
def unknown_facility(app: ApplicationView, ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    notice = app.sheet("staff_change")
    if app.kind != "staff_change" or notice is None or not registry_loaded(ctx, config):
        return
    name = str(notice.get("facility_name"))
    if not name or registered_facility(name, ctx, config):
        return
    pending = any(names_match(name, p, config) for p in ctx.pending_facilities)
    note = "（新規申込が審査中です。承認後に変更を反映してください）" if pending else ""
    yield Finding("unknown_facility", "error", f"施設「{name}」は登録されていません{note}",
                  field="facility_name", form_id="staff_change", sheet_key=notice.key)


@rule("unknown_staff")
def unknown_staff(app: ApplicationView, ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    notice = app.sheet("staff_change")
    if app.kind != "staff_change" or notice is None:
        return
    key = registered_facility(str(notice.get("facility_name")), ctx, config)
    if key is None:
        return  # unknown_facility says it already
    staff = ctx.registered_staff(key)
    emails = {s.email for s in staff}
    names = {normalize.compact(s.name) for s in staff}
    for row in rows(app):
        if row.prefix != "changes" or len(row.kinds) != 1 or row.kinds[0] not in ("remove", "modify"):
            continue
        email = normalize.comparable("email", row.text("email"))
        if email in emails or (not email and normalize.compact(row.text("name")) in names):
            continue
        what = "削除" if row.kinds[0] == "remove" else "変更"
        yield Finding("unknown_staff", "error",
                      f"{row.n}行目の{what}の対象「{row.text('name')}」（{email or 'メールなし'}）は登録されていません",
                      field=row.path("email") if email else row.path("name"),
                      form_id="staff_change", sheet_key=notice.key)
