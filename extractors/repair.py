"""What OCR text means for each kind of field: junk trimmed, known slips repaired, plausibility.

Tesseract reads what is there; a field of a known kind constrains what can be meant (a date has a
year, a month and a day; a job is one of the closed list; an address ends in a domain). Every repair
is reported, so confidence can count it: a repaired value is never as sure as a clean one.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from renraku import normalize
from renraku.extractors import glyphs, notes

# Rule remnants and specks Tesseract turns into characters at the ends of a crop.
JUNK = "|｜!！'\"`´‘’“”「」『』[]()（）{}。、.,，:;：；_＿-－~〜=＝/／\\・･*＊^"
KANA_EXTRA = " ーゝゞヽヾ・"
DOMAIN_FIXES = [
    (re.compile(r"\.?(co|ne|or|ac|go|ed|lg|gr)\.?jp$"), r".\1.jp"),
    (re.compile(r"(?<=[a-z0-9])\.?(com|net|org|jp)$"), r".\1"),
]


@dataclass
class Repaired:
    value: str
    repairs: list[str] = field(default_factory=list)
    plausible: bool = True  # the value has its kind's shape
    vocabulary_score: float = 1.0  # for closed lists: how near the reading looked to the entry taken
    note: str = ""  # a repair bold enough that a person must see it (Japanese, for the reviewer)
    unlisted: str = ""  # the value before it was changed toward a list ("" when it was not)


def trim_junk(text: str) -> tuple[str, bool]:
    s = normalize.text(text)
    trimmed = s.strip(JUNK + " ")
    return trimmed, trimmed != s


def _cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return any(w in name for w in ("CJK", "HIRAGANA", "KATAKANA"))


# A run of dashes standing apart at either end is a stretch of rule, not text (センター keeps its ー).
_LOOSE_DASHES = re.compile(r"^[ー一―‐−—─━\-\s「」|]+\s|\s[ー一―‐−—─━\-\s「」|]+$")


# A lone Latin letter, digit or mark (・) standing apart at the end is a speck read as a character (a
# name's one-character given name is a kanji and stays). A lone kana letter stays too: on six sets
# (the dev set and five generated ones) the 9 read so were 3 times the word's own last character
# set apart (リハビリテーショ ン) and never a speck whose removal made the value right.
_LOOSE_TAIL = re.compile(r"\s+[・A-Za-z0-9]$")  # after NFKC: ･ is ・
# The same standing apart at the start (a speck before やまゆり病院 read as 1).
_LOOSE_HEAD = re.compile(r"^[\u3041-\u30ffA-Za-z0-9]\s+")


def japanese_text(text: str) -> Repaired:
    s = normalize.text(text)
    value, before = s, None
    while value != before:  # junk, rule dashes and specks, in whatever order they stand at the ends
        before = value
        value = _LOOSE_HEAD.sub("", _LOOSE_TAIL.sub("", _LOOSE_DASHES.sub("", value)))
        value, _ = trim_junk(value)
    return Repaired(value, ["trim"] if value != s else [], plausible=bool(value) and any(_cjk(c) for c in value))


# Katakana (and the long vowel mark) that look like kanji: beside a kanji, in a name, they are the kanji
# (浩ニ → 浩二, 健ー → 健一, 田ロ → 田口); a katakana name (マリア) keeps its katakana.
_LOOKALIKES = {"ニ": "二", "ロ": "口", "カ": "力", "エ": "工", "ハ": "八", "タ": "夕", "ー": "一"}
# Hiragana that look and sound like the kanji they come from: ending a name right after a kanji,
# they are that kanji (拓や → 拓也, 彩の → 彩乃); names do not end in kanji then hiragana.
_KANA_ENDINGS = {"や": "也", "の": "乃"}


def _katakana(ch: str) -> bool:
    return "\u30a1" <= ch <= "\u30fa"


def _hiragana(ch: str) -> bool:
    return "\u3041" <= ch <= "\u309f"


def person_name(text: str) -> Repaired:
    """A person's name: Japanese text, with katakana that stand for kanji put right."""
    base = japanese_text(text)
    chars = list(base.value)
    for i, ch in enumerate(chars):
        before = chars[i - 1] if i > 0 else ""
        after = chars[i + 1] if i + 1 < len(chars) else ""
        if ch in _KANA_ENDINGS and normalize.is_kanji(before) and after in ("", " "):
            chars[i] = _KANA_ENDINGS[ch]
        elif (ch in _LOOKALIKES and (normalize.is_kanji(before) or normalize.is_kanji(after))
              and not (_katakana(before) or _katakana(after))):
            chars[i] = _LOOKALIKES[ch]
    value = "".join(chars)
    if value == base.value:
        return base
    return Repaired(value, [*base.repairs, "lookalike"], base.plausible)


def _close(a: str, b: str) -> int:
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(a, b)


def closed_list(text: str, words: list[str], match: glyphs.Match = glyphs.USUAL) -> Repaired:
    """A value from a list (titles, medical associations): the entry it looks like, when clearly one."""
    base = japanese_text(text)
    compact = normalize.compact(base.value)
    if not compact or compact in words:
        return Repaired(compact or base.value, base.repairs, base.plausible, 1.0 if compact else 0.0)
    found = match.best(compact, words)
    if found is None:
        return Repaired(base.value, base.repairs, base.plausible, 0.0)
    return Repaired(found[0], [*base.repairs, "vocabulary"], True, found[1], unlisted=base.value)


def with_suffix(text: str, suffixes: list[str], guess_min: float = 0.0) -> Repaired:
    """A name ending in a known kind of facility (…調剤薬局), or else beginning with one (訪問看護
    ステーションやまゆり): one slip in that part is mended. Given `guess_min`, a kind of at least four
    characters that the end (or start) only looks like (glyph score, `glyphs.distance`) at least that
    much is put in too, with a note: handwriting on a fax loses several characters of it at once
    (さくら話間看議ステーション), which no one-slip rule reaches."""
    base = japanese_text(text)
    value = base.value
    compact = value.replace(" ", "")
    kinds = sorted(suffixes, key=len, reverse=True)  # the longest decides
    if any(compact.endswith(k) or compact.startswith(k) for k in kinds):
        return base  # 眼科医院 ends in 医院: not a slip of 歯科医院
    for suffix in kinds:
        n = len(suffix)
        if compact.endswith(suffix):
            return base
        if n >= 3 and len(compact) > n and _close(compact[-n:], suffix) == 1:
            return Repaired(compact[:-n] + suffix, [*base.repairs, "suffix"], base.plausible, unlisted=compact)
    for prefix in kinds:
        n = len(prefix)
        if compact.startswith(prefix):
            return base
        if n >= 3 and len(compact) > n and _close(compact[:n], prefix) == 1:
            return Repaired(prefix + compact[n:], [*base.repairs, "prefix"], base.plausible, unlisted=compact)
    guess = _kind_looked_like(compact, tuple(kinds), guess_min) if guess_min > 0 else None
    if guess is None:
        return base
    return Repaired(guess, [*base.repairs, "kind"], base.plausible, note=notes.text("facility_kind"),
                    unlisted=compact)


@lru_cache(maxsize=4096)  # a crop's readings are weighed again after every stage
def _kind_looked_like(compact: str, kinds: tuple[str, ...], least: float) -> str | None:
    """The name with the kind of facility its end (else its start) looks most like put in, a
    character more or less than the kind allowed for; None when none looks like one `least`."""
    long_kinds = [k for k in kinds if len(k) >= 4]
    for at_end in (True, False):
        found = glyphs.best_end(compact, long_kinds, least, at_end=at_end)
        if found is not None:
            kind, m = found
            return compact[:-m] + kind if at_end else kind + compact[m:]
    return None


def address(text: str, places: list[str], guess_min: float = 0.0) -> Repaired:
    """An address beginning with a known prefecture and municipality: a slip in them is mended.
    Given `guess_min`, a start that only looks like one (glyph score) of the prefecture's
    municipalities gets it put in, with a note (栃木市県下都斬郡王生町 → 栃木県下都賀郡壬生町).

    Spaces OCR puts between two Japanese characters go; a space after the street number (before a
    building's name) stays, as the sender wrote it.
    """
    base = japanese_text(text)
    value = re.sub(r"(?<=\d)\s*[・･.,、ー一―−]\s*(?=\d)", "-", base.value)  # 1・5-7 → 1-5-7
    value = re.sub(r"(?<=\d)[A-Za-z~〜_=‐–—](?=\d)", "-", value)  # a handwritten dash read as a letter: 2-2r11
    value = re.sub(r"(?<=[^\x00-\x7f])\s+(?=[^\x00-\x7f\d])", "", value)
    repairs = list(base.repairs) + (["respaced"] if value != base.value else [])
    best: tuple[int, str, int] | None = None
    # An address that names its prefecture is taken for a place with one: 栃木市県… is 栃木県… misread
    named = any(e in value[:5] for e in _PREFECTURE_ENDS)
    for place in places:
        if named and not _with_prefecture(place):
            continue
        if value.startswith(place):
            return Repaired(value, repairs, True)
        for cut in (len(place) - 1, len(place), len(place) + 1):
            d = _close(value[:cut], place)
            if d <= max(1, len(place) // 4) and (best is None or d < best[0]):
                best = (d, place, cut)
    if best is not None:
        _d, place, cut = best
        return Repaired(place + value[cut:], [*repairs, "place"], True, unlisted=value)
    guess = _place_looked_like(value, tuple(places), guess_min) if guess_min > 0 else None
    if guess is not None:
        return Repaired(guess, [*repairs, "place"], True, note=notes.text("address_place"), unlisted=value)
    return Repaired(value, repairs, base.plausible)


_PREFECTURE_ENDS = set("都道府県")


def _with_prefecture(place: str) -> bool:
    return any(place.find(e) in (2, 3) for e in _PREFECTURE_ENDS)


@lru_cache(maxsize=4096)
def _place_looked_like(value: str, places: tuple[str, ...], least: float) -> str | None:
    """The address with the prefecture and municipality its start looks most like put in (places
    with their prefecture only; up to two characters more or fewer); None below `least`."""
    found = glyphs.best_end(value, [p for p in places if _with_prefecture(p)], least, slack=2, at_end=False)
    return found[0] + value[found[1]:] if found else None


# No word of a reading begins with a long vowel mark or a small kana: such a group standing apart
# at the end is a stretch of rule or a speck.
_LOOSE_KANA_TAIL = re.compile(r"\s[ーっゃゅょぁぃぅぇぉッャュョァィゥェォ]+$")


# A speck between two kana read as a stop or a comma is the gap between family and given name.
_KANA_SPECK = re.compile(r"(?<=[\u3041-\u30ff])\s*[.,'\"`、。，．]\s*(?=[\u3041-\u30ff])")


# Kana that look the same in hiragana and katakana: in a reading written in the other script, one of
# them is that script's (もり リょう is もり りょう). Only when every kana of the other script is such a twin.
_TWIN_KANA = {"り": "リ", "へ": "ヘ", "べ": "ベ", "ぺ": "ペ", "か": "カ", "が": "ガ"}


def _one_script(reading: str) -> str:
    hiragana = [c for c in reading if _hiragana(c)]
    katakana = [c for c in reading if _katakana(c)]
    if not hiragana or not katakana or len(hiragana) == len(katakana):
        return reading
    table = _TWIN_KANA if len(katakana) > len(hiragana) else {v: k for k, v in _TWIN_KANA.items()}
    minority = min(hiragana, katakana, key=len)
    return "".join(table.get(c, c) for c in reading) if all(c in table for c in minority) else reading


def kana(text: str) -> Repaired:
    s = normalize.text(text)
    value, _ = trim_junk(_KANA_SPECK.sub(" ", _LOOSE_KANA_TAIL.sub("", _LOOSE_DASHES.sub("", s))))
    repairs = ["trim"] if value != s.strip() else []
    fixed = value.replace("一", "ー").replace("ｰ", "ー")
    if fixed != value:
        repairs.append("long_vowel")
    if fixed.startswith("ー"):  # no word starts with a long vowel: a rule's dash or a stroke of the box
        fixed = fixed.lstrip("ー ")
        repairs.append("trim")
    same_script = _one_script(fixed)
    if same_script != fixed:
        fixed = same_script
        repairs.append("script")
    reading = normalize.kana(fixed)
    plausible = bool(fixed) and all(_hiragana(c) or c in KANA_EXTRA for c in reading)
    # both scripts (キむら, か どう サリ): a person writes a reading in one; OCR mixed them (on six sets
    # 8 readings did, none of them right)
    mixed = any(map(_hiragana, fixed)) and any(map(_katakana, fixed))
    return Repaired(fixed, repairs, plausible, note=notes.text("mixed_script") if mixed else "")


def job(text: str, titles: list[str], match: glyphs.Match = glyphs.USUAL) -> Repaired:
    value, trimmed = trim_junk(text)
    if not value:
        return Repaired("", plausible=False, vocabulary_score=0.0)
    compact = normalize.compact(value)
    if compact in titles:
        return Repaired(compact, ["trim"] if trimmed else [], True, 1.0)
    found = match.best(compact, titles)
    if found is None:
        return Repaired(value, ["trim"] if trimmed else [], plausible=False, vocabulary_score=0.0)
    return Repaired(found[0], ["vocabulary"], True, found[1])


def _plausible_year(iso: str, today: dt.date) -> bool:
    return today.year - 15 <= int(iso[:4]) <= today.year + 1


def date(text: str, today: dt.date | None = None) -> Repaired:
    """A date a sheet could carry: a real one, within a few years of today."""
    today = today or dt.date.today()
    s = normalize.text(text).replace(" ", "")
    s = s.strip(JUNK)
    iso = normalize.parse_date(s).iso
    if iso and _plausible_year(iso, today):
        return Repaired(s)
    if iso and re.match(r"^\d{4}", s):  # 2625/7/26: one slipped digit in the year
        for year in (today.year, today.year - 1, today.year + 1):
            if _close(s[:4], str(year)) == 1:
                return Repaired(str(year) + s[4:], ["year"], True)
        return Repaired(s, [], plausible=False)
    repairs = []
    era = re.match(r"^(令和|平成|昭和|[RHSrhs])", s)
    numbers = re.findall(r"\d+|元", s)
    if len(numbers) >= 3:
        year, month, day = numbers[0], numbers[1], numbers[2]
        candidate = f"{era.group(1)}{year}年{month}月{day}日" if era else f"{year}/{month}/{day}"
        iso = normalize.parse_date(candidate).iso
        if iso and _plausible_year(iso, today):
            repairs.append("date_shape")
            return Repaired(candidate, repairs)
    return Repaired(s, repairs, plausible=False)


_PHONE_SLIPS = str.maketrans({"O": "0", "o": "0", "D": "0", "l": "1", "I": "1", "|": "1", "S": "5", "B": "8",
                              "ー": "-", "一": "-", "−": "-", "‐": "-", "—": "-", "～": "-"})


def phone(text: str) -> Repaired:
    value, trimmed = trim_junk(text)
    fixed = value.translate(_PHONE_SLIPS).replace(" ", "")
    repairs = (["trim"] if trimmed else []) + (["character"] if fixed != value.replace(" ", "") else [])
    if re.match(r"^[689]\d{1,4}-", fixed):  # every Japanese number begins with 0; a 6, 8 or 9 there is a slip
        fixed = "0" + fixed[1:]
        repairs.append("leading_zero")
    # Remarks keep their brackets: 028-621-3923(内線268)
    fixed = re.sub(r"[（(]\s*", "(", fixed)
    fixed = re.sub(r"\s*[）)]?$", lambda m: ")" if "(" in fixed and not fixed.endswith(")") else m.group(0), fixed)
    number = re.sub(r"\(.*$", "", fixed)
    digits = normalize.digits(number)
    plausible = bool(re.fullmatch(r"0\d{1,4}-?\d{1,4}-?\d{3,4}", number)) and len(digits) in (10, 11)
    return Repaired(fixed, repairs, plausible)


def postal_code(text: str) -> Repaired:
    value, trimmed = trim_junk(text)
    fixed = value.translate(_PHONE_SLIPS).replace(" ", "").removeprefix("〒")
    digits = normalize.digits(fixed)
    repairs = ["trim"] if trimmed else []
    if len(digits) == 7 and not re.fullmatch(r"\d{3}-\d{4}", fixed):
        fixed = f"{digits[:3]}-{digits[3:]}"
        repairs.append("postal_shape")
    return Repaired(fixed, repairs, bool(re.fullmatch(r"\d{3}-\d{4}", fixed)))


def _mend_domain(domain: str, known: list[str], tops: list[str]) -> tuple[str, str | None]:
    """A domain one slip away from a well-known one, or ending one slip away from a top domain."""
    if not domain or domain in known:
        return domain, None
    near = [k for k in known if _close(domain, k) == 1]
    if len(near) == 1:
        return near[0], "known_domain"
    labels = domain.rsplit(".", 2)
    for n in (2, 1):
        if len(labels) > n:
            end = ".".join(labels[-n:])
            if end in tops:
                return domain, None
            near_top = [t for t in tops if t.count(".") == n - 1 and _close(end, t) == 1 and len(t) > 1]
            if len(near_top) == 1:
                return ".".join([*labels[:-n], near_top[0]]), "top_domain"
    return domain, None


def email(text: str, known_domains: list[str] | None = None, tops: list[str] | None = None) -> Repaired:
    s = normalize.text(text)
    value = s.strip(JUNK + " ")  # no address starts with a "_" or "-": a rule's or a speck's remnant
    repairs = ["trim"] if value != s else []
    # No address holds a comma: it is a dot that a coarse fax turned into a comma — or an underscore
    # (ty_01 read ty,01 by every reading, minato_ozone as minato,ozone): between two characters of
    # the name part a person looks (on seven sets 5 right addresses were read so, and 2 wrong)
    comma = re.search(r"[A-Za-z0-9],[A-Za-z0-9]", value.partition("@")[0])
    value = value.replace(",", ".")
    # Addresses are written in lower case: a capital O before a digit or after no letter is the
    # digit 0 (careplanO7, kasakura_Ohayate, Oito@); after a letter it is as often the letter (hOukan,
    # a speck read after manabu as O), and a lower-case o stays. A person still looks (address_lookalike).
    zero = _CAPITAL_ZERO.sub("0", value)
    if zero != value:
        value = zero
        repairs.append("character")
    value = value.lower()
    unlisted = ""
    local, at, domain = value.partition("@")
    if ".." in local:  # no address has two dots in a row: a speck beside a dot
        local = re.sub(r"\.{2,}", ".", local)
        value = f"{local}{at}{domain}"
        repairs.append("dots")
    if at:
        head, space, _tail = domain.partition(" ")
        if space and any(head.endswith("." + t) for t in tops or []):  # …ne.jp my: a speck after the end
            domain = head
            repairs.append("trim")
        fixed_domain = domain.replace(" ", "")
        for pattern, repl in DOMAIN_FIXES:
            new = pattern.sub(repl, fixed_domain)
            if new != fixed_domain:
                fixed_domain = new
                break
        if fixed_domain != domain:
            repairs.append("domain")
        read_domain = fixed_domain
        fixed_domain, how = _mend_domain(fixed_domain, known_domains or [], tops or [])
        if how:
            repairs.append(how)
            unlisted = f"{local}@{read_domain}"
        value = f"{local}@{fixed_domain}"
    plausible = bool(re.fullmatch(r"[a-z0-9._%+\- ]+@[a-z0-9\-]+(\.[a-z0-9\-]+)+", value))
    # a capital read beside a digit (careplanO7, ayuhaT74): addresses are written in lower case, so
    # the glyph may well be a digit (0, 1, 7 …) or a letter; which, only the crop shows a person. So
    # is a capital that looks like a digit anywhere before the @ (ozone_0shuu read ozone_Oshuu,
    # 5ayuha read Sayuha, 8inoe read Binoe; on six sets 2 right addresses of 21 read so)
    doubtful = _DIGIT_LOOKALIKE.search(normalize.text(text))
    # so is a lower-case l where a 1 could stand — first or last in the name part, or beside a digit
    # or separator (1igashira read ligashira by every reading, and accepted: a name romanised has no
    # l, so the owner's name vouches for the letters around it and never for it)
    doubtful = doubtful or _EDGE_L.search(normalize.text(text).strip(JUNK + " ").partition("@")[0])
    # a domain that ends in none of the top domains listed: a dot read as a hyphen before the end
    # (mail2.example-net, accepted at 0.98 on a handwritten fax) or a domain the list lacks; a person
    # looks (vocabulary.toml's top_domains may be extended)
    unknown_top = bool(at and tops) and not any(value.endswith("." + t) for t in tops or [])
    note = ("address_lookalike" if doubtful else "address_comma" if comma
            else "unknown_top_domain" if unknown_top else "")
    return Repaired(value, repairs, plausible, unlisted=unlisted, note=notes.text(note) if note else "")


_CAPITAL_ZERO = re.compile(r"(?<![A-Za-z])O|O(?=[0-9])")
_EDGE_L = re.compile(r"^l|l$|(?<=[0-9._\-])l|l(?=[0-9._\-])")
_DIGIT_LOOKALIKE = re.compile(r"(?<=[0-9])[A-Z]|[A-Z](?=[0-9])|[OISZBG](?=[^@]*@)")  # 0 1 5 2 8 6

