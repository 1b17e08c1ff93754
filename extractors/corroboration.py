"""Corroboration as a mechanism: small rules over boxes that say the same thing twice.

A sheet says things twice, read from different boxes (a name and its kana, an address and its
owner's name), and the sheets that come together (a fax, a mail and its attachments) repeat the
facility, its address and representative. A rule looks at a typed view of one sheet (`SheetView`,
scope "sheet") or of the sheets of one item (`ItemView`, scope "item") and returns what it found
(`Findings`: changes it proposes, verdicts of agreement, doubts) instead of changing readings
itself. `run` applies the rules in the order reading.toml's [corroboration] gives, each with its
switch and thresholds, so that each can be turned off and measured with bench/.

Two policies hold for every rule, here and not in each of them:
- a change that is not the crop's own reading (`Change.value`: a value put in from another box, a
  dictionary or a vote) carries the rule's note unless the rule is `auto_acceptable`, so it goes
  to a person; the reading is marked `derived` by that rule;
- a value the reader did not take from its own crop (derived, or noted) vouches for nothing and is
  vouched for by nothing: agreement produced by one repair, dictionary or vote is not counted as
  independent evidence.
Which boxes belong together is declared in the templates (`Links`), not guessed from field names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from renraku import normalize
from renraku.errors import ConfigError
from renraku.extractors import glyphs, kana_match, names, notes
from renraku.extractors.calibration import confidence
from renraku.extractors.fields import FieldReading
from renraku.extractors.names import NameLexicon
from renraku.extractors.templates import Template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PersonBoxes:
    """A kana box with the box it is the reading of and the e-mail of its row (templates' hints
    `reading_of` and `owner_kana`); `person` when the row is one of the staff a set registers."""

    kana: str
    written: str | None
    email: str | None
    person: bool = False


@dataclass(frozen=True)
class Links:
    """Which boxes of a template belong together, as its hints declare."""

    persons: tuple[PersonBoxes, ...] = ()
    shared: dict[str, str] = field(default_factory=dict)  # path → what the sheets of a set repeat there
    person: dict[str, str] = field(default_factory=dict)  # path → "name" | "email" of a person's box
    contact: dict[str, str] = field(default_factory=dict)  # "name" | "email" → the contact person's box
    needs_one: dict[str, str] = field(default_factory=dict)  # path → a group of marks one of which a set ticks

    @classmethod
    def of(cls, template: Template) -> Links:
        hints = {f.path: f.hints for f in template.fields}
        owner = {h["owner_kana"]: path for path, h in hints.items() if "owner_kana" in h}
        persons = tuple(PersonBoxes(path, h["reading_of"] if h["reading_of"] in hints else None, owner.get(path),
                                    "person" in hints.get(h["reading_of"], {}))
                        for path, h in hints.items() if "reading_of" in h)
        return cls(persons, {p: h["shared"] for p, h in hints.items() if "shared" in h},
                   {p: h["person"] for p, h in hints.items() if "person" in h},
                   {h["contact"]: p for p, h in hints.items() if "contact" in h},
                   {p: h["set_needs_one"] for p, h in hints.items() if "set_needs_one" in h})


def is_text(reading: FieldReading | None) -> bool:
    """An OCR reading of a text box that holds something: what corroboration looks at."""
    return (reading is not None and reading.method == "ocr" and isinstance(reading.value, str)
            and bool(reading.value))


def independent(reading: FieldReading) -> bool:
    """Whether the value is what its crop showed: not put in by a rule, list or dictionary, not noted."""
    return not reading.note and not (reading.evidence is not None and reading.evidence.derived)


def can_vouch(reading: FieldReading) -> bool:
    """Whether the reading may vouch for another box: independent, and not itself contradicted by a box
    that should agree with it (a name its kana does not fit vouches for nothing: 湊半 read in two
    boxes of one person, the kana みなと against it)."""
    return independent(reading) and not (reading.evidence is not None and reading.evidence.contradicted)


@dataclass
class SheetView:
    """One sheet's readings, what belongs together on it, and a way to read a crop again preferring
    a value (`reread`: None on pages that were not read by OCR)."""

    readings: dict[str, FieldReading]
    links: Links
    reread: Callable[[str, Callable[[str], bool]], FieldReading | None] | None = None
    kinds: dict[str, str] = field(default_factory=dict)  # path → field kind

    def text(self, path: str | None) -> FieldReading | None:
        reading = self.readings.get(path) if path else None
        return reading if is_text(reading) else None


@dataclass
class ItemView:
    """The sheets that came together (a fax, a mail with its attachments)."""

    sheets: list[SheetView]

    def texts(self) -> Iterator[tuple[SheetView, str, FieldReading]]:
        for sheet in self.sheets:
            for path, reading in sheet.readings.items():
                if is_text(reading):
                    yield sheet, path, reading


@dataclass(frozen=True)
class Means:
    """What rules may consult: the name dictionary, glyph likeness, the vocabulary's lists."""

    lexicon: NameLexicon | None = None
    match: glyphs.Match = glyphs.USUAL
    role_suffixes: tuple[str, ...] = ()  # job short forms in addresses (ns, dr)
    facility_kinds: tuple[str, ...] = ()  # endings of facility names
    mail_domains: tuple[str, ...] = ()  # domains many people use
    place_names: tuple[str, ...] = ()  # the prefecture's municipalities, without 市/町/村 (壬生, 那須烏山)


@dataclass(frozen=True)
class Change:
    """Put `value` in the field (a repair: a note unless the rule is auto-acceptable), or take
    `reading`, another reading of the same crop, whole (the crop's own evidence, no note)."""

    target: FieldReading
    value: str = ""
    reading: FieldReading | None = None
    note: str = ""  # a key of notes.toml; "" for the rule's own
    plausible: bool | None = None  # the value now has its kind's shape (an @ put back)


@dataclass(frozen=True)
class Verdict:
    """Boxes that should agree do (`agrees`) or cannot be made to. The same characters in another box
    vouch for every character (`same_glyphs`); a kana or a name only for the sound. `sources` are
    the readings whose agreement is claimed; agreement is counted only when all are independent and
    none is itself contradicted (`can_vouch`)."""

    readings: tuple[FieldReading, ...]
    agrees: bool
    same_glyphs: bool = False
    sources: tuple[FieldReading, ...] = ()


@dataclass(frozen=True)
class Doubt:
    """Nothing to change, but a person must look (a note)."""

    target: FieldReading
    note: str


@dataclass
class Findings:
    changes: list[Change] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    doubts: list[Doubt] = field(default_factory=list)


class Rule:
    """One corroboration. Subclasses say what they are and `find` what they see."""

    name: ClassVar[str]
    scope: ClassVar[str]  # "sheet" | "item"
    note: ClassVar[str] = ""  # its note (notes.toml) for the values it puts in
    auto_acceptable: ClassVar[bool] = False  # its changes may be accepted without a person
    evidence: ClassVar[str] = ""  # what it takes as independent evidence (one line, for docs and review)

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.settings = settings or {}

    def find(self, view: Any, means: Means) -> Findings:
        raise NotImplementedError


RULES: dict[str, type[Rule]] = {}


def rule(cls: type[Rule]) -> type[Rule]:
    """Register a rule under its name, for reading.toml to switch and order."""
    if cls.name in RULES:
        raise ConfigError(f"照合ルール {cls.name} が二つあります")
    RULES[cls.name] = cls
    return cls


def configured(config: dict[str, Any], scope: str) -> list[Rule]:
    """The rules of a scope in reading.toml's order (`[[corroboration.sheet]]`, `[[corroboration.item]]`),
    those with `on = false` left out."""
    out = []
    for entry in config.get("corroboration", {}).get(scope, []):
        cls = RULES.get(entry.get("rule", ""))
        if cls is None or cls.scope != scope:
            raise ConfigError(f"reading.toml: 照合ルール「{entry.get('rule')}」はありません（{scope}）")
        if entry.get("on", True):
            out.append(cls({k: v for k, v in entry.items() if k not in ("rule", "on")}))
    return out


def run(rules: list[Rule], view: SheetView | ItemView, means: Means) -> list[FieldReading]:
    """Apply the rules one after another (each sees what the ones before it did). Returns the
    readings whose value, note or evidence changed (confidence recomputed)."""
    changed: dict[int, FieldReading] = {}
    sheets = view.sheets if isinstance(view, ItemView) else [view]
    for r in rules:
        found = r.find(view, means)
        for c in found.changes:
            reading = _apply(r, c, sheets)
            changed[id(reading)] = reading
        for d in found.doubts:
            d.target.note = d.target.note or notes.text(d.note)
            changed[id(d.target)] = d.target
        for v in found.verdicts:
            if v.agrees and not (all(independent(x) for x in v.readings) and all(can_vouch(x) for x in v.sources)):
                continue
            for reading in _mark(v):
                changed[id(reading)] = reading
    for reading in changed.values():
        if reading.evidence is not None:
            reading.confidence = confidence(reading.evidence)
    return list(changed.values())


def _apply(r: Rule, c: Change, sheets: list[SheetView]) -> FieldReading:
    if c.reading is not None:  # another reading of the crop: it replaces the field in its sheet
        for sheet in sheets:
            if sheet.readings.get(c.target.path) is c.target:
                sheet.readings[c.target.path] = c.reading
        return c.reading
    target = c.target
    target.value = normalize.normalise(target.kind, c.value).value
    if not r.auto_acceptable:
        target.note = notes.text(c.note or r.note)
    if target.evidence is not None:
        target.evidence.repairs += 1
        target.evidence.derived = r.name
        if c.plausible is not None:
            target.evidence.plausible = c.plausible
    return target


def _mark(v: Verdict) -> list[FieldReading]:
    out = []
    for reading in v.readings:
        e = reading.evidence
        if e is None:
            continue
        if not v.agrees:
            e.contradicted = True
        elif v.same_glyphs:
            e.corroborated = True
        elif not e.lookalike:  # 太郎 and 太朗 sound the same: the kana cannot vouch for either
            e.sounds_right = True
        out.append(reading)
    return out


def warm(config: dict[str, Any]) -> None:
    """Load the dictionaries that weighing the readings needs (about 1.5 s) while this process would
    only wait, e.g. for the page workers: otherwise the first page's readings wait for them."""
    try:
        kana_match.warm()
        names.configured(config)
    except Exception:  # the same load fails again where it is needed, and is reported there
        log.debug("loading the dictionaries ahead failed", exc_info=True)


# The rules register themselves when their modules load; both import this module's names above.
from renraku.extractors import item_rules, page_rules  # noqa: E402, F401
