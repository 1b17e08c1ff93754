"""The kanji dictionary kept compact (issue 20: ~100 MB as pykakasi keeps it) gives the same words."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
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


def _fresh_process(code: str, cache: Path) -> str:
    env = {"XDG_CACHE_HOME": str(cache), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout


READ = ("from renraku.extractors import kana_match as k\n"
        "print(k.spell_as_kana('閲口 奈々', 'せきぐち なな'), k.reads_as('高橋', 'たかはし'),"
        " len(k._spelt('たかはし')))")
NEVER_PICKLE = "import pickle\ndef refused(*a, **k): raise AssertionError('unpickled')\npickle.load = refused\n" + READ


def test_the_dictionary_indexes_are_built_once_and_then_read_from_the_cache(tmp_path: Path) -> None:
    """Every `renraku process` would otherwise spend 2.5 s of CPU building them again."""
    built = _fresh_process(READ, tmp_path)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "renraku").iterdir()) == ["kanwa", "spellings"]
    # a second process finds the same words without pykakasi's own table ever being unpickled
    assert _fresh_process(NEVER_PICKLE, tmp_path) == built and built.startswith("関口 奈々 True")


def test_an_index_read_back_holds_every_word(tmp_path: Path) -> None:
    kanwa, spellings = kana_match._kanwa(), kana_match._spellings()
    kanwa.dump(tmp_path / "k.idx")
    spellings.dump(tmp_path / "s.idx")
    again = kana_match._Kanwa.load(tmp_path / "k.idx")
    assert list(again.items()) == list(kanwa.items()) and again.get(ord("高")) == kanwa.get(ord("高"))
    assert list(kana_match._Index.load(tmp_path / "s.idx").items()) == list(spellings.items())


def test_a_damaged_cache_is_built_again_and_an_unwritable_one_only_costs_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = tmp_path / "renraku" / f"spellings-{kana_match._cache_key()}.idx"
    kana_match._spellings().dump(path)
    path.write_bytes(path.read_bytes()[:-10])  # cut short, as by a full disk without the rename
    with caplog.at_level(logging.WARNING):
        again = kana_match._cached(kana_match._Index, "spellings", kana_match._build_spellings)
    assert "could not be read" in caplog.text and list(again.items()) == list(kana_match._spellings().items())
    assert kana_match._Index.load(path).value("たかはし") == kana_match._spellings().value("たかはし")  # rewritten

    (tmp_path / "a-file").write_text("")  # no folder can be made under it, not even by root
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file" / "cache"))
    built = kana_match._cached(kana_match._Index, "spellings", lambda: kana_match._Index([("か", "下")]))
    assert built.value("か") == "下"


def test_a_kana_one_voicing_mark_from_the_name_s_reading() -> None:
    assert kana_match.marks_differ("上吉原 柚葉", "かみよしはら ゆすは")  # ず read す
    assert kana_match.marks_differ("そよかぜケアプランセンター", "そよかぜけあぶらんせんたー")  # ぷ read ぶ
    assert not kana_match.marks_differ("越雲結閉", "こしくも ゆいと")  # more than a mark apart
