"""The approval gate, corrections that re-run the rules, roles, and the audit trail."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, update

from renraku.cli import main
from renraku.context import Context
from renraku.errors import DecisionRefused, PermissionDenied
from renraku.pipeline.run import Batch, Received
from renraku.samples.generator import invent_set, render_pdf
from renraku.sinks import audit
from renraku.sinks import models as m
from renraku.sinks.queue import Actor, approve, correct_field, override_finding, reject

BOSS, CLERK, AUDITOR = Actor("鈴木", "supervisor"), Actor("田中", "reviewer"), Actor("監査 一郎", "auditor")


@pytest.fixture
def app_with_bad_email(ctx: Context) -> int:
    sheets = invent_set(random.Random(41))
    sheets[0].truth["policy_agreed"] = True
    sheets[1].truth["staff[1].admin"] = True
    sheets[1].truth["staff[1].email"] = "kato.yumi@motegi。example.jp"
    with Batch(ctx) as batch:
        batch.receive(Received(render_pdf(sheets), "set.pdf", "set.pdf"))
    with ctx.sessions() as s:
        return s.scalars(select(m.Application.id)).one()


def findings(ctx: Context, app_id: int) -> list[tuple[str, str | None, bool]]:
    with ctx.sessions() as s:
        return [(f.rule, f.field, f.blocking) for f in s.get(m.Application, app_id).findings]


def field_id(ctx: Context, path: str) -> int:
    with ctx.sessions() as s:
        return s.scalars(select(m.Field.id).where(m.Field.path == path).join(m.Sheet)
                         .where(m.Sheet.form_id == "staff_registration")).one()


def test_an_open_error_blocks_approval_until_corrected(ctx: Context, app_with_bad_email: int) -> None:
    assert findings(ctx, app_with_bad_email) == [("invalid_email", "staff[1].email", True)]
    with ctx.sessions.begin() as s, pytest.raises(DecisionRefused, match="invalid_email"):
        approve(s, app_with_bad_email, BOSS)
    with ctx.sessions.begin() as s:
        correct_field(s, field_id(ctx, "staff[1].email"), "kato.yumi@motegi.example.jp", CLERK)
    assert findings(ctx, app_with_bad_email) == []  # the correction re-ran the rules
    with ctx.sessions.begin() as s:
        f = s.get(m.Field, field_id(ctx, "staff[1].email"))
        assert (f.value, f.method, f.needs_review) == ("kato.yumi@motegi.example.jp", "human", False)
        approve(s, app_with_bad_email, BOSS)
    with ctx.sessions() as s:
        assert s.get(m.Application, app_with_bad_email).status == "approved"
        log = [(e.actor, e.action) for e in s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id))]
    assert log == [("田中", "correct_field"), ("鈴木", "approve")]


def test_a_supervisor_may_override_with_a_written_reason(ctx: Context, app_with_bad_email: int) -> None:
    with ctx.sessions() as s:
        finding_id = s.scalars(select(m.Finding.id)).one()
    with ctx.sessions.begin() as s, pytest.raises(PermissionDenied):
        override_finding(s, finding_id, "本人に確認済み", CLERK)
    with ctx.sessions.begin() as s, pytest.raises(DecisionRefused, match="理由"):
        override_finding(s, finding_id, "  ", BOSS)
    with ctx.sessions.begin() as s:
        override_finding(s, finding_id, "電話で本人に確認済み（アドレスは正しい）", BOSS)
    with ctx.sessions.begin() as s:
        app = approve(s, app_with_bad_email, BOSS)  # the override survives the re-check on approval
        finding = app.findings[0]
        assert (finding.overridden_by, finding.override_reason) == ("鈴木", "電話で本人に確認済み（アドレスは正しい）")
    with ctx.sessions() as s:
        log = [e.action for e in s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id))]
        assert log == ["override_finding", "approve"]
        assert audit.verify(s).ok


def test_roles(ctx: Context, app_with_bad_email: int) -> None:
    with ctx.sessions.begin() as s, pytest.raises(PermissionDenied):
        approve(s, app_with_bad_email, CLERK)
    with ctx.sessions.begin() as s, pytest.raises(PermissionDenied):
        correct_field(s, field_id(ctx, "staff[1].email"), "x@example.jp", AUDITOR)
    with ctx.sessions.begin() as s, pytest.raises(PermissionDenied):
        reject(s, app_with_bad_email, "重複", CLERK)
    with ctx.sessions.begin() as s:
        reject(s, app_with_bad_email, "施設から取り下げの連絡あり", BOSS)
    with ctx.sessions.begin() as s, pytest.raises(DecisionRefused):
        approve(s, app_with_bad_email, BOSS)


def test_a_field_flagged_for_review_must_be_checked_before_approval(ctx: Context, app_with_bad_email: int) -> None:
    fid = field_id(ctx, "staff[1].job")
    with ctx.sessions.begin() as s:
        s.execute(update(m.Field).where(m.Field.id == fid).values(needs_review=True, confidence=0.4))
        correct_field(s, field_id(ctx, "staff[1].email"), "kato.yumi@motegi.example.jp", CLERK)
    with ctx.sessions.begin() as s, pytest.raises(DecisionRefused, match="確認待ち"):
        approve(s, app_with_bad_email, BOSS)
    with ctx.sessions.begin() as s:
        job = s.get(m.Field, fid).value
        correct_field(s, fid, job, CLERK)  # the same value: a confirmation
        assert s.get(m.Field, fid).method == "text_layer"
        approve(s, app_with_bad_email, BOSS)


def test_a_doubtful_facility_name_is_called_a_mismatch_only_once_a_person_has_checked_it(
        ctx: Context, app_with_bad_email: int) -> None:
    with ctx.sessions.begin() as s:
        name = s.scalars(select(m.Field).where(m.Field.path == "facility_name").join(m.Sheet)
                         .where(m.Sheet.form_id == "facility_pledge")).one()
        fid, misread = name.id, name.value[:1] + "肪裏" + name.value[3:]
        name.value, name.needs_review, name.confidence = misread, True, 0.3
        correct_field(s, field_id(ctx, "staff[1].email"), "kato.yumi@motegi.example.jp", CLERK)  # re-runs the rules
    assert "facility_mismatch" not in [rule for rule, _f, _b in findings(ctx, app_with_bad_email)]
    with ctx.sessions.begin() as s:
        correct_field(s, fid, misread, CLERK)  # the clerk confirms the name as read
    assert ("facility_mismatch", "facility_name", True) in findings(ctx, app_with_bad_email)


def test_tampering_with_the_audit_log_is_detected(ctx: Context, app_with_bad_email: int,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with ctx.sessions.begin() as s:
        correct_field(s, field_id(ctx, "staff[1].email"), "kato.yumi@motegi.example.jp", CLERK)
        approve(s, app_with_bad_email, BOSS)
    assert main(["audit", "verify"]) == 0
    with ctx.sessions.begin() as s:
        s.execute(update(m.AuditEntry).where(m.AuditEntry.action == "correct_field").values(actor="誰か"))
    assert main(["audit", "verify"]) == 1
    assert "書き換え" in capsys.readouterr().err
