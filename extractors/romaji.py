"""Whether an e-mail address is made of its owner's name, and how to spell it (or the kana) so that it is.

Most staff addresses are built from the romanised name (t.yoshida.ns, yumif177). The name vouches
for the letters of the local part only: never for its dots, underscores, hyphens and digits, nor for
the domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from renraku import normalize
from renraku.extractors import glyphs
from renraku.extractors.kana_match import converter

_LONG_VOWELS = (("ou", "o"), ("oo", "o"), ("uu", "u"))  # written or left out in romanised names


_CANON = [("tch", "tt"), ("shi", "si"), ("sh", "sy"), ("chi", "ti"), ("ch", "ty"), ("tsu", "tu"), ("fu", "hu"),
          ("ji", "zi"), ("j", "zy"), ("mb", "nb"), ("mp", "np"), ("mm", "nm"), *_LONG_VOWELS, ("oh", "o"), ("'", "")]


def _canon(romaji: str) -> str:
    s = romaji.lower()
    for a, b in _CANON:
        s = s.replace(a, b)
    return s


@lru_cache(maxsize=2048)
def _hepburn(kana: str) -> str:
    return "".join(item["hepburn"] for item in converter().convert(normalize.kana(kana))).lower()


def _romaji(kana: str) -> str:
    return _canon(_hepburn(kana))


def _best(verdicts: Iterable[bool | None]) -> bool | None:
    seen = list(verdicts)
    return True if True in seen else (False if False in seen else None)


def local_words(local: str) -> list[str]:
    """The words of an address's local part: what its dots, dashes, underscores and digits separate."""
    return [w for w in re.split(r"[._\-+0-9]+", local) if w]


def email_fits_name(email: str, kana: str, suffixes: Iterable[str] = ()) -> bool | None:
    """Whether an address's local part is made of the person's name (given the kana reading, family
    name first): every word of it a name, an initial, a name with an initial, or a job's short form,
    and at least one a whole name. None when there is nothing to compare."""
    local = email.partition("@")[0].lower()
    parts = [p for p in re.split(r"\s+", normalize.text(kana)) if p]
    if not local or not parts or "@" not in email:
        return None
    if len(parts) == 1:  # no space between family and given name: any cut may be it
        whole = parts[0]
        return _best(email_fits_name(email, f"{whole[:i]} {whole[i:]}", suffixes) for i in range(2, len(whole) - 1))
    names = [_romaji(p) for p in parts if _romaji(p)]
    if not names:
        return None
    initials = {n[0] for n in names} | {_hepburn(p)[:1] for p in parts}
    whole = set(names)
    joined = {a + b for a in names for b in names if a != b}
    with_initial = {n + i for n in names for i in initials} | {i + n for n in names for i in initials}
    short = {s.lower() for s in suffixes}
    tokens = local_words(local)
    if not tokens:
        return None
    named = False
    for t in tokens:
        c = _canon(t)
        if c in whole or c in joined or c in with_initial:
            named = True
        elif not (t in initials or c in initials or t in short):
            return False
    return named


def _romaji_spellings(kana_part: str) -> set[str]:
    """How a part of a name may be written in an address: Hepburn, with or without long vowels."""
    hep = _hepburn(kana_part).replace("'", "")
    short = hep
    for a, b in _LONG_VOWELS:
        short = short.replace(a, b)
    return {w for w in (hep, short) if w}


def address_spelt_as_name(email: str, kana: str, suffixes: Iterable[str] = ()) -> str | None:
    """The address with each word of its local part that is not the person's name, but one or two
    OCR slips from it, spelt as the name (kaorl.abe with あべ かおり → kaori.abe): when exactly one
    spelling is that near and the address then fits the name. None when there is nothing to mend.
    Never the domain: the name says nothing about it."""
    local, at, domain = email.partition("@")
    parts = [p for p in re.split(r"\s+", normalize.text(kana)) if p]
    if not at or not local or len(parts) < 2 or email_fits_name(email, kana, suffixes) is not False:
        return None
    from rapidfuzz.distance import Levenshtein

    spellings = set().union(*(_romaji_spellings(p) for p in parts))
    pieces = re.split(r"([._\-+]+)", local.lower())
    for i in range(0, len(pieces), 2):
        word = pieces[i]
        if len(word) < 3 or email_fits_name(f"{word}@{domain}", kana, suffixes):
            continue
        near = 1 + (len(word) >= 7)
        found = {w: Levenshtein.distance(word, w) for w in spellings}
        best = min(found.values(), default=near + 1)
        closest = {_canon(w) for w, d in found.items() if d == best}
        if best <= near and len(closest) == 1:
            pieces[i] = min((w for w, d in found.items() if d == best), key=lambda w: (abs(len(w) - len(word)), w))
    mended = f"{''.join(pieces)}@{domain}"
    return mended if mended != email.lower() and email_fits_name(mended, kana, suffixes) else None


def kana_spelt_by_address(kana: str, email: str, family: frozenset[str], given: frozenset[str],
                    suffixes: Iterable[str] = (), match: glyphs.Match = glyphs.USUAL) -> str | None:
    """The kana with each part (family, then given name) that is no reading of the dictionary
    (`family`, `given`) and that the address does not spell, put as the reading the address spells
    that looks most like it (わだたなぺ だく with takuya.watanabe@…: わたなべ たくや). A part that is a
    known reading is kept: then the address may be the one misread. None unless each such part
    clearly looks most like one reading (`match`) and the address then fits the whole."""
    local, at, _domain = email.lower().partition("@")
    parts = [normalize.kana(p) for p in normalize.text(kana).split()]
    if not at or len(parts) != 2 or email_fits_name(email, kana, suffixes) is not False:
        return None
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    tokens = {_canon(t) for t in local_words(local) if len(t) >= 2}
    out = []
    for part, known in zip(parts, (family, given), strict=True):
        if part in known or _romaji(part) in tokens:
            out.append(part)
            continue
        near = process.extract(part, _listed(known), scorer=Levenshtein.distance,
                               score_cutoff=max(2, 3 * len(part) // 4), limit=None)
        spelt = [word for word, _d, _i in near if _romaji(word) in tokens]
        best = match.best(part, spelt) if spelt else None
        if best is None:
            return None
        out.append(best[0])
    mended = " ".join(out)
    return mended if email_fits_name(email, mended, suffixes) else None


@lru_cache(maxsize=4)
def _listed(words: frozenset[str]) -> list[str]:
    return sorted(words)


# A Hepburn syllable (or a doubled consonant, or syllabic n): facilities name their mail domain
# after themselves (higashimachi-30), so of two domains as many addresses give, one that is made of
# syllables is the name and one that is not (higashimacht) a slip.
_SYLLABLES = re.compile(r"(?:(?:ky|gy|sh|ch|ny|hy|by|py|my|ry|ts|[kgsztdnhbpmyrwfj])?[aiueo]|n(?![aiueoy])"
                        r"|([kstpgcbdfhjmrz])(?=\1)|t(?=ch))+")


def romanised(domain: str) -> bool:
    words = [w for w in re.split(r"[-0-9]+", domain.partition(".")[0]) if w]
    return bool(words) and all(_SYLLABLES.fullmatch(w) for w in words)


def made_of_names(local: str) -> bool:
    """Whether each word of an address's local part could be a romanised name or an initial."""
    words = local_words(local)
    return bool(words) and all(len(w) == 1 or _SYLLABLES.fullmatch(w) for w in words)
