"""The batch end to end: files and e-mails in, records and an export out, each document once."""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import random
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from sqlalchemy import func, select

from renraku import normalize
from renraku.context import Context
from renraku.pipeline import run
from renraku.pipeline.run import Received, process_paths
from renraku.samples.generator import invent_change, invent_set, render_pdf
from renraku.sinks import models as m
from renraku.sinks.store import DocumentStore
from tests.conftest import DevRun, load_jsonl


def counts(ctx: Context) -> dict[str, int]:
    with ctx.sessions() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t))
                for t in (m.Document, m.Page, m.Sheet, m.Field, m.Application, m.Finding)}


def truth_sha(dev_set: Path, file: str) -> str:
    if "#" not in file:
        return hashlib.sha256((dev_set / file).read_bytes()).hexdigest()
    eml, name = file.split("#", 1)
    msg = email.message_from_bytes((dev_set / eml).read_bytes(), policy=email.policy.default)
    part = next(p for p in msg.walk() if p.get_filename() == name)
    return hashlib.sha256(part.get_payload(decode=True)).hexdigest()


def expected(path: str, value):
    if isinstance(value, bool):
        return value
    if path.endswith("email"):
        return normalize.email(value)
    return normalize.text(value)


def test_dev_set_typed_pdfs_are_read_exactly_and_image_pages_classified(dev_set: Path, dev_run: DevRun) -> None:
    assert dev_run.report.count("failed") == 0
    sheets = {(r["source"]["sha256"], r["source"]["page"]): r for r in load_jsonl(dev_run.export / "sheets.jsonl")}
    typed = image = 0
    for t in load_jsonl(dev_set / "truth.jsonl"):
        sheet = sheets[(truth_sha(dev_set, t["file"]), t["page"])]  # every page is recorded
        if t["degrade"] != "typed_pdf":
            assert sheet["form_id"] == t["form_id"] or (t["form_id"] == "cover" and sheet["form_id"] == "unknown")
            if t["form_id"] != "cover":
                assert set(sheet["fields"]) == set(t["fields"])
                assert all(f["method"] in ("ocr", "mark") for f in sheet["fields"].values())
            image += 1
            continue
        typed += 1
        assert sheet["form_id"] == t["form_id"], t["file"]
        got = {p: f["value"] for p, f in sheet["fields"].items()}
        assert got == {p: expected(p, v) for p, v in t["fields"].items()}, t["file"]
        assert all(f["method"] == "text_layer" and not f["needs_review"] and f["confidence"] == 1.0
                   for f in sheet["fields"].values())
    assert typed == 12 and image == 31
    store = DocumentStore(dev_run.home / "documents")
    stored = [p for p in store.root.rglob("*") if p.is_file()]
    assert stored and all(store.verify(p.name) for p in stored)


def test_thin_print_on_a_clean_scan_is_read_not_left_empty(dev_set: Path, dev_run: DevRun) -> None:
    """CHG-006 is a scan of a sheet typed in a thin Mincho: Tesseract finds no text in 遠藤 美紀 as
    it is, so a crop with ink and no reading is read once more with its strokes widened."""
    truth = next(t for t in load_jsonl(dev_set / "truth.jsonl")
                 if t["set_id"] == "CHG-006" and t["degrade"] == "scan")
    sheets = {(r["source"]["sha256"], r["source"]["page"]): r for r in load_jsonl(dev_run.export / "sheets.jsonl")}
    name = sheets[(truth_sha(dev_set, truth["file"]), truth["page"])]["fields"]["changes[2].name"]
    assert normalize.compact(name["value"]) == normalize.compact(truth["fields"]["changes[2].name"])


def test_processing_the_same_folder_twice_adds_nothing(ctx: Context, tmp_path: Path) -> None:
    inbox = Path(__file__).resolve().parents[2] / "samples" / "inbox"
    first = process_paths(ctx, [inbox])
    before = counts(ctx)
    assert before["sheets"] == 16 and first.count("recorded") == 6
    second = process_paths(ctx, [inbox])
    assert counts(ctx) == before
    assert second.count("duplicate") == len(second.items) == 6
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.Receipt).where(m.Receipt.duplicate)) == 6
        assert [b.status for b in s.scalars(select(m.Batch).order_by(m.Batch.id))] == ["done", "done"]


def test_the_same_file_twice_in_one_batch_is_stored_once(ctx: Context, tmp_path: Path) -> None:
    pdf = render_pdf(invent_set(random.Random(1)))
    (tmp_path / "in").mkdir()
    for name in ("a.pdf", "copy of a.pdf"):
        (tmp_path / "in" / name).write_bytes(pdf)
    report = process_paths(ctx, [tmp_path / "in"])
    assert [i.status for i in report.items] == ["recorded", "duplicate"]
    assert counts(ctx)["documents"] == 1 and counts(ctx)["sheets"] == 3


def windows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of pages of each window read together, as the batch reads them."""
    read_at_once: list[int] = []
    real = run.read_opened

    def counting(docs, reading, pool=None, ahead=None):
        read_at_once.append(sum(len(d.loaded) for doc in docs for d in run.walk(doc)))
        return real(docs, reading, pool, ahead)
    monkeypatch.setattr(run, "read_opened", counting)
    return read_at_once


def test_a_batch_is_read_a_bounded_number_of_pages_at_a_time(ctx: Context, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages are held in memory from opening until recorded: eight 30-page faxes must not be all at once."""
    monkeypatch.setattr(run, "PAGES_AHEAD", 5)
    read_at_once = windows(monkeypatch)
    (tmp_path / "in").mkdir()
    for n in range(3):  # three sets of three sheets
        (tmp_path / "in" / f"{n}.pdf").write_bytes(render_pdf(invent_set(random.Random(10 + n))))
    (tmp_path / "in" / "3 copy of 0.pdf").write_bytes((tmp_path / "in" / "0.pdf").read_bytes())
    report = process_paths(ctx, [tmp_path / "in"])
    assert read_at_once == [6, 3]  # two files reach the budget; the copy of 0 is known by then, not opened
    assert [i.status for i in report.items] == ["recorded", "recorded", "recorded", "duplicate"]
    assert counts(ctx)["sheets"] == 9


def test_a_window_holds_a_bounded_size_of_page_images(ctx: Context, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty-four phone photos are 290 MB of pixels: the window closes on their size, not only their count."""
    import numpy as np
    from PIL import Image

    monkeypatch.setattr(run, "PIXELS_AHEAD", 2 * 600 * 400)  # two of these pictures
    read_at_once = windows(monkeypatch)
    (tmp_path / "in").mkdir()
    for n in range(5):
        pixels = np.full((600, 400), 255 - n, dtype=np.uint8)  # blank pictures: not forms, read at once
        Image.fromarray(pixels).save(tmp_path / "in" / f"IMG_{n}.png")
    report = process_paths(ctx, [tmp_path / "in"])
    assert read_at_once == [2, 2, 1]
    assert report.count("recorded") == 5 and counts(ctx)["pages"] == 5


def test_no_tesseract_model_is_held_between_windows(ctx: Context, dev_set: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Six loaded models are 178 MB: they are let go after each window's OCR, not held while the next
    window's files are opened and prepared (the batch's largest moment, docs/scale.md)."""
    from renraku.extractors import ocr

    monkeypatch.setattr(run, "PAGES_AHEAD", 1)
    held: list[int] = []
    real = run.open_document

    def opening(*args, **kwargs):
        held.append(sum(len(free) for free in ocr._ENGINES.values()))
        return real(*args, **kwargs)
    monkeypatch.setattr(run, "open_document", opening)
    faxes = sorted((dev_set / "files").glob("*.tif"))[:2]
    report = process_paths(ctx, faxes)
    assert report.count("recorded") == 2 and held == [0, 0]


def test_a_rerun_after_a_kill_reads_only_the_pages_not_recorded(ctx: Context, tmp_path: Path) -> None:
    """Killed after two of three files were recorded: the rerun takes those two as duplicates by their
    hash, unopened, and reads the third file's pages only (the batch's stats say how many it read)."""
    import os
    import subprocess
    import sys

    (tmp_path / "in").mkdir()
    for n, sheets in enumerate([invent_set(random.Random(30)), [invent_change(random.Random(31))],
                                invent_set(random.Random(32))[:2]]):
        (tmp_path / "in" / f"{n}.pdf").write_bytes(render_pdf(sheets))
    env = {**os.environ, "RENRAKU_HOME": str(ctx.settings.home), "RENRAKU_FAULT": "upload:recorded:2"}
    killed = subprocess.run([sys.executable, "-m", "renraku.cli", "process", str(tmp_path / "in")], env=env,
                            capture_output=True, timeout=300)
    assert killed.returncode == -9
    assert counts(ctx)["pages"] == 4  # 0.pdf and 1.pdf
    report = process_paths(ctx, [tmp_path / "in"])
    assert [i.status for i in report.items] == ["duplicate", "duplicate", "recorded"]
    assert report.pages_read == 2
    assert counts(ctx)["pages"] == 6 and counts(ctx)["documents"] == 3
    with ctx.sessions() as s:
        assert s.get(m.Batch, report.batch_id).stats["pages_read"] == 2


def test_bad_files_are_recorded_with_a_reason_and_the_batch_goes_on(ctx: Context, tmp_path: Path) -> None:
    good = render_pdf(invent_set(random.Random(2)))
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(good)))
    writer.encrypt(user_password="pw", owner_password="pw")
    encrypted = io.BytesIO()
    writer.write(encrypted)
    (tmp_path / "1_truncated.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<<")
    (tmp_path / "2_encrypted.pdf").write_bytes(encrypted.getvalue())
    (tmp_path / "3_guide.docx").write_bytes(b"PK\x03\x04not really")
    (tmp_path / "4_good.pdf").write_bytes(good)
    report = process_paths(ctx, [tmp_path])  # the data folder inside tmp_path is not taken as input
    assert [(Path(i.source_ref).name, i.status) for i in report.items] == [
        ("1_truncated.pdf", "unreadable"), ("2_encrypted.pdf", "unreadable"),
        ("3_guide.docx", "unsupported"), ("4_good.pdf", "recorded")]
    assert all(i.reason for i in report.items[:3])
    with ctx.sessions() as s:
        docs = {d.file_name: d for d in s.scalars(select(m.Document))}
        assert docs["2_encrypted.pdf"].reason == "パスワードで保護された PDF は読めません"
        assert docs["3_guide.docx"].status == "unsupported"
        assert len(docs["4_good.pdf"].pages) == 3
        assert all(ctx.store.verify(d.sha256) for d in docs.values())


def test_a_link_in_a_folder_is_not_followed_out_of_it(ctx: Context, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "passwd"
    secret.parent.mkdir()
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "passwd.pdf").symlink_to(secret)
    (tmp_path / "in" / "sub" / "linked").symlink_to(secret.parent, target_is_directory=True)
    (tmp_path / "in" / "set.pdf").write_bytes(render_pdf(invent_set(random.Random(3))))
    report = process_paths(ctx, [tmp_path / "in"])
    assert [(Path(i.source_ref).name, i.status) for i in report.items] == [
        ("passwd.pdf", "unsupported"), ("set.pdf", "recorded")]
    assert "リンク" in report.items[0].reason
    assert not ctx.store.path(hashlib.sha256(secret.read_bytes()).hexdigest()).exists()
    with ctx.sessions() as s:
        assert [d.file_name for d in s.scalars(select(m.Document))] == ["set.pdf"]


def test_a_crash_before_the_commit_leaves_nothing_half_recorded(ctx: Context, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    pdf = render_pdf(invent_set(random.Random(4)))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "set.pdf").write_bytes(pdf)
    real = run.record_applications

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")
    monkeypatch.setattr(run, "record_applications", crash)
    with pytest.raises(RuntimeError):
        process_paths(ctx, [tmp_path / "in"])
    assert counts(ctx)["documents"] == 0
    assert ctx.store.path(hashlib.sha256(pdf).hexdigest()).exists()  # the bytes were kept
    with ctx.sessions() as s:
        assert s.scalars(select(m.Batch.status)).all() == ["failed"]
    monkeypatch.setattr(run, "record_applications", real)
    report = process_paths(ctx, [tmp_path / "in"])
    assert report.count("recorded") == 1
    assert counts(ctx)["documents"] == 1 and counts(ctx)["sheets"] == 3


def test_an_email_is_opened_to_its_attachments(ctx: Context) -> None:
    inbox = Path(__file__).resolve().parents[2] / "samples" / "inbox"
    eml = inbox / "20250902_145005.eml"
    batch = run.Batch(ctx)
    with batch:
        outcome = batch.receive(Received(eml.read_bytes(), eml.name, str(eml)))
    assert outcome.status == "recorded" and outcome.sheets == 3 and "開きません" in outcome.reason
    with ctx.sessions() as s:
        msg = s.scalars(select(m.Document).where(m.Document.parent_id.is_(None))).one()
        assert msg.status == "message" and msg.message_id
        children = sorted(msg.children, key=lambda d: d.id)
        assert [c.file_name for c in children] == ["利用申込書.pdf", "登録申請書.pdf", "誓約書.pdf", "利用案内.docx"]
        assert all(c.message_id == msg.message_id for c in children)
        app = s.scalars(select(m.Application)).one()
        assert app.kind == "new_facility" and app.missing == [] and len(app.sheets) == 3


def test_the_summary_counts_what_was_stored(ctx: Context, tmp_path: Path) -> None:
    sheets = invent_set(random.Random(5))
    sheets[1].truth["staff[1].email"] = "info@clinic.example.jp"  # one finding that stays
    (tmp_path / "in").mkdir()
    for n, sheet in enumerate(sheets):  # the three sheets of one set as three files
        (tmp_path / "in" / f"{n}.pdf").write_bytes(render_pdf([sheet]))
    report = process_paths(ctx, [tmp_path / "in"])
    with ctx.sessions() as s:
        stored = s.scalars(select(m.Application)).all()
        assert (report.applications, report.findings) == (len(stored), sum(len(a.findings) for a in stored))
        assert report.applications == 1
        assert s.get(m.Batch, report.batch_id).stats["applications"] == 1


def test_a_killed_batch_is_marked_interrupted_by_the_next_run(ctx: Context, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "set.pdf").write_bytes(render_pdf(invent_set(random.Random(6))))
    env = {**os.environ, "RENRAKU_HOME": str(ctx.settings.home), "RENRAKU_FAULT": "upload:stored"}
    killed = subprocess.run([sys.executable, "-m", "renraku.cli", "process", str(tmp_path / "in")], env=env,
                            capture_output=True, timeout=300)
    assert killed.returncode == -9
    with ctx.sessions() as s:
        assert s.scalars(select(m.Batch.status)).all() == ["running"]
    report = process_paths(ctx, [tmp_path / "in"])
    with ctx.sessions() as s:
        assert [(b.id, b.status) for b in s.scalars(select(m.Batch).order_by(m.Batch.id))] == [
            (report.batch_id - 1, "interrupted"), (report.batch_id, "done")]
    assert report.count("recorded") == 1  # the stored bytes are read on the rerun
