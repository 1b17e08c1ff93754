"""The desk's own rules for what a person types: length per field kind, dates that are dates, and a
second key for a value read at very low confidence. Limits, the floor and names are data (desk.toml)."""

from __future__ import annotations

import json
import tomllib
import unicodedata
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from renraku import normalize
from renraku.extractors.templates import MARK_KINDS
from renraku.sinks import models as m
from renraku.sinks.registry import find_facility
from renraku.validators import load_rule_config

DESK_CONFIG = Path(__file__).resolve().parent / "desk.toml"


def desk_config(path: Path = DESK_CONFIG) -> dict[str, Any]:
    return _load(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load(path: Path, _mtime: int) -> dict[str, Any]:  # read again when the file changes
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def input_problem(kind: str, value: str, config: dict[str, Any] | None = None) -> str | None:
    """Why the desk refuses what a person typed for a field of `kind`, in Japanese; None if it is fine."""
    if kind in MARK_KINDS:
        return None
    config = config or desk_config()
    limits, names = config["limits"], config.get("kinds", {})
    limit = int(limits.get(kind, limits["default"]))
    what = names.get(kind, "この項目")
    if len(value) > limit:
        return (f"{what}は{limit}文字までです（{len(value)}文字あります）。"
                "用紙の欄に書かれた内容だけを入力してください")
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t" for ch in value):
        return "改行や制御文字は入力できません"
    if kind == "date" and value.strip():
        reading = normalize.parse_date(value)
        if not reading.iso and reading.problem == "日付として読めません":
            return "日付として読めません。2025-04-01、令和7年4月1日、R7.4.1 のように入力してください"
    return None


def confidence_floor(config: dict[str, Any] | None = None) -> float:
    return float((config or desk_config())["accept"]["confidence_floor"])


def needs_second_key(confidence: float, method: str, unchanged: bool, confirmed: bool) -> bool:
    """A machine reading below the floor is not accepted as it is by one key: the person types the
    value, or confirms it explicitly (a second Enter)."""
    return method != "human" and unchanged and not confirmed and confidence < confidence_floor()


def low_confidence_message(confidence: float) -> str:
    return (f"確信度の低い読み取り（{100 * confidence:.0f}%）です。画像と見比べ、正しければもう一度 Enter、"
            "違えば正しい値を入力してください")


def action_name(action: str) -> str:
    return desk_config().get("actions", {}).get(action, action)


def approval_notices(session: Session, app: m.Application) -> list[dict[str, Any]]:
    """What approval would refuse that the rules do not (yet) say, shown with the findings.

    The rule `unknown_facility` waits for the registry to be imported (an empty one knows no
    facility), but approving a change notice needs its facility in the registry: say it before.
    """
    if app.kind != "staff_change" or app.status in ("approved", "rejected"):
        return []
    if any(f.rule == "unknown_facility" for f in app.findings):
        return []
    name = app.facility_name
    if find_facility(session, name, load_rule_config()) is not None:
        return []
    return [{"id": None, "rule": "unknown_facility", "field": "facility_name", "severity": "error",
             "sheet_id": None, "overridden_by": None,
             "message": f"施設「{name or '（施設名なし）'}」は登録簿にありません。"
                        "登録簿に施設がない変更届は承認できません"
                        "（登録簿の取り込み: renraku registry import、または新規申込の承認が先です）"}]


def as_json(detail: Any) -> str:
    """An audit entry's detail as people read it: Japanese as Japanese, not \\u escapes."""
    return json.dumps(detail, ensure_ascii=False, sort_keys=True)


def source_name(source_ref: str) -> str:
    """Where an item came from, without the server's folders (a file name, or the mail reference)."""
    return PurePath(source_ref).name or source_ref


def install(app: Flask) -> None:
    app.add_template_filter(action_name)
    app.add_template_filter(as_json)
    app.add_template_filter(source_name)
    app.jinja_env.globals["desk_config"] = desk_config
