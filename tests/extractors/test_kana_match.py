"""The kanji dictionary kept compact (issue 20: ~100 MB as pykakasi keeps it) gives the same words."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections import Counter

from pykakasi.properties import Configurations

from renraku import normalize
from renraku.extractors import kana_match


def _pykakasi_table() -> dict:
    with open(Configurations.dictpath(Configurations.jisyo_kanwa), "rb") as fh:
        return pickle.load(fh)


def test_every_word_and_reading_of_pykakasis_dictionary_is_found_as_it_gives_it() -> None:
    table, kanwa = _pykakasi_table(), kana_match._kanwa()
    assert len(kanwa) == len(table)
    assert all(kanwa.get(first) == words for first, words in table.items())
    assert kanwa.get(ord("a")) is None and kanwa.get(ord("a"), {}) == {}


def test_a_name_part_is_spelt_with_every_everyday_word_of_its_reading() -> None:
    table = _pykakasi_table()
    uses: Counter[str] = Counter(ch for words in table.values() for word in words for ch in set(word))

    def everyday(word: str) -> bool:
        return len(word) <= 4 and all(uses[ch] >= kana_match.COMMON_KANJI_WORDS or not normalize.is_kanji(ch)
                                      for ch in word)

    for sound in ("たかはし", "さとう", "ゆうと", "せきぐち"):
        meant = sorted({word for words in table.values() for word, entries in words.items()
                        if everyday(word) and any(yomi == sound for yomi, _cond in entries)})
        assert kana_match._spelt(sound) == meant and "高橋" in kana_match._spelt("たかはし")
    assert kana_match._spelt("ぬぬぬぬぬぬ") == []


CONVERT = "import json; from {mod} import {name}; c = {name}(); print(json.dumps([c.convert(t) for t in {texts!r}]))"
TEXTS = ["居宅介護支援事業所", "訪問看護ステーション", "高橋 翔太", "宇都宮市中央本町", "さとう ゆうと", "ｻﾄｳ"]


def test_pykakasis_converter_reads_the_same_through_the_compact_dictionary() -> None:
    def convert(mod: str, name: str) -> str:
        code = CONVERT.format(mod=mod, name=name, texts=TEXTS)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert convert("renraku.extractors.kana_match", "converter") == convert("pykakasi", "kakasi")
