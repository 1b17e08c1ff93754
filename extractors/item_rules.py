"""Corroboration over the sheets that came together (a fax, a mail and its attachments).

Every sheet of a set names the facility; the application and the pledge name its address and
representative; staff of one facility share a mail domain; the contact person is mostly one of the
staff. Fields the sheets repeat are declared in the templates (`shared`, `person`, `contact` hints).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable

from rapidfuzz.distance import Levenshtein

from renraku import normalize
from renraku.extractors import kana_match, romaji
from renraku.extractors.corroboration import (
    Change,
    Doubt,
    Findings,
    ItemView,
    Means,
    Rule,
    SheetView,
    Verdict,
    independent,
    rule,
)
from renraku.extractors.fields import FieldReading


def _emails(view: ItemView) -> list[FieldReading]:
    return [r for _s, _p, r in view.texts() if r.kind == "email"]


def _domain(reading: FieldReading | str) -> str:
    return str(reading.value if isinstance(reading, FieldReading) else reading).partition("@")[2]


@rule
class AtRestored(Rule):
    """An address whose @ was read as a letter (tomomi.watanabeekeyaki-27.example.jp) and that ends in
    a domain another address of the item gives: that letter is the @."""

    name = "at_restored"
    scope = "item"
    note = "lost_at"
    evidence = "the domain of another address of the item"

    def find(self, view: ItemView, means: Means) -> Findings:
        emails = _emails(view)
        domains = {_domain(r) for r in emails if "@" in str(r.value)}
        out = Findings()
        for r in emails:
            value = str(r.value)
            if "@" in value:
                continue
            domain = next((d for d in sorted(domains, key=len, reverse=True)
                           if "." in d and value.endswith(d) and len(value) - len(d) >= 3), None)
            if domain is not None:
                out.changes.append(Change(r, f"{value[:-len(domain) - 1]}@{domain}", plausible=True))
        return out


@rule
class DomainVote(Rule):
    """Staff of one facility share a mail domain, which a fax garbles, mostly differently in each
    address. A domain a slip or two from one that more addresses give (two at least) is taken to be
    that one (two against two is no majority, unless only one of the two is made of syllables; one
    against one, only a single slip); otherwise, where two other domains at least are near
    (`near_domains`), each character is taken as most of them give it. The votes are taken again on
    their outcome until nothing changes. A common domain (ymail.com beside gmail.com) stays."""

    name = "domain_vote"
    scope = "item"
    note = "domain_vote"
    evidence = "the domains of the item's other addresses, as read"

    def find(self, view: ItemView, means: Means) -> Findings:
        emails = [r for r in _emails(view) if "@" in str(r.value)]
        values = {id(r): str(r.value) for r in emails}
        notes: dict[int, str] = {}
        near = float(self.settings.get("near_domains", 0.25))
        for _round in range(int(self.settings.get("rounds", 3))):
            voted = self._once([values[id(r)] for r in emails], set(means.mail_domains), near)
            if not voted:
                break
            for i, (domain, note) in voted.items():
                r = emails[i]
                values[id(r)] = f"{values[id(r)].partition('@')[0]}@{domain}"
                notes[id(r)] = note or notes.get(id(r), "")
        return Findings(changes=[Change(r, values[id(r)], note=notes.get(id(r), ""))
                                 for r in emails if values[id(r)] != str(r.value)])

    @staticmethod
    def _once(addresses: list[str], common: set[str], near: float) -> dict[int, tuple[str, str]]:
        """One round: each address's domain as the others give them (all as before the round)."""
        domains = [_domain(a) for a in addresses]
        counts = Counter(domains)
        voted: dict[int, tuple[str, str]] = {}
        for i, own in enumerate(domains):
            if own in common:
                continue
            domain = next((d for d, n in counts.most_common() if d != own and n >= 2
                           and Levenshtein.distance(own, d) <= 2 and (n > counts[own] or (
                               n == counts[own] and romaji.romanised(d) and not romaji.romanised(own)))), None)
            note = ""
            if domain is None and counts[own] == 1 and not romaji.romanised(own):
                domain = next((d for d, n in counts.items() if n == 1 and d != own and romaji.romanised(d)
                               and Levenshtein.distance(own, d) == 1), None)
                note = "domain_one_against_one" if domain is not None else ""
            if domain is None:
                others = [d for j, d in enumerate(domains)
                          if j != i and Levenshtein.normalized_distance(own, d) <= near]
                domain = _character_vote(own, others) if len(others) >= 2 else own
            if domain != own:
                voted[i] = (domain, note)
        return voted


def _character_vote(own: str, near: list[str]) -> str:
    """Each character of `own` as most of it and the `near` domains give it (aligned by their edit
    operations); the one read where another ties with it."""
    votes = [Counter({ch: 1}) for ch in own]
    for other in near:
        for op in Levenshtein.opcodes(own, other):
            if op.tag in ("equal", "replace"):
                for k in range(op.src_end - op.src_start):
                    votes[op.src_start + k][other[op.dest_start + k]] += 1
    return "".join(max(v, key=lambda c, v=v, ch=ch: (v[c], c == ch)) for ch, v in zip(own, votes, strict=True))


@rule
class SharedFieldsAgree(Rule):
    """The same field read the same on two sheets (or the contact person's name or address the same as
    a staff row's) vouches for every character of both — unless what vouches is a value most readings
    of its own crop did not give (`source_agreement`): one font read the same way errs alike on every
    sheet of a fax (祇園 read 舐園 by 4 of 9 readings, 誠園 by 4, on both sheets of one set)."""

    name = "shared_fields_agree"
    scope = "item"
    auto_acceptable = True
    evidence = "the same characters read from another sheet's box"

    def find(self, view: ItemView, means: Means) -> Findings:
        groups: dict[str, list[FieldReading]] = defaultdict(list)
        for sheet, path, r in view.texts():
            key = sheet.links.shared.get(path) or (f"person_{sheet.links.person[path]}"
                                                   if path in sheet.links.person else None)
            if key is not None:
                groups[key].append(r)
        out = Findings()
        least = float(self.settings.get("source_agreement", 0.0))
        for group in groups.values():
            for r in group:
                same = [o for o in group if o is not r and _agreed(o, least)
                        and normalize.comparable(o.kind, str(o.value)) == normalize.comparable(r.kind, str(r.value))]
                if same:
                    out.verdicts.append(Verdict((r,), True, same_glyphs=True, sources=tuple(same)))
        return out


def _agreed(reading: FieldReading, least: float) -> bool:
    """Whether at least `least` of the other readings of the crop gave the value (a crop read once agrees)."""
    return reading.evidence is None or reading.evidence.agreement >= least


@rule
class AddressFitsOwner(Rule):
    """Each e-mail address against the kana of its row. The name vouches for the letters before the
    @ only: the domain must be one many people use, or one another address of the item was read
    with too (staff of one facility share it; a domain a vote put in does not count)."""

    name = "address_fits_owner"
    scope = "item"
    evidence = "the kana box of the row (letters only); the domains of the item's other addresses as read"

    def find(self, view: ItemView, means: Means) -> Findings:
        read = Counter(_domain(r) for r in _emails(view) if independent(r))
        vouched = set(means.mail_domains) | {d for d, n in read.items() if d and n > 1}
        out = Findings()
        for sheet in view.sheets:
            for boxes in sheet.links.persons:
                kana, email = sheet.text(boxes.kana), sheet.text(boxes.email)
                if kana is None or email is None:
                    continue
                fits = romaji.email_fits_name(str(email.value), str(kana.value), means.role_suffixes)
                if fits is False or (fits and _domain(email) in vouched):
                    out.verdicts.append(Verdict((email,), fits, sources=(kana,)))
        return out


@rule
class ContactAmongStaff(Rule):
    """The contact person of an application is mostly one of the staff it registers, and only the
    staff row has a kana. Where the contact's address is a row's, the two names must be the same;
    where the names are, the addresses' local parts: the one that fits the row's kana is put in the
    other box. Two addresses a slip or two apart (`one_address`) are one: the local part that fits
    the kana, the domain `_take_domain` chooses and the name that reads as the kana go across."""

    name = "contact_among_staff"
    scope = "item"
    note = "contact_among_staff"
    evidence = "the staff row's kana"

    def find(self, view: ItemView, means: Means) -> Findings:
        out = Findings()
        contact = {part: r for sheet in view.sheets for part, path in sheet.links.contact.items()
                   if (r := sheet.text(path)) is not None}
        if "name" not in contact or "email" not in contact:
            return out
        c_name, c_email = contact["name"], contact["email"]
        others = _emails(view)
        values: dict[int, str] = {}  # what this rule has put in so far, by reading

        def now(r: FieldReading) -> str:
            return values.get(id(r), str(r.value))

        def put(found: list[tuple[FieldReading, str, str]]) -> None:
            for r, value, note in found:
                values[id(r)] = value
                out.changes.append(Change(r, value, note=note))

        for sheet in view.sheets:
            for boxes in sheet.links.persons:
                kana, name, email = sheet.text(boxes.kana), sheet.text(boxes.written), sheet.text(boxes.email)
                if not boxes.person or kana is None or name is None or email is None:
                    continue
                k = str(kana.value)
                reads: Callable[[str], bool | None] = lambda v, k=k: kana_match.reads_as(v, k)  # noqa: E731
                fits: Callable[[str], bool | None] = lambda v, k=k: romaji.email_fits_name(  # noqa: E731
                    v, k, means.role_suffixes)
                if now(c_email) == now(email):
                    put(_take_fitting(c_name, name, now, reads))
                elif one_address(now(c_email), now(email)):
                    put(_take_fitting(c_email, email, now, fits, local_part=True))
                    rest = [now(r) for r in others if r is not c_email and r is not email]
                    put(_take_domain(c_email, email, now, rest))
                    put(_take_fitting(c_name, name, now, reads))
                elif _same(c_name, name, now):
                    put(_take_fitting(c_email, email, now, fits, local_part=True))
        return out


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def _well_formed(domain: str) -> bool:
    """A domain of two labels or more, none of them empty or beginning or ending with a hyphen."""
    labels = domain.split(".")
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def one_address(a: str, b: str, near: float = 0.25) -> bool:
    """Two readings of one address that differ: the local parts (four characters at least) a slip
    apart at most, the domains a slip or two (kaorl.abe@… and kaori.abe@…); but m.sato and m.kato,
    both made of names, may be two people."""
    (local_a, _at, domain_a), (local_b, _at, domain_b) = a.partition("@"), b.partition("@")
    if local_a != local_b and all(romaji.made_of_names(local) for local in (local_a, local_b)):
        return False
    return (a != b and min(len(local_a), len(local_b)) >= 4 and Levenshtein.distance(local_a, local_b) <= 1
            and Levenshtein.normalized_distance(domain_a, domain_b) <= near)


def _same(a: FieldReading, b: FieldReading, now: Callable[[FieldReading], str]) -> bool:
    return normalize.comparable(a.kind, now(a)) == normalize.comparable(b.kind, now(b))


def _take_fitting(a: FieldReading, b: FieldReading, now: Callable[[FieldReading], str],
                  fits: Callable[[str], bool | None], local_part: bool = False) -> list[tuple[FieldReading, str, str]]:
    """Of two readings of one thing, the one that `fits` put in the other (an address keeps its own
    domain); nothing when both or neither fit."""
    if _same(a, b, now):
        return []
    fit_a, fit_b = fits(now(a)), fits(now(b))
    if bool(fit_a) == bool(fit_b) or None in (fit_a, fit_b):
        return []
    good, bad = (a, b) if fit_a else (b, a)
    value = now(good)
    if local_part:
        value = f"{value.partition('@')[0]}@{_domain(now(bad))}"
    return [(bad, value, "")]


def _take_domain(a: FieldReading, b: FieldReading, now: Callable[[FieldReading], str],
                 others: list[str]) -> list[tuple[FieldReading, str, str]]:
    """Of two readings of one address differing in the domain, the domain that is well formed where
    the other is not, or else that another address of the item gives, put in the other."""
    domains = [_domain(now(r)) for r in (a, b)]
    for judge in (_well_formed, lambda d: any(_domain(o) == d for o in others)):
        verdicts = [judge(d) for d in domains]
        if verdicts[0] != verdicts[1]:
            good, bad = (a, b) if verdicts[0] else (b, a)
            return [(bad, f"{now(bad).partition('@')[0]}@{_domain(now(good))}", "contact_domain")]
    return []


@rule
class FacilityNamesReadAsKana(Rule):
    """Every sheet of a set names the facility; only the application has its kana. A facility name
    that does not read as that kana has its own part respelt to it, the kind kept (若禁訪問看護
    ステーション with わかば… → 若葉…); one that is no facility name at all (no known kind at either
    end) takes the one name of the item that reads as the kana."""

    name = "facility_names_read_as_kana"
    scope = "item"
    note = "facility_name_kana"
    evidence = "the application's facility kana"

    def find(self, view: ItemView, means: Means) -> Findings:
        out = Findings()
        kanas = {str(r.value) for _s, p, r in view.texts() if p == "facility_name_kana"}
        if len(kanas) != 1:
            return out
        kana, kinds = kanas.pop(), list(means.facility_kinds)
        names = [r for _s, p, r in view.texts() if p == "facility_name"]
        values = {id(n): str(n.value) for n in names}
        for n in names:
            if kana_match.reads_as(values[id(n)], kana) is False:
                spelt = kana_match.facility_spelt_as_kana(values[id(n)], kana, kinds)
                if spelt is not None and spelt != values[id(n)]:
                    values[id(n)] = spelt
                    out.changes.append(Change(n, spelt))
        heard = {values[id(n)] for n in names if kana_match.reads_as(values[id(n)], kana)}
        for n in names:
            text = normalize.compact(values[id(n)])
            if len(heard) != 1 or values[id(n)] in heard or any(text.startswith(k) or text.endswith(k) for k in kinds):
                continue
            out.changes.append(Change(n, next(iter(heard))))
        return out


@rule
class SharedKnownName(Rule):
    """The representative is named on the application and the pledge, with no kana. Where the sheets
    read the name differently and exactly one reading is a name of the dictionary, the others take it
    (六辺合一 beside 渡辺健一; 寺田学 beside 吉田 学, both names, is left to a person)."""

    name = "shared_known_name"
    scope = "item"
    note = "shared_known_name"
    evidence = "the name dictionary and the other sheet's box"

    def find(self, view: ItemView, means: Means) -> Findings:
        out = Findings()
        if means.lexicon is None:
            return out
        group = [r for s, p, r in view.texts() if s.links.shared.get(p) == "representative_name"]
        values = {normalize.comparable(r.kind, str(r.value)): str(r.value) for r in group}
        known = [v for v in values.values() if means.lexicon.knows(v)]
        if len(values) < 2 or len(known) != 1:
            return out
        key = normalize.comparable("name", known[0])
        out.changes = [Change(r, known[0]) for r in group if normalize.comparable(r.kind, str(r.value)) != key]
        return out


@rule
class PooledShared(Rule):
    """A field several sheets repeat read differently on them: the value most readings of all the
    boxes give, if it is clearly the most, each box gave it at least once and most boxes did not
    choose another, is put in every box (東困 on one sheet, 東町 on the other). The boxes that already
    held it count as contradicted: another box's own readings chose otherwise (所藤代理 kept against
    所長). Run last: the readings are counted as read, after the kana and the name dictionary have had
    their say."""

    name = "pooled_shared"
    scope = "item"
    note = "pooled_shared"
    evidence = "the readings of every box of the field (each crop's own alternatives)"

    def find(self, view: ItemView, means: Means) -> Findings:
        groups: dict[str, list[FieldReading]] = defaultdict(list)
        for sheet, path, r in view.texts():
            if path in sheet.links.shared and r.evidence is not None and r.evidence.alternatives:
                groups[sheet.links.shared[path]].append(r)
        out = Findings()
        for group in groups.values():
            changes = self._pooled(group)
            out.changes += changes
            changed = {id(c.target) for c in changes}
            if changes:  # the boxes that kept their value: another box's own readings said otherwise
                out.verdicts.append(Verdict(tuple(r for r in group if id(r) not in changed), False))
        return out

    @staticmethod
    def _pooled(group: list[FieldReading]) -> list[Change]:
        kind = group[0].kind
        if len(group) < 2 or any(r.kind != kind for r in group):
            return []
        chosen = Counter(normalize.comparable(kind, str(r.value)) for r in group)
        if len(chosen) == 1:
            return []
        pooled: Counter[str] = Counter()
        spelt: dict[str, str] = {}
        for r in group:
            for value, n in r.evidence.alternatives:
                key = normalize.comparable(kind, value)
                pooled[key] += n
                spelt.setdefault(key, value)
        (winner, most), *rest = pooled.most_common() or [("", 0)]
        if not winner or (rest and rest[0][1] >= most):
            return []
        (choice, boxes), *_others = chosen.most_common()
        if boxes * 2 > len(group) and choice != winner:
            return []  # most boxes chose another value: they are not outvoted by one box's readings
        if not all(any(normalize.comparable(kind, v) == winner for v, _n in r.evidence.alternatives) for r in group):
            return []
        value = next((str(r.value) for r in group if normalize.comparable(kind, str(r.value)) == winner), spelt[winner])
        return [Change(r, value) for r in group if normalize.comparable(kind, str(r.value)) != winner]


@rule
class OneMarked(Rule):
    """A set registers its 管理者 (SPEC §4 `no_admin`): of the marks a template declares as a group one
    of which a set ticks (hint `set_needs_one`), one at least is. Where none of the item's is read
    ticked, each read empty in a row that names someone is doubted: a typed ○ that a fax lost (a
    thin ring in some fonts leaves nothing in its box) reads as empty as a box left so."""

    name = "one_marked"
    scope = "item"
    evidence = "the form: a set names its 管理者"

    def find(self, view: ItemView, means: Means) -> Findings:
        groups: dict[str, list[tuple[SheetView, str, FieldReading]]] = defaultdict(list)
        for sheet in view.sheets:
            for path, group in sheet.links.needs_one.items():
                reading = sheet.readings.get(path)
                if reading is not None and reading.method == "mark":  # a text layer loses no ring
                    groups[group].append((sheet, path, reading))
        out = Findings()
        for marks in groups.values():
            if any(r.value is True for _s, _p, r in marks):
                continue
            for sheet, path, reading in marks:
                row = path.rsplit(".", 1)[0]
                if reading.value is False and any(sheet.text(p) for p in sheet.readings if p.startswith(row + ".")
                                                  and p != path):
                    out.doubts.append(Doubt(reading, "none_marked"))
        return out
