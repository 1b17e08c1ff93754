"""Corroboration within one sheet: a name and its kana, an e-mail address and its owner's name.

Each rule looks at every person's boxes of the sheet (`Links.persons`) as they stand after the
rules before it (reading.toml gives the order). Taking another reading of the same crop that agrees
with the other box is the crop's own evidence (auto-acceptable); spelling a value as the other box
or the name dictionary would have it is a repair, always shown to a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from rapidfuzz.distance import Hamming

from renraku import normalize
from renraku.extractors import glyphs, kana_match, romaji
from renraku.extractors.corroboration import Change, Doubt, Findings, Means, Rule, SheetView, Verdict, independent, rule
from renraku.extractors.fields import FieldReading


@dataclass(frozen=True)
class Person:
    """A person's boxes on a sheet as they stand: the kana, and where present the name and address."""

    kana: FieldReading
    name: FieldReading | None
    email: FieldReading | None
    name_is_person: bool  # the written box is a person's name (not a facility's)


def people(view: SheetView) -> Iterator[Person]:
    """Every kana box with a value and its partners (OCR text readings only)."""
    for boxes in view.links.persons:
        kana = view.text(boxes.kana)
        if kana is not None:
            yield Person(kana, view.text(boxes.written), view.text(boxes.email),
                         boxes.written is not None and view.kinds.get(boxes.written) == "name")


def named(view: SheetView) -> Iterator[tuple[Person, FieldReading, bool | None]]:
    """The people of the sheet whose written box holds something, with whether it reads as the kana."""
    for p in people(view):
        if p.name is not None:
            yield p, p.name, _reads(p.name, p.kana)


def _reads(name: FieldReading | None, kana: FieldReading) -> bool | None:
    return kana_match.reads_as(str(name.value), str(kana.value)) if name is not None else None


def _fits(email: FieldReading, kana: FieldReading, means: Means) -> bool | None:
    return romaji.email_fits_name(str(email.value), str(kana.value), means.role_suffixes)


def parted(name: str, kana: str, means: Means) -> tuple[str, str] | None:
    """The name and the kana, each with a space where the name dictionary parts them (`NameLexicon.cut`:
    いのうえかおり beside 井上香織 → 井上 香織 / いのうえ かおり)."""
    cut = means.lexicon.cut(name, kana) if means.lexicon is not None else None
    if cut is None:
        return None
    (i, j), name, kana = cut, normalize.compact(name), normalize.compact(kana)
    return f"{name[:i]} {name[i:]}", f"{kana[:j]} {kana[j:]}"


def name_spelt_as_kana(name: str, kana: str, means: Means) -> str | None:
    """`kana_match.spell_as_kana`; a name and kana both written without a space are parted where the
    name dictionary says one side is read as its kana (清田花子 / いけだはなこ: 清田 / いけだ)."""
    spelt = kana_match.spell_as_kana(name, kana, means.match)
    if spelt is not None or " " in name.strip() or " " in kana.strip():
        return spelt
    cut = parted(name, kana, means)
    return kana_match.spell_as_kana(*cut, means.match) if cut else None


class _Reread(Rule):
    """Take another reading of a box's own crop, one that agrees with its partner box (each box was
    read several ways where the two disagreed): the crop's own evidence, so auto-acceptable."""

    scope = "sheet"
    auto_acceptable = True

    def wanted(self, p: Person, means: Means) -> tuple[FieldReading, Callable[[str], bool]] | None:
        """The box to read again and what a reading of it must satisfy; None when nothing is wanted."""
        raise NotImplementedError

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        for p in people(view) if view.reread is not None else ():
            wanted = self.wanted(p, means)
            better = view.reread(wanted[0].path, wanted[1]) if wanted and view.reread else None
            if wanted is not None and better is not None:
                out.changes.append(Change(wanted[0], reading=better))
        return out


class _NameOrKanaReread(_Reread):
    box: ClassVar[str]  # "name": read the name again for the kana; "kana": the kana for the name

    def wanted(self, p: Person, means: Means) -> tuple[FieldReading, Callable[[str], bool]] | None:
        if p.name is None or _reads(p.name, p.kana) is not False:
            return None
        name, kana = str(p.name.value), str(p.kana.value)
        if self.box == "name":
            return p.name, lambda v: kana_match.reads_as(v, kana) is True
        return p.kana, lambda v: kana_match.reads_as(name, v) is True


@rule
class RereadNameForKana(_NameOrKanaReread):
    name = "reread_name_for_kana"
    box = "name"
    evidence = "another reading of the name's own crop that reads as the kana box"


@rule
class RereadKanaForName(_NameOrKanaReread):
    name = "reread_kana_for_name"
    box = "kana"
    evidence = "another reading of the kana's own crop that the name box reads as"


@rule
class KanaHeardAsName(Rule):
    """A kana one character other than how the known name beside it is read, and itself no name's
    reading, becomes that reading (阿部沙織 with あべ さあり → あべ さおり); so does a kana with a voicing
    mark or small っ the name cannot vouch for (まっもと beside 松本 → まつもと)."""

    name = "kana_heard_as_name"
    scope = "sheet"
    note = "kana_heard_as_name"
    evidence = "the name dictionary's readings of the name box"

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        for p, name, reads in named(view):
            unheard = p.name_is_person and reads is not False and kana_match.marks_unheard(
                str(name.value), str(p.kana.value))
            if reads is False or unheard:
                heard = self.heard_as(str(name.value), str(p.kana.value), means)
                if heard is not None:
                    out.changes.append(Change(p.kana, heard))
        return out

    @staticmethod
    def heard_as(name: str, kana: str, means: Means) -> str | None:
        """Not a character more or less: a name box read short (吉田悠 for 吉田悠斗) is a known name
        too, and its kana (よしだ ゆうと) the right one."""
        lexicon = means.lexicon
        if lexicon is None or lexicon.knows_kana(kana):
            return None
        read = normalize.compact(normalize.kana(kana))
        near = {h for h in lexicon.readings(name) if len(h.replace(" ", "")) == len(read)
                and Hamming.distance(read, h.replace(" ", "")) <= 1}
        return near.pop() if len({h.replace(" ", "") for h in near}) == 1 else None


@rule
class NameSpeltAsKana(Rule):
    """A person's name no reading of which reads as its kana is respelt to the dictionary spelling of
    the kana that looks most like what was read, if one clearly does (閲口 奈々 / せきぐち なな → 関口 奈々)
    — unless `kept_share` of the crop's other readings at least gave the name alike: then it is what
    the crop shows, a name the dictionary does not spell so (越雲結月 / こしくも ゆづき stays, not 由月;
    金枝結月 read so by 9 readings of 10), and it goes to a person as read."""

    name = "name_spelt_as_kana"
    scope = "sheet"
    note = "name_spelt_as_kana"
    evidence = "the kana box"

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        for p in people(view):
            if p.name is not None and p.name_is_person and _reads(p.name, p.kana) is False:
                spelt = name_spelt_as_kana(str(p.name.value), str(p.kana.value), means)
                if spelt is not None and _held(p.name, float(self.settings.get("kept_share", 1.0))):
                    out.doubts.append(Doubt(p.name, "name_kept_against_kana"))
                elif spelt is not None:
                    out.changes.append(Change(p.name, spelt))
        return out


def _held(reading: FieldReading, share: float) -> bool:
    """At least `share` of the crop's other readings gave the value, and two readings at least."""
    e = reading.evidence
    return e is not None and e.agreement >= share and max((n for _v, n in e.alternatives), default=0) >= 2


@rule
class RereadAddressForOwner(_Reread):
    name = "reread_address_for_owner"
    evidence = "another reading of the address's own crop that is made of the owner's name"

    def wanted(self, p: Person, means: Means) -> tuple[FieldReading, Callable[[str], bool]] | None:
        if p.email is None or _fits(p.email, p.kana, means) is not False:
            return None
        kana = str(p.kana.value)
        return p.email, lambda v: romaji.email_fits_name(v, kana, means.role_suffixes) is True


def vouches(name: str, kana: str, email: str, means: Means) -> bool:
    """Whether the name written beside a kana vouches for the kana where the address differs, so that
    the kana may spell it: 純子 reads じゅんこ and, as in 団子, じゅんご, so it cannot turn junko into jungo."""
    return bool(kana_match.reads_as(name, kana)) and not any(
        romaji.email_fits_name(email, k, means.role_suffixes) for k in kana_match.unheard(name, kana))


@rule
class AddressSpeltAsName(Rule):
    """Each word of an address's local part one or two slips from a romanised part of the name is
    spelt as that part (kaorl.abe / あべ かおり → kaori.abe), where the written name reads as the kana."""

    name = "address_spelt_as_name"
    scope = "sheet"
    note = "address_spelt_as_name"
    evidence = "the kana box, where the name box reads as it"

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        for p in people(view):
            if p.email is None or p.name is None or _fits(p.email, p.kana, means) is not False:
                continue
            name, kana, email = str(p.name.value), str(p.kana.value), str(p.email.value)
            if _reads(p.name, p.kana) and vouches(name, kana, email, means):
                cut = parted(name, kana, means) if " " not in kana.strip() else None
                spelt = romaji.address_spelt_as_name(email, cut[1] if cut else kana, means.role_suffixes)
                if spelt is not None:
                    out.changes.append(Change(p.email, spelt))
        return out


def _known_kana(p: Person, means: Means) -> bool:
    return p.name_is_person and means.lexicon is not None and means.lexicon.knows_kana(str(p.kana.value))


@rule
class AddressSpeltAsKnownKana(Rule):
    """Where the name box is read as no reading of the kana but the name dictionary knows the kana as
    a name's reading, the address is spelt by the kana (naomj.ade beside 阿部直義 / あべ なおみ → naomi.abe)."""

    name = "address_spelt_as_known_kana"
    scope = "sheet"
    note = "address_spelt_as_known_kana"
    evidence = "the kana box, known to the name dictionary"

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        for p in people(view):
            if p.email is None or _fits(p.email, p.kana, means) is not False or _reads(p.name, p.kana):
                continue
            if _known_kana(p, means):
                spelt = romaji.address_spelt_as_name(str(p.email.value), str(p.kana.value), means.role_suffixes)
                if spelt is not None:
                    out.changes.append(Change(p.email, spelt))
        return out


@rule
class KanaSpeltByAddress(Rule):
    """A kana that neither its name nor its address vouches for is put as the address spells the name
    (わだたなぺ だく with takuya.watanabe → わたなべ たくや); then the name respelt to it if it can be."""

    name = "kana_spelt_by_address"
    scope = "sheet"
    note = "kana_spelt_by_address"
    evidence = "the address box and the name dictionary's readings"

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        lexicon = means.lexicon
        for p in people(view):
            if (lexicon is None or p.email is None or _fits(p.email, p.kana, means) is not False
                    or _reads(p.name, p.kana)):
                continue
            heard = romaji.kana_spelt_by_address(str(p.kana.value), str(p.email.value), lexicon.surname_kana,
                                                 lexicon.given_kana, means.role_suffixes, means.match)
            if heard is None:
                continue
            out.changes.append(Change(p.kana, heard))
            if p.name is not None and p.name_is_person and kana_match.reads_as(str(p.name.value), heard) is False:
                spelt = name_spelt_as_kana(str(p.name.value), heard, means)
                if spelt is not None:
                    out.changes.append(Change(p.name, spelt, note="name_spelt_as_kana"))
        return out


@rule
class AddressSeparatorsAgree(Rule):
    """The name vouches for an address's letters only: its dots, underscores, hyphens and digits
    must be what the crop's own readings agree on. Where readings with the same letters put them
    differently (yamashita.hanako, yamashitahanako), a person looks; and where two letters stand
    `letter_gap` times further apart than the others, a separator may have been lost by every
    reading alike (aoi-takahashi read aoitakahashi)."""

    name = "address_separators_agree"
    scope = "sheet"
    note = "address_separators"
    evidence = "the address crop's own readings"

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        for path, reading in view.readings.items():
            if reading.kind != "email" or view.text(path) is None or reading.evidence is None:
                continue
            value = str(reading.value)
            others = [v for v, _n in reading.evidence.alternatives if _letters(v) == _letters(value)]
            if any(_skeleton(v) != _skeleton(value) for v in others):
                out.doubts.append(Doubt(reading, self.note))
            elif reading.evidence.letter_gap > float(self.settings.get("letter_gap", 2.5)):
                out.doubts.append(Doubt(reading, "address_gap"))
        return out


@rule
class DigitsUnambiguous(Rule):
    """A number in which Tesseract scored another digit nearly as well in some place goes to a person:
    the readings of a crop can all misread one digit alike (0282-22-8690 read 8640 by five of nine),
    and one clear reading can be wrong (0289-95-8051 read 8851, the 9 scored 61 beside the 8)."""

    name = "digits_unambiguous"
    scope = "sheet"
    note = "digits_rival"
    evidence = "Tesseract's scores for other characters in each place of the chosen reading"

    def find(self, view: SheetView, means: Means) -> Findings:
        limit = float(self.settings.get("rival", 40))
        return Findings(doubts=[Doubt(r, self.note) for r in _numbers(view, self.settings)
                                if r.evidence.rival >= limit])


def _numbers(view: SheetView, settings: dict[str, Any]) -> Iterator[FieldReading]:
    """The OCR text readings of the sheet whose kind a digits rule looks at (its `kinds`)."""
    kinds = set(settings.get("kinds", []))
    return (r for path, r in view.readings.items()
            if r.kind in kinds and view.text(path) is not None and r.evidence is not None)


@rule
class DigitsWhole(Rule):
    """A number or date written in digits whose crop holds more pieces of ink of a character's height
    (`least_height` of the tallest) than the reading has characters goes to a person: a digit no
    reading gave is no vote's business (2025/9/24 read 2025/9/2 by every reading of both dates one
    hand wrote, accepted at 0.96–0.98: 9 pieces, 8 characters). Digits that touch make fewer pieces,
    never more; a reading with kanji (年, 内線) or a hyphen's short piece is not counted."""

    name = "digits_whole"
    scope = "sheet"
    note = "digit_unread"
    evidence = "the pieces of ink in the crop, counted apart from Tesseract"

    def find(self, view: SheetView, means: Means) -> Findings:
        least = float(self.settings.get("least_height", 0.6))
        out = Findings()
        for r in _numbers(view, self.settings):
            read = normalize.compact(r.raw)
            if not r.evidence.ink_pieces or not read or not set(read) <= _WRITTEN_NUMBER:
                continue
            tall = max(r.evidence.ink_pieces)
            pieces = sum(1 for h in r.evidence.ink_pieces if h >= least * tall)
            if pieces > sum(1 for ch in read if ch not in ".-"):
                out.doubts.append(Doubt(r, self.note))
        return out


_WRITTEN_NUMBER = frozenset("0123456789/.-Rr")  # a date or number in digits (R7.5.19, 2025/9/24, 0287-67-4798)


def _letters(email: str) -> str:
    local, _at, domain = email.lower().partition("@")
    return "".join(ch for ch in local if ch.isalpha()) + "@" + domain


def _skeleton(email: str) -> str:
    """Where the separators and digits of the local part stand (letters as one sign)."""
    local = email.lower().partition("@")[0]
    return "".join("a" if ch.isalpha() else ch for ch in local)


@rule
class NameMatchesKana(Rule):
    """A name and its kana that agree vouch for each other (the sound only); that disagree, are doubted.

    Not the kana, though, that every reading of its crop gave alike with every word sure (`sure_conf`)
    and that no voicing mark put right would make the name's reading: a name outside the readings of
    the kanji dictionary (結翔 ゆいと) or read wrong (越雲結閉) says nothing about such a kana. On ten
    sets 104 kana so were right and 2 wrong, both a voicing mark (ゆすは for ゆずは), which stay doubted."""

    name = "name_matches_kana"
    scope = "sheet"
    evidence = "the kana box and the name box, read independently"

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        sure = float(self.settings.get("sure_conf", 2.0))
        for p, name, verdict in named(view):
            if verdict is None:
                continue
            vouched = [name]
            if verdict:
                if not kana_match.marks_unheard(str(name.value), str(p.kana.value)):
                    vouched.append(p.kana)
            elif not (_sure(p.kana, sure) and not kana_match.marks_differ(str(name.value), str(p.kana.value))):
                vouched.append(p.kana)
            out.verdicts.append(Verdict(tuple(vouched), verdict, sources=(name, p.kana)))
        return out


def _sure(reading: FieldReading, least: float) -> bool:
    """Every reading of the crop gave the value, and Tesseract was at least `least` sure of each word."""
    e = reading.evidence
    return e is not None and e.agreement >= 1.0 and e.min_conf >= least and independent(reading)


@rule
class PlaceNameLookalike(Rule):
    """A facility name or address holding a place of the prefecture with one character read as a
    glyph that looks like it (那須鳥山 for 那須烏山, 王生 for 壬生): the misreading no list can mend
    (the value may name no municipality at all), so a person looks. The place names only doubt."""

    name = "place_name_lookalike"
    scope = "sheet"
    note = "place_name_lookalike"
    evidence = "the prefecture's place names, glyph by glyph"

    def find(self, view: SheetView, means: Means) -> Findings:
        out = Findings()
        least = float(self.settings.get("glyph_min", 0.6))
        for path in self.settings.get("paths", ["facility_name", "address"]):
            reading = view.text(path)
            places = means.place_names
            if reading is not None and any(_looks_like(str(reading.value), place, least) for place in places):
                out.doubts.append(Doubt(reading, self.note))
        return out


def _looks_like(text: str, place: str, least: float) -> bool:
    """Whether `text` holds `place` with exactly one character swapped for a lookalike glyph, and not
    `place` itself."""
    if len(place) < 2 or place in text:
        return False
    for i in range(len(text) - len(place) + 1):
        part = text[i:i + len(place)]
        differ = [(a, b) for a, b in zip(part, place, strict=True) if a != b]
        if len(differ) == 1 and glyphs.similarity(*differ[0]) >= least:
            return True
    return False
