"""Corroboration: one field's reading confirmed (or contradicted) by another, independent one.

Tesseract's variants of one crop err together, so their agreement is weak evidence. Two different
boxes are read independently, and a sheet says several things twice: a name and its kana reading,
an e-mail address usually built from the person's name, the facility's name, address and
representative on every sheet of the set. When the two agree, both are very likely right; when
they cannot be made to agree, one of them is likely wrong. Agreement (the same characters, or only
the same sound) and disagreement are features of the confidence model (calibration.py) and so
weighed on labelled data, not asserted here.

Readings of kanji come from pykakasi's dictionary (every reading of a word or a single kanji, so
名前 such as 修 = おさむ are found), matched against the kana with the usual sound changes.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from renraku import normalize
from renraku.extractors import glyphs
from renraku.extractors.fields import FieldReading

_VOICED = str.maketrans("かきくけこさしすせそたちつてとはひふへほ", "がぎぐげござじずぜぞだぢづでどばびぶべぼ")
_SEMI = str.maketrans("はひふへほ", "ぱぴぷぺぽ")
_UNVOICED = str.maketrans("がぎぐげござじずぜぞだぢづでどばびぶべぼぱぴぷぺぽ",
                          "かきくけこさしすせそたちつてとはひふへほはひふへほ")
_IGNORED = re.compile(r"[\s・･、,.．。()（）「」\-‐－]")


@lru_cache(maxsize=1)
def _kanwa():
    from pykakasi.kanji import Kanwa

    return Kanwa()


@lru_cache(maxsize=4096)
def _words(char: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Dictionary words starting with `char`, each with all its readings."""
    table = _kanwa().load(char) or {}
    return tuple((word, tuple({yomi for yomi, _cond in entries})) for word, entries in table.items())


def _sound_changes(yomi: str, first: bool, yomis: Iterable[str] = ()) -> set[str]:
    """A reading as it may sound inside a compound: voiced (さき → ざき), with a glottal stop (がく → がっ).
    At a word's start a reading the dictionary lists voiced beside its plain form (高: たか and だか,
    from 名高い) is not heard: 高橋 is never だかはし; 馬場 (ばば) keeps its ば, there being no は."""
    head = yomi[:1].translate(_UNVOICED)
    if first and head != yomi[:1] and head + yomi[1:] in yomis:
        return set()
    out = {yomi}
    if not first and yomi:
        out |= {yomi[0].translate(_VOICED) + yomi[1:], yomi[0].translate(_SEMI) + yomi[1:]}
    if len(yomi) > 1 and yomi[-1] in "つくちき":
        out |= {y[:-1] + "っ" for y in list(out)}
    return out


def reads_as(written: str, kana: str) -> bool | None:
    """Whether `written` (kanji, kana, katakana) can be read as `kana`; None when it cannot be told
    (Latin letters or digits, nothing to compare)."""
    from renraku.validators import load_rule_config
    from renraku.validators.identity import facility_key

    written = unicodedata.normalize("NFKC", written).strip()
    k, k_starts = _joined(kana)
    # A leading legal-entity name is often left out of the kana (医療法人さくら会 さくら在宅クリニック).
    forms = [_joined(f) for f in (written, facility_key(written, load_rule_config()))]
    if not forms[0][0] or not k or re.search(r"[A-Za-z0-9]", forms[0][0]):
        return None
    return any(w and _matches(w, k, w_starts, k_starts) for w, w_starts in forms)


def _joined(text: str) -> tuple[str, frozenset[int]]:
    """Text folded for comparing (kana as hiragana, 々 spelt out, no spaces or marks) and where each
    of its space-separated words begins: a word's first sound is never voiced (田中 太郎 is not
    たなか だろう; 山崎 is やまざき)."""
    out, starts = "", set()
    for word in unicodedata.normalize("NFKC", text).split():
        starts.add(len(out))
        out += re.sub(r"(.)々", r"\1\1", normalize.kana(_IGNORED.sub("", word)))
    return out, frozenset(starts)


def _matches(w: str, k: str, w_starts: frozenset[int] = frozenset(), k_starts: frozenset[int] = frozenset()) -> bool:
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(w):
            if j == len(k):
                return True
            continue
        ch = w[i]
        if "\u3041" <= ch <= "\u309f" or ch == "ー":
            if k.startswith(ch, j) or (ch == "ー" and j > 0 and j < len(k) and k[j] in "あいうえお"):
                todo.append((i + 1, j + 1))
            continue
        for word, yomis in _words(ch):
            if not w.startswith(word, i):
                continue
            for yomi in yomis:
                for y in _sound_changes(yomi, j == 0 or i in w_starts or j in k_starts, yomis):
                    if y and k.startswith(y, j):
                        todo.append((i + len(word), j + len(y)))
    return False


# A kanji found in fewer dictionary words than this is too rare to be proposed for a misread one
# (靉 in 4 words, 邊 in 26; 亮 in 87, 翔 in 110): a name written with one is left for a person.
COMMON_KANJI_WORDS = 30


@lru_cache(maxsize=1)
def _spellings() -> dict[str, frozenset[str]]:
    """Every dictionary word of up to four everyday characters, by its reading: how a part of a name
    can be written. (pykakasi offers no way to walk its dictionary but its table of first characters.)"""
    kanwa = _kanwa()
    table = {chr(first): kanwa.load(chr(first)) or {} for first in kanwa._jisyo_table}
    uses: dict[str, int] = defaultdict(int)
    for words in table.values():
        for word in words:
            for ch in set(word):
                uses[ch] += 1
    out: dict[str, set[str]] = defaultdict(set)
    for words in table.values():
        for word, entries in words.items():
            if len(word) <= 4 and all(uses[ch] >= COMMON_KANJI_WORDS or not normalize.is_kanji(ch) for ch in word):
                for yomi, _cond in entries:
                    out[yomi].add(word)
    return {yomi: frozenset(words) for yomi, words in out.items()}


def respell(written: str, kana: str, match: glyphs.Match = glyphs.USUAL) -> str | None:
    """A spelling of the name `written` that reads as `kana`, where OCR got a character of it wrong
    (閲口 奈々 with せきぐち なな → 関口 奈々): each part that does not read as its kana becomes the
    dictionary word of that reading it looks most like, keeping at least half its characters, when
    that word is clearly nearer than any other. None when there is no such spelling."""
    parts = unicodedata.normalize("NFKC", written).split()
    sounds = [_joined(w)[0] for w in unicodedata.normalize("NFKC", kana).split()]
    joiner = " " if len(parts) > 1 else ""
    if len(parts) == 1 and len(sounds) == 2:  # 森悠半 / もり ゆうと: cut where one side reads right
        word = parts[0]
        cuts = {i for i in range(1, len(word)) if reads_as(word[:i], sounds[0]) or reads_as(word[i:], sounds[1])}
        parts = [word[:min(cuts)], word[min(cuts):]] if len(cuts) == 1 else []
    elif len(parts) == 2 and len(sounds) == 1:  # the kana written without a space
        sound = sounds[0]
        cuts = {j for j in range(1, len(sound)) if reads_as(parts[0], sound[:j]) or reads_as(parts[1], sound[j:])}
        sounds = [sound[:min(cuts)], sound[min(cuts):]] if len(cuts) == 1 else []
    if len(parts) != len(sounds) or len(parts) < 2:
        return None
    pairs = list(zip(parts, sounds, strict=True))
    out = []
    for part, sound in pairs:
        if reads_as(part, sound):
            out.append(part)
            continue
        candidates = [w for w in _spellings().get(sound, ()) if len(w) == len(part)
                      and 2 * sum(a == b for a, b in zip(w, part, strict=True)) >= len(part) - (len(part) == 1)]
        found = match.best(part, candidates)
        if found is None:
            return None
        out.append(found[0])
    spelt = joiner.join(out)
    return spelt if spelt != joiner.join(p for p, _s in pairs) else None


# ------------------------------------------------------------------------------- e-mail and name

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
    return "".join(item["hepburn"] for item in _kakasi().convert(normalize.kana(kana))).lower()


def _romaji(kana: str) -> str:
    return _canon(_hepburn(kana))


def _best(verdicts: Iterable[bool | None]) -> bool | None:
    seen = list(verdicts)
    return True if True in seen else (False if False in seen else None)


def warm() -> None:
    """Load the dictionaries the first comparison needs (about 1.2 s) ahead of it."""
    _spellings()
    _kakasi()


@lru_cache(maxsize=1)
def _kakasi():
    from pykakasi import kakasi

    return kakasi()


def _local_words(local: str) -> list[str]:
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
    tokens = _local_words(local)
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


def respell_email(email: str, kana: str, suffixes: Iterable[str] = ()) -> str | None:
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


def kana_from_email(kana: str, email: str, family: frozenset[str], given: frozenset[str],
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

    tokens = {_canon(t) for t in _local_words(local) if len(t) >= 2}
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


# ------------------------------------------------------------------------------- applying it


def _mark(readings: Iterable[FieldReading], verdict: bool | None, *, same_glyphs: bool = False) -> None:
    """Record a verdict. The same characters read in another box (`same_glyphs`) vouch for every
    character; a kana reading only for the sound (斉藤 and 斎藤 both read さいとう), so the two are
    separate evidence and weigh what the labelled data says they are worth."""
    if verdict is None:
        return
    for r in readings:
        if r.evidence is None:
            continue
        if not verdict:
            r.evidence.contradicted = True
        elif same_glyphs:
            r.evidence.corroborated = True
        elif not r.evidence.lookalike:  # 太郎 and 太朗 sound the same: the kana cannot vouch for either
            r.evidence.sounds_right = True


def partners(paths: Iterable[str]) -> Iterator[tuple[str, str | None, str | None]]:
    """Each kana field with the field it reads (staff[1].name, facility_name) and the e-mail of its
    row (staff[1].email), where the sheet has them."""
    present = set(paths)
    for path in present:
        if path.endswith("_kana"):
            written, email = path.removesuffix("_kana"), path.removesuffix("name_kana") + "email"
            yield path, written if written in present else None, email if email in present else None


def unheard(written: str, kana: str) -> Iterator[str]:
    """The kana with a voicing mark or small っ taken away that still reads as `written`: the name
    cannot vouch for that mark. 子 is こ and, in 団子, ご: a speck by the こ of はなこ makes はなご,
    which 花子 seems to allow; 松 is まつ and まっ, so まっもと passed for 松本."""
    for i, ch in enumerate(kana):
        plain = "つ" if ch == "っ" else ch.translate(_UNVOICED)
        if plain != ch and reads_as(written, kana[:i] + plain + kana[i + 1:]):
            yield kana[:i] + plain + kana[i + 1:]


def marks_unheard(written: str, kana: str) -> bool:
    """Whether the name cannot vouch for some voicing mark or small っ of the kana (`unheard`)."""
    return any(True for _ in unheard(written, kana))


def within_page(readings: list[FieldReading]) -> None:
    """Names against their kana, the facility name against its kana. A value a reader made up in
    part (a noted repair: the reading of a kind of facility put in, a name respelt to its kana)
    vouches for nothing and is vouched for by nothing: ああば of both boxes would pass as corroborated."""
    by_path = _texts(readings)
    for kana_path, written, _email in partners(by_path):
        if written is not None:
            kana, name = str(by_path[kana_path].value), str(by_path[written].value)
            verdict = reads_as(name, kana)
            if verdict and (by_path[kana_path].note or by_path[written].note):
                continue
            vouched = [by_path[written]]
            if not (verdict and marks_unheard(name, kana)):
                vouched.append(by_path[kana_path])
            _mark(vouched, verdict)


def emails(pages: list[list[FieldReading]], suffixes: Iterable[str] = (),
           known_domains: Iterable[str] = ()) -> list[FieldReading]:
    """Each e-mail address against the kana of its row, over the sheets of one item (a fax, a mail).

    The name vouches only for the part before the @: the domain must be one many people use, or
    one another address of the item has too (staff of one facility share it), or the address is
    not vouched for. Returns the readings whose evidence changed."""
    domains = Counter(str(r.value).partition("@")[2] for readings in pages for r in readings
                      if r.kind == "email" and isinstance(r.value, str))
    vouched = set(known_domains) | {d for d, n in domains.items() if d and n > 1}
    changed: list[FieldReading] = []
    for readings in pages:
        by_path = _texts(readings)
        for kana_path, _written, email in partners(by_path):
            if email is None:
                continue
            address = str(by_path[email].value)
            fits = email_fits_name(address, str(by_path[kana_path].value), suffixes)
            if fits is False or (fits and address.partition("@")[2] in vouched):
                _mark([by_path[email]], fits)
                changed.append(by_path[email])
    return changed


# Two mail domains are near when at most this share of their characters differs: a fax's slips
# (higashtmach1-30.example.jp is 2 of 26 characters from higashimachi-30.example.jp), not another facility.
NEAR_DOMAINS = 0.25


def _character_vote(own: str, near: list[str]) -> str:
    """Each character of `own` as most of it and the `near` domains give it (aligned by their edit
    operations); the one read where another ties with it."""
    from rapidfuzz.distance import Levenshtein

    votes = [Counter({ch: 1}) for ch in own]
    for other in near:
        for op in Levenshtein.opcodes(own, other):
            if op.tag in ("equal", "replace"):
                for k in range(op.src_end - op.src_start):
                    votes[op.src_start + k][other[op.dest_start + k]] += 1
    return "".join(max(v, key=lambda c, v=v, ch=ch: (v[c], c == ch)) for ch, v in zip(own, votes, strict=True))


def vote_domains(pages: list[list[FieldReading]], known_domains: Iterable[str] = ()) -> list[FieldReading]:
    """Staff of one facility share a mail domain, which a fax garbles, mostly differently in each
    address. A domain a slip or two from one that more addresses of the item give (two at least) is
    taken to be that one (two against two is no majority, unless only one of the two is made of
    syllables: `_romanised`; one against one, only a single slip and with a note); otherwise, where
    two other domains at least are near (`NEAR_DOMAINS`), each character is taken as most of them
    give it (higashtmachi-30…, higashimacht-30…, htgashimachi-30…). The votes are taken again on
    their outcome until nothing changes (a tie between characters may become a majority of
    domains). Each address changed is counted one repair. A common domain (ymail.com beside
    gmail.com) stays as read. Returns the readings whose value changed."""
    common = set(known_domains)
    emails = [r for readings in pages for r in _texts(readings).values() if r.kind == "email"]
    changed = _mend_lost_at([r for r in emails if "@" not in str(r.value)],
                            {str(r.value).partition("@")[2] for r in emails if "@" in str(r.value)})
    emails = [r for r in emails if "@" in str(r.value)]
    for _round in range(3):
        voted = _vote_domains_once(emails, common)
        if not voted:
            break
        for r, domain, note in voted:
            r.value = f"{str(r.value).partition('@')[0]}@{domain}"
            r.note = note or r.note
            if r not in changed:
                r.evidence.repairs += 1
                changed.append(r)
    return changed


def _vote_domains_once(emails: list[FieldReading], common: set[str]) -> list[tuple[FieldReading, str, str]]:
    """One round of `vote_domains`: each address's domain as the others give them (all as they were
    before the round), with the note the change needs ("" for none)."""
    from rapidfuzz.distance import Levenshtein

    domains = [str(r.value).partition("@")[2] for r in emails]
    counts = Counter(domains)
    voted: list[tuple[FieldReading, str, str]] = []
    for i, (r, own) in enumerate(zip(emails, domains, strict=True)):
        if own in common:
            continue
        domain = next((d for d, n in counts.most_common() if d != own and n >= 2 and Levenshtein.distance(own, d) <= 2
                       and (n > counts[own] or (n == counts[own] and _romanised(d) and not _romanised(own)))), None)
        note = ""
        if domain is None and counts[own] == 1 and not _romanised(own):
            # one address against one: only a single slip, to the one made of syllables (himawarj-69: himawari-69)
            domain = next((d for d, n in counts.items() if n == 1 and d != own and _romanised(d)
                           and Levenshtein.distance(own, d) == 1), None)
            note = ONE_AGAINST_ONE_NOTE if domain is not None else ""
        if domain is None:
            near = [d for j, d in enumerate(domains)
                    if j != i and Levenshtein.normalized_distance(own, d) <= NEAR_DOMAINS]
            domain = _character_vote(own, near) if len(near) >= 2 else own
        if domain != own:
            voted.append((r, domain, note))
    return voted


ONE_AGAINST_ONE_NOTE = ("同じ連絡のほかのアドレスのドメイン（ローマ字の名前）と1文字違うため、"
                        "そちらに合わせました（要確認）")
LOST_AT_NOTE = "「@」が読めなかったため、同じ連絡のほかのアドレスのドメインの前に補いました（要確認）"


def _mend_lost_at(readings: list[FieldReading], domains: set[str]) -> list[FieldReading]:
    """Addresses whose @ was read as a letter (tomomi.watanabeekeyaki-27.example.jp) and that end in
    a domain another address of the item gives: that letter is the @. Shown to a person."""
    mended = []
    for r in readings:
        value = str(r.value)
        domain = next((d for d in sorted(domains, key=len, reverse=True)
                       if "." in d and value.endswith(d) and len(value) - len(d) >= 3), None)
        if domain is not None:
            _mend(r, f"{value[:-len(domain) - 1]}@{domain}", LOST_AT_NOTE)
            r.evidence.plausible = True
            mended.append(r)
    return mended


# A Hepburn syllable (or a doubled consonant, or syllabic n): facilities name their mail domain
# after themselves (higashimachi-30), so of two domains as many addresses give, one that is made of
# syllables is the name and one that is not (higashimacht) a slip.
_SYLLABLES = re.compile(r"(?:(?:ky|gy|sh|ch|ny|hy|by|py|my|ry|ts|[kgsztdnhbpmyrwfj])?[aiueo]|n(?![aiueoy])"
                        r"|([kstpgcbdfhjmrz])(?=\1)|t(?=ch))+")


def _romanised(domain: str) -> bool:
    words = [w for w in re.split(r"[-0-9]+", domain.partition(".")[0]) if w]
    return bool(words) and all(_SYLLABLES.fullmatch(w) for w in words)


def _mend(reading: FieldReading, value: str, note: str) -> None:
    """A value put in from another box or reading: one repair more, and a note that sends it to a person."""
    reading.value, reading.note = value, note
    reading.evidence.repairs += 1


def _texts(readings: list[FieldReading]) -> dict[str, FieldReading]:
    return {r.path: r for r in readings if r.method == "ocr" and isinstance(r.value, str) and r.value}


# Fields that several sheets of one set repeat, by what they hold. An application and its pledge
# are usually signed the same day: the two dates agreeing vouches for both (differing, for nothing).
SHARED = {path: path for path in ("facility_name", "address", "representative_name", "representative_title", "phone")}
SHARED |= {"application_date": "signed_on", "pledge_date": "signed_on"}
# The contact person of an application is mostly one of the staff it registers: their name and
# address read on the other sheet vouch for the contact's (and the other way round).
_ROW_PERSON = re.compile(r"(?:staff\[\d+\]\.|contact_)(name|email)")


def _shared_key(path: str) -> str | None:
    if path in SHARED:
        return SHARED[path]
    person = _ROW_PERSON.fullmatch(path)
    return f"person_{person.group(1)}" if person else None


def across_pages(pages: list[list[FieldReading]]) -> list[FieldReading]:
    """The same field read on two sheets of one item (a fax, a mail with its attachments), or the
    contact person among the staff: the same value twice is corroborated (`SHARED`, `_ROW_PERSON`).
    Returns the readings whose evidence changed."""
    seen: dict[str, list[FieldReading]] = defaultdict(list)
    for readings in pages:
        for path, r in _texts(readings).items():
            key = _shared_key(path)
            if key is not None:
                seen[key].append(r)
    changed: list[FieldReading] = []
    for group in seen.values():
        counts: dict[str, int] = defaultdict(int)
        for r in group:
            counts[normalize.comparable(r.kind, str(r.value))] += 1
        agreed = [r for r in group if counts[normalize.comparable(r.kind, str(r.value))] > 1]
        _mark(agreed, True, same_glyphs=True)
        changed += agreed
    return changed


POOLED_NOTE = "同じ連絡のほかの様式の同じ欄と読みが違ったため、両方の読み取り結果を合わせて多い方にしました（要確認）"


def pooled_shared(pages: list[list[FieldReading]]) -> list[FieldReading]:
    """A field several sheets of one item repeat (`SHARED`) read differently on them: each box was
    read several ways, and the same value written twice is better judged from all those readings
    together (中中病院 and 中央病院 from one box, 中央病院 twice from the other). The value most readings
    of all the boxes give, if it is clearly the most, each box gave it at least once and most boxes
    did not choose another, is put in every box, with a note. The readings are counted as read: the
    name dictionary has had its say in each box's choice, and counted once more per box it made
    寺田学 outvote 吉田 学 (test1). Returns the readings whose value changed."""
    groups: dict[str, list[FieldReading]] = defaultdict(list)
    for readings in pages:
        for path, r in _texts(readings).items():
            if path in SHARED and r.evidence is not None and r.evidence.alternatives:
                groups[SHARED[path]].append(r)
    changed: list[FieldReading] = []
    for group in groups.values():
        kind = group[0].kind
        if len(group) < 2 or any(r.kind != kind for r in group):
            continue
        chosen = Counter(normalize.comparable(kind, str(r.value)) for r in group)
        if len(chosen) == 1:
            continue
        pooled: Counter[str] = Counter()
        spelt: dict[str, str] = {}
        for r in group:
            for value, n in r.evidence.alternatives:
                key = normalize.comparable(kind, value)
                pooled[key] += n
                spelt.setdefault(key, value)
        (winner, most), *rest = pooled.most_common() or [("", 0)]
        if not winner or (rest and rest[0][1] >= most):
            continue
        (choice, boxes), *_others = chosen.most_common()
        if boxes * 2 > len(group) and choice != winner:
            continue  # most boxes chose another value: they are not outvoted by one box's readings
        if not all(any(normalize.comparable(kind, v) == winner for v, _n in r.evidence.alternatives) for r in group):
            continue
        # spelt as a box that chose it has it, else as its readings gave it
        value = next((str(r.value) for r in group if normalize.comparable(kind, str(r.value)) == winner), spelt[winner])
        for r in group:
            if normalize.comparable(kind, str(r.value)) != winner:
                _mend(r, value, POOLED_NOTE)
                changed.append(r)
    return changed


CONTACT_NOTE = "担当者欄と従事者欄で読みが違ったため、従事者の読み仮名に合う方に合わせました（要確認）"
CONTACT_DOMAIN_NOTE = ("担当者欄と従事者欄で同じアドレスのドメインの読みが違ったため、"
                       "形が正しい方（または同じ連絡のほかのアドレスにある方）に合わせました（要確認）")


def contact_among_staff(pages: list[list[FieldReading]], suffixes: Iterable[str] = ()) -> list[FieldReading]:
    """The contact person of an application is mostly one of the staff it registers (9 of the dev
    set's 12 applications), and only the staff row has a kana reading. Where the contact's address
    is the same as a row's, the two names must be the same; where the names are, the addresses'
    local parts: the one that fits the row's kana is put in the other box, with a note. Two
    addresses a slip or two apart (`_one_address`) are one: the local part that fits the kana, the
    domain `_take_domain` chooses and the name that reads as the kana go into the other box.
    Returns the readings whose value changed."""
    found = {path: r for readings in pages for path, r in _texts(readings).items()}
    contact_name, contact_email = found.get("contact_name"), found.get("contact_email")
    changed: list[FieldReading] = []
    if contact_name is None or contact_email is None:
        return changed
    for kana_path, name_path, email_path in partners(found):
        name, email = found.get(name_path or ""), found.get(email_path or "")
        if not kana_path.startswith("staff[") or name is None or email is None:
            continue
        kana = str(found[kana_path].value)
        if str(contact_email.value) == str(email.value):
            changed += _take_fitting(contact_name, name, lambda v, k=kana: reads_as(v, k))
        elif _one_address(str(contact_email.value), str(email.value)):
            others = [str(r.value) for r in found.values() if r.kind == "email" and r not in (contact_email, email)]
            changed += _take_fitting(contact_email, email, lambda v, k=kana: email_fits_name(v, k, suffixes),
                                     local_part=True)
            changed += _take_domain(contact_email, email, others)
            changed += _take_fitting(contact_name, name, lambda v, k=kana: reads_as(v, k))
        elif _same(contact_name, name):
            changed += _take_fitting(contact_email, email, lambda v, k=kana: email_fits_name(v, k, suffixes),
                                     local_part=True)
    return changed


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def _well_formed(domain: str) -> bool:
    """A domain of two labels or more, none of them empty or beginning or ending with a hyphen."""
    labels = domain.split(".")
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def _of_names(local: str) -> bool:
    """Whether each word of an address's local part could be a romanised name or an initial."""
    words = _local_words(local)
    return bool(words) and all(len(w) == 1 or _SYLLABLES.fullmatch(w) for w in words)


def _one_address(a: str, b: str) -> bool:
    """Two readings of one address that differ: the local parts (four characters at least) a slip
    apart at most, the domains a slip or two (kaorl.abe@… and kaori.abe@…, yuto.kato@mobile-example-.ne.jp
    and yuto.kato@mobile.example.ne.jp)."""
    from rapidfuzz.distance import Levenshtein

    (local_a, _at, domain_a), (local_b, _at, domain_b) = a.partition("@"), b.partition("@")
    if local_a != local_b and all(_of_names(local) for local in (local_a, local_b)):
        return False  # m.sato and m.kato: two names, maybe two people
    return (a != b and min(len(local_a), len(local_b)) >= 4 and Levenshtein.distance(local_a, local_b) <= 1
            and Levenshtein.normalized_distance(domain_a, domain_b) <= NEAR_DOMAINS)


def _take_domain(a: FieldReading, b: FieldReading, others: list[str]) -> list[FieldReading]:
    """Of two readings of one address differing in the domain, the domain that is well formed where
    the other is not (mobile-example-.ne.jp), or else that another address of the item gives, put in
    the other (only the domain), with a note; nothing when that does not tell them apart."""
    domains = [str(r.value).partition("@")[2] for r in (a, b)]
    for judge in (_well_formed, lambda d: any(o.partition("@")[2] == d for o in others)):
        verdicts = [judge(d) for d in domains]
        if verdicts[0] != verdicts[1]:
            good, bad = (a, b) if verdicts[0] else (b, a)
            domain = str(good.value).partition("@")[2]
            _mend(bad, f"{str(bad.value).partition('@')[0]}@{domain}", CONTACT_DOMAIN_NOTE)
            return [bad]
    return []


def _same(a: FieldReading, b: FieldReading) -> bool:
    return normalize.comparable(a.kind, str(a.value)) == normalize.comparable(b.kind, str(b.value))


def _take_fitting(a: FieldReading, b: FieldReading, fits: Callable[[str], bool | None],
                  local_part: bool = False) -> list[FieldReading]:
    """Of two readings of one thing, the one that `fits` put in the other (an address keeps its own
    domain, which the domain vote looked after); nothing when both or neither fit."""
    if _same(a, b):
        return []
    fit_a, fit_b = fits(str(a.value)), fits(str(b.value))
    if bool(fit_a) == bool(fit_b) or None in (fit_a, fit_b):
        return []
    good, bad = (a, b) if fit_a else (b, a)
    value = str(good.value)
    if local_part:
        value = f"{value.partition('@')[0]}@{str(bad.value).partition('@')[2]}"
    _mend(bad, value, CONTACT_NOTE)
    return [bad]


FACILITY_NOTE = "施設名のふりがなに合わせて補正しました（要確認）"


def respell_facility(written: str, kana: str, kinds: Iterable[str]) -> str | None:
    """A facility name ending in a known kind (…訪問看護ステーション) whose own part does not read
    as its share of the kana, spelt as `respell` spells a name (若禁 with わかば → 若葉). None when the
    name has no known kind, the kana does not end in the kind's reading, or nothing stands out."""
    text, sound = normalize.compact(written), normalize.compact(normalize.kana(kana))
    kind = next((k for k in sorted(kinds, key=len, reverse=True) if text.endswith(k) and len(text) > len(k)), None)
    if kind is None:
        return None
    cuts = [j for j in range(1, len(sound)) if reads_as(kind, sound[j:])]
    if len(cuts) != 1:
        return None
    spelt = respell(f"{text[:-len(kind)]} {kind}", f"{sound[:cuts[0]]} {sound[cuts[0]:]}")
    return spelt.replace(" ", "") if spelt else None


def facility_names(pages: list[list[FieldReading]], kinds: Iterable[str] = ()) -> list[FieldReading]:
    """Every sheet of a set names the facility; only the application has its kana. A facility name
    of the item that does not read as that kana is respelt to it (`respell_facility`); one that is
    no facility name at all (no known kind at either end: W太人な語 も必昌補選) takes the one name of
    the item that reads as the kana. Both with a note. Returns the readings whose value changed."""
    found = [_texts(readings) for readings in pages]
    kanas = {str(by_path["facility_name_kana"].value) for by_path in found if "facility_name_kana" in by_path}
    if len(kanas) != 1:
        return []
    kana, changed, kinds = kanas.pop(), [], list(kinds)
    names = [by_path["facility_name"] for by_path in found if "facility_name" in by_path]
    for name in names:
        if reads_as(str(name.value), kana) is not False:
            continue
        spelt = respell_facility(str(name.value), kana, kinds)
        if spelt is not None and spelt != str(name.value):
            _mend(name, spelt, FACILITY_NOTE)
            changed.append(name)
    heard = {str(n.value) for n in names if reads_as(str(n.value), kana)}
    for name in names:
        text = normalize.compact(str(name.value))
        if len(heard) != 1 or str(name.value) in heard or any(text.startswith(k) or text.endswith(k) for k in kinds):
            continue
        _mend(name, next(iter(heard)), FACILITY_NOTE)
        changed.append(name)
    return changed


NAME_NOTE = "ほかの様式の同じ欄の読み（辞書にある氏名）に合わせて補正しました（要確認）"


def shared_names(pages: list[list[FieldReading]], known: Callable[[str], bool]) -> list[FieldReading]:
    """The representative is named on the application and on the pledge, with no kana to check the
    name against. Where the sheets read it differently and exactly one of the readings is a name of
    the dictionary (`known`: a surname and a given name), the others take it, with a note (六辺合一
    beside 渡辺健一). Returns the readings whose value changed."""
    group = [r for readings in pages for path, r in _texts(readings).items() if path == "representative_name"]
    values = {normalize.comparable(r.kind, str(r.value)): str(r.value) for r in group}
    names = [v for v in values.values() if known(v)]
    if len(values) < 2 or len(names) != 1:
        return []
    changed = [r for r in group if normalize.comparable(r.kind, str(r.value)) != normalize.comparable(r.kind, names[0])]
    for r in changed:
        _mend(r, names[0], NAME_NOTE)
    return changed


@lru_cache(maxsize=256)
def _reading_of(word: str) -> str:
    """How a word of the vocabulary is read, in hiragana (pykakasi: 居宅介護支援事業所 → きょたく…)."""
    return "".join(item["hira"] for item in _kakasi().convert(word))


def _katakana(hiragana: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in hiragana)


@lru_cache(maxsize=4096)
def kana_ending(kana: str, kinds: tuple[str, ...], least: float) -> str | None:
    """The kana of a facility name with the reading of the kind of facility its end looks most like
    put in (glyph by glyph, a character more or less allowed: あおばちょうざいやうぅきょく → …やっきょく),
    when that scores at least `least`; None when the end already reads as a kind, or none is near.
    Kinds of four characters or more, as for the name (`repair.with_suffix`); the script is kept."""
    text = normalize.compact(kana)
    folded = normalize.kana(text)
    long_kinds = [k for k in kinds if len(k) >= 4]
    for kind in long_kinds:
        n = len(_reading_of(kind))
        if any(reads_as(kind, folded[-m:]) for m in (n - 1, n, n + 1) if 0 < m < len(folded)):
            return None
    found = glyphs.best_end(folded, [_reading_of(k) for k in long_kinds], least)
    if found is None:
        return None
    sound, m = found
    katakana = sum(normalize.kana(ch) != ch for ch in text) * 2 > len(text)
    return text[:-m] + (_katakana(sound) if katakana else sound)
