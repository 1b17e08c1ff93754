"""On the labelled dev set: the findings each typed-PDF set must produce, and no false errors."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DevRun, load_jsonl
from tests.pipeline.test_run import truth_sha


def test_typed_sets_produce_their_expected_findings(dev_set: Path, dev_run: DevRun) -> None:
    tmp_path = dev_run.export
    sheet_set = {}
    sheets = {(r["source"]["sha256"], r["source"]["page"]): r["sheet_id"]
              for r in load_jsonl(tmp_path / "sheets.jsonl")}
    for t in load_jsonl(dev_set / "truth.jsonl"):
        sheet_set[sheets[(truth_sha(dev_set, t["file"]), t["page"])]] = t["set_id"]
    found: dict[str, set[tuple[str, str | None, str]]] = {}
    for app in load_jsonl(tmp_path / "applications.jsonl"):
        for set_id in {sheet_set[s] for s in app["sheets"]}:
            found.setdefault(set_id, set()).update((f["rule"], f["field"], f["severity"]) for f in app["findings"])
    typed = [s for s in load_jsonl(dev_set / "sets.jsonl") if s["degrade"] == "typed_pdf"]
    assert len(typed) == 4
    for s in typed:
        got = found.get(s["set_id"], set())
        for expected in s["expected_issues"]:
            assert any(r == expected["rule"] and (expected["field"] is None or f == expected["field"])
                       for r, f, _sev in got), (s["set_id"], expected, got)
        if not s["expected_issues"]:
            assert not [g for g in got if g[2] == "error"], (s["set_id"], got)
