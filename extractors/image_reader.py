"""Reading the fields of a registered image page (scan, fax, photo).

The page is resampled into template space (the sheet as the blank, at the reading dpi), its light
flattened, and the blank's print taken away. A box without the sender's ink is "" without calling
OCR; marks (check boxes, the 管理者 column, the seal) are read by how much of their box the
sender's ink covers; text fields are cleaned of rule remnants, stacked by OCR setting and read
with one Tesseract call per setting; then each kind's repair makes sense of the text and the
confidence model (calibration.py) turns what was seen into a probability of being right.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rapidfuzz import fuzz

from renraku import normalize
from renraku.config import PACKAGE_DIR
from renraku.extractors import corroboration, glyphs, kana_match, names, notes, ocr, repair, romaji
from renraku.extractors import ink as inks
from renraku.extractors.calibration import Evidence, confidence
from renraku.extractors.escalation import TITLE, Stage
from renraku.extractors.fields import FieldReading
from renraku.extractors.register import Registration, WorkPage, rectify
from renraku.extractors.templates import FieldSpec, Template

FORMS_DIR = PACKAGE_DIR / "samples" / "forms"
log = logging.getLogger(__name__)


VOCABULARY_FILE = Path(__file__).resolve().parent / "vocabulary.toml"


@lru_cache(maxsize=2)
def vocabulary(path: Path = VOCABULARY_FILE) -> dict[str, list[str]]:
    """Closed and usual lists for repairs: vocabulary.toml, with jobs and places from the rules."""
    from renraku.validators import load_rule_config

    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    rules = load_rule_config()
    prefecture = rules.get("area", {}).get("prefecture", "栃木県")
    cities = [m for m in rules.get("area", {}).get("municipalities", []) if m.endswith("市")]
    towns = [d + t for d, ts in data.get("districts", {}).items() for t in ts]
    out = {k: v for k, v in data.items() if isinstance(v, list)}
    out["jobs"] = rules.get("jobs", {}).get("titles", [])
    out["places"] = [prefecture + p for p in cities + towns] + cities + towns
    out["place_names"] = sorted({re.sub(r"^.+郡|[市町村]$", "", m) for m in cities + towns} - {""})
    return out


@dataclass
class ImageFit:
    """What registration found: the page at working size and the best template's transform."""

    work: WorkPage
    registration: Registration


def _settings(config: dict[str, Any]) -> dict[str, ocr.Setting]:
    out = {}
    for name, s in config.get("ocr", {}).items():
        setting = ocr.check_langs(ocr.Setting(name, s["lang"], int(s.get("psm", 6)), s.get("whitelist"),
                                              bool(s.get("spaced")), tuple(s.get("more_langs", [])),
                                              bool(s.get("symbols")), bool(s.get("choices"))))
        for kind in s.get("kinds", []):
            out[kind] = setting
    return out


@dataclass
class PreparedPage:
    """An image page ready for OCR: what could be read without it, and the crops that need it."""

    form_id: str
    channel: str
    picture_png: bytes = field(repr=False)  # the sheet as the boxes see it, for the review desk
    readings: dict[str, FieldReading] = field(default_factory=dict)
    crops: dict[str, dict[Hashable, np.ndarray]] = field(default_factory=dict, repr=False)  # by setting name
    pieces: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)  # ink.piece_heights of each crop


def _ways(setting: ocr.Setting, stage: Stage) -> list[tuple[ocr.Setting, tuple[str, ...]]]:
    """A stage's variants with the crop's own model, and its other-model variants with each other model."""
    ways = [(setting, stage.variants)] if stage.variants else []
    return ways + [(setting.with_lang(lang), stage.other_models) for lang in setting.more_langs if stage.other_models]


@dataclass(frozen=True)
class Candidate:
    """One reading of a crop as its kind's repair makes sense of it."""

    plausible: bool  # of its kind's shape
    mean_conf: float
    fixed: repair.Repaired
    norm: normalize.Normalised
    reading: ocr.Reading

    def key(self, kind: str) -> str:
        return normalize.comparable(kind, self.norm.value)


@dataclass(frozen=True)
class Vote:
    """What a crop's readings decided: the best, how many readings give its value, whether it is a
    known name, each value of the kind's shape with its count, and whether the name dictionary's
    weight (not the count) made the best win."""

    best: Candidate
    votes: int
    known: bool
    alternatives: tuple[tuple[str, int], ...]
    dictionary: bool = False
    candidates: tuple[Candidate, ...] = ()


class ImageReader:
    def __init__(self, template: Template, config: dict[str, Any], vocabulary: dict[str, list[str]]):
        self.template = template
        self.config = config
        image = config.get("image", {})
        self.dpi = int(image.get("dpi", 200))
        self.title_min = float(image.get("title_min", 0.5))
        self.marks = config.get("marks_image", {})
        self.settings = _settings(config)
        self.settings_by_name = {s.name: s for s in self.settings.values()}
        self.vocabulary = vocabulary
        self.lookalikes = set("".join(vocabulary.get("name_lookalikes", [])))
        self.match = glyphs.Match(**config.get("closed_lists", {}))
        bolder = config.get("repairs", {})
        self.kind_min = float(bolder.get("facility_kind_min", 0.0))
        self.place_min = float(bolder.get("address_place_min", 0.0))
        self.forms_dir = Path(image.get("forms_dir") or FORMS_DIR)
        self.variants = ocr.check_variants(image.get("variants", ["plain"]))
        self.stages = [Stage(ocr.check_variants(st.get("variants", [])), ocr.check_variants(st.get("other_models", [])),
                             int(st.get("settled", 0))) for st in image.get("escalation", [])]
        self.lone_variants = ocr.check_variants(image.get("lone_variants", self.variants))
        self.escalate_below = float(image.get("escalate_below", 1.01))
        again = image.get("read_again", {})
        self.read_again_kinds = frozenset(again.get("kinds", []))
        self.confirming = Stage(ocr.check_variants(again.get("variants", [])),
                                ocr.check_variants(again.get("other_models", [])))
        self.specs = {s.path: s for s in template.fields}
        known = config.get("names", {})
        self.name_lexicon = names.check(str(known.get("lexicon", "")))  # loaded when first needed
        self.known_weight = float(known.get("known_weight", 0))
        review = config.get("review", {})
        self.closed_lists = set(review.get("closed_lists", ["jobs"]))
        self.list_repairs = set(review.get("list_repairs", []))
        self.beyond_lists = set(review.get("beyond_lists", []))
        self.links = corroboration.Links.of(template)
        self.page_rules = corroboration.configured(config, "sheet")
        mm = self.dpi / 25.4
        self.streak_px = (round(float(image.get("streak_vertical_mm", 20)) * mm),
                          round(float(image.get("streak_horizontal_mm", 40)) * mm))

    def prepare(self, gray: np.ndarray, fit: ImageFit, channel: str = "scan") -> PreparedPage:
        """Everything up to OCR: the page in template space, marks and empty boxes read, the crops
        of the written boxes grouped by OCR setting (read later, with other pages' crops)."""
        channel = "photo" if fit.work.photo else channel
        rect = inks.flatten_light(rectify(gray, fit.work, fit.registration, self.dpi))
        printed = inks.blank_ink(self.template, self.forms_dir, self.dpi)
        ink = inks.without_streaks(inks.page_ink(rect), printed, self.streak_px[0], self.streak_px[1])
        # PNG made here, in the page's worker: a tenth of the bytes to send back, and both cores encode
        prepared = PreparedPage(self.template.form_id, channel, cv2.imencode(".png", rect)[1].tobytes())
        for spec in self.template.fields:
            if spec.is_mark:
                prepared.readings[spec.path] = inks.read_mark(spec, ink, printed, channel, self.marks, self.dpi)
                continue
            box = inks.box_px(spec.box, self.dpi, rect.shape)
            mask = inks.written(ink, printed, box, inks.local_shift(ink, printed, box))
            crop = inks.ocr_crop(rect, mask, box) if inks.has_writing(mask) else None
            if crop is None:
                evidence = Evidence(kind=spec.kind, empty=True, stray_ink=int(mask.sum()), channel=channel)
                prepared.readings[spec.path] = FieldReading(spec.path, spec.kind, "", confidence(evidence), "ocr",
                                                            spec.box, evidence=evidence)
                continue
            prepared.crops.setdefault(self._setting(spec.kind).name, {})[spec.path] = crop
            prepared.pieces[spec.path] = inks.piece_heights(crop)
        title_box = inks.box_px(self.template.identity.title_box, self.dpi, rect.shape, grow_pt=4)
        prepared.crops.setdefault(self.settings["text"].name, {})[TITLE] = rect[title_box[1]:title_box[3],
                                                                              title_box[0]:title_box[2]]
        return prepared

    def finish(self, prepared: PreparedPage, results: dict[Hashable, list[ocr.Reading]]) -> list[FieldReading]:
        """From the OCR readings of the page's crops to field readings with their confidence."""
        readings = dict(prepared.readings)
        title_text = results[TITLE][0].text if TITLE in results else ""
        title_ok = fuzz.ratio(normalize.compact(title_text), normalize.compact(self.template.identity.title))
        title_ok = title_ok / 100 >= self.title_min
        confirmed_only = self.confirmed_only(results)
        for spec in self.template.fields:
            if spec.path not in readings:
                readings[spec.path] = self._text(spec, results[spec.path], title_ok, prepared.channel,
                                                 first_decides=spec.path in confirmed_only)
                readings[spec.path].evidence.ink_pieces = prepared.pieces.get(spec.path, ())
        view = corroboration.SheetView(readings, self.links, self._reread(readings, results, title_ok,
                                                                           prepared.channel),
                                       {s.path: s.kind for s in self.template.fields})
        corroboration.run(self.page_rules, view, self.means())
        self._page_evidence([r for r in readings.values() if r.method == "ocr" and r.value != ""])
        return [readings[s.path] for s in self.template.fields]

    def means(self) -> corroboration.Means:
        """What the page's corroboration rules may consult."""
        v = self.vocabulary
        return corroboration.Means(names.load(self.name_lexicon) if self.name_lexicon else None, self.match,
                                   tuple(v.get("email_role_suffixes", [])), tuple(v.get("facility_suffixes", [])),
                                   tuple(v.get("mail_domains", [])), tuple(v.get("place_names", [])))

    def _reread(self, readings: dict[str, FieldReading], results: dict[Hashable, list[ocr.Reading]],
                title_ok: bool, channel: str) -> Callable[[str, Callable[[str], bool]], FieldReading | None]:
        """Another reading of a crop, one that `prefer`s says agrees with another box (each box was
        read several ways when the two disagreed): None when no reading of the crop does."""
        def reread(path: str, prefer: Callable[[str], bool]) -> FieldReading | None:
            if path not in results or readings[path].method != "ocr" or not readings[path].value:
                return None
            better = self._text(self.specs[path], results[path], title_ok, channel, prefer)
            return better if prefer(str(better.value)) else None
        return reread

    def escalation(self, setting: ocr.Setting, stage: int) -> list[tuple[ocr.Setting, tuple[str, ...]]]:
        """How a doubtful crop is read at a stage: its variants with the crop's model, and its
        other-model variants with each other model (a second model errs on other crops: on val2 /
        val3 crops, adding Tesseract's Japanese script model raised the fields read right from
        82 / 83 % to 84 / 86 %)."""
        return _ways(setting, self.stages[stage]) if stage < len(self.stages) else []

    def confirmation(self, setting: ocr.Setting) -> list[tuple[ocr.Setting, tuple[str, ...]]]:
        """How a crop read only to confirm its confident plain reading is read (`[image.read_again]`)."""
        return _ways(setting, self.confirming)

    def settled(self, path: Hashable, readings: list[ocr.Reading], stage: int) -> bool:
        """Whether a doubtful crop needs no later stage: enough of its readings give one value, of
        its kind's shape (most crops the first stage reads again agree; more readings change little)."""
        need = self.stages[stage].settled if stage < len(self.stages) else 0
        if not need:
            return False
        vote = self._vote(self.specs[str(path)], readings)
        return vote.best.plausible and vote.votes >= need

    def _known_name(self, spec: FieldSpec) -> Callable[[str], bool] | None:
        """How to tell a known name, for a person's name box and its kana box (None for other boxes)."""
        if not self.name_lexicon:
            return None
        if spec.kind == "name":
            return names.load(self.name_lexicon).knows
        partner = self.specs.get(spec.path.removesuffix("_kana"))
        if spec.kind == "kana" and partner is not None and partner.kind == "name":
            return names.load(self.name_lexicon).knows_kana
        return None

    def _setting(self, kind: str) -> ocr.Setting:
        return self.settings.get(kind, self.settings["text"])

    def _quick(self, path: str, readings: list[ocr.Reading]) -> str:
        """A crop's value from its first reading, repaired and normalised (to compare fields early)."""
        spec = self.specs[path]
        return normalize.normalise(spec.kind, self._repair(spec, readings[0].text).value).value if readings else ""

    def disagreeing(self, results: dict[Hashable, list[ocr.Reading]]) -> set[Hashable]:
        """Crops whose plain readings contradict another box (a name and its kana, an e-mail address
        and its owner's name): worth the other readings, so that finish can look for ones that agree."""
        out: set[Hashable] = set()
        suffixes = self.vocabulary.get("email_role_suffixes", [])
        for boxes in self.links.persons:
            kana_path, written, email = boxes.kana, boxes.written, boxes.email
            if kana_path not in results:
                continue
            kana = self._quick(kana_path, results[kana_path])
            if written in results and kana_match.reads_as(self._quick(written, results[written]), kana) is False:
                out |= {kana_path, written}
            if email in results and romaji.email_fits_name(self._quick(email, results[email]), kana, suffixes) is False:
                out.add(email)
        return out

    def needs_more(self, path: Hashable, reading: ocr.Reading) -> bool:
        """Whether one plain reading is not enough: a doubtful one (`_doubtful`), or one of a kind a
        confident reading does not settle (`read_again_kinds`, read again only to confirm it).
        Such crops are read the other ways too (reading.toml)."""
        return path != TITLE and (self._doubtful(path, reading)
                                  or self.specs[str(path)].kind in self.read_again_kinds)

    def _doubtful(self, path: Hashable, reading: ocr.Reading) -> bool:
        """Nothing read, a word Tesseract doubts, or a value without its kind's shape or repaired."""
        spec = self.specs[str(path)]
        if not reading.words or reading.min_conf < self.escalate_below:
            return True
        fixed = self._repair(spec, reading.text)
        return not (fixed.plausible and normalize.normalise(spec.kind, fixed.value).ok) or bool(fixed.repairs)

    def confirmed_only(self, results: dict[Hashable, list[ocr.Reading]],
                       disagreeing: set[Hashable] | None = None) -> set[str]:
        """Crops read again only to confirm a confident plain reading (`read_again_kinds`): their value
        stays the plain reading's, the other readings are evidence (agreement) and nothing more — on
        the dev set a vote of them turned right names wrong as often as wrong ones right."""
        if not self.read_again_kinds:
            return set()
        disagreeing = self.disagreeing(results) if disagreeing is None else disagreeing
        return {str(path) for path, rs in results.items()
                if path != TITLE and path not in disagreeing and str(path) in self.specs
                and self.specs[str(path)].kind in self.read_again_kinds and rs and not self._doubtful(path, rs[0])}

    def _page_evidence(self, texts: list[FieldReading]) -> None:
        """How sure Tesseract was over the whole page: handwriting reads lower everywhere, and a value
        read fine on a hard page deserves less trust than the same on a typed one."""
        if not texts:
            return
        page_conf = float(np.mean([r.evidence.mean_conf for r in texts]))
        for r in texts:
            r.evidence.page_conf = page_conf
            r.confidence = confidence(r.evidence)

    def _repair(self, spec: FieldSpec, text: str) -> repair.Repaired:
        kind, hints, v = spec.kind, spec.hints, self.vocabulary
        if kind == "kana":
            return self._kana(spec, repair.kana(text))
        if kind == "job":
            return repair.job(text, v.get("jobs", []), self.match)
        if kind == "date":
            return repair.date(text)
        if kind == "phone":
            return repair.phone(text)
        if kind == "postal_code":
            return repair.postal_code(text)
        if kind == "email":
            return repair.email(text, v.get("mail_domains", []), v.get("top_domains", []))
        if hints.get("vocabulary") in v:
            return repair.closed_list(text, v[hints["vocabulary"]], self.match)
        if hints.get("suffixes") in v:
            return repair.with_suffix(text, v[hints["suffixes"]], self.kind_min)
        if hints.get("address"):
            return repair.address(text, v.get("places", []), self.place_min)
        if kind == "name":
            return repair.person_name(text)
        return repair.japanese_text(text)

    def _kana(self, spec: FieldSpec, fixed: repair.Repaired) -> repair.Repaired:
        """The kana of a facility name ends in the reading of its kind (`kana_match.kana_with_kind_reading`)."""
        named = self.specs.get(spec.path.removesuffix("_kana"))
        kinds = self.vocabulary.get(named.hints.get("suffixes", "")) if named is not None else None
        if not kinds or self.kind_min <= 0:
            return fixed
        ending = kana_match.kana_with_kind_reading(fixed.value, tuple(kinds), self.kind_min)
        if ending is None:
            return fixed
        return repair.Repaired(ending, [*fixed.repairs, "kind"], fixed.plausible,
                               note=notes.text("facility_kind_reading"), unlisted=fixed.value)

    def _vote(self, spec: FieldSpec, readings: list[ocr.Reading],
              prefer: Callable[[str], bool] | None = None, first_decides: bool = False) -> Vote:
        """The best of the readings: one another box agrees with, if `prefer` says so; then the kind's
        shape, the value most readings give (a known name counting `known_weight` more), no note,
        Tesseract's confidence. Also whether the name dictionary, not the readings, decided. With
        `first_decides`, the first (plain) reading is the best and the others only count for it."""
        kind = spec.kind
        known = self._known_name(spec)
        candidates = []
        for reading in readings:
            fixed = self._repair(spec, reading.text)
            norm = normalize.normalise(kind, fixed.value)
            candidates.append(Candidate(fixed.plausible and norm.ok, reading.mean_conf, fixed, norm, reading))
        votes: dict[str, int] = {}
        for c in candidates:
            votes[c.key(kind)] = votes.get(c.key(kind), 0) + 1
        is_known = {k: known is not None and known(k) for k in votes}

        def rank(c: Candidate, weight: float) -> tuple:
            k = c.key(kind)
            return (bool(prefer and prefer(c.norm.value)), c.plausible, votes[k] + weight * is_known[k],
                    not c.fixed.note, c.mean_conf)

        ranked = sorted(candidates, key=lambda c: rank(c, self.known_weight), reverse=True)  # stable, as max
        best = candidates[0] if first_decides and prefer is None else ranked[0]
        unweighted = best if first_decides and prefer is None else max(candidates, key=lambda c: rank(c, 0.0))
        shaped: dict[str, str] = {}
        for c in ranked:
            if c.plausible and c.norm.value:
                shaped.setdefault(c.key(kind), c.norm.value)
        return Vote(best, votes[best.key(kind)], is_known[best.key(kind)],
                    tuple((value, votes[k]) for k, value in shaped.items()),
                    dictionary=unweighted.key(kind) != best.key(kind), candidates=tuple(candidates))

    def _beyond(self, spec: FieldSpec, candidate: Candidate) -> bool:
        """Whether a repair moved the reading toward a list the world goes beyond (`beyond_lists`)."""
        return bool(self.beyond_lists & {spec.hints.get("vocabulary"), *candidate.fixed.repairs}
                    and self.list_repairs.intersection(candidate.fixed.repairs))

    def _as_read(self, spec: FieldSpec, candidates: tuple[Candidate, ...], listed: str) -> tuple[str, bool] | None:
        """The value the crop's readings give most often as read, before any repair moved it toward a
        list, and whether every reading gave it. Every reading giving it, it stands. Else, when a repair
        moved it toward a list the world goes beyond and two readings at least give it, more than give
        the list's entry, it is what the crop shows (事業所長 is not 事務長, 訪問リハビリテーション not
        訪問看護ステーション); on other lists readings alike are one misread alike (宇都宮 read 宇都富
        twice). None when the list's entry stands."""
        kind = spec.kind
        counts: dict[str, int] = {}
        shown: dict[str, str] = {}
        beyond: set[str] = set()
        read_any = [c for c in candidates if c.reading.words]
        for c in read_any:
            read = normalize.normalise(kind, c.fixed.unlisted or c.fixed.value)
            if not read.ok:
                continue
            key = normalize.comparable(kind, read.value)
            counts[key] = counts.get(key, 0) + 1
            shown.setdefault(key, read.value)
            if self._beyond(spec, c):
                beyond.add(key)
        if not counts:
            return None
        key = max(counts, key=lambda k: counts[k])  # the first read wins a tie
        listed_key = normalize.comparable(kind, listed)
        if key == listed_key or counts[key] < 2 or counts[key] <= counts.get(listed_key, 0):
            return None
        every = counts[key] == len(read_any)
        if key not in beyond and not every:
            return None
        return shown[key], every

    def _text(self, spec: FieldSpec, readings: list[ocr.Reading], title_ok: bool, channel: str,
              prefer: Callable[[str], bool] | None = None, first_decides: bool = False) -> FieldReading:
        """The field from its crop's readings (`_vote`) and the evidence for it: how many readings
        agree. A reading of a name that is a known name counts as `known_weight` more readings (on the
        crops of val2 / val3, name boxes read right went from 75.4 to 78.9 %, kana of names 84.9 to 87.1 %).
        On an open field (names, kana, addresses, e-mail; every list but the form's closed ones) a value
        the name dictionary chose or a repair moved toward a list goes to a person; a reading off the
        list that every reading of the crop gives is kept as read (眼科医院 is not 歯科医院)."""
        kind = spec.kind
        vote = self._vote(spec, readings, prefer, first_decides)
        best, fixed, norm, reading = vote.best, vote.best.fixed, vote.best.norm, vote.best.reading
        others = len(readings) - 1
        # A name holding a lookalike glyph is known either way (太郎 and 太朗, 斎藤 and 斉藤): no evidence
        lookalike = kind == "name" and not self.lookalikes.isdisjoint(norm.value)
        open_field = spec.hints.get("vocabulary") not in self.closed_lists
        moved = [c for c in vote.candidates
                 if c.key(kind) == best.key(kind) and self.list_repairs.intersection(c.fixed.repairs)]
        # a reading moved toward a list the world goes beyond agrees with nothing read as it stands
        beyond = sum(1 for c in moved if self._beyond(spec, c))
        votes = vote.votes - beyond if open_field and beyond < vote.votes else vote.votes
        agreement = (votes - 1) / others if others else 1.0
        evidence = Evidence(kind=kind, mean_conf=reading.mean_conf, min_conf=reading.min_conf,
                            plausible=best.plausible, repairs=len(fixed.repairs), vocabulary=fixed.vocabulary_score,
                            chars=len(normalize.compact(norm.value)), title_ok=title_ok, channel=channel,
                            lookalike=lookalike, known_name=vote.known and not lookalike,
                            weak_match=fixed.vocabulary_score < self.match.weak_below,
                            disputed_match=fixed.vocabulary_score < 1 and agreement < 0.5, agreement=agreement,
                            alternatives=vote.alternatives,
                            letter_gap=ocr.widest_letter_gap(reading) if kind == "email" else 0.0,
                            rival=reading.rival)
        note = fixed.note if best.plausible else (norm.note or notes.text("unshaped"))
        value = norm.value
        kept = self._as_read(spec, vote.candidates, norm.value) if open_field and moved else None
        if kept is not None and kept[1]:
            value, note = kept[0], note or notes.text("kept_off_list")
        elif kept is not None:
            value, note = kept[0], notes.text("off_list_most")
            evidence.derived = "list"
        elif open_field and self.list_repairs.intersection(fixed.repairs):
            evidence.derived, note = "list", note or notes.text("toward_list")
        elif open_field and vote.dictionary and prefer is None:
            evidence.derived, note = "dictionary", note or notes.text("name_dictionary")
        return FieldReading(spec.path, kind, value, confidence(evidence), "ocr", spec.box, raw=reading.text,
                            note=note, evidence=evidence)
