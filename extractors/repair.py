"""What OCR text means for each kind of field: junk trimmed, known slips repaired, plausibility.

Tesseract reads what is there; a field of a known kind constrains what can be meant (a date has a
year, a month and a day; a job is one of the closed list; an address ends in a domain). Every repair
is reported, so confidence can count it: a repaired value is never as sure as a clean one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process
from renraku import normalize

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
    vocabulary_score: float = 1.0  # for jobs: how close the reading was to the closed list


def trim_junk(text: str) -> tuple[str, bool]:
    s = normalize.text(text)
    trimmed = s.strip(JUNK + " ")
    return trimmed, trimmed != s


def _cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return any(w in name for w in ("CJK", "HIRAGANA", "KATAKANA"))


def japanese_text(text: str) -> Repaired:
    value, trimmed = trim_junk(text)
    # Tesseract puts spaces inside Japanese runs; a single space between two CJK characters is kept
    # only where it separated words on the sheet, which `ocr._join` already decided.
    value = re.sub(r"\s+", " ", value)
    return Repaired(value, ["trim"] if trimmed else [], plausible=bool(value) and any(_cjk(c) for c in value))


def kana(text: str) -> Repaired:
    value, trimmed = trim_junk(text)
    repairs = ["trim"] if trimmed else []
    fixed = value.replace("一", "ー").replace("ｰ", "ー")
    if fixed != value:
        repairs.append("long_vowel")
    reading = normalize.kana(fixed)
    plausible = bool(fixed) and all("\u3041" <= c <= "\u309f" or c in KANA_EXTRA for c in reading)
    return Repaired(fixed, repairs, plausible)


def job(text: str, titles: list[str]) -> Repaired:
    value, trimmed = trim_junk(text)
    if not value:
        return Repaired("", plausible=False, vocabulary_score=0.0)
    compact = normalize.compact(value)
    if compact in titles:
        return Repaired(compact, ["trim"] if trimmed else [], True, 1.0)
    match = process.extractOne(compact, titles, scorer=fuzz.ratio)
    if match is None or match[1] < 60:
        return Repaired(value, ["trim"] if trimmed else [], plausible=False, vocabulary_score=0.0)
    return Repaired(match[0], ["vocabulary"], True, match[1] / 100)


def date(text: str) -> Repaired:
    s = normalize.text(text).replace(" ", "")
    s = s.strip(JUNK)
    if normalize.parse_date(s).iso:
        return Repaired(s)
    repairs = []
    era = re.match(r"^(令和|平成|昭和|[RHSrhs])", s)
    numbers = re.findall(r"\d+|元", s)
    if len(numbers) >= 3:
        year, month, day = numbers[0], numbers[1], numbers[2]
        candidate = f"{era.group(1)}{year}年{month}月{day}日" if era else f"{year}/{month}/{day}"
        if normalize.parse_date(candidate).iso:
            repairs.append("date_shape")
            return Repaired(candidate, repairs)
    return Repaired(s, repairs, plausible=False)


_PHONE_SLIPS = str.maketrans({"O": "0", "o": "0", "D": "0", "l": "1", "I": "1", "|": "1", "S": "5", "B": "8",
                              "ー": "-", "一": "-", "−": "-", "‐": "-", "—": "-", "～": "-"})


def phone(text: str) -> Repaired:
    value, trimmed = trim_junk(text)
    fixed = value.translate(_PHONE_SLIPS).replace(" ", "")
    repairs = (["trim"] if trimmed else []) + (["character"] if fixed != value.replace(" ", "") else [])
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


def email(text: str, known_domains: set[str] | None = None) -> Repaired:
    s = normalize.text(text)
    value = s.strip(JUNK.replace(".", "").replace("_", "").replace("-", "") + " .,")
    repairs = ["trim"] if value != s else []
    value = value.lower()
    local, at, domain = value.partition("@")
    if at:
        fixed_domain = domain.replace(" ", "")
        for pattern, repl in DOMAIN_FIXES:
            new = pattern.sub(repl, fixed_domain)
            if new != fixed_domain:
                fixed_domain = new
                break
        if fixed_domain != domain:
            repairs.append("domain")
        value = f"{local}@{fixed_domain}"
    plausible = bool(re.fullmatch(r"[a-z0-9._%+\- ]+@[a-z0-9\-]+(\.[a-z0-9\-]+)+", value))
    if known_domains and at and value.partition("@")[2] in known_domains:
        repairs.append("known_domain")
    return Repaired(value, repairs, plausible)

