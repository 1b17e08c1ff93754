"""Rules about what a set must contain: required fields, an admin, consent, the seal, change kinds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from renraku import normalize
from renraku.validators import ApplicationView, Finding, KnownStaff, RuleContext, rule, sheet_name
from renraku.validators.common import label, rows
from renraku.validators.identity import facility_key


def _missing(sheet_form: str, key: Any, path: str, config: dict[str, Any]) -> Finding:
    return Finding("missing_required", "error",
                   f"{sheet_name(sheet_form, config)}の{label(path, config)}が空欄です",
                   field=path, form_id=sheet_form, sheet_key=key)


@rule("missing_required")
def missing_required(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    required = config.get("required", {})
    for sheet in app.sheets:
        for path in required.get(sheet.form_id, []):
            if not normalize.text(sheet.get(path) if isinstance(sheet.get(path), str) else ""):
                yield _missing(sheet.form_id, sheet.key, path, config)
    for row in rows(app):
        needed = list(required.get("staff_row" if row.prefix == "staff" else "change_row", []))
        if row.prefix == "changes" and set(row.kinds) & set(required.get("change_row_email_for", [])):
            needed.append("email")
        for sub in needed:
            if not row.text(sub).strip():
                yield _missing(row.sheet.form_id, row.sheet.key, row.path(sub), config)


@rule("change_kind_ambiguous")
def change_kind_ambiguous(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    for row in rows(app):
        if row.prefix != "changes" or len(row.kinds) == 1:
            continue
        what = "どれにもチェックがありません" if not row.kinds else "複数にチェックがあります"
        yield Finding("change_kind_ambiguous", "error", f"{row.n}行目の区分（追加・削除・変更）の{what}",
                      field=row.path("kind"), form_id=row.sheet.form_id, sheet_key=row.sheet.key)


def admins_after_change(app: ApplicationView, registered: list[KnownStaff]) -> list[str] | None:
    """The e-mail addresses of the facility's admins once the notice is applied (None: unknown)."""
    if not registered:
        return None
    admins = {s.email: s.admin for s in registered}
    names = {normalize.compact(s.name): s.email for s in registered}
    for row in rows(app):
        if row.prefix != "changes" or len(row.kinds) != 1:
            continue
        email = normalize.comparable("email", row.text("email"))
        person = email if email in admins else names.get(normalize.compact(row.text("name")), email)
        kind = row.kinds[0]
        if kind == "remove":
            admins.pop(person, None)
        elif kind == "modify" or (kind == "add" and person not in admins):  # adding a registered person changes nothing
            admins[person or f"row{row.n}"] = row.values.get("admin") is True
    return [e for e, is_admin in admins.items() if is_admin]


@rule("no_admin")
def no_admin(app: ApplicationView, ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    if app.kind == "new_facility":
        staff = app.sheet("staff_registration")
        used = [r for r in rows(app) if r.prefix == "staff"]
        if staff is not None and used and not any(r.values.get("admin") is True for r in used):
            yield Finding("no_admin", "error", "管理者欄に○のある方がいません（1名以上選んでください）",
                          form_id="staff_registration", sheet_key=staff.key)
        return
    notice = app.sheet("staff_change")
    if notice is None:
        return
    key = facility_key(str(notice.get("facility_name")), config)
    after = admins_after_change(app, ctx.registered_staff(key))
    if after is not None and not after:
        yield Finding("no_admin", "error", "この変更を反映すると施設の管理者が0名になります",
                      form_id="staff_change", sheet_key=notice.key)


@rule("policy_not_agreed")
def policy_not_agreed(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    usage = app.sheet("usage_application")
    if usage is not None and usage.values.get("policy_agreed") is not True:
        yield Finding("policy_not_agreed", "error", "運用ポリシーへの同意欄にチェックがありません",
                      field="policy_agreed", form_id="usage_application", sheet_key=usage.key)


@rule("missing_seal")
def missing_seal(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    pledge = app.sheet("facility_pledge")
    if pledge is not None and pledge.values.get("seal") is not True:
        yield Finding("missing_seal", "warning", "誓約書に押印（または署名）が見当たりません",
                      field="seal", form_id="facility_pledge", sheet_key=pledge.key)

