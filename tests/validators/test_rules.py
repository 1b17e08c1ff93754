"""Every registration rule (SPEC §4), positive and negative, with OCR-like noise where it matters."""

from __future__ import annotations

import dataclasses
import datetime as dt
from copy import deepcopy

import pytest

from renraku.validators import ApplicationView, KnownStaff, RuleContext, SheetView, check, load_rule_config
from renraku.validators.identity import facility_key, names_match

CONFIG = load_rule_config()
TODAY = dt.date(2025, 10, 1)


def new_set(**changes) -> ApplicationView:
    """A clean new-facility set; `changes` maps "form_id:path" to a value."""
    usage = {"application_date": "2025-09-26", "facility_name_kana": "もてぎほうもんかんごすてーしょん",
             "facility_name": "茂木訪問看護ステーション", "postal_code": "321-0251",
             "address": "栃木県芳賀郡茂木町飯野3-30", "phone": "0285-74-0248", "fax": "0285-74-5248",
             "representative_title": "管理者", "representative_name": "石井 沙織", "contact_name": "加藤 由美",
             "contact_phone": "0285-74-0248(内線12)", "contact_email": "kato.yumi@motegi-vns.example.jp",
             "medical_association": "なし", "policy_agreed": True, "facility_type.home_nursing": True}
    staff = {"facility_name": "茂木訪問看護ステーション"}
    people = [("木村 航", "作業療法士", True, "kimura_wataru@mail.example.jp"),
              ("加藤 由美", "看護師", False, "kato.yumi@motegi-vns.example.jp")]
    for n in range(1, 9):
        name, job, admin, email = people[n - 1] if n <= len(people) else ("", "", False, "")
        staff |= {f"staff[{n}].name": name, f"staff[{n}].name_kana": "", f"staff[{n}].job": job,
                  f"staff[{n}].admin": admin, f"staff[{n}].email": email}
    pledge = {"pledge_date": "2025-09-26", "facility_name": "茂木訪問看護ステーション",
              "address": "栃木県芳賀郡茂木町飯野3-30", "representative_title": "管理者",
              "representative_name": "石井 沙織", "seal": True}
    sheets = {"usage_application": usage, "staff_registration": staff, "facility_pledge": pledge}
    for key, value in changes.items():
        form, path = key.split(":")
        sheets[form][path] = value
    return ApplicationView("new_facility", [SheetView(i, f, v) for i, (f, v) in enumerate(sheets.items())])


def change(*rows, facility="みどり薬局 芳賀店") -> ApplicationView:
    """A change notice; each row: (kinds, name, email, admin)."""
    values = {"notice_date": "2025-10-01", "facility_name": facility, "phone": "0285-11-2233",
              "notifier_name": "斎藤 誠"}
    for n in range(1, 7):
        kinds, name, email, admin = rows[n - 1] if n <= len(rows) else ((), "", "", False)
        values |= {f"changes[{n}].kind.{k}": k in kinds for k in ("add", "remove", "modify")}
        values |= {f"changes[{n}].name": name, f"changes[{n}].name_kana": "",
                   f"changes[{n}].job": "薬剤師" if name else "", f"changes[{n}].admin": admin,
                   f"changes[{n}].effective_date": "", f"changes[{n}].email": email}
    return ApplicationView("staff_change", [SheetView(9, "staff_change", values)])


REGISTRY = RuleContext(
    today=TODAY,
    facilities={facility_key("みどり薬局 芳賀店", CONFIG): "みどり薬局 芳賀店"},
    staff=[KnownStaff(facility_key("みどり薬局 芳賀店", CONFIG), "斎藤 誠", "saito@midori.example.jp", True,
                      "みどり薬局 芳賀店"),
           KnownStaff(facility_key("みどり薬局 芳賀店", CONFIG), "松本 次郎", "matsumoto@midori.example.jp", False,
                      "みどり薬局 芳賀店")],
)


def found(app: ApplicationView, ctx: RuleContext | None = None) -> set[tuple[str, str | None]]:
    return {(f.rule, f.field) for f in check(app, ctx or RuleContext(today=TODAY), CONFIG)}


def test_a_clean_set_has_no_findings() -> None:
    assert found(new_set()) == set()


def test_a_clean_change_notice_against_the_registry_has_no_findings() -> None:
    app = change((("add",), "大橋 恵", "ohashi@midori.example.jp", False),
                 (("remove",), "松本 次郎", "matsumoto@midori.example.jp", False))
    assert found(app, REGISTRY) == set()


# ------------------------------------------------------------------------------- sheets

def test_missing_sheet() -> None:
    app = new_set()
    app.sheets = app.sheets[:2]
    app.missing = ["facility_pledge"]
    assert ("missing_sheet", None) in found(app)
    findings = check(app, RuleContext(today=TODAY), CONFIG)
    assert "誓約書" in next(f.message for f in findings if f.rule == "missing_sheet")


@pytest.mark.parametrize(("other", "mismatch"), [
    ("茂木訪問看護ステーション", False),
    ("医療法人茂木会 茂木訪問看護ステーション", False),  # the legal entity before the name
    ("茂木訪問看護ステーシヨン", False),  # an OCR slip (ョ→ヨ)
    ("茂木 訪問看護ステーション", False),
    ("益子訪問看護ステーション", True),
    ("茂木訪問看護ステーション 第二", True),
])
def test_facility_mismatch(other: str, mismatch: bool) -> None:
    app = new_set(**{"facility_pledge:facility_name": other})
    assert (("facility_mismatch", "facility_name") in found(app)) is mismatch


def test_a_doubtful_name_near_the_other_waits_for_a_person() -> None:
    misread = new_set(**{"facility_pledge:facility_name": "茂木肪問外裏ステーション"})
    assert ("facility_mismatch", "facility_name") in found(misread)  # read with confidence: a mismatch

    def doubted(app: ApplicationView) -> ApplicationView:
        return dataclasses.replace(app, sheets=[
            dataclasses.replace(s, doubtful=frozenset({"facility_name"})) if s.form_id == "facility_pledge" else s
            for s in app.sheets])
    assert ("facility_mismatch", "facility_name") not in found(doubted(misread))
    other = new_set(**{"facility_pledge:facility_name": "ひまわり歯科医院"})
    assert ("facility_mismatch", "facility_name") in found(doubted(other))  # no misreading explains it


def test_similar_names_of_different_branches_do_not_match() -> None:
    assert not names_match("みどり薬局 芳賀店", "みどり薬局 真岡店", CONFIG)
    assert not names_match("さくら在宅クリニック", "さくら在宅歯科クリニック", CONFIG)
    assert names_match("医療法人さくら会さくら在宅クリニック", "さくら在宅クリニック", CONFIG)


# ------------------------------------------------------------------------------ contents

@pytest.mark.parametrize("path", ["usage_application:facility_name", "usage_application:address",
                                  "usage_application:phone", "usage_application:representative_name",
                                  "usage_application:contact_name", "usage_application:contact_email",
                                  "facility_pledge:pledge_date", "facility_pledge:representative_name",
                                  "staff_registration:staff[2].job", "staff_registration:staff[1].email"])
def test_missing_required(path: str) -> None:
    assert ("missing_required", path.split(":")[1]) in found(new_set(**{path: "  "}))


def test_an_empty_staff_row_is_not_required_but_a_started_one_is() -> None:
    assert not any(r == "missing_required" for r, _ in found(new_set()))
    app = new_set(**{"staff_registration:staff[3].name": "遠藤 学"})
    assert {f for r, f in found(app) if r == "missing_required"} == {"staff[3].job", "staff[3].email"}


def test_change_rows_need_a_name_and_for_add_an_email() -> None:
    app = change((("add",), "福田 恵美", "", True), (("remove",), "", "matsumoto@midori.example.jp", False))
    assert {f for r, f in found(app, REGISTRY) if r == "missing_required"} == {"changes[1].email", "changes[2].name"}


@pytest.mark.parametrize(("kinds", "ambiguous"), [((), True), (("add", "remove"), True), (("modify",), False)])
def test_change_kind_ambiguous(kinds, ambiguous: bool) -> None:
    app = change((kinds, "松本 次郎", "matsumoto@midori.example.jp", False))
    assert (("change_kind_ambiguous", "changes[1].kind") in found(app, REGISTRY)) is ambiguous


def test_no_admin_in_a_new_set() -> None:
    assert ("no_admin", None) in found(new_set(**{"staff_registration:staff[1].admin": False}))
    assert ("no_admin", None) not in found(new_set())


def test_no_admin_when_a_change_removes_the_last_admin() -> None:
    assert ("no_admin", None) in found(change((("remove",), "斎藤 誠", "saito@midori.example.jp", False)), REGISTRY)
    demote = change((("modify",), "斎藤 誠", "saito@midori.example.jp", False))
    assert ("no_admin", None) in found(demote, REGISTRY)
    handover = change((("remove",), "斎藤 誠", "saito@midori.example.jp", False),
                      (("modify",), "松本 次郎", "matsumoto@midori.example.jp", True))
    assert ("no_admin", None) not in found(handover, REGISTRY)


def test_policy_not_agreed_and_missing_seal() -> None:
    assert ("policy_not_agreed", "policy_agreed") in found(new_set(**{"usage_application:policy_agreed": False}))
    findings = check(new_set(**{"facility_pledge:seal": False}), RuleContext(today=TODAY), CONFIG)
    seal = [f for f in findings if f.rule == "missing_seal"]
    assert [(f.field, f.severity) for f in seal] == [("seal", "warning")]


# -------------------------------------------------------------------------------- e-mail

@pytest.mark.parametrize(("email", "invalid"), [
    ("kimura_wataru@mail.example.jp", False),
    ("tsubasa_ota82 @gmail.com", True),  # a space the sender typed (or OCR read)
    ("ohashim61@yahoo。co.jp", True),  # 。 for .
    ("kimura..wataru@mail.example.jp", True),
    ("kimura_wataru@mail", True),
    ("kimura_wataru.mail.example.jp", True),
    ("木村@mail.example.jp", True),
])
def test_invalid_email(email: str, invalid: bool) -> None:
    app = new_set(**{"staff_registration:staff[1].email": email})
    assert (("invalid_email", "staff[1].email") in found(app)) is invalid


def test_invalid_email_says_what_folding_changed() -> None:
    app = new_set(**{"staff_registration:staff[1].email": "kimura_wataru@mail。example.jp"})
    app.sheets[1].raw["staff[1].email"] = "ｋｉｍｕｒａ_wataru＠mail。example.jp"
    message = next(f.message for f in check(app, RuleContext(today=TODAY), CONFIG) if f.rule == "invalid_email")
    assert "「。」" in message and "「＠」→「@」" in message and "「.」の誤り" in message


@pytest.mark.parametrize(("email", "shared"), [
    ("info@motegi-vns.example.jp", True), ("office@x.example.jp", True), ("iryo@x.example.jp", True),
    ("ikyoku@x.example.jp", True), ("soumu@x.example.jp", True), ("jimu@x.example.jp", True),
    ("kango@x.example.jp", True), ("uketsuke@x.example.jp", True), ("renraku@wakaba-cl.example.jp", True),
    ("daihyo@x.example.jp", True), ("reception@x.example.jp", True), ("info2@x.example.jp", True),
    ("kango-bu@x.example.jp", True), ("INFO@X.EXAMPLE.JP", True),
    ("kato.yumi@x.example.jp", False), ("information.taro@x.example.jp", False), ("kangoro@x.example.jp", False),
])
def test_shared_email(email: str, shared: bool) -> None:
    app = new_set(**{"staff_registration:staff[2].email": email})
    assert (("shared_email", "staff[2].email") in found(app)) is shared


def test_duplicate_email_within_the_set() -> None:
    app = new_set(**{"staff_registration:staff[2].email": "KIMURA_WATARU@mail.example.jp"})  # case differs
    assert ("duplicate_email", "staff[2].email") in found(app)
    assert ("duplicate_email", "staff[1].email") not in found(app)


def test_duplicate_email_against_the_queue_and_the_registry() -> None:
    queued = RuleContext(today=TODAY, queued=[KnownStaff("x", "藤田 由紀", "kato.yumi@motegi-vns.example.jp",
                                                         where="申請 A000008 の2行目のメールアドレス")])
    findings = check(new_set(), queued, CONFIG)
    dup = [f for f in findings if f.rule == "duplicate_email"]
    assert [f.field for f in dup] == ["staff[2].email"] and "A000008" in dup[0].message
    registered = RuleContext(today=TODAY, staff=[KnownStaff("x", "木村 航", "kimura_wataru@mail.example.jp")])
    assert ("duplicate_email", "staff[1].email") in found(new_set(), registered)


def test_already_registered_and_unknown_staff() -> None:
    app = change((("add",), "斎藤 誠", "Saito@midori.example.jp", False),
                 (("remove",), "大塚 花子", "otsuka@midori.example.jp", False),
                 (("modify",), "松本 次郎", "matsumoto@midori.example.jp", False))
    result = found(app, REGISTRY)
    assert ("already_registered", "changes[1].email") in result
    assert ("unknown_staff", "changes[2].email") in result
    assert ("unknown_staff", "changes[3].email") not in result


def test_unknown_facility() -> None:
    app = change((("add",), "大橋 恵", "ohashi@midori.example.jp", False), facility="みどり薬局 真岡店")
    assert ("unknown_facility", "facility_name") in found(app, REGISTRY)
    ocr_slip = change((("add",), "大橋 恵", "ohashi@midori.example.jp", False), facility="みどり薬局 芳賀庖")
    assert ("unknown_facility", "facility_name") not in found(ocr_slip, REGISTRY)


# -------------------------------------------------------------------------------- formats

@pytest.mark.parametrize(("phone", "invalid"), [
    ("0285-74-0248", False), ("028-621-3923", False), ("090-1234-5678", False), ("050-1234-5678", False),
    ("0120-123-456", False), ("0285-74-0248(内線12)", False), ("０２８５－７４－０２４８", False),
    ("0285-74-024", True), ("090-1234-567", True), ("0285-740-248", True), ("285-74-0248", True),
    ("0285-74-O248", True),  # letter O for zero
    ("1234", True),
])
def test_invalid_phone(phone: str, invalid: bool) -> None:
    assert (("invalid_phone", "phone") in found(new_set(**{"usage_application:phone": phone}))) is invalid


@pytest.mark.parametrize(("code", "invalid"), [("321-0251", False), ("〒321-0251", False), ("3210251", True),
                                               ("321-025", True), ("32l-0251", True)])
def test_invalid_postal_code(code: str, invalid: bool) -> None:
    app = new_set(**{"usage_application:postal_code": code})
    assert (("invalid_postal_code", "postal_code") in found(app)) is invalid


@pytest.mark.parametrize(("path", "value", "invalid"), [
    ("usage_application:application_date", "2025-09-26", False),
    ("usage_application:application_date", "2025-10-02", True),  # the future
    ("usage_application:application_date", "令和7年2月30日", True),
    ("facility_pledge:pledge_date", "平成32年1月1日", True),  # outside the era
    ("facility_pledge:pledge_date", "来週", True),
])
def test_invalid_date(path: str, value: str, invalid: bool) -> None:
    assert (("invalid_date", path.split(":")[1]) in found(new_set(**{path: value}))) is invalid


def test_a_planned_effective_date_may_lie_ahead() -> None:
    values = change((("add",), "大橋 恵", "ohashi@midori.example.jp", False))
    values.sheets[0].values["changes[1].effective_date"] = "2025-11-01"
    assert ("invalid_date", "changes[1].effective_date") not in found(values, REGISTRY)
    values.sheets[0].values["changes[1].effective_date"] = "2026-11-01"
    assert ("invalid_date", "changes[1].effective_date") in found(values, REGISTRY)


@pytest.mark.parametrize(("address", "outside"), [
    ("栃木県芳賀郡茂木町飯野3-30", False), ("宇都宮市本町1-2", False), ("芳賀郡益子町益子1", False),
    ("茨城県筑西市丙1", True), ("東京都千代田区1-1", True), ("前橋市大手町1", True),
])
def test_outside_area(address: str, outside: bool) -> None:
    findings = check(new_set(**{"usage_application:address": address}), RuleContext(today=TODAY), CONFIG)
    area = [f for f in findings if f.rule == "outside_area" and f.form_id == "usage_application"]
    assert bool(area) is outside
    assert all(f.severity == "warning" for f in area)


def test_rules_are_configuration(tmp_path) -> None:
    config = deepcopy(CONFIG)
    config["emails"]["shared_local_parts"] = ["kimura_wataru"]
    config["enabled"] = ["shared_email"]
    assert {f.rule for f in check(new_set(), RuleContext(today=TODAY), config)} == {"shared_email"}


def test_the_same_person_at_the_same_facility_on_two_applications_is_no_duplicate() -> None:
    key = facility_key("茂木訪問看護ステーション", CONFIG)
    same = RuleContext(today=TODAY, queued=[KnownStaff(key, "木村 航", "kimura_wataru@mail.example.jp",
                                                        where="申請 A000002")])
    assert ("duplicate_email", "staff[1].email") not in found(new_set(), same)
    other_facility = RuleContext(today=TODAY, queued=[KnownStaff(facility_key("益子クリニック", CONFIG), "木村 航",
                                                                  "kimura_wataru@mail.example.jp", where="A000003")])
    assert ("duplicate_email", "staff[1].email") in found(new_set(), other_facility)


def test_unknown_facility_waits_for_the_registry_to_be_imported() -> None:
    app = change((("add",), "大橋 恵", "ohashi@midori.example.jp", False), facility="みどり薬局 真岡店")
    assert ("unknown_facility", "facility_name") not in found(app, RuleContext(today=TODAY))
    assert ("unknown_facility", "facility_name") in found(app, REGISTRY)
