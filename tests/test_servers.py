"""The mail test harness works: real dovecot and postfix, TLS verified, logs and resets as promised.

Why: the intake's IMAP and SMTP tests rely on these servers behaving like a real inbox; if the
harness lied (no TLS verification, a command log that misses commands, a UIDVALIDITY that does not
change), those tests would pass for the wrong reason.
"""

from __future__ import annotations

import email
import pwd
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.servers import (
    MAIL_USER,
    ImapServer,
    SmtpServer,
    content_fetches,
    imap_server,  # noqa: F401  (fixture)
    imap_server_factory,  # noqa: F401  (fixture)
    live_group_members,
    parse_rawlog_input,
    skip_unless_installed,
    smtp_server,  # noqa: F401  (fixture)
    start_imap_server,
)


def message(subject: str, body: str = "本文です。\r\n") -> bytes:
    """A small UTF-8 e-mail whose Message-ID is derived from its subject."""
    return (
        f"From: facility@example.jp\r\nTo: secretariat@renraku.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.jp>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
    ).encode()


# ---- start, stop, TLS, login


def test_starts_fast_and_stops_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_unless_installed()
    monkeypatch.delenv("RENRAKU_KEEP_MAIL_SERVERS", raising=False)
    with start_imap_server() as server:
        assert server.startup_seconds < 3
        ports = (server.ssl_port, server.starttls_port, server.lmtp_port)
        pid = server.process.pid
        root = server.root
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection((server.host, port), timeout=1).close()
    assert not live_group_members(pid)
    assert not root.exists()


def test_login_over_implicit_tls_verifies_the_certificate(imap_server: ImapServer) -> None:  # noqa: F811
    context = ssl.create_default_context(cafile=str(imap_server.cafile))
    with IMAPClient(imap_server.host, imap_server.ssl_port, ssl=True, ssl_context=context) as client:
        client.login(imap_server.user, imap_server.password)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    # Without the CA the same certificate is refused: verification is real, not switched off.
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(imap_server.host, imap_server.ssl_port, ssl=True, ssl_context=ssl.create_default_context())


def test_login_over_starttls_verifies_the_certificate(imap_server: ImapServer) -> None:  # noqa: F811
    client = IMAPClient(imap_server.host, imap_server.starttls_port, ssl=False)
    assert b"STARTTLS" in client.capabilities()
    client.starttls(ssl.create_default_context(cafile=str(imap_server.cafile)))
    client.login(imap_server.user, imap_server.password)
    client.logout()
    plain = IMAPClient(imap_server.host, imap_server.starttls_port, ssl=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        plain.starttls(ssl.create_default_context())
    imap_server.connect("none").logout()  # on 127.0.0.1 dovecot also takes a plain login
    assert [(x.user, x.tls) for x in imap_server.logins()] == [("secretariat", True), ("secretariat", False)]


def test_strict_server_refuses_login_before_starttls(
    imap_server_factory: Callable[..., ImapServer],  # noqa: F811
) -> None:
    server = imap_server_factory(require_tls=True)
    plain = server.connect("none", login=False)
    assert b"LOGINDISABLED" in plain.capabilities()
    with pytest.raises(LoginError):
        plain.login(server.user, server.password)
    server.connect("starttls").logout()
    server.connect("ssl").logout()
    assert [login.tls for login in server.logins()] == [True, True]


def test_wrong_password_is_refused_without_delay(imap_server: ImapServer) -> None:  # noqa: F811
    for _attempt in range(3):
        started = time.monotonic()
        client = imap_server.connect("ssl", login=False)
        with pytest.raises(LoginError):
            client.login(imap_server.user, "wrong")
        # dovecot's defaults would make these 2 s, 6 s, 10 s (failure delay plus a growing penalty)
        assert time.monotonic() - started < 1.9
        client.shutdown()
    imap_server.connect("starttls").logout()  # the right password still works after failures


# ---- mailbox behaviour


def test_append_then_body_peek_leaves_the_message_unseen(imap_server: ImapServer) -> None:  # noqa: F811
    raw = message("peek")
    uid = imap_server.append("INBOX", raw, flags=["\\Flagged"])
    client = imap_server.connect("starttls")
    client.select_folder("INBOX")
    fetched = client.fetch([uid], ["FLAGS", "BODY.PEEK[]"])[uid]
    assert fetched[b"BODY[]"] == raw
    assert b"\\Seen" not in client.get_flags([uid])[uid]
    client.logout()
    [stored] = imap_server.messages("INBOX")
    assert (stored.uid, stored.raw) == (uid, raw)
    assert "\\Flagged" in stored.flags and "\\Seen" not in stored.flags
    # The mail belongs to the unprivileged mail user, never to root.
    owner = pwd.getpwnam(MAIL_USER).pw_uid
    files = [imap_server.maildir, *imap_server.maildir.rglob("*")]
    assert {path.stat().st_uid for path in files} == {owner}


def test_move_is_advertised_by_default(imap_server: ImapServer) -> None:  # noqa: F811
    client = imap_server.connect()
    assert b"MOVE" in client.capabilities()
    client.logout()


def test_without_move_the_copy_delete_expunge_fallback_works(
    imap_server_factory: Callable[..., ImapServer],  # noqa: F811
) -> None:
    server = imap_server_factory(move=False)
    uid = server.append("INBOX", message("fallback"))
    server.create_folder("renraku/done")
    client = server.connect()
    capabilities = client.capabilities()
    assert b"MOVE" not in capabilities
    assert {b"UIDPLUS", b"MULTIAPPEND", b"IDLE"} <= set(capabilities)
    client.select_folder("INBOX")
    client.copy([uid], "renraku/done")
    client.add_flags([uid], [b"\\Deleted"])
    client.uid_expunge([uid])
    client.logout()
    assert server.messages("INBOX") == []
    assert [m.raw for m in server.messages("renraku/done")] == [message("fallback")]
    commands = [c.split()[0:2] for c in server.client_commands()]
    assert ["UID", "COPY"] in commands and ["UID", "STORE"] in commands and ["UID", "EXPUNGE"] in commands
    assert not any("MOVE" in c for c in server.client_commands())


def test_client_command_log_shows_fetches_but_not_the_harness(imap_server: ImapServer) -> None:  # noqa: F811
    uid = imap_server.append("INBOX", message("log"))
    imap_server.messages("INBOX")  # a harness session: left out of the log
    assert imap_server.client_commands() == []

    client = imap_server.connect()
    client.select_folder("INBOX", readonly=True)
    client.search(["UID", f"{uid + 1}:*"])
    client.fetch([uid], ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    # The log is written as the session goes, so it can be read before logout.
    assert content_fetches(imap_server.client_commands()) == []
    client.fetch([uid], ["BODY.PEEK[]"])
    client.logout()
    commands = imap_server.client_commands()
    assert commands[0] == 'EXAMINE "INBOX"'
    assert [c for c in commands if "FETCH" in c] == [
        f"UID FETCH {uid} (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
        f"UID FETCH {uid} (BODY.PEEK[])",
    ]
    assert content_fetches(commands) == [f"UID FETCH {uid} (BODY.PEEK[])"]

    imap_server.clear_client_commands()
    assert imap_server.client_commands() == []
    other = imap_server.connect("starttls")
    other.noop()
    other.logout()
    assert imap_server.client_commands() == ["NOOP", "LOGOUT"]
    assert len(imap_server.client_sessions()) == 1


def test_client_command_log_skips_literal_data() -> None:
    # A message that looks like commands, with a bare LF, appended with a literal.
    body = b"a1 UID FETCH 1 (BODY[])\r\nline with bare LF\nend\r\n"
    rawlog = (
        b"1700000000.000001 A1 SELECT INBOX\r\n"
        b"1700000000.000002 A2 APPEND INBOX (\\Seen) {%d}\r\n" % len(body)
        + b"".join(b"1700000000.000003 " + line for line in body.splitlines(keepends=True))
        + b"1700000000.000003 \r\n1700000000.000004 A3 UID FETCH 1:* (FLAGS)\r\n1700000000.000005 DONE\r\n"
    )
    assert [text for _stamp, text in parse_rawlog_input(rawlog)] == [
        "SELECT INBOX",
        f"APPEND INBOX (\\Seen) {{{len(body)}}}",
        "UID FETCH 1:* (FLAGS)",
        "DONE",
    ]


def test_client_command_log_of_a_real_append_with_tricky_content(imap_server: ImapServer) -> None:  # noqa: F811
    raw = b"Subject: tricky\r\n\r\na1 UID FETCH 1 (BODY[])\nbare LF above\r\nA2 LOGOUT\r\n"
    client = imap_server.connect()
    client.append("INBOX", raw)
    client.noop()
    client.logout()
    commands = imap_server.client_commands()
    assert len(commands) == 3 and commands[1:] == ["NOOP", "LOGOUT"]
    assert re.fullmatch(r'APPEND "INBOX" \(\) \{\d+\}', commands[0])  # imapclient makes the LF a CRLF
    assert content_fetches(commands) == []


def test_content_fetches_tells_bodies_from_headers() -> None:
    commands = [
        "UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)",
        "UID FETCH 5 (BODY.PEEK[HEADER])",
        "UID FETCH 5 (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)])",
        "UID FETCH 5 (BODY[1.MIME])",
        "UID FETCH 5 (BODY.PEEK[])",
        "FETCH 2 (RFC822)",
        "UID FETCH 5 (BODY[TEXT])",
        "UID FETCH 5 (BINARY.PEEK[2])",
        "UID FETCH 5 (BODY.PEEK[]<0.1024>)",
    ]
    assert content_fetches(commands) == commands[4:]


def test_reset_uidvalidity_renumbers_and_keeps_the_messages(imap_server: ImapServer) -> None:  # noqa: F811
    raws = [message(f"m{n}") for n in range(3)]
    uids = imap_server.append_many("INBOX", raws)
    imap_server.append("INBOX", message("seen"), flags=["\\Seen"])
    before = imap_server.uidvalidity("INBOX")
    new = imap_server.reset_uidvalidity("INBOX", first_uid=101)
    assert new != before and uids == [1, 2, 3]
    client = imap_server.connect()
    assert client.select_folder("INBOX")[b"UIDVALIDITY"] == new
    client.logout()
    after = imap_server.messages("INBOX")
    assert [m.uid for m in after] == [101, 102, 103, 104]
    assert [m.raw for m in after] == [*raws, message("seen")]
    assert "\\Seen" in after[3].flags and "\\Seen" not in after[0].flags
    assert imap_server.append("INBOX", message("later")) == 105
    # Any folder, also one with a hierarchy separator; renumbering from 1 by default.
    imap_server.append_many("Archive/2024", raws)
    old = imap_server.uidvalidity("Archive/2024")
    assert imap_server.reset_uidvalidity("Archive/2024") != old
    assert [m.uid for m in imap_server.messages("Archive/2024")] == [1, 2, 3]


def test_two_thousand_messages_are_appended_in_seconds(imap_server: ImapServer) -> None:  # noqa: F811
    started = time.monotonic()
    uids = imap_server.append_many("INBOX", (message(f"bulk{n}") for n in range(2000)))
    elapsed = time.monotonic() - started
    assert uids == list(range(1, 2001))
    assert elapsed < 10, f"2,000 appends took {elapsed:.1f}s"
    assert imap_server.status("INBOX")["MESSAGES"] == 2000


# ---- SMTP


def test_mail_sent_with_smtplib_arrives_in_the_inbox(imap_server: ImapServer, smtp_server: SmtpServer) -> None:  # noqa: F811
    assert smtp_server.startup_seconds < 3
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.sendmail("facility@example.jp", [imap_server.address], message("reply"))
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")  # AUTH is offered after TLS only
        smtp.starttls(context=ssl.create_default_context(cafile=str(smtp_server.cafile)))
        smtp.ehlo()
        assert smtp.has_extn("auth")
        smtp.login(imap_server.user, imap_server.password)
        smtp.sendmail(imap_server.address, ["facility@example.jp"], message("ack"))
    delivered = smtp_server.wait_for_delivery(2)
    assert [email.message_from_bytes(raw)["Subject"] for raw in delivered] == ["reply", "ack"]
    assert delivered[1].endswith(message("ack").split(b"\r\n\r\n", 1)[1])
    # The reply is in the secretariat's INBOX, where the intake reads it over IMAP.
    client = imap_server.connect()
    client.select_folder("INBOX")
    [uid] = client.search(["HEADER", "Message-ID", "reply@example.jp"])
    assert b"Subject: reply" in client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    client.logout()
    # The acknowledgement went to the facility's own mailbox, not to the secretariat.
    [ack] = smtp_server.delivered_to("facility@example.jp")
    assert email.message_from_bytes(ack)["Subject"] == "ack"
    assert len(smtp_server.delivered_to(imap_server.address)) == 1


def test_smtp_auth_refuses_a_wrong_password(smtp_server: SmtpServer) -> None:  # noqa: F811
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.starttls(context=smtp_server.ssl_context())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("secretariat", "wrong")


def test_restart_keeps_the_mail_and_smtp_queues_while_imap_is_down(
    imap_server: ImapServer,  # noqa: F811
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    uid = imap_server.append("INBOX", message("kept"))
    imap_server.stop()
    with pytest.raises(OSError):
        imap_server.connect()
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.sendmail("facility@example.jp", [imap_server.address], message("queued"))
    time.sleep(0.2)
    assert smtp_server.delivered() == []  # dovecot is down: the message waits in postfix's queue
    imap_server.start()
    smtp_server.wait_for_delivery(1, timeout=15)  # postfix retries the LMTP delivery by itself
    stored = imap_server.messages("INBOX")
    assert stored[0].uid == uid
    assert [email.message_from_bytes(m.raw)["Subject"] for m in stored] == ["kept", "queued"]
