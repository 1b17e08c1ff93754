"""A second value source for the generator: values from lists the reader does not hold.

The usual generator invents values from the same small lists the reader was tuned on, so a
benchmark on its sets measures the reader on its own mirror. `WideValues` invents facilities of
every kind (眼科医院, 社会福祉協議会, 市役所, names that end in no kind), addresses of every Tochigi
municipality with 大字/字/番地/丁目/buildings and floors, people whose names MeCab's dictionary does
not hold, and mail addresses whose local parts carry dots, underscores, hyphens and digits anywhere,
at domains no vocabulary lists. The lists are data in samples/values/*.toml.

`out_of_lists` says, for each field of a filled sheet, whether its value is outside every list
the reader holds (vocabulary.toml, rules.toml, MeCab's names, the usual generator's lists), and
why: degrade.py writes that into truth.jsonl, bench/run.py reports the two sides apart.
"""

from __future__ import annotations

import csv
import random
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from renraku import normalize
from renraku.config import PACKAGE_DIR
from renraku.samples import generator as usual
from renraku.samples.generator import Facility, Person
from renraku.validators import RULES_FILE

VALUES_DIR = PACKAGE_DIR / "samples" / "values"
VOCABULARY_FILE = PACKAGE_DIR / "extractors" / "vocabulary.toml"  # the reader's lists, read as data
NAME_DICTIONARY = Path("/usr/share/mecab/dic/ipadic/Noun.name.csv")  # Debian mecab-ipadic, as reading.toml


@cache
def data(name: str) -> dict[str, Any]:
    """One data file of samples/values (facilities, tochigi, people, mail, fonts)."""
    with open(VALUES_DIR / f"{name}.toml", "rb") as fh:
        return tomllib.load(fh)


# ------------------------------------------------------------------------------- romaji

_DIGRAPHS = {"きゃ": "kya", "きゅ": "kyu", "きょ": "kyo", "しゃ": "sha", "しゅ": "shu", "しょ": "sho", "ちゃ": "cha",
             "ちゅ": "chu", "ちょ": "cho", "にゃ": "nya", "にゅ": "nyu", "にょ": "nyo", "ひゃ": "hya", "ひゅ": "hyu",
             "ひょ": "hyo", "みゃ": "mya", "みゅ": "myu", "みょ": "myo", "りゃ": "rya", "りゅ": "ryu", "りょ": "ryo",
             "ぎゃ": "gya", "ぎゅ": "gyu", "ぎょ": "gyo", "じゃ": "ja", "じゅ": "ju", "じょ": "jo", "びゃ": "bya",
             "びゅ": "byu", "びょ": "byo", "ぴゃ": "pya", "ぴゅ": "pyu", "ぴょ": "pyo"}
_KANA = dict(zip(
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
    "がぎぐげござじずぜぞだぢづでどばびぶべぼぱぴぷぺぽ",
    re.findall(r"\S+", "a i u e o ka ki ku ke ko sa shi su se so ta chi tsu te to na ni nu ne no ha hi fu he ho ma "
               "mi mu me mo ya yu yo ra ri ru re ro wa o n ga gi gu ge go za ji zu ze zo da ji zu de do ba bi bu "
               "be bo pa pi pu pe po"), strict=True))


def romaji(kana: str, long: str = "drop") -> str:
    """Hepburn romaji of a hiragana reading, as people write it in mail addresses.

    long vowels: "drop" (sato, yuto: as the usual generator), "keep" (satou), "h" (satoh)."""
    kana = normalize.kana(kana).replace(" ", "")
    out, i = "", 0
    while i < len(kana):
        pair = kana[i:i + 2]
        if pair in _DIGRAPHS:
            out, i = out + _DIGRAPHS[pair], i + 2
            continue
        ch = kana[i]
        if ch == "っ" and i + 1 < len(kana):
            nxt = _DIGRAPHS.get(kana[i + 1:i + 3]) or _KANA.get(kana[i + 1], "")
            out += "t" if nxt.startswith("ch") else nxt[:1]
        elif ch == "ー":
            pass
        else:
            out += _KANA.get(ch, "")
        i += 1
    if long == "drop":
        out = re.sub(r"ou|oo", "o", out)
        out = re.sub(r"uu", "u", out)
    elif long == "h":
        out = re.sub(r"ou$", "oh", re.sub(r"ou(?=.)", "o", out))
    return out


# ------------------------------------------------------------------------------- the reader's lists

@dataclass(frozen=True)
class NameDictionary:
    """MeCab's IPA name dictionary, read on its own (not through the reader's code)."""

    surnames: dict[str, frozenset[str]]
    given: dict[str, frozenset[str]]
    surname_kana: frozenset[str]
    given_kana: frozenset[str]

    def _split(self, text: str, first: Any, second: Any) -> bool:
        return any(text[:i] in first and text[i:] in second for i in range(1, len(text)))

    def knows(self, name: str) -> bool:
        """The name parts into a surname and a given name of the dictionary (some way)."""
        return self._split(normalize.compact(name), self.surnames, self.given)

    def knows_kana(self, kana: str) -> bool:
        return self._split(normalize.compact(normalize.kana(kana)), self.surname_kana, self.given_kana)


@lru_cache(maxsize=2)
def name_dictionary(path: Path = NAME_DICTIONARY) -> NameDictionary:
    sets: dict[str, dict[str, set[str]]] = {"姓": {}, "名": {}}
    with open(path, encoding="euc-jp", errors="replace", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) > 11 and row[7] in sets:
                sets[row[7]].setdefault(row[0], set()).add(normalize.kana(row[11]))
    surnames, given = ({k: frozenset(v) for k, v in sets[p].items()} for p in ("姓", "名"))
    return NameDictionary(surnames, given, frozenset().union(*surnames.values()), frozenset().union(*given.values()))


@dataclass(frozen=True)
class ReaderLists:
    """Every list the reader (and the usual generator it was tuned on) holds, for labelling."""

    facility_suffixes: tuple[str, ...]
    kind_words: tuple[str, ...]  # every facility kind either source writes, longest first
    titles: frozenset[str]
    associations: frozenset[str]
    jobs: frozenset[str]
    mail_domains: frozenset[str]
    municipalities: tuple[str, ...]
    names: NameDictionary
    usual_names: frozenset[str]
    usual_kana: frozenset[str]
    usual_locals: frozenset[str]
    usual_domain: re.Pattern[str]
    usual_address: re.Pattern[str]


@lru_cache(maxsize=1)
def reader_lists() -> ReaderLists:
    with open(VOCABULARY_FILE, "rb") as fh:
        vocab = tomllib.load(fh)
    with open(RULES_FILE, "rb") as fh:
        rules = tomllib.load(fh)
    suffixes = tuple(vocab.get("facility_suffixes", []))
    kinds = {k["word"] for k in data("facilities")["kind"] if k["word"]} | {k[1] for k in usual.FACILITY_KINDS}
    romaji_places = "|".join(usual.place_kana_romaji(p[0]) for p in usual.PLACES)
    municipalities = [m for m in rules.get("area", {}).get("municipalities", []) if m[-1] in "市町"]
    municipalities += [d + t for d, ts in vocab.get("districts", {}).items() for t in ts]
    cities = "|".join(re.escape(c) for c, _a in usual.MUNICIPALITIES)
    towns = "|".join(re.escape(t) for t in usual.TOWNS)
    return ReaderLists(
        facility_suffixes=suffixes,
        kind_words=tuple(sorted(kinds | set(suffixes), key=len, reverse=True)),
        titles=frozenset(vocab.get("titles", [])),
        associations=frozenset(vocab.get("medical_associations", [])) | {""},
        jobs=frozenset(rules.get("jobs", {}).get("titles", [])),
        mail_domains=frozenset(vocab.get("mail_domains", [])) | frozenset(usual.FREE_MAIL),
        municipalities=tuple(sorted(set(municipalities), key=len, reverse=True)),
        names=name_dictionary(),
        usual_names=frozenset(s[0] + g[0] for s in usual.SURNAMES for g in usual.GIVEN),
        usual_kana=frozenset(s[1] + g[1] for s in usual.SURNAMES for g in usual.GIVEN),
        usual_locals=frozenset(f"{g[2]}.{s[2]}" for s in usual.SURNAMES for g in usual.GIVEN),
        usual_domain=re.compile(rf"^(?:{romaji_places})-\d\d\.example\.jp$"),
        usual_address=re.compile(rf"^栃木県(?:{cities})(?:{towns})\d+-\d+-\d+$"),
    )


def _list_of(path: str) -> str:
    """Which list a field's value is held against, by its path (staff[2].name: name)."""
    last = re.sub(r"^(staff|changes)\[\d+\]\.", "", path)
    if path.startswith("facility_type."):
        return "mark"
    if last in ("representative_name", "contact_name", "notifier_name", "name"):
        return "name"
    if last == "name_kana":
        return "kana"
    return "email" if last.endswith("email") else last


def facility_kind(name: str, lists: ReaderLists | None = None) -> str:
    """The kind word a facility name ends in (the longest either source knows), or ""."""
    lists = lists or reader_lists()
    text = normalize.compact(name)
    return next((w for w in lists.kind_words if text.endswith(w)), "")


def why_out(path: str, value: Any, truth: dict[str, Any], lists: ReaderLists | None = None) -> str:
    """Why a field's value is outside every list the reader holds; "" when it is inside one
    (or the field has no list: dates, phones, postal codes, marks, empty boxes)."""
    lists = lists or reader_lists()
    if not isinstance(value, str) or not value.strip():
        return ""
    kind = _list_of(path)
    text = normalize.compact(value)
    if kind == "facility_name":
        word = facility_kind(value, lists)
        if not word:
            return "ends in no facility kind of vocabulary.toml"
        if word not in lists.facility_suffixes:
            near = next((s for s in lists.facility_suffixes if text.endswith(s)), "")
            return f"kind {word} not in facility_suffixes" + (f" (its ending {near} is)" if near else "")
        return ""
    if kind == "facility_name_kana":
        name = truth.get("facility_name", "")
        return "reading of a facility name outside the lists" if name and why_out("facility_name", name, truth, lists) \
            else ""
    if kind == "facility_type_other":
        return "" if text in lists.facility_suffixes else "kind in no list"
    if kind == "address":
        if lists.usual_address.match(text):
            return ""
        return "town, block numbers or building in no list (municipalities are all in rules.toml)"
    if kind == "representative_title":
        return "" if text in lists.titles else "title not in vocabulary.toml titles"
    if kind == "medical_association":
        return "" if text in lists.associations else "association not in vocabulary.toml"
    if kind == "job":
        return "" if text in lists.jobs else "job not in rules.toml jobs"
    if kind == "name":
        if text in lists.usual_names or lists.names.knows(text):
            return ""
        return "no surname + given name of Noun.name.csv"
    if kind == "kana":
        if normalize.kana(text) in lists.usual_kana or lists.names.knows_kana(text):
            return ""
        return "reading of no surname + given name of Noun.name.csv"
    if kind == "email":
        local, _at, domain = text.lower().partition("@")
        reasons = []
        if local not in lists.usual_locals:
            reasons.append("local part not given.surname of the usual lists")
        if domain not in lists.mail_domains and not lists.usual_domain.match(domain):
            reasons.append("domain in no list")
        return "; ".join(reasons)
    return ""


def out_of_lists(truth: dict[str, Any], lists: ReaderLists | None = None) -> dict[str, str]:
    """The fields of a sheet whose value is outside every list the reader holds, with why."""
    lists = lists or reader_lists()
    out = {}
    for path, value in truth.items():
        why = why_out(path, value, truth, lists)
        if why:
            out[path] = why
    return out


# ------------------------------------------------------------------------------- the wide source

def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s).strip()


class WideValues:
    """Values from samples/values/*.toml: the value source `invent_set(values=WideValues())` takes."""

    name = "wide"

    def __init__(self) -> None:
        fac, places, people, mail = data("facilities"), data("tochigi"), data("people"), data("mail")
        self.kinds = fac["kind"]
        self.places = fac["place"]
        self.more_titles = fac["titles"]["more"]
        self.municipalities = places["municipality"]
        self.buildings = places["buildings"]
        self.aza = places["aza"]["names"]
        self.surnames = [tuple(s) for s in people["surnames"]]
        self.given = [tuple(g) for g in people["given"]]
        self.out_share = float(people["out_of_dictionary"])
        self.facility_domains = mail["facility_domains"]
        self.free_mail = mail["free_domains"]
        self.local_parts = mail["local_parts"]
        self._check()

    def _check(self) -> None:
        """Refuse a name the dictionary holds or one with a lookalike character: they would not be
        out of the reader's lists."""
        names = name_dictionary()
        with open(VOCABULARY_FILE, "rb") as fh:
            lookalikes = set("".join(tomllib.load(fh).get("name_lookalikes", [])))
        held = [s for s, _k in self.surnames if s in names.surnames] + [g for g, _k in self.given if g in names.given]
        alike = [n for n, _k in self.surnames + self.given if lookalikes & set(n)]
        if held or alike:
            raise ValueError(f"samples/values/people.toml: in the name dictionary {held}, lookalike characters {alike}")

    # -- facility
    def facility(self, rng: random.Random) -> Facility:
        kind = rng.choice(self.kinds)
        cities = [m for m in self.municipalities if not kind.get("cities") or m["name"].endswith(kind["cities"])]
        muni = rng.choice(cities)
        place = rng.choice(self.places)
        surname, surname_kana = rng.choice(self.surnames)
        city, city_kana = muni["name"][:-1], muni["kana"].removesuffix("し").removesuffix("まち")
        words = {"place": place["word"], "place_kana": place["kana"], "surname": surname,
                 "surname_kana": surname_kana, "city": city, "city_kana": city_kana,
                 "city_full": muni["name"], "city_full_kana": muni["kana"]}
        if "{place}" in kind["name"]:
            word = place["romaji"]
        elif "{surname}" in kind["name"]:
            word = romaji(surname_kana)
        else:
            word = romaji(city_kana)
        return Facility(kind["type"], kind["name"].format(**words), kind["kana"].format(**words),
                        list(kind["titles"]), list(kind["jobs"]), word, kind.get("other", ""), kind["slug"])

    def title(self, rng: random.Random, facility: Facility) -> str:
        return rng.choice(self.more_titles) if rng.random() < 0.3 else rng.choice(facility.titles)

    def association(self, rng: random.Random) -> str:
        return rng.choice(usual.ASSOCIATIONS)

    # -- address
    def _number(self, rng: random.Random, n: int) -> str:
        return "一二三四五六七八九"[n - 1] if rng.random() < 0.3 and n < 10 else str(n)

    def address(self, rng: random.Random) -> tuple[str, str, str]:
        muni = rng.choice(self.municipalities)
        city = (muni.get("district", "") if rng.random() < 0.7 else "") + muni["name"]
        prefecture = "栃木県" if rng.random() < 0.85 else ""
        b, g = rng.randint(1, 3000), rng.randint(1, 30)
        towns, oaza = muni["towns"], muni["oaza"]
        style = rng.choice(["chome", "chome_dash", "town_dash", "banchi", "oaza", "oaza_aza", "oaza_dash"])
        if not towns or (style.startswith("oaza") and oaza):
            place = rng.choice(oaza)
            place = place if place.startswith("大字") or rng.random() < 0.5 else f"大字{place}"
            local = {"oaza": f"{place}{b}番地", "oaza_aza": f"{place}字{rng.choice(self.aza)}{b}",
                     "oaza_dash": f"{place}{b}-{g}"}.get(style, f"{place}{b}番地{g}")
        else:
            town = rng.choice(towns)
            c, ban = self._number(rng, rng.randint(1, 6)), rng.randint(1, 40)
            local = {"chome": f"{town}{c}丁目{ban}番{g}号", "chome_dash": f"{town}{c}丁目{ban}-{g}",
                     "town_dash": f"{town}{ban}-{g}", "banchi": f"{town}{b}番地{g}"}.get(style, f"{town}{ban}-{g}")
        if rng.random() < 0.35:
            building = rng.choice(self.buildings["names"])
            if rng.random() < 0.5:
                building = rng.choice(self.places)["word"] + building
            floor = rng.choice(self.buildings["floors"]).format(n=rng.randint(1, 5), m=rng.randint(1, 9))
            local += f" {building}{floor}"
        postal = f"{rng.choice(muni['postal'])}-{rng.randint(0, 9999):04d}"
        return _nfkc(prefecture + city + local), muni["area"], postal

    def area(self, rng: random.Random) -> str:
        return rng.choice(self.municipalities)["area"]

    # -- people and mail
    def domain(self, rng: random.Random, facility: Facility) -> str:
        pattern = rng.choice(self.facility_domains)
        return pattern.format(place=facility.romaji, slug=facility.slug, nn=f"{rng.randint(0, 99):02d}")

    def person(self, rng: random.Random, spaced: bool) -> Person:
        if rng.random() < self.out_share:
            for _ in range(20):
                (s, sk), (g, gk) = rng.choice(self.surnames), rng.choice(self.given)
                if not name_dictionary().knows(s + g):
                    break
        else:
            s0, g0 = rng.choice(usual.SURNAMES), rng.choice(usual.GIVEN)
            (s, sk), (g, gk) = s0[:2], g0[:2]
        long = rng.choice(["drop", "drop", "keep", "h"])
        sr, gr = romaji(sk, long), romaji(gk, long)
        local = rng.choice(self.local_parts).format(
            g=gr, s=sr, gi=gr[0], si=sr[0], n=rng.randint(0, 9), nn=f"{rng.randint(0, 99):02d}",
            yy=f"{rng.randint(60, 99) if rng.random() < 0.5 else rng.randint(0, 9):02d}")
        sep = " " if spaced else ""
        return Person(f"{s}{sep}{g}", f"{sk} {gk}", local)


def value_source(name: str) -> Any:
    """The value source called `name`: usual (the generator's own lists) or wide."""
    if name == "usual":
        return usual.USUAL
    if name == "wide":
        return _wide()
    raise ValueError(f"values are usual or wide, not {name!r}")


@lru_cache(maxsize=1)
def _wide() -> WideValues:
    return WideValues()


def font_files(style: str, split: str) -> dict[str, str]:
    """The installed fonts of a style (typed | hand) in a family split (fit | heldout | all), by
    name (samples/values/fonts.toml): what degrade.py --fonts chooses from."""
    table = data("fonts")[style]
    groups = ["fit", "heldout"] if split == "all" else [split]
    if any(g not in table for g in groups):
        raise ValueError(f"fonts are fit, heldout or all, not {split!r}")
    entries = {name: f for g in groups for name, f in table[g].items()}
    found = {name: f["file"] for name, f in entries.items() if Path(f["file"]).exists()}
    if not found:
        packages = " ".join(f["package"] for f in entries.values())
        raise RuntimeError(f"no {split} {style} font installed: apt-get install {packages}")
    return found
