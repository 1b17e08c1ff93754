"""The name dictionary: a known name weighs in the vote over a box's readings, never replaces one."""

from __future__ import annotations

import pytest

from renraku.config import Settings
from renraku.errors import ConfigError
from renraku.extractors import names, ocr
from renraku.extractors.fields import reading_config
from renraku.extractors.image_reader import ImageReader, vocabulary


def _reader(templates, **names_config) -> ImageReader:
    config = reading_config(Settings().reading_config)
    config = {**config, "names": {**config["names"], **names_config}}
    staff = next(t for t in templates if t.form_id == "staff_registration")
    return ImageReader(staff, config, vocabulary())


def _vote(reader: ImageReader, path: str, *texts: str) -> tuple[str, bool]:
    reading = reader._text(reader.specs[path], [ocr.Reading(t, [ocr.Word(t, 80, (0, 0, 10, 10))]) for t in texts],
                           True, "fax_standard")
    return str(reading.value), reading.evidence.known_name


def test_the_debian_name_dictionary_knows_surname_and_given_name_with_their_readings() -> None:
    lexicon = names.load(reading_config(Settings().reading_config)["names"]["lexicon"])
    assert lexicon.knows("佐藤 亮") and lexicon.knows("渡辺直美")
    assert not lexicon.knows("騰口純子") and not lexicon.knows("渡辺中表")  # Tesseract's misreadings
    assert lexicon.knows_kana("さとう りょう") and lexicon.knows_kana("ワタナベナオミ")
    assert not lexicon.knows_kana("ちゅうおうびょういん")


def test_a_known_name_outvotes_a_more_frequent_misreading_but_not_a_clear_majority(templates) -> None:
    reader = _reader(templates)
    misread = ["騰口純子"] * 3 + ["関口純子"] * 2
    assert _vote(reader, "staff[1].name", *misread) == ("関口純子", True)
    # 辺 looks like 邊: 渡辺 and 渡邊 are both known, so knowing it weighs in the vote but is no evidence
    assert _vote(reader, "staff[1].name", *["渡辺中表"] * 3, *["渡辺直美"] * 2) == ("渡辺直美", False)
    kana = ["わたなべなおい"] * 2 + ["わたなべなおみ"]
    assert _vote(reader, "staff[1].name_kana", *kana) == ("わたなべなおみ", True)
    # 悠斗 is newer than the dictionary: read the same by most readings, it stays
    assert _vote(reader, "staff[1].name", "高橋悠斗", "高橋悠斗", "高橋悠斗", "高橋悠二") == ("高橋悠斗", False)
    without = _reader(templates, lexicon="")
    assert _vote(without, "staff[1].name", *misread) == ("騰口純子", False)


def test_a_configured_dictionary_that_is_missing_names_its_package(templates, tmp_path) -> None:
    with pytest.raises(ConfigError, match="mecab-ipadic"):
        _reader(templates, lexicon=str(tmp_path / "Noun.name.csv"))
