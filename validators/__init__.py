"""The registration rules of SPEC §4, one small unit per rule.

A rule looks at one application (its sheets and their field values) and yields findings. Rules
register themselves by id; which ones run, and the lists they use, are configuration
(validators/rules.toml).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from renraku.errors import ConfigError

RULES_FILE = Path(__file__).resolve().parent / "rules.toml"


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # error | warning
    message: str  # Japanese, for the office staff
    field: str | None = None
    form_id: str | None = None
    sheet_key: Any = None  # which sheet of the application the field is on


@dataclass
class SheetView:
    key: Any
    form_id: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class ApplicationView:
    kind: str  # new_facility | staff_change
    sheets: list[SheetView]
    missing: list[str] = field(default_factory=list)

    def sheet(self, form_id: str) -> SheetView | None:
        return next((s for s in self.sheets if s.form_id == form_id), None)


Rule = Callable[[ApplicationView, dict[str, Any]], Iterable[Finding]]
RULES: dict[str, Rule] = {}


def rule(rule_id: str) -> Callable[[Rule], Rule]:
    def wrap(fn: Rule) -> Rule:
        RULES[rule_id] = fn
        return fn
    return wrap


@lru_cache(maxsize=4)
def load_rule_config(path: str = str(RULES_FILE)) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"ルール設定を読めません: {path}: {exc}") from exc


def check(app: ApplicationView, config: dict[str, Any] | None = None) -> list[Finding]:
    """Every enabled rule over one application, in the configured order."""
    from renraku.validators import sheets  # noqa: F401  (registers the rules)

    config = config if config is not None else load_rule_config()
    findings: list[Finding] = []
    for rule_id in config.get("enabled", list(RULES)):
        if rule_id not in RULES:
            raise ConfigError(f"未知のルールです: {rule_id}")
        findings.extend(RULES[rule_id](app, config))
    return findings
