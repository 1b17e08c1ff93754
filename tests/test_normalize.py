"""Normalisation of field values (SPEC §2), table-driven."""

import pytest

from renraku import normalize


@pytest.mark.parametrize(("written", "iso"), [
    ("令和7年4月1日", "2025-04-01"),
    ("令和７年４月１日", "2025-04-01"),  # full-width digits
    ("令和 7 年 4 月 1 日", "2025-04-01"),
    ("令和元年5月1日", "2019-05-01"),
    ("令和元年５月７日", "2019-05-07"),
    ("R7.4.1", "2025-04-01"),
    ("r7.4.1", "2025-04-01"),
    ("Ｒ７．４．１", "2025-04-01"),
    ("R7/4/1", "2025-04-01"),
    ("R07.04.01", "2025-04-01"),
    ("平成31年4月30日", "2019-04-30"),
    ("H31.4.30", "2019-04-30"),
    ("平成元年1月8日", "1989-01-08"),
    ("昭和64年1月7日", "1989-01-07"),
    ("S50.10.10", "1975-10-10"),
    ("2025/4/1", "2025-04-01"),
    ("2025/04/01", "2025-04-01"),
    ("２０２５／４／１", "2025-04-01"),
    ("2025年4月1日", "2025-04-01"),
    ("2025年 4月 1日", "2025-04-01"),
    ("2025-04-01", "2025-04-01"),
    ("2025.4.1", "2025-04-01"),
    ("2025－4－1", "2025-04-01"),
    ("20250401", "2025-04-01"),
    ("令和7年4月1日（火）", "2025-04-01"),
    ("  2025/4/1  ", "2025-04-01"),
    ("2024/2/29", "2024-02-29"),  # leap day
])
def test_dates_become_iso(written: str, iso: str) -> None:
    assert normalize.parse_date(written).iso == iso
    assert normalize.date(written) == iso
    assert normalize.normalise("date", written) == normalize.Normalised(iso)


@pytest.mark.parametrize(("written", "problem"), [
    ("2025/2/29", "暦に存在しない日付です"),
    ("令和7年13月1日", "暦に存在しない日付です"),
    ("2025/4/31", "暦に存在しない日付です"),
    ("平成32年1月1日", "平成の期間外の日付です"),  # 平成 ended on 2019-04-30
    ("令和元年4月30日", "令和の期間外の日付です"),  # 令和 began on 2019-05-01
    ("平成31年5月1日", "平成の期間外の日付です"),
    ("昭和64年1月8日", "昭和の期間外の日付です"),
    ("令和0年4月1日", "令和0年という年はありません"),
    ("4月1日", "日付として読めません"),  # no year
    ("25/4/1", "日付として読めません"),  # two-digit year is ambiguous
    ("来週", "日付として読めません"),
    ("", "日付が空です"),
])
def test_impossible_dates_are_explained(written: str, problem: str) -> None:
    reading = normalize.parse_date(written)
    assert reading.iso is None
    assert reading.problem == problem


def test_a_date_that_is_not_a_date_keeps_its_text_and_is_not_ok() -> None:
    n = normalize.normalise("date", "令和７年１３月１日")
    assert n.value == "令和7年13月1日"
    assert not n.ok and n.note


@pytest.mark.parametrize(("written", "value"), [
    ("ｻｸﾗ在宅ｸﾘﾆｯｸ", "サクラ在宅クリニック"),  # half-width katakana folded
    ("  医療法人　さくら会  ", "医療法人 さくら会"),  # ideographic space, surrounding spaces
    ("１－１６－２１", "1-16-21"),
    ("ＡＢＣ", "ABC"),
    ("㈱みどり", "(株)みどり"),
    (None, ""),
])
def test_text_is_nfkc_and_trimmed(written, value) -> None:
    assert normalize.text(written) == value


@pytest.mark.parametrize(("written", "value"), [
    ("T-Kobayashi@Yahoo.co.jp", "t-kobayashi@yahoo.co.jp"),
    ("ｔ－ｋｏｂａｙａｓｈｉ＠ｙａｈｏｏ．ｃｏ．ｊｐ", "t-kobayashi@yahoo.co.jp"),  # full width folded
    (" kato.yumi@motegi-vns.jp ", "kato.yumi@motegi-vns.jp"),  # surrounding spaces go
    ("KIMURA_WATARU@HOTMAIL.CO.JP", "kimura_wataru@hotmail.co.jp"),
])
def test_email_is_lower_case_and_folded(written: str, value: str) -> None:
    assert normalize.email(written) == value
    assert normalize.normalise("email", written).ok


def test_a_space_inside_an_address_stays_for_the_rules_to_judge() -> None:
    assert normalize.email("Tsubasa_Ota82 @Gmail.com") == "tsubasa_ota82 @gmail.com"


@pytest.mark.parametrize("written", ["kato.yumi.motegi-vns.jp", "kato@yumi@x.jp", "kato@localhost",
                                     "tsubasa_ota82 @gmail.com"])
def test_email_without_its_shape_is_flagged(written: str) -> None:
    n = normalize.normalise("email", written)
    assert not n.ok and "メール" in n.note


@pytest.mark.parametrize(("written", "value", "digits"), [
    ("028-621-3923", "028-621-3923", "0286213923"),
    ("０２８－６２１－３９２３", "028-621-3923", "0286213923"),
    ("028ー621ー3923", "028-621-3923", "0286213923"),  # long vowel mark used as a dash
    ("028−621−3923", "028-621-3923", "0286213923"),  # minus sign
    ("028 - 621 - 3923", "028-621-3923", "0286213923"),
    ("0282(99)1799", "0282(99)1799", "0282991799"),  # kept as written
    ("028-621-3923（内線268）", "028-621-3923(内線268)", "028621392326" "8"),
    ("09012345678", "09012345678", "09012345678"),
])
def test_phone_keeps_what_was_written_and_compares_by_digits(written: str, value: str, digits: str) -> None:
    assert normalize.phone(written) == value
    assert normalize.digits(written) == digits
    assert normalize.comparable("phone", written) == digits


def test_phones_written_differently_compare_equal() -> None:
    assert normalize.comparable("phone", "０２８５－７４－０２４８") == normalize.comparable("phone", "0285740248")


@pytest.mark.parametrize(("written", "value", "ok"), [
    ("329-0484", "329-0484", True),
    ("〒329-0484", "329-0484", True),
    ("３２９－０４８４", "329-0484", True),
    ("329ー0484", "329-0484", True),
    ("3290484", "3290484", False),  # kept as written, but not NNN-NNNN
    ("329-048", "329-048", False),
])
def test_postal_code(written: str, value: str, ok: bool) -> None:
    n = normalize.normalise("postal_code", written)
    assert (n.value, n.ok) == (value, ok)
    assert normalize.comparable("postal_code", written) == value.replace("-", "")


@pytest.mark.parametrize(("written", "value"), [
    ("こばやし ともみ", "こばやし ともみ"),
    ("コバヤシ　トモミ", "こばやし ともみ"),  # katakana, ideographic space
    ("ｺﾊﾞﾔｼ ﾄﾓﾐ", "こばやし ともみ"),  # half-width katakana with voiced mark
    ("ホウモンカンゴステーション", "ほうもんかんごすてーしょん"),  # ー stays
    ("ヴァイオリン", "ゔぁいおりん"),
])
def test_kana_readings_fold_to_hiragana_for_comparing(written: str, value: str) -> None:
    assert normalize.kana(written) == value
    assert normalize.normalise("kana", written).ok


@pytest.mark.parametrize(("written", "value"), [
    ("フジタ ユキ", "フジタ ユキ"),  # the sender's script is kept
    ("ｺﾊﾞﾔｼ　ﾄﾓﾐ", "コバヤシ トモミ"),  # half width made full width (NFKC)
    ("こばやし ともみ", "こばやし ともみ"),
])
def test_kana_values_keep_their_script(written: str, value: str) -> None:
    assert normalize.normalise("kana", written) == normalize.Normalised(value)


def test_kana_with_kanji_is_flagged() -> None:
    n = normalize.normalise("kana", "こばやし友美")
    assert not n.ok


def test_readings_and_addresses_compare_regardless_of_script_and_spacing() -> None:
    assert normalize.comparable("kana", "コバヤシトモミ") == normalize.comparable("kana", "こばやし ともみ")
    assert normalize.comparable("email", "Kato.Yumi @motegi-vns.jp") == "kato.yumi@motegi-vns.jp"


def test_empty_values_are_ok_and_empty() -> None:
    for kind in ("text", "name", "kana", "email", "phone", "postal_code", "date", "job"):
        assert normalize.normalise(kind, "  ") == normalize.Normalised("")
