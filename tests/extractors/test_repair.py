"""What OCR text means for each kind of field: the slips Tesseract makes, mended and reported."""

from __future__ import annotations

import pytest

from renraku.extractors import notes, repair
from renraku.extractors.image_reader import vocabulary


@pytest.mark.parametrize(("read", "meant"), [
    ("鈴木 浩ニ", "鈴木 浩二"),   # katakana ニ beside a kanji is the kanji 二
    ("佐藤 健ー", "佐藤 健一"),   # the long vowel mark after a kanji is 一
    ("田ロ 花子", "田口 花子"),
    ("マリア ロペス", "マリア ロペス"),  # a katakana name keeps its katakana
    ("山田 ハナ", "山田 ハナ"),
    ("木村 拓や", "木村 拓也"),   # a hiragana ending a name after a kanji is the kanji it comes from
    ("田中 さや", "田中 さや"),   # a hiragana name keeps its hiragana
    ("小野 彩の", "小野 彩乃"),
])
def test_katakana_that_stand_for_kanji_in_a_name(read: str, meant: str) -> None:
    fixed = repair.person_name(read)
    assert fixed.value == meant
    assert ("lookalike" in fixed.repairs) == (read != meant)  # a repair is never silent


def test_rule_dashes_at_the_end_of_an_address_go() -> None:
    for dashes in ("ーー", "──", "−−", "--"):
        assert repair.address(f"栃木県栃木市桜通り4-25-12 {dashes}", []).value == "栃木県栃木市桜通り4-25-12"


def test_a_dash_between_the_numbers_of_an_address_read_as_a_letter_is_a_dash() -> None:
    mended = repair.address("栃木県佐野市本町2-2r11", [])
    assert mended.value == "栃木県佐野市本町2-2-11" and mended.repairs  # counted as a repair
    assert repair.address("栃木県佐野市本町2-2-11 Aビル3F", []).value == "栃木県佐野市本町2-2-11 Aビル3F"


def test_kinds_with_a_shape() -> None:
    words = vocabulary()
    assert repair.phone("O285-34-3728").value == "0285-34-3728"
    mail = repair.email("tsubasa_ota82＠gmail。com", words["mail_domains"], words["top_domains"])
    assert mail.value == "tsubasa_ota82@gmail.com" and mail.repairs
    speck = repair.email("yumi.kato@mobile.example.ne.jp my", words["mail_domains"], words["top_domains"])
    assert speck.value == "yumi.kato@mobile.example.ne.jp" and speck.repairs == ["trim"]
    coarse = repair.email("junko,sato@himawari-81,example.jp ,", words["mail_domains"], words["top_domains"])
    assert coarse.value == "junko.sato@himawari-81.example.jp" and coarse.plausible  # a fax's dot is a comma
    rule = repair.email("_ tomomi.hashimoto@wakaba-89.example.jp -", words["mail_domains"], words["top_domains"])
    assert rule.value == "tomomi.hashimoto@wakaba-89.example.jp" and rule.repairs == ["trim"]
    job = repair.job("看護帥", words["jobs"])
    assert job.value == "看護師" and job.vocabulary_score < 1.0
    assert not repair.kana("ふじたAゆき").plausible  # a reading with a Latin letter is no kana


def test_a_slip_in_the_kind_of_facility_is_mended_at_either_end_of_the_name() -> None:
    suffixes = vocabulary()["facility_suffixes"]
    assert repair.with_suffix("あおば調剤薬屋", suffixes).value == "あおば調剤薬局"
    first = repair.with_suffix("訪問大 護ステーションやまゆり", suffixes)  # a blurred photo's 看
    assert first.value == "訪問看護ステーションやまゆり" and first.repairs == ["prefix"]
    assert repair.with_suffix("訪問和議ステーションやまゆり", suffixes).repairs == []  # two slips: left as read
    assert repair.with_suffix("やまゆり訪問看護ステーション", suffixes).repairs == []


def test_a_kind_of_facility_that_only_looks_like_one_is_put_in_for_a_person_to_check() -> None:
    suffixes = vocabulary()["facility_suffixes"]
    guessed = repair.with_suffix("さくら話間 看議ステーション", suffixes, 0.6)  # handwriting on a fax
    assert guessed.value == "さくら訪問看護ステーション" and guessed.repairs == ["kind"] and guessed.note
    assert repair.with_suffix("あおば調剤同", suffixes, 0.6).value == "あおば調剤薬局"
    assert repair.with_suffix("あおば顔市部局", suffixes, 0.6).value == "あおば顔市部局"  # too unlike
    for name in ("さくら薬局", "あおぞら在宅診療所", "ひまわり薬品"):  # kinds of their own, or none
        assert repair.with_suffix(name, suffixes, 0.6).repairs == []


def test_a_garbled_prefecture_and_municipality_are_put_in_for_a_person_to_check() -> None:
    places = vocabulary()["places"]
    guessed = repair.address("栃木市県下都斬郡王生町桜通り5-9-6", places, 0.7)
    assert guessed.value == "栃木県下都賀郡壬生町桜通り5-9-6" and guessed.note
    assert repair.address("栃木市県下都斬郡王生町桜通り5-9-6", places).value.startswith("栃木市県")  # off
    assert repair.address("群馬県太田市本町1-1", places, 0.7).value == "群馬県太田市本町1-1"  # another prefecture
    assert repair.address("栃木市本町1-1", places, 0.7).repairs == []
    slip = repair.address("栃木県宇都宮本町1-1", places, 0.7)  # one slip: mended as before, no note
    assert slip.value == "栃木県宇都宮市本町1-1" and not slip.note


def test_junk_dashes_and_specks_at_the_end_go_in_any_order() -> None:
    assert repair.person_name("佐藤 誠 ーー '").value == "佐藤 誠"
    assert repair.japanese_text("「 ひまわり居宅介護支援事業所 ーー '").value == "ひまわり居宅介護支援事業所"
    assert repair.kana("すずらんでいさーびすせんたー ーッ").value == "すずらんでいさーびすせんたー"


def test_a_lone_kana_letter_at_the_end_is_the_word_s_own_and_a_lone_mark_is_a_speck() -> None:
    kept = repair.japanese_text("かたくり訪問リハビリ テーショ ン")  # Tesseract set the last letter apart
    assert kept.value == "かたくり訪問リハビリ テーショ ン" and not kept.repairs
    assert repair.japanese_text("センター長 ・").value == "センター長"
    assert repair.japanese_text("矢板市役所 A").value == "矢板市役所"


def test_a_speck_standing_apart_at_the_start_or_between_kana_goes() -> None:
    assert repair.japanese_text("1 やまゆり病院").value == "やまゆり病院"
    assert repair.japanese_text("第1 ひまわり荘").value == "第1 ひまわり荘"  # not standing apart: kept
    assert repair.kana("きくち.けんいち").value == "きくち けんいち"
    assert repair.kana("ーやまだ たろう").value == "やまだ たろう"  # no word starts with a long vowel
    dash = repair.kana("ー")  # an empty box's stray stroke: nothing, not a reading
    assert dash.value == "" and not dash.plausible
    assert repair.kana("こーじ").value == "こーじ"


def test_a_kana_that_looks_the_same_in_the_other_script_takes_the_readings_script() -> None:
    assert repair.kana("もり リょう").value == "もり りょう"
    assert repair.kana("モリ りョウ").value == "モリ リョウ"
    assert repair.kana("もり リョウ").value == "もり リョウ"  # as many of each: a person decides


@pytest.mark.parametrize(("read", "meant"), [
    ("大謙師", "看護師"),              # 謙 looks like 護: plain edit distance saw one right character of three
    ("事務時", "事務職員"),
    ("介計支援直門上", "介護支援専門員"),
])
def test_a_misread_job_is_the_one_it_looks_like(read: str, meant: str) -> None:
    job = repair.job(read, vocabulary()["jobs"])
    assert job.value == meant and job.repairs == ["vocabulary"] and 0.5 <= job.vocabulary_score < 1.0


def test_a_reading_near_two_entries_of_a_list_is_left_for_a_person() -> None:
    titles = vocabulary()["titles"]
    assert repair.closed_list("陸長", titles).value == "院長"  # 陸 and 院 share the left part
    unsure = repair.closed_list("時長", titles)  # as near 町長 as 院長
    assert unsure.value == "時長" and unsure.vocabulary_score == 0.0
    assert repair.job("幸人所", vocabulary()["jobs"]).plausible is False  # nothing like any job


def test_two_dots_in_a_row_in_an_address_are_one() -> None:
    mail = repair.email("yuto..kimura@mobile.example.ne.jp", [], ["jp", "ne.jp"])
    assert mail.value == "yuto.kimura@mobile.example.ne.jp" and mail.repairs == ["dots"]


def test_an_address_ending_in_no_listed_top_domain_goes_to_a_person() -> None:
    tops = ["jp", "com", "net", "ne.jp"]
    hyphen = repair.email("m-kobayashi.23@mail2.example-net", [], tops)  # the last dot read as a hyphen
    assert hyphen.value == "m-kobayashi.23@mail2.example-net" and hyphen.plausible
    assert hyphen.note == notes.text("unknown_top_domain")
    assert repair.email("m-kobayashi.23@mail2.example.net", [], tops).note == ""
    assert repair.email("yumi@docomo.ne.jp", [], tops).note == ""


def test_a_comma_between_two_characters_of_an_address_may_be_a_dot_or_an_underscore() -> None:
    read = repair.email("ty,01@carrier-3.example.jp", [], ["jp"])  # ty_01, every reading a comma
    assert read.value == "ty.01@carrier-3.example.jp" and read.note == notes.text("address_comma")
    assert repair.email("ty.01@carrier-3.example.jp", [], ["jp"]).note == ""
    # a comma in the domain, or a speck before the address, is only a dot or junk
    assert repair.email("junko.sato@himawari-81,example.jp", [], ["jp"]).note == ""
    assert repair.email(", m.mori@k-mobile.example.jp", [], ["jp"]).note == ""


def test_a_capital_o_in_an_address_is_the_digit_zero_and_a_person_looks() -> None:
    read = repair.email("takahashi.shota7@soyokaze-careplanO7.example.jp", [], ["jp"])
    assert read.value == "takahashi.shota7@soyokaze-careplan07.example.jp"
    assert "character" in read.repairs and read.note == notes.text("address_lookalike")
    assert repair.email("kasakura_Ohayate@nikko.example.org", [], ["org"]).value == "kasakura_0hayate@nikko.example.org"
    clean = repair.email("ozone_oshuu@minegaoka32.example.com", [], ["com"])  # a lower-case o is a letter
    assert clean.value == "ozone_oshuu@minegaoka32.example.com" and clean.repairs == [] and clean.note == ""
    assert repair.email("m.abe@yamayuri-hOukan.jp", [], ["jp"]).value == "m.abe@yamayuri-houkan.jp"  # between letters


def test_a_lower_case_l_where_a_one_could_stand_goes_to_a_person() -> None:
    lookalike = notes.text("address_lookalike")
    for read in ("ligashira@ichou24.example.com", "tokoi.l@mail2.example.net", "rio.l5@mail2.example.net",
                 "k_l.sato@nikko.example.org", "sumika_tokoil@post.example.org"):
        assert repair.email(read, [], ["com", "net", "org"]).note == lookalike, read
    # an l inside a word is a letter (no romanised name holds one; a word like clinic may), and the
    # domain's are not looked at (mail2)
    for read in ("yamada.clinic@mail2.example.net", "hello-care@nikko.example.org", ", m.mori@k-mobile.example.jp"):
        assert repair.email(read, [], ["jp", "net", "org"]).note == "", read
