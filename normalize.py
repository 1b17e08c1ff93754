"""Normalisation of field values (SPEC §2), shared by the readers, the rules and the export.

Every function takes what was read (typed, OCR'd or corrected by a person) and returns the value in
its canonical form; `normalise(kind, raw)` also says whether the value has the shape its kind
expects, so a reader can flag it for review instead of passing it on silently.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

_SPACES = re.compile(r"\s+")
# Dash-like characters people and OCR put in phone numbers, postal codes and dates.
_DASHES = re.compile(r"[‐‑‒–—―−ー－─━ｰ﹣]")


@dataclass(frozen=True)
class Normalised:
    value: str
    ok: bool = True
    note: str = ""


def text(raw: str | None) -> str:
    """NFKC, runs of white space (including the ideographic space) as one space, trimmed."""
    if raw is None:
        return ""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", str(raw))).strip()


def compact(raw: str | None) -> str:
    """`text` without any white space: what two readings of the same value have in common."""
    return _SPACES.sub("", text(raw))


def email(raw: str | None) -> str:
    """Lower-case with full-width characters folded (NFKC), trimmed.

    White space inside is kept: an address written with a space is not deliverable, and the rules
    must see it (`invalid_email`), not a silently repaired address.
    """
    return text(raw).lower()


def digits(raw: str | None) -> str:
    """Only the digits: how phone numbers and postal codes are compared."""
    return re.sub(r"\D", "", text(raw))


def _dashes_to_hyphen(s: str) -> str:
    return _DASHES.sub("-", s)


def phone(raw: str | None) -> str:
    """Digits and hyphens as written (dash variants become '-'), remarks such as (内線12) kept."""
    s = text(raw)
    # A long vowel mark between digits is a dash, elsewhere (e.g. a remark) it is left alone.
    return re.sub(r"(?<=\d)\s*[‐‑‒–—―−ー－─━ｰ﹣-]\s*(?=\d)", "-", s)


def postal_code(raw: str | None) -> str:
    s = _dashes_to_hyphen(compact(raw))
    return s.removeprefix("〒")


_HIRA_START, _KATA_START, _KATA_END = 0x3041, 0x30A1, 0x30F6


def is_kanji(ch: str) -> bool:
    """A kanji (CJK unified ideograph) or the repeat and abbreviation marks 々 〆."""
    return "\u4e00" <= ch <= "\u9fff" or ch in "々〆"


def kana(raw: str | None) -> str:
    """A reading folded to hiragana (katakana, half-width katakana; ー stays): for comparing.

    The stored value keeps the script the sender used (`normalise("kana", …)` is NFKC only).
    """
    s = text(raw)
    out = []
    for ch in s:
        code = ord(ch)
        if _KATA_START <= code <= _KATA_END:
            out.append(chr(code - _KATA_START + _HIRA_START))
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------------------- dates

@dataclass(frozen=True)
class Era:
    name: str
    letter: str
    first_day: dt.date
    last_day: dt.date | None


ERAS = (
    Era("令和", "R", dt.date(2019, 5, 1), None),
    Era("平成", "H", dt.date(1989, 1, 8), dt.date(2019, 4, 30)),
    Era("昭和", "S", dt.date(1926, 12, 25), dt.date(1989, 1, 7)),
    Era("大正", "T", dt.date(1912, 7, 30), dt.date(1926, 12, 24)),
)
_ERA_BY_KEY = {e.name: e for e in ERAS} | {e.letter: e for e in ERAS}

_ERA_DATE = re.compile(
    r"^(?P<era>令和|平成|昭和|大正|[RHST])\s*(?P<year>元|\d{1,2})\s*[年./-]\s*"
    r"(?P<month>\d{1,2})\s*[月./-]\s*(?P<day>\d{1,2})\s*日?$",
    re.IGNORECASE,
)
_WESTERN_DATE = re.compile(
    r"^(?P<year>\d{4})\s*[年./-]\s*(?P<month>\d{1,2})\s*[月./-]\s*(?P<day>\d{1,2})\s*日?$"
)
_COMPACT_DATE = re.compile(r"^(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})$")
_WEEKDAY = re.compile(r"[(（]\s*[月火水木金土日]\s*(曜日?)?\s*[)）]$")


@dataclass(frozen=True)
class DateReading:
    """A date as written: its ISO form when it is a real date, otherwise why not (Japanese)."""

    iso: str | None
    problem: str = ""


def parse_date(raw: str | None) -> DateReading:
    s = _dashes_to_hyphen(text(raw))
    s = _WEEKDAY.sub("", s).strip()
    if not s:
        return DateReading(None, "日付が空です")
    m = _ERA_DATE.match(s)
    if m:
        era = _ERA_BY_KEY[m["era"].upper() if len(m["era"]) == 1 else m["era"]]
        year_in_era = 1 if m["year"] == "元" else int(m["year"])
        if year_in_era < 1:
            return DateReading(None, f"{era.name}0年という年はありません")
        year = era.first_day.year + year_in_era - 1
        try:
            day = dt.date(year, int(m["month"]), int(m["day"]))
        except ValueError:
            return DateReading(None, "暦に存在しない日付です")
        if day < era.first_day or (era.last_day and day > era.last_day):
            return DateReading(None, f"{era.name}の期間外の日付です")
        return DateReading(day.isoformat())
    m = _WESTERN_DATE.match(s) or _COMPACT_DATE.match(s)
    if m:
        try:
            day = dt.date(int(m["year"]), int(m["month"]), int(m["day"]))
        except ValueError:
            return DateReading(None, "暦に存在しない日付です")
        return DateReading(day.isoformat())
    return DateReading(None, "日付として読めません")


def date(raw: str | None) -> str:
    """ISO `YYYY-MM-DD` when the text is a real date, otherwise the text itself (NFKC)."""
    reading = parse_date(raw)
    return reading.iso if reading.iso else text(raw)


# --------------------------------------------------------------------------------- per field kind

_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_SHAPE = re.compile(r"^[0-9][0-9-]{8,}[0-9]")
_POSTAL_SHAPE = re.compile(r"^\d{3}-\d{4}$")
_KANA_SHAPE = re.compile(r"^[\u3041-\u309f\u30fc ・]+$")


def normalise(kind: str, raw: str | None) -> Normalised:
    """The canonical value of a text field of `kind`, and whether it has that kind's shape.

    The shape check is deliberately loose: it catches reading accidents (a date that is not a date,
    an e-mail without @) so they are reviewed; the registration rules (validators/) judge validity.
    """
    if kind == "email":
        v = email(raw)
        ok = not v or bool(_EMAIL_SHAPE.match(v))
        return Normalised(v, ok, "" if ok else "メールアドレスの形になっていません")
    if kind == "phone":
        v = phone(raw)
        ok = not v or bool(_PHONE_SHAPE.match(v))
        return Normalised(v, ok, "" if ok else "電話番号の形になっていません")
    if kind == "postal_code":
        v = postal_code(raw)
        ok = not v or bool(_POSTAL_SHAPE.match(v))
        return Normalised(v, ok, "" if ok else "郵便番号の形（NNN-NNNN）になっていません")
    if kind == "date":
        if not text(raw):
            return Normalised("")
        reading = parse_date(raw)
        if reading.iso:
            return Normalised(reading.iso)
        return Normalised(text(raw), False, reading.problem)
    if kind == "kana":
        v = text(raw)
        ok = not v or bool(_KANA_SHAPE.match(kana(v)))
        return Normalised(v, ok, "" if ok else "ふりがなにかな以外の文字があります")
    return Normalised(text(raw))


def searchable(value: str | None) -> str:
    """How the registry search compares: NFKC, no white space, katakana as hiragana, lower case, so that
    「ﾔﾏﾀﾞ ﾊﾅｺ」, 「やまだはなこ」 and 「ヤマダ　ハナコ」 are one, and so are 「ＹＡＭＡＤＡ@」 and 「yamada@」."""
    return compact(kana(value)).lower()


def search_key(*values: str | None) -> str:
    """The stored search text of a registry row: its values made `searchable`, one a line (a query
    has no white space left, so it never matches across two values)."""
    return "\n".join(searchable(v) for v in values)


def comparable(kind: str, value: str | None) -> str:
    """The key under which two values of `kind` count as the same (phones by digits, etc.)."""
    if kind in ("phone", "postal_code"):
        return digits(value)
    if kind == "email":
        return compact(value).lower()
    if kind == "kana":
        return compact(kana(value))
    if kind == "date":
        return date(value)
    return compact(value)
