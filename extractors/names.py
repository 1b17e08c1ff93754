"""Japanese personal names: which readings of a name box are names at all.

Handwriting on a fax is where Tesseract fails most, and its failures on names are other kanji
(吉田悠斗 read as 吉田悠半, 佐藤亮 as 佐藤完, 渡辺直美 as 渡辺中表). Of the dozen readings of a box,
one that is a surname followed by a given name is more likely the name than one that is not. The
names and their readings come from the IPA dictionary that MeCab uses (Debian `mecab-ipadic`,
`Noun.name.csv`: about 12,000 surnames and 18,000 given names). It dates from 2007: a newer given
name (悠斗) is not in it, so knowing a name only weighs in the vote (reading.toml `[names]`) and is
evidence for the confidence model; it never replaces a reading.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from renraku import normalize
from renraku.errors import ConfigError

PACKAGE = "mecab-ipadic"


@dataclass(frozen=True)
class NameLexicon:
    surnames: dict[str, frozenset[str]]  # written name: its readings in hiragana
    given: dict[str, frozenset[str]]
    surname_kana: frozenset[str]  # every reading in hiragana
    given_kana: frozenset[str]

    @staticmethod
    def _split(text: str, first: Collection[str], second: Collection[str]) -> bool:
        return any(text[:i] in first and text[i:] in second for i in range(1, len(text)))

    def knows(self, name: str) -> bool:
        """A surname followed by a given name (spaces ignored: 高橋 翔太, 高橋翔太)."""
        return self._split(normalize.compact(name), self.surnames, self.given)

    def knows_kana(self, kana: str) -> bool:
        """The reading of a surname followed by the reading of a given name (たかはし しょうた)."""
        return self._split(normalize.compact(normalize.kana(kana)), self.surname_kana, self.given_kana)

    def cut(self, name: str, kana: str) -> tuple[int, int] | None:
        """Where a name and its kana, both written without a space, part into family and given name:
        the cut at which one side is a name of the dictionary read as its side of the kana, the
        longest such name deciding (池田売 / いけだりょう: 池田 is read いけだ, so 2, 3; 池 is いけ too,
        but shorter). None when there is no such cut, or two as long."""
        text, sound = normalize.compact(name), normalize.compact(normalize.kana(kana))
        cuts: dict[tuple[int, int], int] = {}
        for i in range(1, len(text)):
            for j in range(1, len(sound)):
                if sound[:j] in self.surnames.get(text[:i], ()):
                    cuts[(i, j)] = max(cuts.get((i, j), 0), i)
                if sound[j:] in self.given.get(text[i:], ()):
                    cuts[(i, j)] = max(cuts.get((i, j), 0), len(text) - i)
        longest = max(cuts.values(), default=0)
        best = [c for c, n in cuts.items() if n == longest]
        return best[0] if len(best) == 1 else None

    def readings(self, name: str) -> set[str]:
        """How a known name is read, family and given name apart (阿部沙織: あべ さおり); none when
        the name is not a surname followed by a given name of the dictionary."""
        text = normalize.compact(name)
        return {f"{a} {b}" for i in range(1, len(text)) if text[:i] in self.surnames and text[i:] in self.given
                for a in self.surnames[text[:i]] for b in self.given[text[i:]]}


def check(path: str) -> str:
    """A configured dictionary path that exists ("" for none); a ConfigError naming the package."""
    if path and not Path(path).is_file():
        raise ConfigError(f"name dictionary {path} is missing (Debian package {PACKAGE}); "
                          "set [names] lexicon = \"\" in reading.toml to read names without it")
    return path


def configured(config: dict[str, Any]) -> NameLexicon | None:
    """The dictionary reading.toml's `[names] lexicon` names, loaded (once); None when it names none."""
    path = check(str(config.get("names", {}).get("lexicon", "")))
    return load(path) if path else None


@lru_cache(maxsize=2)
def load(path: str) -> NameLexicon:
    """The names of MeCab's IPA dictionary file `Noun.name.csv` (EUC-JP, as Debian ships it)."""
    file = Path(check(path))
    sets: dict[str, dict[str, set[str]]] = {"姓": defaultdict(set), "名": defaultdict(set)}
    with file.open(encoding="euc-jp", errors="replace", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) > 11 and row[7] in sets:  # surface, ids, cost, 名詞,固有名詞,人名,姓|名, …, reading
                sets[row[7]][row[0]].add(normalize.kana(row[11]))
    surnames, given = ({k: frozenset(v) for k, v in sets[part].items()} for part in ("姓", "名"))
    return NameLexicon(surnames, given, frozenset().union(*surnames.values()), frozenset().union(*given.values()))
