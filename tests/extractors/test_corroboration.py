"""The corroboration mechanism: rules declared in reading.toml, links declared in templates, and the
policies every rule is held to (a value put in goes to a person; derived values vouch for nothing)."""

from __future__ import annotations

import pytest

from renraku.errors import ConfigError
from renraku.extractors import corroboration, notes, ocr
from renraku.extractors.calibration import Evidence, confidence
from renraku.extractors.fields import FieldReading
from renraku.extractors.image_reader import ImageReader, vocabulary


def _ocr(text: str, conf: float = 92.0) -> ocr.Reading:
    return ocr.Reading(text, [ocr.Word(text, conf, (0, 0, 10, 10))])


def _reading(path: str, kind: str, value: str, *alternatives: tuple[str, int], derived: str = "") -> FieldReading:
    evidence = Evidence(kind=kind, mean_conf=0.9, min_conf=0.85, channel="fax_fine", alternatives=alternatives,
                        derived=derived)
    return FieldReading(path, kind, value, confidence(evidence), "ocr", (0, 0, 1, 1), evidence=evidence)


def _rules(scope: str, *entries: dict) -> list[corroboration.Rule]:
    return corroboration.configured({"corroboration": {scope: list(entries)}}, scope)


def test_the_templates_declare_which_boxes_belong_together(read_ctx) -> None:
    links = corroboration.Links.of(read_ctx.template("staff_registration"))
    row = next(p for p in links.persons if p.kana == "staff[3].name_kana")
    assert (row.written, row.email, row.person) == ("staff[3].name", "staff[3].email", True)
    assert links.shared == {"facility_name": "facility_name"}
    application = corroboration.Links.of(read_ctx.template("usage_application"))
    assert application.contact == {"name": "contact_name", "email": "contact_email"}
    assert application.shared["application_date"] == "signed_on"
    facility = next(p for p in application.persons if p.kana == "facility_name_kana")
    assert (facility.written, facility.email, facility.person) == ("facility_name", None, False)


def test_reading_toml_orders_and_switches_the_rules(read_ctx) -> None:
    names = [r.name for r in corroboration.configured(read_ctx.config, "item")]
    assert names[0] == "at_restored" and names[-1] == "pooled_shared"  # pooled last, as configured
    off = _rules("item", {"rule": "domain_vote", "on": False}, {"rule": "pooled_shared"})
    assert [r.name for r in off] == ["pooled_shared"]
    vote = _rules("item", {"rule": "domain_vote", "near_domains": 0.1})[0]
    assert vote.settings == {"near_domains": 0.1}
    with pytest.raises(ConfigError):
        _rules("item", {"rule": "no_such_rule"})
    with pytest.raises(ConfigError):
        _rules("item", {"rule": "name_matches_kana"})  # a sheet rule asked for over an item


def test_every_rule_says_what_it_takes_as_evidence_and_has_its_note(read_ctx) -> None:
    for scope in ("sheet", "item"):
        for r in corroboration.configured(read_ctx.config, scope):
            assert r.evidence, r.name
            if not r.auto_acceptable and r.note:
                assert notes.text(r.note)


def test_agreement_of_values_a_rule_or_list_put_in_is_not_counted() -> None:
    """Three sheets that agree because one repair made them agree are not three witnesses."""
    view = corroboration.ItemView([corroboration.SheetView({"facility_name": r}, corroboration.Links(
        shared={"facility_name": "facility_name"})) for r in (
            _reading("facility_name", "text", "歯科医院あおば", derived="list"),
            _reading("facility_name", "text", "歯科医院あおば"))])
    corroboration.run(_rules("item", {"rule": "shared_fields_agree"}), view, corroboration.Means())
    assert not any(s.readings["facility_name"].evidence.corroborated for s in view.sheets)
    read = [_reading("facility_name", "text", "眼科医院あおば") for _ in range(2)]
    view = corroboration.ItemView([corroboration.SheetView({"facility_name": r}, corroboration.Links(
        shared={"facility_name": "facility_name"})) for r in read])
    corroboration.run(_rules("item", {"rule": "shared_fields_agree"}), view, corroboration.Means())
    assert all(r.evidence.corroborated for r in read)


def test_a_domain_put_in_by_the_vote_goes_to_a_person_and_vouches_for_nothing() -> None:
    links = corroboration.Links(persons=tuple(corroboration.PersonBoxes(f"staff[{n}].name_kana", None,
                                                                        f"staff[{n}].email") for n in (1, 2, 3)))
    page = {f"staff[{n}].name_kana": _reading(f"staff[{n}].name_kana", "kana", kana)
            for n, kana in ((1, "あべ あい"), (2, "いとう まこと"), (3, "うえだ ゆみ"))}
    page |= {f"staff[{n}].email": _reading(f"staff[{n}].email", "email", e)
             for n, e in ((1, "ai.abe@honcho-78.example.jp"), (2, "makoto.ito@honcho-78.example.jp"),
                          (3, "yumi.ueda@honcho-78example.jp"))}
    view = corroboration.ItemView([corroboration.SheetView(page, links)])
    rules = _rules("item", {"rule": "domain_vote"}, {"rule": "address_fits_owner"})
    corroboration.run(rules, view, corroboration.Means())
    voted = page["staff[3].email"]
    assert voted.value == "yumi.ueda@honcho-78.example.jp" and voted.note == notes.text("domain_vote")
    assert voted.evidence.derived == "domain_vote" and not voted.evidence.sounds_right
    assert page["staff[1].email"].evidence.sounds_right  # two addresses read with that domain


def test_the_name_vouches_for_letters_not_for_separators_the_readings_dispute() -> None:
    dotted = _reading("staff[1].email", "email", "yamashitahanako@example.jp",
                      ("yamashitahanako@example.jp", 3), ("yamashita.hanako@example.jp", 2))
    clean = _reading("staff[2].email", "email", "ota.yuichi@example.jp", ("ota.yuichi@example.jp", 5))
    digits = _reading("staff[3].email", "email", "ken7@example.jp", ("ken7@example.jp", 3), ("ken1@example.jp", 2))
    view = corroboration.SheetView({r.path: r for r in (dotted, clean, digits)}, corroboration.Links())
    corroboration.run(_rules("sheet", {"rule": "address_separators_agree"}), view, corroboration.Means())
    assert dotted.note == notes.text("address_separators") and digits.note
    assert not clean.note


def test_a_wide_gap_between_two_letters_of_an_address_goes_to_a_person() -> None:
    lost, read_whole = (_reading(f"staff[{n}].email", "email", "aoitakahashi@sano.example.org",
                                 ("aoitakahashi@sano.example.org", 3)) for n in (1, 2))
    lost.evidence.letter_gap, read_whole.evidence.letter_gap = 3.1, 1.6  # ocr.widest_letter_gap
    view = corroboration.SheetView({r.path: r for r in (lost, read_whole)}, corroboration.Links())
    corroboration.run(_rules("sheet", {"rule": "address_separators_agree", "letter_gap": 2.5}), view,
                      corroboration.Means())
    assert lost.note == notes.text("address_gap") and not read_whole.note


def test_a_number_with_a_digit_nearly_read_as_another_goes_to_a_person(read_ctx) -> None:
    rule = next(r for r in corroboration.configured(read_ctx.config, "sheet") if r.name == "digits_unambiguous")
    readings = {path: _reading(path, kind, value) for path, kind, value in (
        ("phone", "phone", "0289-95-8851"), ("fax", "phone", "0289-95-8052"),
        ("postal_code", "postal_code", "321-0953"), ("name", "name", "池田和子"))}
    for path, rival in (("phone", 61.0), ("fax", 12.0), ("postal_code", 40.0), ("name", 90.0)):
        readings[path].evidence.rival = rival
    corroboration.run([rule], corroboration.SheetView(readings, corroboration.Links()), corroboration.Means())
    assert {p for p, r in readings.items() if r.note} == {"phone", "postal_code"}
    assert readings["phone"].note == notes.text("digits_rival")


def test_a_number_whose_crop_holds_more_characters_than_were_read_goes_to_a_person(read_ctx) -> None:
    rule = next(r for r in corroboration.configured(read_ctx.config, "sheet") if r.name == "digits_whole")
    cases = {  # path: (kind, raw reading, heights of the crop's pieces of ink: ink.piece_heights)
        "application_date": ("date", "2025/9/2", (30, 29, 30, 28, 31, 29, 31, 30, 29)),  # 2025/9/24: the 4 unread
        "pledge_date": ("date", "2025/9/24", (30, 29, 30, 28, 31, 29, 31, 30, 29, 3, 2)),  # and two specks
        "notice_date": ("date", "R7.5.19", (30, 29, 4, 30, 4, 28, 29)),  # dots are no characters' height
        "phone": ("phone", "0287-67-479", (28, 27, 28, 26, 4, 27, 28, 4, 29, 27, 28, 27)),
        "fax": ("phone", "0287-67-4798", (28, 27, 28, 26, 4, 27, 28, 4, 29, 27, 28, 27)),
        "contact_phone": ("phone", "028-691-1051(内線523)", (28,) * 20),  # kanji: not counted
    }
    readings = {}
    for path, (kind, raw, pieces) in cases.items():
        readings[path] = _reading(path, kind, raw)
        readings[path].raw, readings[path].evidence.ink_pieces = raw, pieces
    corroboration.run([rule], corroboration.SheetView(readings, corroboration.Links()), corroboration.Means())
    assert {p for p, r in readings.items() if r.note} == {"application_date", "phone"}
    assert readings["application_date"].note == notes.text("digit_unread")


def test_the_pieces_of_ink_of_a_written_number_are_its_characters() -> None:
    from renraku.extractors import ink
    from tests.extractors.test_ocr import _line

    heights = ink.piece_heights(_line("2025/9/24"))
    assert sum(1 for h in heights if h >= 0.6 * max(heights)) == 9
    heights = ink.piece_heights(_line("0287-67-4798"))
    assert sum(1 for h in heights if h >= 0.6 * max(heights)) == 10  # the hyphens are short


def _text(reader: ImageReader, path: str, *texts: str) -> FieldReading:
    return reader._text(reader.specs[path], [_ocr(t) for t in texts], True, "scan")


def test_a_change_toward_a_list_on_an_open_field_goes_to_a_person(read_ctx) -> None:
    reader = ImageReader(read_ctx.template("usage_application"), read_ctx.config, vocabulary())
    slip = _text(reader, "facility_name", *["あおば訪問看護ステーツョン"] * 2, "あおば訪問看護ステー")
    assert slip.value == "あおば訪問看護ステーション" and slip.note == notes.text("toward_list")
    assert slip.evidence.derived == "list"
    # a kind the list lacks, shown the same by every reading, stays as read (never 歯科医院)
    eye = _text(reader, "facility_name", "あおば眼科クリニック", "あおば眼科クリニック")
    assert eye.value == "あおば眼科クリニック" and not eye.evidence.derived
    title = _text(reader, "representative_title", "院長", "院長")
    assert title.value == "院長" and not title.note  # read as listed: nothing changed


def test_a_value_off_a_list_the_world_goes_beyond_stays_as_most_readings_show_it(read_ctx) -> None:
    reader = ImageReader(read_ctx.template("usage_application"), read_ctx.config, vocabulary())
    title = _text(reader, "representative_title", "事業所長", "事務長", "事業所長")  # a title the list lacks
    assert title.value == "事業所長" and title.note == notes.text("off_list_most")
    assert title.evidence.derived == "list"  # to a person all the same
    kind = _text(reader, "facility_name", "とちのき訪問リハビリテーション", "とちのき訪問看護ステーション",
                 "とちのき訪問 リハビリテーショ ン")  # a kind the list lacks, read with gaps once
    assert kind.value == "とちのき訪問リハビリテーション" and kind.note == notes.text("off_list_most")
    one = _text(reader, "representative_title", "事業所長", "事務長", "事業所畏")  # one reading is not most
    assert one.value == "事務長" and one.note == notes.text("toward_list")
    # Tochigi's 郡市医師会 are all listed: two readings alike off the list are one misread alike
    misread = _text(reader, "medical_association", "宇都富市医師会", "宇都富市医師会", "宇都宮市医師会")
    assert misread.value == "宇都宮市医師会" and misread.note == notes.text("toward_list")


def test_a_closed_list_the_form_asks_for_is_mended_without_a_person(read_ctx) -> None:
    reader = ImageReader(read_ctx.template("staff_registration"), read_ctx.config, vocabulary())
    job = _text(reader, "staff[1].job", "看護帥", "看護帥")
    assert job.value == "看護師" and not job.note and not job.evidence.derived


def test_a_name_the_dictionary_chose_over_the_readings_goes_to_a_person(read_ctx) -> None:
    reader = ImageReader(read_ctx.template("staff_registration"), read_ctx.config, vocabulary())
    chosen = _text(reader, "staff[1].name", "バ野 修", "小野 修", "バ野 修")
    assert chosen.value == "小野 修" and chosen.note == notes.text("name_dictionary")
    counted = _text(reader, "staff[1].name", "小野 修", "小野 修", "バ野 修")
    assert counted.value == "小野 修" and not counted.note


def _person_sheet(name: str, kana: str, email: str, better: dict[str, str]) -> corroboration.SheetView:
    """A staff row whose crops can be read again: `better` holds what another reading of a box gives."""
    page = {"staff[1].name": _reading("staff[1].name", "name", name),
            "staff[1].name_kana": _reading("staff[1].name_kana", "kana", kana),
            "staff[1].email": _reading("staff[1].email", "email", email)}

    def reread(path: str, prefer) -> FieldReading | None:
        value = better.get(path)
        return _reading(path, page[path].kind, value) if value is not None and prefer(value) else None

    links = corroboration.Links((corroboration.PersonBoxes("staff[1].name_kana", "staff[1].name", "staff[1].email",
                                                           True),))
    return corroboration.SheetView(page, links, reread, {"staff[1].name": "name", "staff[1].name_kana": "kana",
                                                         "staff[1].email": "email"})


def test_a_kana_that_its_name_does_not_read_as_takes_another_reading_of_its_crop_that_it_does() -> None:
    view = _person_sheet("小野 修", "おの おさも", "o.ono@example.jp", {"staff[1].name_kana": "おの おさむ"})
    changed = corroboration.run(_rules("sheet", {"rule": "reread_kana_for_name"}), view, corroboration.Means())
    kana = view.readings["staff[1].name_kana"]
    assert kana.value == "おの おさむ" and not kana.note and changed == [kana]  # the crop's own reading
    view = _person_sheet("小野 修", "おの おさも", "o.ono@example.jp", {"staff[1].name_kana": "おの おさみ"})
    assert corroboration.run(_rules("sheet", {"rule": "reread_kana_for_name"}), view, corroboration.Means()) == []


def test_an_address_not_made_of_its_owners_name_takes_another_reading_that_is() -> None:
    view = _person_sheet("小野 修", "おの おさむ", "o.onu@example.jp", {"staff[1].email": "o.ono@example.jp"})
    corroboration.run(_rules("sheet", {"rule": "reread_address_for_owner"}), view, corroboration.Means())
    assert view.readings["staff[1].email"].value == "o.ono@example.jp"
    assert not view.readings["staff[1].email"].note
    # without a way to read the crop again (a page not read by OCR), nothing happens
    view = _person_sheet("小野 修", "おの おさむ", "o.onu@example.jp", {})
    view.reread = None
    assert corroboration.run(_rules("sheet", {"rule": "reread_address_for_owner"}), view, corroboration.Means()) == []


def test_a_place_of_the_prefecture_with_one_glyph_read_as_a_lookalike_is_doubted() -> None:
    means = corroboration.Means(place_names=("那須烏山", "壬生", "小山"))
    names = {"a": "那須鳥山医療センター", "b": "王生健康福祉センター", "c": "那須烏山医療センター",
             "d": "大山クリニック"}
    page = {k: _reading("facility_name", "text", v) for k, v in names.items()}
    for reading in page.values():
        view = corroboration.SheetView({"facility_name": reading}, corroboration.Links())
        corroboration.run(_rules("sheet", {"rule": "place_name_lookalike"}), view, means)
    assert page["a"].note == notes.text("place_name_lookalike") and page["b"].note
    assert not page["c"].note  # the place itself
    assert not page["d"].note  # 大 and 小 do not look alike: another name, not a misreading


def test_a_kana_in_two_scripts_and_a_capital_beside_a_digit_in_an_address_go_to_a_person() -> None:
    from renraku.extractors import repair

    assert repair.kana("キむら はなこ").note == notes.text("mixed_script")
    assert repair.kana("か どう サリ").note == notes.text("mixed_script")  # かとう なな: each word in one script
    assert not repair.kana("すずらんでいさーびすせんたー").note  # the long vowel mark belongs to both
    assert not repair.kana("キムラ ハナコ").note and not repair.kana("きむら はなこ").note
    assert repair.email("info@careplanO7.example.jp").note == notes.text("address_lookalike")
    assert repair.email("info@careplanO7.example.jp").value == "info@careplan07.example.jp"  # the digit it looks like
    assert not repair.email("taro7@mail2.example.net").note
    # a capital O or I in the local part, wherever it stands, may be a 0 or a 1
    assert repair.email("ozone_Oshuu@minegaoka32.example.com").note == notes.text("address_lookalike")
    for read in ("Sayuha@post.example.org", "Binoe@post.example.org"):  # 5ayuha, 8inoe
        assert repair.email(read).note == notes.text("address_lookalike")
    assert not repair.email("Yamada.Taro@post.example.org").note  # capitals no digit looks like
    assert repair.email("Ito.ken@example.jp").note
    assert not repair.email("ozone_oshuu@minegaoka32.example.com").note
    assert not repair.email("ota@OITA.example.jp").note  # a domain's capitals are only its case


def _mark(path: str, ticked: bool) -> FieldReading:
    evidence = Evidence(kind="admin_mark", mark_share=0.2 if ticked else 0.001)
    return FieldReading(path, "admin_mark", ticked, confidence(evidence), "mark", (0, 0, 1, 1), evidence=evidence)


def test_a_set_whose_admin_marks_all_read_empty_goes_to_a_person(read_ctx) -> None:
    links = corroboration.Links.of(read_ctx.template("staff_registration"))
    assert links.needs_one["staff[1].admin"] == "admin" and len(links.needs_one) == 8

    def sheet(*ticks: bool) -> corroboration.SheetView:
        readings = {f"staff[{n}].admin": _mark(f"staff[{n}].admin", t) for n, t in enumerate(ticks, 1)}
        readings |= {f"staff[{n}].name": _reading(f"staff[{n}].name", "name", "佐藤花子") for n in (1, 2)}
        return corroboration.SheetView(readings, links)

    lost = corroboration.ItemView([sheet(False, False, False)])  # two staff, a third row empty
    corroboration.run(_rules("item", {"rule": "one_marked"}), lost, corroboration.Means())
    marks = lost.sheets[0].readings
    assert marks["staff[1].admin"].note == marks["staff[2].admin"].note == notes.text("none_marked")
    assert not marks["staff[3].admin"].note  # nobody in that row
    named = corroboration.ItemView([sheet(False, False, False), sheet(False, True, False)])  # on the next sheet
    corroboration.run(_rules("item", {"rule": "one_marked"}), named, corroboration.Means())
    assert not any(r.note for s in named.sheets for r in s.readings.values())
