"""Templates are derived from the blank sheets, and reproduce the committed ones."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter, Transformation

from renraku.cli import main
from renraku.config import DEFAULT_TEMPLATES_DIR
from renraku.errors import TemplateError
from renraku.extractors.derive import derive_templates, load_label_map
from renraku.extractors.templates import Template, load_templates, template_files
from renraku.samples.generator import FORMS_DIR

LABELS = DEFAULT_TEMPLATES_DIR / "labels.json"


@pytest.mark.parametrize("committed", template_files(DEFAULT_TEMPLATES_DIR), ids=lambda p: p.stem)
def test_derived_template_reproduces_the_committed_one(committed: Path) -> None:
    template = Template.model_validate_json(committed.read_text(encoding="utf-8"))
    blank = FORMS_DIR / template.source.file
    derived = derive_templates(blank, load_label_map(LABELS))
    assert [t.to_json() for t in derived if t.form_id == template.form_id] == [committed.read_text(encoding="utf-8")]


def test_the_set_of_three_blank_derives_the_same_boxes() -> None:
    single = {t.form_id: t for t in load_templates(DEFAULT_TEMPLATES_DIR)}
    for t in derive_templates(FORMS_DIR / "application_set_blank.pdf", load_label_map(LABELS)):
        assert t.fields == single[t.form_id].fields
        assert t.identity == single[t.form_id].identity


def test_every_field_path_of_the_spec_is_in_a_template(templates: list[Template]) -> None:
    paths = {t.form_id: [f.path for f in t.fields] for t in templates}
    assert paths["usage_application"][:4] == ["application_date", "facility_name_kana", "facility_name",
                                              "facility_type.hospital"]
    assert len(paths["usage_application"]) == 25
    assert sum(p.startswith("staff[8].") for p in paths["staff_registration"]) == 5
    assert sum(p.startswith("changes[6].") for p in paths["staff_change"]) == 9
    assert paths["facility_pledge"] == ["pledge_date", "facility_name", "address", "representative_title",
                                        "representative_name", "seal"]


def test_boxes_do_not_cover_their_printed_labels(templates: list[Template]) -> None:
    """A value box that held its own label would read 「メール」 as part of every address."""
    t = next(t for t in templates if t.form_id == "staff_registration")
    email_box = t.field("staff[1].email").box
    assert email_box[0] > 94.8  # the printed 「メール」 ends at x=94.8
    seal = next(t for t in templates if t.form_id == "facility_pledge").field("seal")
    assert [p.text for p in seal.printed] == ["印"]


def _shifted_blank(tmp_path: Path, dx: float, dy: float) -> Path:
    """The official sheet as a revised edition might print it: everything moved on the page."""
    writer = PdfWriter()
    page = writer.add_page(PdfReader(FORMS_DIR / "form2_facility_pledge.pdf").pages[0])
    page.add_transformation(Transformation().translate(dx, -dy))
    out = tmp_path / "revised_pledge.pdf"
    buf = io.BytesIO()
    writer.write(buf)
    out.write_bytes(buf.getvalue())
    return out


def test_a_revised_sheet_is_onboarded_without_code_changes(tmp_path: Path, templates: list[Template]) -> None:
    revised = _shifted_blank(tmp_path, 10, 20)
    out = tmp_path / "templates"
    assert main(["template", "derive", str(revised), "--out", str(out)]) == 0
    new = Template.model_validate_json((out / "facility_pledge.json").read_text(encoding="utf-8"))
    old = next(t for t in templates if t.form_id == "facility_pledge")
    for a, b in zip(old.fields, new.fields, strict=True):
        assert a.path == b.path
        assert b.box == pytest.approx((a.box[0] + 10, a.box[1] + 20, a.box[2] + 10, a.box[3] + 20), abs=0.15)


def test_a_label_missing_from_the_sheet_is_a_clear_error(tmp_path: Path) -> None:
    forms = json.loads(LABELS.read_text(encoding="utf-8"))
    forms["forms"]["facility_pledge"]["fields"].append({"path": "witness", "kind": "name", "label": "立会人"})
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(forms, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(TemplateError, match="立会人"):
        derive_templates(FORMS_DIR / "form2_facility_pledge.pdf", load_label_map(labels))


def test_an_ambiguous_label_asks_for_a_row(tmp_path: Path) -> None:
    forms = json.loads(LABELS.read_text(encoding="utf-8"))
    fields = forms["forms"]["usage_application"]["fields"]
    spec = next(f for f in fields if f["path"] == "representative_name")
    del spec["row"]  # 「氏名」 is printed for the representative only once, but 「電話」…
    spec = next(f for f in fields if f["path"] == "contact_phone")
    spec["label"] = "氏名"
    del spec["row"]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(forms, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(TemplateError, match="row"):
        derive_templates(FORMS_DIR / "form1_usage_application.pdf", load_label_map(labels))


def test_a_sheet_with_an_unknown_corner_label_is_refused(tmp_path: Path) -> None:
    forms = json.loads(LABELS.read_text(encoding="utf-8"))
    del forms["forms"]["staff_change"]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(forms, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(TemplateError, match="別紙様式3"):
        derive_templates(FORMS_DIR / "form3_staff_change.pdf", load_label_map(labels))


def test_derive_prints_a_template_when_no_folder_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["template", "derive", str(FORMS_DIR / "form3_staff_change.pdf")]) == 0
    printed = Template.model_validate_json(capsys.readouterr().out)
    assert printed.form_id == "staff_change" and len(printed.fields) == 58
