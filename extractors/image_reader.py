"""Reading the fields of a registered image page (scan, fax, photo).

The page is resampled into template space (the sheet as the blank, at the reading dpi), its light
flattened, and the blank's print taken away. A box without the sender's ink is "" without calling
OCR; marks (check boxes, the 管理者 column, the seal) are read by how much of their box the
sender's ink covers; text fields are cleaned of rule remnants, stacked by OCR setting and read
with one Tesseract call per setting; then each kind's repair makes sense of the text and the
confidence model (calibration.py) turns what was seen into a probability of being right.
"""

from __future__ import annotations

import dataclasses
import logging
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
from renraku.extractors import corroborate, glyphs, names, ocr, repair
from renraku.extractors import ink as inks
from renraku.extractors.calibration import Evidence, confidence
from renraku.extractors.fields import FieldReading
from renraku.extractors.register import Registration, WorkPage, rectify
from renraku.extractors.templates import FieldSpec, Template

FORMS_DIR = PACKAGE_DIR / "samples" / "forms"
log = logging.getLogger(__name__)
TITLE = "__title__"


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
                                              bool(s.get("spaced")), tuple(s.get("more_langs", []))))
        for kind in s.get("kinds", []):
            out[kind] = setting
    return out


def _keep_writing(mask: np.ndarray) -> np.ndarray:
    """The sender's strokes only: rule remnants (long thin pieces) and specks dropped."""
    h, w = mask.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    for i in range(1, n):
        _x, _y, bw, bh, area = stats[i]
        if area < 6:
            continue
        if (bw <= 4 and bh > 0.6 * h) or (bh <= 4 and bw > 0.3 * w):
            continue  # a stretch of a printed rule the blank did not quite cover
        keep[i] = True
    return keep[labels]


def ocr_crop(page: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The field's pixels where the sender wrote (grey levels kept), white elsewhere, cut to the ink."""
    strokes = _keep_writing(mask)
    if not strokes.any():
        return None
    ys, xs = np.nonzero(strokes)
    x0, y0, _x1, _y1 = box
    near = cv2.dilate(strokes.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    crop = np.where(near, page[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]], 255).astype(np.uint8)
    pad = 6
    top, bottom = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + pad + 1)
    left, right = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + pad + 1)
    return crop[top:bottom, left:right]


@dataclass
class PreparedPage:
    """An image page ready for OCR: what could be read without it, and the crops that need it."""

    form_id: str
    channel: str
    picture_png: bytes = field(repr=False)  # the sheet as the boxes see it, for the review desk
    readings: dict[str, FieldReading] = field(default_factory=dict)
    crops: dict[str, dict[Hashable, np.ndarray]] = field(default_factory=dict, repr=False)  # by setting name


@dataclass(frozen=True)
class Stage:
    """One round of reading doubtful crops again (reading.toml [[image.escalation]])."""

    variants: tuple[str, ...]  # with the setting's own model
    other_models: tuple[str, ...] = ()  # with each of the setting's other models
    settled: int = 0  # after it, a crop with this many readings agreeing on a value of its shape stops (0: never)


def ocr_prepared(pages: list[tuple[ImageReader, PreparedPage]],
                 workers: int = 1) -> list[dict[Hashable, list[ocr.Reading]]]:
    """OCR for many pages at once: per page, the readings of each crop (for `ImageReader.finish`).

    Every crop is read plain first, the crops of all pages of a setting in one Tesseract call per
    worker; only the crops whose plain reading is doubtful (`ImageReader.needs_more`) are read the
    other ways (alone, enlarged, binarised, another model), stage by stage until their readings
    agree (`ImageReader.settled`), and those still without a word once more each on its own
    (`lone_variants`, thickened strokes among them). Few calls for a whole batch, instead of
    several per page.
    """
    plain = [ocr.Request(reader.settings_by_name[name], crops, reader.variants)
             for reader, page in pages for name, crops in page.crops.items()]
    owners = [p for p, (_reader, page) in enumerate(pages) for _name in page.crops]
    first = ocr.read_requests(plain, workers)
    results: list[dict[Hashable, list[ocr.Reading]]] = [{} for _ in pages]
    for p, found in zip(owners, first, strict=True):
        results[p] |= found
    disagreeing = [reader.disagreeing(found) for (reader, _page), found in zip(pages, results, strict=True)]
    doubtful = [{k for k, rs in found.items() if k in disagreeing[p] or any(reader.needs_more(k, r) for r in rs)}
                for p, ((reader, _page), found) in enumerate(zip(pages, results, strict=True))]
    for s in range(max((len(reader.stages) for reader, _page in pages), default=0)):
        more, more_owners = [], []
        for p, request in zip(owners, plain, strict=True):
            reader = pages[p][0]
            crops = {k: c for k, c in request.crops.items() if k in doubtful[p]}
            for setting, variants in reader.escalation(request.setting, s) if crops else []:
                more.append(ocr.Request(setting, crops, variants))
                more_owners.append(p)
        for p, found in zip(more_owners, ocr.read_requests(more, workers), strict=True):
            for k, rs in found.items():
                results[p][k] = results[p][k] + rs
        for p, (reader, _page) in enumerate(pages):
            doubtful[p] = {k for k in doubtful[p]
                           if k in disagreeing[p] or not reader.settled(k, results[p][k], s)}
    missed, missed_owners = [], []
    for p, request in zip(owners, plain, strict=True):
        reader = pages[p][0]
        lost = {k: request.crops[k] for k in request.crops
                if k != TITLE and not any(r.words for r in results[p][k])}
        if lost:
            missed.append(ocr.Request(request.setting, lost, ocr.alone(reader.lone_variants)))
            missed_owners.append(p)
    for p, found in zip(missed_owners, ocr.read_requests(missed, workers), strict=True):
        results[p] |= found
    return results


def warm(config: dict[str, Any]) -> None:
    """Load the dictionaries that weighing the readings needs (about 1.5 s) while this process would
    only wait, e.g. for the page workers: otherwise the first page's readings wait for them."""
    try:
        corroborate.warm()
        names.configured(config)
    except Exception:  # the same load fails again where it is needed, and is reported there
        log.debug("loading the dictionaries ahead failed", exc_info=True)


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
        self.specs = {s.path: s for s in template.fields}
        known = config.get("names", {})
        self.name_lexicon = names.check(str(known.get("lexicon", "")))  # loaded when first needed
        self.known_weight = float(known.get("known_weight", 0))
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
                prepared.readings[spec.path] = self._mark(spec, ink, printed, channel)
                continue
            box = inks.box_px(spec.box, self.dpi, rect.shape)
            mask = inks.written(ink, printed, box, inks.local_shift(ink, printed, box))
            crop = ocr_crop(rect, mask, box) if inks.has_writing(mask) else None
            if crop is None:
                evidence = Evidence(kind=spec.kind, empty=True, stray_ink=int(mask.sum()), channel=channel)
                prepared.readings[spec.path] = FieldReading(spec.path, spec.kind, "", confidence(evidence), "ocr",
                                                            spec.box, evidence=evidence)
                continue
            prepared.crops.setdefault(self._setting(spec.kind).name, {})[spec.path] = crop
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
        for spec in self.template.fields:
            if spec.path not in readings:
                readings[spec.path] = self._text(spec, results[spec.path], title_ok, prepared.channel)
        self._agree(readings, results, title_ok, prepared.channel)
        corroborate.within_page(list(readings.values()))
        self._page_evidence([r for r in readings.values() if r.method == "ocr" and r.value != ""])
        return [readings[s.path] for s in self.template.fields]

    def escalation(self, setting: ocr.Setting, stage: int) -> list[tuple[ocr.Setting, tuple[str, ...]]]:
        """How a doubtful crop is read at a stage: its variants with the crop's model, and its
        other-model variants with each other model (a second model errs on other crops: on val2 /
        val3 crops, adding Tesseract's Japanese script model raised the fields read right from
        82 / 83 % to 84 / 86 %)."""
        if stage >= len(self.stages):
            return []
        own, other = self.stages[stage].variants, self.stages[stage].other_models
        ways = [(setting, own)] if own else []
        return ways + [(setting.with_lang(lang), other) for lang in setting.more_langs if other]

    def settled(self, path: Hashable, readings: list[ocr.Reading], stage: int) -> bool:
        """Whether a doubtful crop needs no later stage: enough of its readings give one value, of
        its kind's shape (most crops the first stage reads again agree; more readings change little)."""
        need = self.stages[stage].settled if stage < len(self.stages) else 0
        if not need:
            return False
        best, votes, _known, _alternatives = self._vote(self.specs[str(path)], readings)
        return best[0] and votes >= need

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

    def _knows(self, path: str, value: str) -> bool:
        """Whether the name dictionary knows the value of a name box or its kana box (`_known_name`)."""
        known = self._known_name(self.specs[path])
        return known is not None and known(value)

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
        for kana_path, written, email in corroborate.partners(p for p in results if isinstance(p, str)):
            kana = self._quick(kana_path, results[kana_path])
            if written is not None and corroborate.reads_as(self._quick(written, results[written]), kana) is False:
                out |= {kana_path, written}
            if email is not None and corroborate.email_fits_name(
                    self._quick(email, results[email]), kana, suffixes) is False:
                out.add(email)
        return out

    def needs_more(self, path: Hashable, reading: ocr.Reading) -> bool:
        """Whether one plain reading is not enough: nothing read, a word Tesseract doubts, or a value
        without its kind's shape. Such crops are read the other ways too (reading.toml)."""
        if path == TITLE:
            return False
        if not reading.words or reading.min_conf < self.escalate_below:
            return True
        spec = self.specs[str(path)]
        fixed = self._repair(spec, reading.text)
        return not (fixed.plausible and normalize.normalise(spec.kind, fixed.value).ok) or bool(fixed.repairs)

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
        """The kana of a facility name ends in the reading of its kind (`corroborate.kana_ending`)."""
        named = self.specs.get(spec.path.removesuffix("_kana"))
        kinds = self.vocabulary.get(named.hints.get("suffixes", "")) if named is not None else None
        if not kinds or self.kind_min <= 0:
            return fixed
        ending = corroborate.kana_ending(fixed.value, tuple(kinds), self.kind_min)
        if ending is None:
            return fixed
        return repair.Repaired(ending, [*fixed.repairs, "kind"], fixed.plausible,
                               note="施設の種類の読みに似ているため補正しました（要確認）")

    def _agree(self, readings: dict[str, FieldReading], results: dict[Hashable, list[ocr.Reading]], title_ok: bool,
               channel: str) -> None:
        """Where a name and its kana, or an e-mail address and its owner's kana, disagree, take
        readings of them that agree if there are any (each box was read several ways when they
        disagreed)."""
        suffixes = self.vocabulary.get("email_role_suffixes", [])

        def again(path: str, prefer: Callable[[str], bool]) -> FieldReading | None:
            if path not in results or readings[path].method != "ocr" or not readings[path].value:
                return None
            better = self._text(self.specs[path], results[path], title_ok, channel, prefer)
            return better if prefer(str(better.value)) else None

        for kana_path, written, email in corroborate.partners(list(readings)):
            kana = readings[kana_path]
            if kana_path not in results or not kana.value:
                continue
            if written is not None and corroborate.reads_as(str(readings[written].value), str(kana.value)) is False:
                name = again(written, lambda v, k=str(kana.value): corroborate.reads_as(v, k) is True)
                if name is not None:
                    readings[written] = name
                else:
                    shown = str(readings[written].value)
                    fits_name = again(kana_path, lambda v, w=shown: corroborate.reads_as(w, v) is True)
                    readings[kana_path] = fits_name or kana
                    heard = self._hear(kana, shown) if fits_name is None else None
                    if heard is not None:
                        readings[kana_path] = heard
                    elif fits_name is None and self.specs[written].kind == "name":
                        spelt = self._respell(str(readings[written].value), str(kana.value))
                        readings[written] = self._respelt(readings[written], spelt)
            elif written is not None and self.specs[written].kind == "name" and corroborate.marks_unheard(
                    str(readings[written].value), str(kana.value)):
                # 松本 reads まつもと and, in 松っちゃん, まっ: the name cannot tell まっもと from まつもと,
                # but the name dictionary can
                readings[kana_path] = self._hear(kana, str(readings[written].value)) or kana
            kana_now = str(readings[kana_path].value)
            if email is None or corroborate.email_fits_name(str(readings[email].value), kana_now,
                                                            suffixes) is not False:
                continue
            fits_owner = again(email, lambda v, k=kana_now: corroborate.email_fits_name(v, k, suffixes) is True)
            name_reads_kana = written is not None and bool(corroborate.reads_as(str(readings[written].value), kana_now))
            if fits_owner is None and name_reads_kana and self._vouches(
                    str(readings[written].value), kana_now, str(readings[email].value), suffixes):
                spaced = self._spaced(str(readings[written].value), kana_now)
                spelt = corroborate.respell_email(str(readings[email].value), spaced, suffixes)
                fits_owner = self._respelt(readings[email], spelt)
            elif fits_owner is None and not name_reads_kana and self._knows(kana_path, kana_now):
                # no name is read as the kana, but the dictionary knows it as a name's reading
                spelt = corroborate.respell_email(str(readings[email].value), kana_now, suffixes)
                fits_owner = self._respelt(readings[email], spelt, "辞書にある氏名の読み仮名に合わせて補正しました")
            readings[email] = fits_owner or readings[email]
            if fits_owner is None and not name_reads_kana:
                self._kana_from_email(readings, kana_path, written, email, suffixes)

    def _kana_from_email(self, readings: dict[str, FieldReading], kana_path: str, written: str | None,
                         email: str, suffixes: list[str]) -> None:
        """A kana that neither its name nor its address vouches for, put as the address spells the
        name (`corroborate.kana_from_email`), with a note; then the name respelt to it if it can be."""
        if not self.name_lexicon:
            return
        lexicon = names.load(self.name_lexicon)
        heard = corroborate.kana_from_email(str(readings[kana_path].value), str(readings[email].value),
                                            lexicon.surname_kana, lexicon.given_kana, suffixes, self.match)
        if heard is None:
            return
        readings[kana_path] = self._respelt(readings[kana_path], heard, "メールアドレスに合わせて補正しました")
        if written is not None and self.specs[written].kind == "name" and corroborate.reads_as(
                str(readings[written].value), heard) is False:
            readings[written] = self._respelt(readings[written], self._respell(str(readings[written].value), heard))

    @staticmethod
    def _vouches(name: str, kana: str, email: str, suffixes: list[str]) -> bool:
        """Whether the name written beside a kana reading vouches for the kana where the address
        differs, so that the kana may spell it: 純子 reads じゅんこ and, as in 団子, じゅんご, so it cannot
        turn junko into jungo."""
        return bool(corroborate.reads_as(name, kana)) and not any(
            corroborate.email_fits_name(email, k, suffixes) for k in corroborate.unheard(name, kana))

    def _respell(self, name: str, kana: str) -> str | None:
        """`corroborate.respell`; a name and kana both written without a space are parted where the
        name dictionary says one side is read as its kana (清田花子 / いけだはなこ: 清田 / いけだ)."""
        spelt = corroborate.respell(name, kana, self.match)
        if spelt is not None or " " in name.strip() or " " in kana.strip():
            return spelt
        parted = self._parted(name, kana)
        return corroborate.respell(*parted, self.match) if parted else None

    def _spaced(self, name: str, kana: str) -> str:
        """A kana written without a space, parted as the name dictionary parts it from its name
        (いのうえかおり beside 井上香織: いのうえ かおり), for what needs the parts; else as it is."""
        parted = self._parted(name, kana) if " " not in kana.strip() else None
        return parted[1] if parted else kana

    def _parted(self, name: str, kana: str) -> tuple[str, str] | None:
        """The name and the kana, each with a space where the name dictionary parts them (`NameLexicon.cut`)."""
        cut = names.load(self.name_lexicon).cut(name, kana) if self.name_lexicon else None
        if cut is None:
            return None
        (i, j), name, kana = cut, normalize.compact(name), normalize.compact(kana)
        return f"{name[:i]} {name[i:]}", f"{kana[:j]} {kana[j:]}"

    def _hear(self, kana: FieldReading, name: str) -> FieldReading | None:
        """The kana reading respelt as the known name beside it is read (`_heard_as`), with a note."""
        heard = self._heard_as(name, str(kana.value))
        return self._respelt(kana, heard, "氏名の読みに合わせて補正しました") if heard is not None else None

    def _heard_as(self, name: str, kana: str) -> str | None:
        """The kana a known name is read as (name dictionary), where the kana read is no name's
        reading and one character other than exactly one of the name's (阿部沙織 with あべ さあり:
        あべ さおり). Not a character more or less: a name box read short (吉田悠 for 吉田悠斗) is
        a known name too, and its kana (よしだ ゆうと) the right one."""
        if not self.name_lexicon:
            return None
        lexicon = names.load(self.name_lexicon)
        if lexicon.knows_kana(kana):
            return None
        from rapidfuzz.distance import Hamming

        read = normalize.compact(normalize.kana(kana))
        near = {h for h in lexicon.readings(name) if len(h.replace(" ", "")) == len(read)
                and Hamming.distance(read, h.replace(" ", "")) <= 1}
        return near.pop() if len({h.replace(" ", "") for h in near}) == 1 else None

    def _respelt(self, reading: FieldReading, spelt: str | None,
                 note: str = "読み仮名に合わせて補正しました") -> FieldReading:
        """A value no reading of which fits its partner, spelt the way that does and looks most like
        what was read (閲口 → 関口 for せきぐち, kaorl → kaori for かおり): a repair, shown to the reviewer."""
        if spelt is None:
            return reading
        evidence = dataclasses.replace(reading.evidence, repairs=reading.evidence.repairs + 1)
        return dataclasses.replace(reading, value=normalize.normalise(reading.kind, spelt).value, evidence=evidence,
                                   confidence=confidence(evidence), note=note)

    def _vote(self, spec: FieldSpec, readings: list[ocr.Reading],
              prefer: Callable[[str], bool] | None = None) -> tuple[tuple, int, bool, tuple[tuple[str, int], ...]]:
        """The best of the readings (one another box agrees with, if `prefer` says so; then the kind's
        shape, the value most readings give, Tesseract's confidence): (plausible, mean confidence,
        repaired, normalised, reading), how many readings give its value, whether it is a known name,
        and each value of the kind's shape the readings give with how many give it."""
        kind = spec.kind
        known = self._known_name(spec)
        candidates = []
        for reading in readings:
            fixed = self._repair(spec, reading.text)
            norm = normalize.normalise(kind, fixed.value)
            candidates.append((fixed.plausible and norm.ok, reading.mean_conf, fixed, norm, reading))
        votes: dict[str, int] = {}
        for c in candidates:
            k = normalize.comparable(kind, c[3].value)
            votes[k] = votes.get(k, 0) + 1
        is_known = {k: known is not None and known(k) for k in votes}

        def rank(c: tuple) -> tuple:
            k = normalize.comparable(kind, c[3].value)
            return (bool(prefer and prefer(c[3].value)), c[0], votes[k] + self.known_weight * is_known[k],
                    not c[2].note, c[1])

        ranked = sorted(candidates, key=rank, reverse=True)  # stable: the first of equals, as max would take
        best = ranked[0]
        key = normalize.comparable(kind, best[3].value)
        shaped: dict[str, str] = {}
        for c in ranked:
            if c[0] and c[3].value:
                shaped.setdefault(normalize.comparable(kind, c[3].value), c[3].value)
        return best, votes[key], is_known[key], tuple((value, votes[k]) for k, value in shaped.items())

    def _text(self, spec: FieldSpec, readings: list[ocr.Reading], title_ok: bool, channel: str,
              prefer: Callable[[str], bool] | None = None) -> FieldReading:
        """The field from its crop's readings (`_vote`) and the evidence for it: how many readings
        agree. A reading of a name that is a known name counts as `known_weight` more readings (on the
        crops of val2 / val3, name boxes read right went from 75.4 to 78.9 %, kana of names 84.9 to 87.1 %)."""
        kind = spec.kind
        (plausible, _c, fixed, norm, reading), agreeing, known, alternatives = self._vote(spec, readings, prefer)
        others = len(readings) - 1
        # A name holding a lookalike glyph is known either way (太郎 and 太朗, 斎藤 and 斉藤): no evidence
        lookalike = kind == "name" and not self.lookalikes.isdisjoint(norm.value)
        agreement = (agreeing - 1) / others if others else 1.0
        evidence = Evidence(kind=kind, mean_conf=reading.mean_conf, min_conf=reading.min_conf,
                            plausible=plausible, repairs=len(fixed.repairs), vocabulary=fixed.vocabulary_score,
                            chars=len(normalize.compact(norm.value)), title_ok=title_ok, channel=channel,
                            lookalike=lookalike, known_name=known and not lookalike,
                            weak_match=fixed.vocabulary_score < self.match.weak_below,
                            disputed_match=fixed.vocabulary_score < 1 and agreement < 0.5, agreement=agreement,
                            alternatives=alternatives)
        note = fixed.note if plausible else (norm.note or "読み取った値の形が項目に合いません")
        return FieldReading(spec.path, kind, norm.value, confidence(evidence), "ocr", spec.box, raw=reading.text,
                            note=note, evidence=evidence)

    def _mark(self, spec: FieldSpec, ink: np.ndarray, printed: inks.Blank, channel: str) -> FieldReading:
        kind = spec.kind
        prefix = {"checkbox": "checkbox", "admin_mark": "admin", "seal": "seal"}[kind]
        grow = float(self.marks.get("checkbox_grow", 3.0)) if kind == "checkbox" else 0.0
        box = inks.box_px(spec.box, self.dpi, ink.shape, grow_pt=grow)
        mask = inks.written(ink, printed, box, inks.local_shift(ink, printed, box))
        inner = inks.box_px(spec.box, self.dpi, ink.shape)
        area = max(1, (inner[2] - inner[0]) * (inner[3] - inner[1]))
        share = float(_keep_writing(mask).sum()) / area
        on, off = float(self.marks.get(f"{prefix}_on", 0.05)), float(self.marks.get(f"{prefix}_off", 0.01))
        value = share >= (on + off) / 2
        evidence = Evidence(kind=kind, mark_share=share, mark_on=on, mark_off=off, channel=channel)
        note = "" if share >= on or share <= off else "印の有無がはっきりしません"
        return FieldReading(spec.path, kind, value, confidence(evidence), "mark", spec.box, raw=f"{share:.3f}",
                            note=note, evidence=evidence)
