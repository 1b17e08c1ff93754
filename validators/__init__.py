"""The registration rules of SPEC §4, one small unit per rule.

A rule looks at one application (its sheets and their field values) in the light of what is already
known (the registry, the other applications in the queue) and yields findings. Rules register
themselves by id; which ones run, and the lists they use, are configuration (validators/rules.toml).
Rules are pure: they read an `ApplicationView` and a `RuleContext`, never the database.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from renraku.errors import ConfigError

RULES_FILE = Path(__file__).resolve().parent / "rules.toml"
ROW = re.compile(r"^(staff|changes)\[(\d+)\]\.(.+)$")


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
    raw: dict[str, str] = field(default_factory=dict)  # what was read before normalisation
    doubtful: frozenset[str] = frozenset()  # paths flagged for review that no person has checked yet

    def get(self, path: str) -> Any:
        value = self.values.get(path)
        return "" if value is None else value

    def rows(self, prefix: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """The numbered rows (staff[n].*, changes[n].*) as {sub-path: value}, in order."""
        rows: dict[int, dict[str, Any]] = {}
        for path, value in self.values.items():
            m = ROW.match(path)
            if m and m.group(1) == prefix:
                rows.setdefault(int(m.group(2)), {})[m.group(3)] = value
        for n in sorted(rows):
            yield n, rows[n]


@dataclass
class ApplicationView:
    kind: str  # new_facility | staff_change
    sheets: list[SheetView]
    missing: list[str] = field(default_factory=list)
    key: Any = None
    label: str = ""  # how staff refer to it (A000012)

    def sheet(self, form_id: str) -> SheetView | None:
        return next((s for s in self.sheets if s.form_id == form_id), None)


@dataclass(frozen=True)
class KnownStaff:
    """A person registered in the registry, or named on another application in the queue."""

    facility: str  # facility key (identity.facility_key)
    name: str
    email: str  # comparable form (normalize.comparable("email", …))
    admin: bool = False
    facility_name: str = ""
    where: str = ""  # for messages: 申請 A000003 の2行目のメールアドレス


@dataclass
class RuleContext:
    """What the rules may know beyond the application itself."""

    today: dt.date = field(default_factory=dt.date.today)
    facilities: dict[str, str] = field(default_factory=dict)  # facility key → registered name
    staff: list[KnownStaff] = field(default_factory=list)  # registered, active
    queued: list[KnownStaff] = field(default_factory=list)  # addresses on other open applications
    pending_facilities: set[str] = field(default_factory=set)  # keys of open new-facility sets

    def registered_staff(self, facility_key: str) -> list[KnownStaff]:
        return [s for s in self.staff if s.facility == facility_key]


Rule = Callable[[ApplicationView, RuleContext, dict[str, Any]], Iterable[Finding]]
RULES: dict[str, Rule] = {}


def rule(rule_id: str) -> Callable[[Rule], Rule]:
    def wrap(fn: Rule) -> Rule:
        RULES[rule_id] = fn
        return fn
    return wrap


@lru_cache(maxsize=4)
def _load_rule_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"ルール設定を読めません: {path}: {exc}") from exc


def load_rule_config(path: Path = RULES_FILE) -> dict[str, Any]:
    return _load_rule_config(str(Path(path).resolve()))


def check(app: ApplicationView, context: RuleContext | None = None,
          config: dict[str, Any] | None = None) -> list[Finding]:
    """Every enabled rule over one application, in the configured order."""
    from renraku.validators import (  # noqa: F401  (importing registers the rules)
        contents,
        emails,
        formats,
        registry_rules,
        sheets,
    )

    config = config if config is not None else load_rule_config()
    context = context or RuleContext()
    findings: list[Finding] = []
    for rule_id in config.get("enabled", list(RULES)):
        if rule_id not in RULES:
            raise ConfigError(f"未知のルールです: {rule_id}")
        findings.extend(RULES[rule_id](app, context, config))
    return findings


def sheet_name(form_id: str, config: dict[str, Any]) -> str:
    return config.get("sheet_names", {}).get(form_id, form_id)
