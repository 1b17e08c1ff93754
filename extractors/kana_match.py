"""Whether a name written in kanji can be read as a kana reading, and how to spell it so that it is.

A sheet says a name twice, in its box and in its kana box, read independently; a facility's name
has its kana on the application. Readings of kanji come from pykakasi's dictionary (every reading
of a word or a single kanji, so 名前 such as 修 = おさむ are found), matched against the kana with
the usual sound changes (voicing inside a word, a glottal stop).
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import os
import re
import struct
import tempfile
import threading
import unicodedata
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from renraku import normalize
from renraku.extractors import glyphs

_VOICED = str.maketrans("かきくけこさしすせそたちつてとはひふへほ", "がぎぐげござじずぜぞだぢづでどばびぶべぼ")


_SEMI = str.maketrans("はひふへほ", "ぱぴぷぺぽ")


_UNVOICED = str.maketrans("がぎぐげござじずぜぞだぢづでどばびぶべぼぱぴぷぺぽ",
                          "かきくけこさしすせそたちつてとはひふへほはひふへほ")


_IGNORED = re.compile(r"[\s・･、,.．。()（）「」\-‐－]")

log = logging.getLogger(__name__)

_I = TypeVar("_I", bound="_Index")


class _Index:
    """Sorted (key, value) strings kept as one string and the offsets of its pairs, found by
    bisection: a dict of a few hundred thousand small strings, lists and tuples held ten times as
    much (and its freed pieces stay with Python's allocator)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        parts, starts, at = [], array("I"), 0
        for key, value in sorted(pairs):
            starts.append(at)
            parts.append(f"{key}\x1f{value}\x1e")
            at += len(parts[-1])
        starts.append(at)
        self._text, self._starts = "".join(parts), starts

    def __len__(self) -> int:
        return len(self._starts) - 1

    def _key(self, i: int) -> str:
        start = self._starts[i]
        return self._text[start:self._text.index("\x1f", start)]

    def value(self, key: str) -> str | None:
        i = bisect.bisect_left(range(len(self)), key, key=self._key)
        if i == len(self) or self._key(i) != key:
            return None
        return self._text[self._starts[i] + len(key) + 1:self._starts[i + 1] - 1]

    def items(self) -> Iterator[tuple[str, str]]:
        for i in range(len(self)):
            key = self._key(i)
            yield key, self._text[self._starts[i] + len(key) + 1:self._starts[i + 1] - 1]

    _MAGIC = b"renraku-index-1\n"

    def dump(self, path: Path) -> None:
        """Write it for `load`, whole or not at all (renamed into place): processes may race."""
        text = self._text.encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._MAGIC + struct.pack("<QQ", len(self._starts), len(text)))
                fh.write(self._starts.tobytes())
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    @classmethod
    def load(cls: type[_I], path: Path) -> _I:
        """What `dump` wrote; ValueError for anything else (a file cut short, another version)."""
        data = path.read_bytes()
        head = len(cls._MAGIC) + 16
        if not data.startswith(cls._MAGIC) or len(data) < head:
            raise ValueError(f"not an index: {path}")
        n, size = struct.unpack_from("<QQ", data, len(cls._MAGIC))
        starts = array("I")
        if len(data) != head + n * starts.itemsize + size:
            raise ValueError(f"an index cut short: {path}")
        starts.frombytes(data[head:head + n * starts.itemsize])
        index = cls.__new__(cls)
        index._text, index._starts = data[head + n * starts.itemsize:].decode(), starts
        return index


class _Kanwa(_Index):
    """pykakasi's dictionary of words by their first character (270,000 words and their readings,
    each with the endings it needs), as an `_Index`: loaded as pykakasi keeps it, a dict of dicts of
    lists of tuples, it held about 100 MB. `get` gives what pykakasi's table gives, so that its
    converter reads through it too. Words are split by \\n, a word and its readings by \\t, a
    reading and its endings by \\x1d, the endings by \\x1c."""

    def __init__(self, table: dict[int, dict[str, list[tuple[str, list[str] | None]]]]) -> None:
        def line(word: str, entries: list[tuple[str, list[str] | None]]) -> str:
            return "\t".join([word, *(yomi if cond is None else f"{yomi}\x1d{chr(0x1c).join(cond)}"
                                     for yomi, cond in entries)])

        super().__init__((chr(first), "\n".join(line(*item) for item in words.items()))
                         for first, words in table.items())

    @staticmethod
    def decode(value: str) -> dict[str, list[tuple[str, list[str] | None]]]:
        out = {}
        for line in value.split("\n"):
            word, *entries = line.split("\t")
            out[word] = [(yomi, cond.split("\x1c") if mark else None)
                         for yomi, mark, cond in (e.partition("\x1d") for e in entries)]
        return out

    def get(self, first: int, default: Any = None) -> Any:
        value = self.value(chr(first))
        return default if value is None else self.decode(value)


_KANWA_LOCK = threading.Lock()


def _kanwa() -> _Kanwa:
    """The dictionary, loaded once and put in place of pykakasi's own table (pykakasi shares it
    between its instances, `Kanwa._shared_state`): the converter then reads the same words."""
    from pykakasi.kanji import Kanwa

    state = Kanwa._shared_state
    with _KANWA_LOCK:
        table = state["_jisyo_table"]
        if not isinstance(table, _Kanwa):
            state["_jisyo_table"] = (_cached(_Kanwa, "kanwa", lambda: _Kanwa(Kanwa()._jisyo_table)) if table is None
                                     else _Kanwa(table))
        return state["_jisyo_table"]


def _cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "renraku"


def _cache_key() -> str:
    """Changes with pykakasi's dictionary file and with this module (which builds the indexes)."""
    from pykakasi.properties import Configurations

    source = Path(Configurations.dictpath(Configurations.jisyo_kanwa)).stat()
    own = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return hashlib.sha256(f"{source.st_size}:{source.st_mtime_ns}:{own}".encode()).hexdigest()[:16]


def _cached(cls: type[_I], name: str, build: Any) -> _I:
    """An index built once for this machine and kept in the user's cache folder: building it from
    pykakasi's dictionary takes 2.5 s of CPU and 150 MB for a moment in every process that reads
    (each `renraku process`), loading it 20 ms. Built in memory when the folder cannot be written."""
    path = _cache_dir() / f"{name}-{_cache_key()}.idx"
    try:
        return cls.load(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        log.warning("the dictionary cache %s could not be read; building it again", path.name)
    index = build()
    try:
        index.dump(path)
    except OSError as exc:
        log.info("the dictionary cache could not be written (%s); it is built in each process", exc.strerror)
    return index


@lru_cache(maxsize=4096)
def _words(char: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Dictionary words starting with `char`, each with all its readings."""
    table = _kanwa().get(ord(char)) or {}
    return tuple((word, tuple(dict.fromkeys(yomi for yomi, _cond in entries))) for word, entries in table.items())


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


def unheard(written: str, kana: str) -> Iterator[str]:
    """The kana with a voicing mark or small っ taken away that still reads as `written`: the name
    cannot vouch for that mark. 子 is こ and, in 団子, ご: a speck by the こ of はなこ makes はなご,
    which 花子 seems to allow; 松 is まつ and まっ, so まっもと passed for 松本."""
    for i, ch in enumerate(kana):
        plain = "つ" if ch == "っ" else ch.translate(_UNVOICED)
        if plain != ch and reads_as(written, kana[:i] + plain + kana[i + 1:]):
            yield kana[:i] + plain + kana[i + 1:]


_MARKED = {ch: base for base in "かきくけこさしすせそたちつてとはひふへほ"
           for ch in (base, base.translate(_VOICED), base.translate(_SEMI))}


def marks_differ(written: str, kana: str) -> bool:
    """Whether a voicing mark put on, taken off or changed in one place of the kana makes it read as
    `written` (ゆすは for 柚葉, けあぶらん for ケアプラン): then the kana may be the one misread."""
    for i, ch in enumerate(kana):
        base = _MARKED.get(ch)
        if base is None:
            continue
        for other in {base, base.translate(_VOICED), base.translate(_SEMI)} - {ch}:
            if reads_as(written, kana[:i] + other + kana[i + 1:]):
                return True
    return False


def marks_unheard(written: str, kana: str) -> bool:
    """Whether the name cannot vouch for some voicing mark or small っ of the kana (`unheard`)."""
    return any(True for _ in unheard(written, kana))


# A kanji found in fewer dictionary words than this is too rare to be proposed for a misread one
# (靉 in 4 words, 邊 in 26; 亮 in 87, 翔 in 110): a name written with one is left for a person.
COMMON_KANJI_WORDS = 30


@lru_cache(maxsize=1)
def _spellings() -> _Index:
    """Every dictionary word of up to four everyday characters, by its reading (words split by \\t):
    how a part of a name can be written."""
    return _cached(_Index, "spellings", _build_spellings)


def _build_spellings() -> _Index:
    uses: dict[str, int] = defaultdict(int)
    for _first, words in _kanwa().items():
        for line in words.split("\n"):
            for ch in set(line.split("\t", 1)[0]):
                uses[ch] += 1
    out: dict[str, set[str]] = defaultdict(set)
    for _first, words in _kanwa().items():
        for word, entries in _Kanwa.decode(words).items():
            if len(word) <= 4 and all(uses[ch] >= COMMON_KANJI_WORDS or not normalize.is_kanji(ch) for ch in word):
                for yomi, _cond in entries:
                    out[yomi].add(word)
    return _Index((yomi, "\t".join(sorted(words))) for yomi, words in out.items())


def _spelt(sound: str) -> list[str]:
    words = _spellings().value(sound)
    return words.split("\t") if words else []


def spell_as_kana(written: str, kana: str, match: glyphs.Match = glyphs.USUAL) -> str | None:
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
        candidates = [w for w in _spelt(sound) if len(w) == len(part)
                      and 2 * sum(a == b for a, b in zip(w, part, strict=True)) >= len(part) - (len(part) == 1)]
        found = match.best(part, candidates)
        if found is None:
            return None
        out.append(found[0])
    spelt = joiner.join(out)
    return spelt if spelt != joiner.join(p for p, _s in pairs) else None


def facility_spelt_as_kana(written: str, kana: str, kinds: Iterable[str]) -> str | None:
    """A facility name ending in a known kind (…訪問看護ステーション) whose own part does not read
    as its share of the kana, spelt as `spell_as_kana` spells a name (若禁 with わかば → 若葉). None when the
    name has no known kind, the kana does not end in the kind's reading, or nothing stands out."""
    text, sound = normalize.compact(written), normalize.compact(normalize.kana(kana))
    kind = next((k for k in sorted(kinds, key=len, reverse=True) if text.endswith(k) and len(text) > len(k)), None)
    if kind is None:
        return None
    cuts = [j for j in range(1, len(sound)) if reads_as(kind, sound[j:])]
    if len(cuts) != 1:
        return None
    spelt = spell_as_kana(f"{text[:-len(kind)]} {kind}", f"{sound[:cuts[0]]} {sound[cuts[0]:]}")
    return spelt.replace(" ", "") if spelt else None


@lru_cache(maxsize=1)
def converter() -> Any:
    from pykakasi import kakasi

    _kanwa()  # pykakasi's own table would be loaded otherwise
    return kakasi()


@lru_cache(maxsize=256)
def _reading_of(word: str) -> str:
    """How a word of the vocabulary is read, in hiragana (pykakasi: 居宅介護支援事業所 → きょたく…)."""
    return "".join(item["hira"] for item in converter().convert(word))


def _katakana(hiragana: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in hiragana)


@lru_cache(maxsize=4096)
def kana_with_kind_reading(kana: str, kinds: tuple[str, ...], least: float) -> str | None:
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


def warm() -> None:
    """Load the dictionaries the first comparison needs (about 1.2 s) ahead of it."""
    _spellings()
    converter()
