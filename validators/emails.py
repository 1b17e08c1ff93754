"""Rules about e-mail addresses: deliverable-looking, personal, one per person (1人1メールアドレス)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from email_validator import EmailNotValidError, validate_email

from renraku import normalize
from renraku.validators import ApplicationView, Finding, KnownStaff, RuleContext, rule
from renraku.validators.common import label, rows
from renraku.validators.identity import facility_key

LOOKALIKES = {"。": ".", "，": ",", "、": ",", "｡": "."}  # characters NFKC leaves alone


def _char_hint(ch: str) -> str:
    if ch.isspace():
        return "空白"
    fix = LOOKALIKES.get(ch)
    return f"「{ch}」（「{fix}」の誤り？）" if fix else f"「{ch}」"


def folding_changes(raw: str) -> list[str]:
    """What NFKC folding changed in what was written (全角→半角), as 「Ａ」→「A」 notes."""
    changes = []
    for ch in dict.fromkeys(raw):
        folded = unicodedata.normalize("NFKC", ch)
        if folded != ch and ch not in " \u3000":
            changes.append(f"「{ch}」→「{folded}」")
    return changes


def email_problem(value: str, config: dict[str, Any]) -> str | None:
    """Why an address is not deliverable-looking (Japanese), or None. Syntax only, no network."""
    if config.get("emails", {}).get("ascii_only", True):
        odd = [ch for ch in dict.fromkeys(value) if ord(ch) > 127 or ch.isspace()]
        if odd:
            return f"使えない文字（{'、'.join(map(_char_hint, odd))}）が含まれています"
    try:
        validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return f"メールアドレスの形式ではありません（{exc}）"
    return None


@rule("invalid_email")
def invalid_email(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    for sheet in app.sheets:
        for path, value in sheet.values.items():
            if not path.endswith("email") or not isinstance(value, str) or not value.strip():
                continue
            problem = email_problem(value, config)
            if problem is None:
                continue
            folded = folding_changes(sheet.raw.get(path, ""))
            note = f"（全角を半角に直して確認しました: {'、'.join(folded)}）" if folded else ""
            yield Finding("invalid_email", "error", f"{label(path, config)}「{value}」: {problem}{note}",
                          field=path, form_id=sheet.form_id, sheet_key=sheet.key)


def _shared_pattern(config: dict[str, Any]) -> re.Pattern[str]:
    parts = sorted(config.get("emails", {}).get("shared_local_parts", []), key=len, reverse=True)
    # info, info2, kango-bu, soumu_1: the shared word with at most a short department tag or number
    return re.compile(r"^(?:" + "|".join(map(re.escape, parts)) + r")(?:\d*|[._-](?:[a-z]{1,3}\d*|\d+))$")


@rule("shared_email")
def shared_email(app: ApplicationView, _ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    pattern = _shared_pattern(config)
    for row in rows(app):
        if row.prefix == "changes" and row.kinds == ["remove"]:
            continue  # a removal names an address that is being given up
        email = normalize.comparable("email", row.text("email"))
        local = email.partition("@")[0]
        if email and "@" in email and pattern.match(local):
            yield Finding("shared_email", "error",
                          f"{label(row.path('email'), config)}「{email}」は共用のアドレスのようです"
                          "（1人1アドレス、施設の代表・医局・部署のアドレスは登録できません）",
                          field=row.path("email"), form_id=row.sheet.form_id, sheet_key=row.sheet.key)


def _person_key(name: str) -> str:
    return normalize.compact(name)


def _same_person(row_name: str, row_facility: str, other: KnownStaff, config: dict[str, Any]) -> bool:
    """The same person at the same facility (a set and its later change notice, say): not two people."""
    return bool(row_name) and _person_key(row_name) == _person_key(other.name) and \
        facility_key(row_facility, config) == other.facility


@rule("duplicate_email")
def duplicate_email(app: ApplicationView, ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    seen: dict[str, tuple[str, str]] = {}  # address → (path, person) within this application
    facility = next((str(s.values.get("facility_name", "")) for s in app.sheets if s.values.get("facility_name")), "")
    for row in rows(app):
        if row.prefix == "changes" and not set(row.kinds) & {"add", "modify"}:
            continue
        email = normalize.comparable("email", row.text("email"))
        if not email:
            continue
        path = row.path("email")
        name = row.text("name")
        where = None
        if email in seen and seen[email][1] != _person_key(name):
            where = f"この申請の{label(seen[email][0], config)}"
        elif email in seen:
            where = f"この申請の{label(seen[email][0], config)}（同じ方が2行に記入）"
        else:
            other = next((s for s in ctx.queued if s.email == email and not _same_person(name, facility, s, config)),
                         None)
            registered = next((s for s in ctx.staff if s.email == email
                               and not _same_person(name, facility, s, config)), None)
            if other is not None:
                where = other.where
            elif registered is not None and app.kind == "new_facility":
                where = f"登録済みの{registered.facility_name}の{registered.name}さん"
        seen.setdefault(email, (path, _person_key(name)))
        if where:
            yield Finding("duplicate_email", "error",
                          f"{label(path, config)}「{email}」は{where}と同じアドレスです（1人1メールアドレス）",
                          field=path, form_id=row.sheet.form_id, sheet_key=row.sheet.key)


@rule("already_registered")
def already_registered(app: ApplicationView, ctx: RuleContext, config: dict[str, Any]) -> Iterator[Finding]:
    registered = {s.email: s for s in ctx.staff}
    for row in rows(app):
        if row.prefix != "changes" or row.kinds != ["add"]:
            continue
        email = normalize.comparable("email", row.text("email"))
        if email in registered:
            who = registered[email]
            yield Finding("already_registered", "error",
                          f"{label(row.path('email'), config)}「{email}」は既に登録されています"
                          f"（{who.facility_name} {who.name}さん）",
                          field=row.path("email"), form_id=row.sheet.form_id, sheet_key=row.sheet.key)
