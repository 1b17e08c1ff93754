"""Sets across channels and days: a late sheet completes its set; similar names stay apart."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select

from renraku.context import Context
from renraku.pipeline.run import Batch, Received
from renraku.samples.generator import eml_with_attachments, invent_cover, invent_set, render_pdf
from renraku.sinks import models as m


def receive(ctx: Context, data: bytes, name: str, channel: str = "upload") -> None:
    with Batch(ctx) as batch:
        batch.receive(Received(data, name, name, channel))


def applications(ctx: Context) -> list[tuple[str, list[str], list[str], str, list[str]]]:
    with ctx.sessions() as s:
        return [(a.kind, sorted(sh.form_id for sh in a.sheets), list(a.missing), a.status,
                 sorted(f.rule for f in a.findings))
                for a in s.scalars(select(m.Application).order_by(m.Application.id))]


def clean_set(seed: int):
    sheets = invent_set(random.Random(seed))
    sheets[0].truth["policy_agreed"] = True
    sheets[1].truth["staff[1].admin"] = True
    sheets[2].truth["seal"] = True
    return sheets


def test_a_pledge_arriving_later_by_mail_completes_the_set(ctx: Context) -> None:
    usage, staff, pledge = clean_set(31)
    receive(ctx, render_pdf([usage, staff]), "FAX_0001.pdf", channel="scan")
    assert applications(ctx) == [("new_facility", ["staff_registration", "usage_application"], ["facility_pledge"],
                                  "incomplete", ["missing_sheet"])]
    mail = eml_with_attachments([("誓約書.pdf", render_pdf([pledge]))], subject="誓約書の送付", sender="x@example.jp",
                                when=dt.datetime(2025, 10, 3, 9, 0, tzinfo=dt.UTC))
    receive(ctx, mail, "later.eml", channel="imap")
    assert applications(ctx) == [("new_facility", ["facility_pledge", "staff_registration", "usage_application"],
                                  [], "ready", [])]
    with ctx.sessions() as s:
        channels = {sh.page.document.channel for sh in s.scalars(select(m.Sheet))}
    assert channels == {"scan", "imap"}


def test_the_pledge_first_and_the_rest_days_later(ctx: Context) -> None:
    usage, staff, pledge = clean_set(32)
    receive(ctx, render_pdf([pledge]), "pledge.pdf")
    receive(ctx, render_pdf([usage]), "usage.pdf")
    assert applications(ctx)[0][2] == ["staff_registration"]
    receive(ctx, render_pdf([staff]), "staff.pdf")
    assert [(a[0], len(a[1]), a[2]) for a in applications(ctx)] == [("new_facility", 3, [])]


def test_two_facilities_with_similar_names_are_not_merged(ctx: Context) -> None:
    usage, staff, _ = clean_set(33)
    _, _, other_pledge = clean_set(34)
    for sheet in (usage, staff):
        sheet.truth["facility_name"] = "みどり薬局 芳賀店"
    other_pledge.truth["facility_name"] = "みどり薬局 真岡店"
    receive(ctx, render_pdf([usage, staff]), "haga.pdf")
    receive(ctx, render_pdf([other_pledge]), "moka.pdf")
    apps = applications(ctx)
    assert [(a[1], a[2]) for a in apps] == [
        (["staff_registration", "usage_application"], ["facility_pledge"]),
        (["facility_pledge"], ["usage_application", "staff_registration"])]


def test_a_late_sheet_with_an_ocr_slip_in_the_name_still_joins(ctx: Context) -> None:
    usage, staff, pledge = clean_set(35)
    usage.truth["facility_name"] = staff.truth["facility_name"] = "茂木訪問看護ステーション"
    pledge.truth["facility_name"] = "茂木訪問看護ステーシヨン"
    receive(ctx, render_pdf([usage, staff]), "a.pdf")
    receive(ctx, render_pdf([pledge]), "b.pdf")
    assert [len(a[1]) for a in applications(ctx)] == [3]


def test_a_cover_sheet_joins_nothing(ctx: Context) -> None:
    rng = random.Random(36)
    sheets = clean_set(36)
    receive(ctx, render_pdf([invent_cover(rng, sheets[0].truth["facility_name"], 4), *sheets]), "fax.pdf")
    with ctx.sessions() as s:
        cover = s.scalars(select(m.Sheet).where(m.Sheet.form_id == "cover")).one()
        assert cover.application_id is None and cover.status == "not_a_form"
    assert [len(a[1]) for a in applications(ctx)] == [3]


def test_one_address_on_two_applications_is_flagged_on_both(ctx: Context) -> None:
    first, second = clean_set(37), clean_set(38)
    shared = first[1].truth["staff[1].email"]
    second[1].truth["staff[2].email"] = shared
    second[1].truth["staff[2].name"] = second[1].truth["staff[2].name"] or "別人 太郎"
    second[1].truth["staff[2].job"] = second[1].truth["staff[2].job"] or "看護師"
    receive(ctx, render_pdf(first), "first.pdf")
    receive(ctx, render_pdf(second), "second.pdf")
    apps = applications(ctx)
    assert all("duplicate_email" in a[4] for a in apps)
    with ctx.sessions() as s:
        message = s.scalars(select(m.Finding.message).where(m.Finding.application_id == 2)).first()
        assert "A000001" in message


def test_a_box_the_set_repeats_read_differently_on_a_later_sheet_goes_to_a_person(ctx: Context) -> None:
    import cv2

    from renraku.extractors import notes
    from renraku.samples.degrade import render_pages

    usage, staff, pledge = clean_set(39)
    usage.truth["representative_name"] = "池田 和子"
    pledge.truth["representative_name"] = "佐藤 花子"  # as if the scan of the pledge were misread
    receive(ctx, render_pdf([usage, staff]), "set.pdf")  # typed on a PC: its text layer is certain
    _ok, png = cv2.imencode(".png", render_pages(render_pdf([pledge]))[0])
    receive(ctx, png.tobytes(), "誓約書.png", channel="scan")
    assert [len(a[1]) for a in applications(ctx)] == [3]
    with ctx.sessions() as s:
        fields = {(f.sheet.form_id, f.path): f for f in s.scalars(select(m.Field))}
        doubted = {k for k, f in fields.items() if f.note == notes.text("shared_across_items")}
        assert doubted == {("facility_pledge", "representative_name")}
        assert fields[("facility_pledge", "representative_name")].needs_review
        assert not fields[("usage_application", "representative_name")].needs_review  # the PDF's own text
        assert s.scalars(select(m.Application)).one().status == "needs_review"


def test_sheets_of_one_item_are_not_doubted_again_for_what_their_reading_pooled() -> None:
    from renraku.sinks.records import doubt_disagreeing

    def sheet(form_id: str, document: m.Document, name: str) -> m.Sheet:
        field = m.Field(path="representative_name", kind="name", value=name, method="ocr", needs_review=False,
                        note="", confidence=0.99)
        return m.Sheet(form_id=form_id, page=m.Page(document=document), fields=[field])

    shared = {f: {"representative_name": "representative_name"} for f in ("usage_application", "facility_pledge")}
    fax = m.Document(id=1)
    together = [sheet("usage_application", fax, "池田 和子"), sheet("facility_pledge", fax, "油田 和子")]
    assert doubt_disagreeing(together, shared) == []  # one fax: its item rules pooled the two already
    mail = m.Document(id=2)
    attachment = m.Document(id=3, parent=mail)
    apart = [sheet("usage_application", fax, "池田 和子"), sheet("facility_pledge", attachment, "油田 和子")]
    assert [f.value for f in doubt_disagreeing(apart, shared)] == ["池田 和子", "油田 和子"]
