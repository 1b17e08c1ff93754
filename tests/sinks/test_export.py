"""The export is exactly SPEC §3: the contract auditors and acceptance tests read."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from renraku.context import Context
from renraku.pipeline.run import process_paths
from renraku.samples.generator import invent_change, invent_set, render_pdf
from renraku.sinks import models as m
from renraku.sinks.export import STAFF_COLUMNS, export
from renraku.sinks.queue import Actor, approve
from tests.conftest import load_jsonl


def test_export_records_have_the_spec_shape(ctx: Context, tmp_path: Path) -> None:
    rng = random.Random(11)
    usage, staff, _pledge = invent_set(rng)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "two_of_three.pdf").write_bytes(render_pdf([usage, staff]))
    (tmp_path / "in" / "change.pdf").write_bytes(render_pdf([invent_change(rng)]))
    process_paths(ctx, [tmp_path / "in"])
    with ctx.sessions() as s:
        summary = export(s, tmp_path / "out")
    assert (summary.sheets, summary.applications, summary.staff) == (3, 2, 0)

    sheets = load_jsonl(tmp_path / "out" / "sheets.jsonl")
    for sheet in sheets:
        assert set(sheet) == {"sheet_id", "application_id", "form_id", "source", "fields", "status"}
        assert set(sheet["source"]) == {"channel", "file", "message_id", "page", "sha256"}
        assert sheet["source"]["channel"] == "upload" and len(sheet["source"]["sha256"]) == 64
        for f in sheet["fields"].values():
            assert set(f) == {"value", "confidence", "needs_review", "method"}
            assert 0.0 <= f["confidence"] <= 1.0
    usage_sheet = next(s for s in sheets if s["form_id"] == "usage_application")
    assert usage_sheet["fields"]["policy_agreed"]["value"] is usage.truth["policy_agreed"]
    assert usage_sheet["fields"]["application_date"]["value"] == usage.truth["application_date"]

    apps = {a["kind"]: a for a in load_jsonl(tmp_path / "out" / "applications.jsonl")}
    for app in apps.values():
        assert set(app) == {"application_id", "kind", "facility_name", "sheets", "missing", "findings", "status"}
    new = apps["new_facility"]
    assert new["missing"] == ["facility_pledge"] and new["status"] == "incomplete"
    assert new["facility_name"] == usage.truth["facility_name"]
    assert [f["rule"] for f in new["findings"]] == ["missing_sheet"]
    assert set(new["findings"][0]) == {"rule", "field", "severity", "message"}
    assert new["findings"][0]["severity"] == "error" and "誓約書" in new["findings"][0]["message"]
    assert {s["application_id"] for s in sheets if s["form_id"] != "staff_change"} == {new["application_id"]}
    assert apps["staff_change"]["missing"] == [] and len(apps["staff_change"]["sheets"]) == 1


def test_staff_csv_lists_the_registered_staff(ctx: Context, tmp_path: Path) -> None:
    sheets = invent_set(random.Random(12))
    sheets[0].truth["policy_agreed"] = True
    sheets[1].truth["staff[1].admin"] = True
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "set.pdf").write_bytes(render_pdf(sheets))
    process_paths(ctx, [tmp_path / "in"])
    with ctx.sessions.begin() as s:
        app = s.query(m.Application).one()
        assert [f.rule for f in app.findings if f.blocking] == []
        approve(s, app.id, Actor("鈴木", "supervisor"))
    with ctx.sessions() as s:
        export(s, tmp_path / "out")
    staff = pd.read_csv(tmp_path / "out" / "staff.csv", dtype=str, keep_default_na=False)
    assert list(staff.columns) == STAFF_COLUMNS
    truth = sheets[1].truth
    rows = [n for n in range(1, 9) if truth[f"staff[{n}].name"]]
    assert list(staff["email"]) == [truth[f"staff[{n}].email"] for n in rows]
    assert list(staff["admin"]) == [str(truth[f"staff[{n}].admin"]) for n in rows]
    assert set(staff["facility_name"]) == {truth["facility_name"]}
    assert set(staff["source"]) == {"A000001"}
