"""Opening e-mail to its attachments (the full MIME robustness comes with the intake issue)."""

from __future__ import annotations

import datetime as dt

from renraku.pipeline.mail import open_message
from renraku.samples.generator import eml_with_attachments


def test_japanese_subject_and_attachment_names_are_decoded() -> None:
    data = eml_with_attachments([("利用申込書・誓約書_さくら在宅クリニック.pdf", b"%PDF-1.4 test")],
                                subject="どこでも連絡帳の申込み（さくら在宅クリニック）",
                                sender="池田 由紀 <ikeda@sakura.example.jp>",
                                when=dt.datetime(2025, 4, 10, 16, 46, tzinfo=dt.UTC))
    mail = open_message(data)
    assert mail.subject == "どこでも連絡帳の申込み（さくら在宅クリニック）"
    assert mail.message_id and mail.message_id.startswith("<")
    assert [(a.name, a.content_type, a.data) for a in mail.attachments] == [
        ("利用申込書・誓約書_さくら在宅クリニック.pdf", "application/pdf", b"%PDF-1.4 test")]
    assert "添付" in mail.body


def test_a_message_without_attachments_has_none() -> None:
    mail = open_message(b"From: a@example.jp\r\nSubject: =?utf-8?b?57Sb5aSx?=\r\n\r\nhello\r\n")
    assert mail.attachments == [] and mail.subject == "紛失" and mail.body.strip() == "hello"


def test_an_rfc2231_file_name_in_shift_jis(tmp_path) -> None:
    raw = (b"From: a@example.jp\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
           b"--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename*=shift_jis''%90%BE%96%F1%8F%91.pdf\r\n\r\n"
           b"JVBERi0xLjQ=\r\n--XX--\r\n")
    mail = open_message(raw)
    assert [(a.name, a.data) for a in mail.attachments] == [("誓約書.pdf", b"%PDF-1.4")]
