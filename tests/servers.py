"""Real mail servers for tests: a private Dovecot (IMAP, LMTP) and a private Postfix (SMTP).

Why: scheduled intake talks to a real inbox, so its tests run against real servers that the tests
start themselves, each in its own folder under /tmp with its own config, sockets, state and logs,
on free ports of 127.0.0.1. The system services (if any) are never used nor touched.

- Dovecot 2.3 (Debian 12 `dovecot-imapd`, `dovecot-lmtpd`) runs `dovecot -F -c <dir>/dovecot.conf`
  as root and drops to the unprivileged user `renraku-mail` (created if missing) for mail access.
  Ports: implicit TLS (`ssl_port`) and plain with STARTTLS (`starttls_port`); a self-signed CA and
  a certificate for 127.0.0.1/localhost signed by it (`cafile`). Every IMAP session after login
  is written by dovecot's `rawlog_dir` to `<dir>/rawlog/*.in|.out`; `client_commands()` reads the
  client side of them.
- Postfix (Debian `postfix`) runs its `master` with a private config directory and queue; it
  accepts mail from 127.0.0.1 on `port` (STARTTLS offered; after it, optional SMTP AUTH with the
  secretariat's user and password, checked by dovecot) and hands every recipient to the
  dovecot's LMTP: mail for the secretariat lands in its INBOX, mail for anyone else in a maildir
  of its own, and a copy of every accepted message in a capture maildir (`delivered()`).

Plain classes and functions (`start_imap_server`, `start_smtp_server`) work from any code; the
pytest fixtures `imap_server`, `imap_server_factory` and `smtp_server` wrap them. Use them from a
test module with `from tests.servers import imap_server, smtp_server  # noqa: F401`, or register
this module once with `pytest_plugins = ["tests.servers"]` in the root conftest.py.
"""

from __future__ import annotations

import bisect
import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

MAIL_USER = "renraku-mail"  # owns every mailbox; the servers drop to it
IMAP_USER = "secretariat"
IMAP_PASSWORD = "renraku-test-password"
MAIL_DOMAIN = "renraku.test"
IMAP_ADDRESS = f"{IMAP_USER}@{MAIL_DOMAIN}"  # the same mailbox, as an e-mail address (LMTP)
CAPTURE_ADDRESS = "capture@capture.renraku.test"  # postfix copies every accepted message here
REFUSED_ADDRESS = "nobody@refused.renraku.test"  # postfix refuses this recipient for good (550), at RCPT
HARNESS_ID = "renraku-test-harness"  # sent with ID by the harness's own sessions, left out of logs
HOST = "127.0.0.1"
# dovecot treats a client whose address equals the server's as secure and lets it log in without
# TLS; a server on 127.0.0.2 is reached from 127.0.0.1, so there it insists on TLS like a remote one.
STRICT_HOST = "127.0.0.2"

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
DOVECOT_LIBEXEC = Path("/usr/lib/dovecot")
POSTFIX_MASTER = "/usr/lib/postfix/sbin/master"
POSTFIX_DAEMONS = Path("/usr/lib/postfix/sbin")
TMP_PREFIX = "renraku-mailtest-"

# Dovecot 2.3's post-login capability list. `imap_capability` can only replace the list (or add to
# it with "+"), so removing MOVE means spelling out the rest; advertising less is always safe.
DOVECOT_23_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
)


# --------------------------------------------------------------------------------------------
# small shared helpers


def missing_binaries(smtp: bool = False) -> list[str]:
    """The server programs that are not installed (empty when the harness can run)."""
    needed = [DOVECOT, DOVEADM, str(DOVECOT_LIBEXEC / "imap"), str(DOVECOT_LIBEXEC / "lmtp")]
    if smtp:
        needed.append(POSTFIX_MASTER)
    return [path for path in needed if not os.access(path, os.X_OK)]


def skip_unless_installed(smtp: bool = False) -> None:
    """Skip the calling test when the Debian packages are absent (dev.sh test installs them)."""
    missing = missing_binaries(smtp=smtp)
    if missing:
        packages = "dovecot-imapd dovecot-lmtpd" + (" postfix" if smtp else "")
        pytest.skip(f"mail servers not installed ({', '.join(missing)}); apt-get install {packages}")


def ensure_mail_user() -> tuple[int, int]:
    """uid and gid of the unprivileged mail owner, created once: mail must not belong to root."""
    try:
        entry = pwd.getpwnam(MAIL_USER)
    except KeyError:
        if os.geteuid() != 0:
            raise RuntimeError(f"the mail test servers run as root (to create user {MAIL_USER})") from None
        result = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", MAIL_USER],
            capture_output=True, text=True, check=False,
        )
        # 9 = the user exists: another process created it between our look-up and useradd.
        if result.returncode not in (0, 9):
            raise RuntimeError(f"useradd {MAIL_USER} failed: {result.stderr.strip()}") from None
        entry = pwd.getpwnam(MAIL_USER)
    return entry.pw_uid, entry.pw_gid


def free_port(host: str = HOST) -> int:
    """A TCP port of `host` that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_ports(
    host: str, ports: Iterable[int], timeout: float = 10.0, process: subprocess.Popen | None = None
) -> None:
    """Block until every port accepts a TCP connection; fail early if the server process died."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    break
            except OSError:
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"server exited with {process.returncode} before {host}:{port} opened") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{host}:{port} did not accept connections within {timeout}s") from None
                time.sleep(0.01)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for localhost, 127.0.0.1 and 127.0.0.2 signed by it.

    Why a CA and not one self-signed leaf: clients verify against `cafile` exactly as they would
    against a real CA, with hostname checking on, and strict X.509 checks stay happy.
    Returns (cafile, certfile, keyfile).
    """
    ca_key, ca_pem = folder / "ca.key", folder / "ca.pem"
    key, cert = folder / "key.pem", folder / "cert.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "7"]
    subprocess.run(
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_pem, "-subj", "/CN=renraku test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["openssl", "req", "-x509", "-CA", ca_pem, "-CAkey", ca_key, *ec, "-keyout", key, "-out", cert,
         "-subj", "/CN=localhost", "-addext", f"subjectAltName=DNS:localhost,IP:{HOST},IP:{STRICT_HOST}",
         "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "keyUsage=critical,digitalSignature",
         "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True,
    )
    for path in (ca_key, key):
        path.chmod(0o600)
    for path in (ca_pem, cert):
        path.chmod(0o644)
    return ca_pem, cert, key


def server_folder(kind: str) -> Path:
    """A fresh folder directly under /tmp that the servers' unprivileged users can traverse.

    Why not pytest's tmp_path: /tmp/pytest-of-root is 0700, so dovecot's and postfix's own users
    could not reach their files through it. Folders left by a killed test run are removed here.
    """
    _remove_stale_folders()
    folder = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{kind}-", dir="/tmp"))
    folder.chmod(0o755)
    (folder / "owner.pid").write_text(str(os.getpid()))
    return folder


def _remove_stale_folders() -> None:
    for folder in Path("/tmp").glob(f"{TMP_PREFIX}*"):
        try:
            pid = int((folder / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue


def live_group_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that still run (zombies waiting for init to reap them excluded)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def _stop_process_group(process: subprocess.Popen | None, grace: float = 0.2) -> None:
    """Stop a server's whole process group: TERM, then KILL what is left after `grace` seconds.

    Why not wait for a graceful exit: dovecot's master polls its children once a second while
    shutting down, which would add a second to every test; these servers keep nothing worth
    a clean shutdown. Returns once no process of the group runs any more.
    """
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # children outliving the master, too
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)
        if process.poll() is not None and not live_group_members(process.pid):
            return
    raise RuntimeError(f"processes of group {process.pid} survived SIGKILL: {live_group_members(process.pid)}")


def _crlf(raw: bytes) -> bytes:
    """Maildir files hold LF line ends; IMAP (and SMTP) show CRLF: give tests the wire form."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


def _maildir_files(maildir: Path) -> list[Path]:
    """The messages of one maildir folder (new/ and cur/), oldest delivery first."""

    def delivered_at(path: Path) -> tuple[int, int, str]:
        match = re.match(r"(\d+)\.M(\d+)", path.name)
        return (int(match.group(1)), int(match.group(2)), path.name) if match else (0, 0, path.name)

    files = [p for sub in ("new", "cur") if (maildir / sub).is_dir() for p in (maildir / sub).iterdir()]
    return sorted(files, key=delivered_at)


# --------------------------------------------------------------------------------------------
# the client command log (dovecot rawlog)

_TIMESTAMP = re.compile(rb"^\d+\.\d+ ")
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n?$")
_CONTENT_ITEM = re.compile(r"\b(?:BODY|BINARY)(?:\.PEEK)?\[([^\]]*)\]|\bRFC822(?:\.TEXT)?(?![.\w])")


@dataclass(frozen=True)
class ClientSession:
    """The commands one IMAP client sent after login, in order, tags removed.

    Literal data (e.g. an APPEND's message) is replaced by its `{size}` marker, so a command reads
    `APPEND "INBOX" (\\Seen) {1234}`. `started` is dovecot's timestamp of the first command.
    """

    started: float
    commands: tuple[str, ...]
    path: Path

    @property
    def pid(self) -> int:
        """The imap process that served the session (dovecot's `mpid` in its Login log line)."""
        return int(self.path.name.split(".")[1])


@dataclass(frozen=True)
class Login:
    """A successful IMAP login as dovecot logged it: who, how, and whether the line was TLS."""

    user: str
    method: str
    tls: bool
    pid: int


_LOGIN_LINE = re.compile(r"imap-login: Info: Login: user=<([^>]*)>, method=(\w+), .*?mpid=(\d+), ([^,]+),")


def parse_rawlog_input(data: bytes) -> list[tuple[float, str]]:
    """Client commands of one dovecot `.in` rawlog file as (timestamp, command without tag).

    Why parse rather than grep: every line carries a timestamp prefix, and literals (message
    bodies in APPEND) span lines that are data, not commands.
    """
    lines = data.split(b"\n")
    stream, stamps = bytearray(), []  # the raw client stream, and (offset, timestamp) per line
    for index, line in enumerate(lines):
        if index == len(lines) - 1 and not line:
            break
        match = _TIMESTAMP.match(line)
        stamp = float(match.group(0)) if match else (stamps[-1][1] if stamps else 0.0)
        stamps.append((len(stream), stamp))
        stream += line[match.end():] if match else line
        if index < len(lines) - 1:
            stream += b"\n"

    starts = [start for start, _stamp in stamps]

    def stamp_at(offset: int) -> float:
        index = bisect.bisect_right(starts, offset) - 1
        return stamps[index][1] if index >= 0 else 0.0

    commands: list[tuple[float, str]] = []
    pos = 0
    while pos < len(stream):
        start = pos
        parts: list[bytes] = []
        while pos < len(stream):
            end = stream.find(b"\n", pos)
            end = len(stream) if end < 0 else end + 1
            line = bytes(stream[pos:end])
            pos = end
            literal = _LITERAL.search(line)
            if literal is None:
                parts.append(line.rstrip(b"\r\n"))
                break
            parts.append(line.rstrip(b"\r\n"))
            pos += int(literal.group(1))  # skip the literal's bytes; the command goes on after it
        text = b"".join(parts).decode("utf-8", "replace")
        if not text.strip():
            continue
        tag, _, rest = text.partition(" ")
        # Untagged client lines (DONE after IDLE, SASL continuations) are kept whole.
        commands.append((stamp_at(start), rest if rest and tag.upper() != "DONE" else text))
    return commands


def content_fetches(commands: Iterable[str]) -> list[str]:
    """The FETCH commands among `commands` that ask for message content, not just headers/flags.

    Why: "a poll with nothing new fetches no message bodies" is a property the intake promises;
    BODY[]/BODY.PEEK[]/BODY[TEXT]/BODY[1]/BINARY[]/RFC822/RFC822.TEXT count, HEADER sections,
    ENVELOPE, FLAGS, RFC822.SIZE and BODYSTRUCTURE do not.
    """
    found = []
    for command in commands:
        words = command.upper().split(None, 2)
        if "FETCH" not in words[:2]:
            continue
        for match in _CONTENT_ITEM.finditer(command.upper()):
            # BODY[] BODY[TEXT] BODY[2] BODY[2.TEXT] are content; BODY[HEADER…] BODY[1.MIME] are not.
            section = re.sub(r"^[\d.]*", "", match.group(1) or "TEXT")
            if section in ("", "TEXT") or section.startswith("TEXT"):
                found.append(command)
                break
    return found


def fetched_uids(commands: Iterable[str]) -> list[int]:
    """The UIDs whose content `commands` fetched (their UID sets, like 3,5:9, expanded; `*` not used)."""
    uids: list[int] = []
    for command in content_fetches(commands):
        match = re.search(r"FETCH\s+([\d:,]+)", command, re.IGNORECASE)
        for part in match.group(1).split(",") if match else []:
            low, _, high = part.partition(":")
            uids.extend(range(int(low), int(high or low) + 1))
    return uids


# --------------------------------------------------------------------------------------------
# IMAP: dovecot


@dataclass(frozen=True)
class StoredMessage:
    """One message as the server holds it."""

    uid: int
    flags: tuple[str, ...]
    raw: bytes


@dataclass
class ImapServer:
    """A private dovecot (IMAP + LMTP) with one user, the secretariat, and its Maildir."""

    root: Path
    ssl_port: int
    starttls_port: int
    lmtp_port: int
    auth_port: int  # dovecot's SASL service, for postfix's SMTP AUTH
    move: bool = True
    require_tls: bool = False
    host: str = HOST
    user: str = IMAP_USER
    password: str = IMAP_PASSWORD
    address: str = IMAP_ADDRESS
    process: subprocess.Popen | None = field(default=None, repr=False)
    startup_seconds: float = 0.0
    _harness_pids: set[int] = field(default_factory=set, repr=False)
    _log_offset: int = field(default=0, repr=False)

    # ---- paths and processes

    @property
    def cafile(self) -> Path:
        """The CA certificate the server's certificate chains to: verify clients against it."""
        return self.root / "ca.pem"

    @property
    def config(self) -> Path:
        """This instance's dovecot.conf (also what doveadm is pointed at)."""
        return self.root / "dovecot.conf"

    @property
    def rawlog_dir(self) -> Path:
        """Where dovecot writes each IMAP session's traffic (`*.in` client, `*.out` server)."""
        return self.root / "rawlog"

    @property
    def maildir(self) -> Path:
        """The secretariat's Maildir (INBOX at its top, other folders as .Name below it)."""
        return self.root / "home" / IMAP_USER / "Maildir"

    def log(self) -> str:
        """dovecot's log (logins, LMTP deliveries, errors): read it when a test fails oddly."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 10.0) -> None:
        """Run dovecot on this folder's config and wait for its ports (used again by restart())."""
        if self.process is not None:
            return
        started = time.monotonic()
        with open(self.root / "dovecot.stdout", "ab") as out:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.root,
            )
        ports = (self.ssl_port, self.starttls_port, self.lmtp_port, self.auth_port)
        try:
            wait_for_ports(self.host, ports, timeout, self.process)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop dovecot and all its children (the whole process group); idempotent.

        The mail stays: restart() (or start()) brings the same server back on the same ports,
        e.g. to test an intake run during an outage.
        """
        _stop_process_group(self.process)
        self.process = None

    def restart(self) -> None:
        """Stop and start again with the same mail, ports and certificate."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and remove the server's folder (kept when RENRAKU_KEEP_MAIL_SERVERS is set)."""
        self.stop()
        if not os.environ.get("RENRAKU_KEEP_MAIL_SERVERS"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ImapServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # ---- connecting as a client would

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts only this server's CA, with hostname checking."""
        return ssl.create_default_context(cafile=str(self.cafile))

    def port_for(self, tls: str) -> int:
        """The port for a RENRAKU_IMAP_TLS value: ssl → implicit TLS, starttls/none → plain port."""
        return self.ssl_port if tls == "ssl" else self.starttls_port

    def connect(self, tls: str = "ssl", login: bool = True) -> IMAPClient:
        """An IMAPClient as the product would open it (tls: "ssl", "starttls" or "none")."""
        client = IMAPClient(self.host, self.port_for(tls), ssl=tls == "ssl", ssl_context=self.ssl_context(), timeout=30)
        if tls == "starttls":
            client.starttls(self.ssl_context())
        if login:
            client.login(self.user, self.password)
        return client

    def env(self, tls: str = "ssl", folder: str = "INBOX") -> dict[str, str]:
        """The RENRAKU_IMAP_* settings that point the product at this server."""
        return {
            "RENRAKU_IMAP_HOST": self.host,
            "RENRAKU_IMAP_PORT": str(self.port_for(tls)),
            "RENRAKU_IMAP_USER": self.user,
            "RENRAKU_IMAP_PASSWORD": self.password,
            "RENRAKU_IMAP_FOLDER": folder,
            "RENRAKU_IMAP_TLS": tls,
            "RENRAKU_IMAP_CAFILE": str(self.cafile),
        }

    @contextlib.contextmanager
    def _admin(self) -> Iterator[IMAPClient]:
        """A harness session: marked with ID so that client_commands() leaves it out."""
        client = self.connect("ssl")
        try:
            client.id_({"name": HARNESS_ID})
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    # ---- mailbox set-up and inspection

    def create_folder(self, folder: str) -> None:
        """Create a mailbox (no error when it exists)."""
        with self._admin() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)

    def append(
        self, folder: str, raw: bytes, flags: Sequence[str] = (), when: datetime | None = None
    ) -> int:
        """Put one message into `folder` (created if missing) with IMAP APPEND; returns its UID."""
        return self.append_many(folder, [raw], flags=flags, when=when)[0]

    def append_many(
        self, folder: str, messages: Iterable[bytes], flags: Sequence[str] = (), when: datetime | None = None
    ) -> list[int]:
        """Put many messages into `folder` in MULTIAPPEND batches (2,000 take about a second).

        Why MULTIAPPEND: one round trip per batch, and dovecot saves and indexes the messages as
        it would any client's, so UIDs, flags and UIDVALIDITY are real.
        """
        items: list[dict] = []
        for raw in messages:
            item: dict = {"msg": raw, "flags": list(flags)}
            if when is not None:
                item["date"] = when
            items.append(item)
        uids: list[int] = []
        with self._admin() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for start in range(0, len(items), 1000):
                response = client.multiappend(folder, items[start : start + 1000])
                uids.extend(_appenduid(response))
        return uids

    def messages(self, folder: str = "INBOX") -> list[StoredMessage]:
        """Every message of `folder`: UID, flags, raw bytes; read-only (flags left as they are)."""
        with self._admin() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
        return [
            StoredMessage(uid, tuple(_text(f) for f in data[b"FLAGS"]), data[b"BODY[]"])
            for uid, data in sorted(fetched.items())
        ]

    def folders(self) -> list[str]:
        """The names of all mailboxes of the secretariat."""
        with self._admin() as client:
            return [name for _flags, _sep, name in client.list_folders()]

    def status(self, folder: str = "INBOX") -> dict[str, int]:
        """STATUS of a folder: MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN (as str keys)."""
        with self._admin() as client:
            status = client.folder_status(folder, ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"])
        return {_text(key): value for key, value in status.items()}

    def uidvalidity(self, folder: str = "INBOX") -> int:
        """The folder's current UIDVALIDITY."""
        return self.status(folder)["UIDVALIDITY"]

    def doveadm(self, *args: str) -> str:
        """Run doveadm against this instance (its config); returns stdout."""
        result = subprocess.run([DOVEADM, "-c", str(self.config), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def folder_path(self, folder: str = "INBOX") -> Path:
        """The maildir folder dovecot keeps `folder` in (asked from dovecot, names may be encoded)."""
        return Path(self.doveadm("mailbox", "path", "-u", self.user, folder).strip())

    def reset_uidvalidity(self, folder: str = "INBOX", first_uid: int = 1) -> int:
        """Give `folder` a new UIDVALIDITY and renumber its messages from `first_uid`, as after a
        server-side rebuild; the messages and their flags stay. Returns the new UIDVALIDITY.

        Why: the intake must notice a changed UIDVALIDITY and resynchronise without losing or
        repeating anything. Call it while no client has the folder selected.
        How: dovecot's index and list index of the folder are removed and its dovecot-uidlist is
        rewritten (same order, new numbers, UIDVALIDITY + 1); dovecot rebuilds the index from it.
        """
        old = self.uidvalidity(folder)  # also syncs: every file of the folder is in the uidlist
        path = self.folder_path(folder)
        uidlist = path / "dovecot-uidlist"
        lines = uidlist.read_text().splitlines()
        entries = []
        for line in lines[1:]:
            uid, _, rest = line.partition(" ")
            if uid.isdigit():
                entries.append((int(uid), rest[rest.index(":"):] if ":" in rest else rest))
        entries.sort()
        new = old + 1
        body = f"3 V{new} N{first_uid + len(entries)}\n" + "".join(
            f"{first_uid + n} {name}\n" for n, (_uid, name) in enumerate(entries)
        )
        for index in [*path.glob("dovecot.index*"), *self.maildir.glob("dovecot.list.index*")]:
            index.unlink(missing_ok=True)
        uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, pwd.getpwnam(MAIL_USER).pw_gid
        tmp = path / "dovecot-uidlist.renraku-reset"
        tmp.write_text(body)
        os.chown(tmp, uid, gid)
        tmp.chmod(0o600)
        tmp.replace(uidlist)
        current = self.uidvalidity(folder)
        if current != new:
            raise RuntimeError(f"UIDVALIDITY of {folder} is {current} after the reset, expected {new}")
        return new

    # ---- what the clients sent

    def client_sessions(self, include_harness: bool = False) -> list[ClientSession]:
        """Every IMAP session's client commands after login, oldest session first.

        Why: tests assert on what the product sent (e.g. no body FETCH on an empty poll, COPY +
        STORE \\Deleted + UID EXPUNGE instead of MOVE). The harness's own sessions are left out.
        Commands before login (CAPABILITY, STARTTLS, LOGIN) are not logged: see logins().
        """
        sessions = []
        for path in self.rawlog_dir.glob("*.in"):
            commands = parse_rawlog_input(path.read_bytes())
            if not commands:
                continue
            session = ClientSession(commands[0][0], tuple(text for _stamp, text in commands), path)
            if any(t.upper().startswith("ID ") and HARNESS_ID in t for t in session.commands):
                self._harness_pids.add(session.pid)
                if not include_harness:
                    continue
            sessions.append(session)
        return sorted(sessions, key=lambda s: (s.started, s.path.name))

    def client_commands(self, include_harness: bool = False) -> list[str]:
        """All client commands of all sessions (tags removed), session by session, in order."""
        return [command for session in self.client_sessions(include_harness) for command in session.commands]

    def logins(self, include_harness: bool = False) -> list[Login]:
        """Successful IMAP logins since start (or the last clear), from dovecot's log.

        Why: the command log starts after login; this tells whether the client logged in over TLS
        (implicit or STARTTLS) and as whom. imap-login hands its log lines to dovecot's log process,
        which writes them a moment after the client already has its OK: wait (up to 10 s) until
        every session that has sent commands has its login line.
        """
        deadline = time.monotonic() + 10
        while True:
            sessions = {s.pid for s in self.client_sessions(include_harness=True)}
            log = (self.root / "dovecot.log").read_bytes()[self._log_offset :].decode(errors="replace")
            logins = [
                Login(match.group(1), match.group(2), match.group(4).strip() == "TLS", int(match.group(3)))
                for match in _LOGIN_LINE.finditer(log)
            ]
            if sessions <= {login.pid for login in logins} or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return [login for login in logins if include_harness or login.pid not in self._harness_pids]

    def clear_client_commands(self) -> None:
        """Forget the sessions and logins so far, to look at one poll's commands alone.

        Sessions still open keep writing to their (removed) files; close them first.
        """
        self.client_sessions()
        for path in self.rawlog_dir.iterdir():
            path.unlink(missing_ok=True)
        log = self.root / "dovecot.log"
        self._log_offset = log.stat().st_size if log.exists() else 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _appenduid(response: bytes | str | tuple) -> list[int]:
    """The UIDs of an `[APPENDUID validity uid-set]` response code."""
    text = " ".join(_text(part) for part in response[1]) if isinstance(response, tuple) else _text(response)
    match = re.search(r"APPENDUID \d+ ([\d:,]+)", text)
    if not match:
        raise RuntimeError(f"no APPENDUID in {text!r}")
    uids: list[int] = []
    for part in match.group(1).split(","):
        low, _, high = part.partition(":")
        uids.extend(range(int(low), int(high or low) + 1))
    return uids


def _dovecot_config(server: ImapServer, uid: int, gid: int, drop_capabilities: Sequence[str]) -> str:
    root = server.root
    capabilities = ""
    if drop_capabilities:
        dropped = {c.upper() for c in drop_capabilities}
        kept = " ".join(c for c in DOVECOT_23_CAPABILITIES.split() if c.upper() not in dropped)
        capabilities = f"  imap_capability = {kept}\n"
    return f"""# renraku test server: private instance, nothing shared with a system dovecot
instance_name = renraku-test-{root.name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
hostname = mail.{MAIL_DOMAIN}
postmaster_address = postmaster@{MAIL_DOMAIN}
protocols = imap lmtp
listen = {server.host}
ssl = {"required" if server.require_tls else "yes"}
disable_plaintext_auth = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
default_internal_user = {MAIL_USER}
default_internal_group = {MAIL_USER}
default_login_user = dovenull
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
# LMTP recipients other than the secretariat (the facilities, the SMTP capture) get a home too.
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%Lu allow_all_users=yes
}}
mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
service imap-login {{
  inet_listener imap {{
    address = {server.host}
    port = {server.starttls_port}
  }}
  inet_listener imaps {{
    address = {server.host}
    port = {server.ssl_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {server.host}
    port = {server.lmtp_port}
  }}
}}
# Postfix asks dovecot to check SMTP AUTH passwords (the usual Postfix + Dovecot SASL set-up).
service auth {{
  inet_listener sasl {{
    address = {server.host}
    port = {server.auth_port}
  }}
}}
# No growing delay after failed logins (tests try wrong passwords on purpose).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
  rawlog_dir = {server.rawlog_dir}
{capabilities}}}
"""


def start_imap_server(
    move: bool = True, drop_capabilities: Sequence[str] = (), require_tls: bool = False, timeout: float = 10.0
) -> ImapServer:
    """Start a fresh private dovecot and wait until its ports accept connections.

    move=False removes MOVE from the advertised capabilities (the intake must then fall back to
    COPY, STORE +FLAGS \\Deleted and UID EXPUNGE); `drop_capabilities` removes others likewise.
    By default the server is on 127.0.0.1, where dovecot trusts the line and a plain LOGIN on the
    STARTTLS port works (RENRAKU_IMAP_TLS=none needs that). require_tls=True puts it on 127.0.0.2
    (`host`), where any login before STARTTLS is refused, as by a remote server.
    Call `.cleanup()` (or use it as a context manager) when done.
    """
    uid, gid = ensure_mail_user()
    version = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if not version.startswith("2.3."):
        raise RuntimeError(f"the test harness writes a dovecot 2.3 config; installed is {version}")
    dropped = list(drop_capabilities) + ([] if move else ["MOVE"])
    root = server_folder("imap")
    make_certificates(root)
    for sub in ("run", "state"):
        (root / sub).mkdir()
    for sub in ("home", "rawlog", f"home/{IMAP_USER}"):
        (root / sub).mkdir(mode=0o750)
        os.chown(root / sub, uid, gid)
    home = root / "home" / IMAP_USER
    passwd = root / "passwd"
    passwd.write_text(
        "".join(f"{name}:{{PLAIN}}{IMAP_PASSWORD}:{uid}:{gid}::{home}::\n" for name in (IMAP_USER, IMAP_ADDRESS))
    )
    os.chown(passwd, 0, gid)
    passwd.chmod(0o640)
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port can be taken by someone else before dovecot binds it
        host = STRICT_HOST if require_tls else HOST
        ports = free_port(host), free_port(host), free_port(host), free_port(host)
        server = ImapServer(root, *ports, move=move, require_tls=require_tls, host=host)
        server.config.write_text(_dovecot_config(server, uid, gid, dropped))
        try:
            server.start(timeout)
        except (RuntimeError, TimeoutError) as error:
            last_error = error
            continue
        return server
    log = (root / "dovecot.log").read_text(errors="replace") if (root / "dovecot.log").exists() else ""
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"dovecot did not start: {last_error}\n{log}")


# --------------------------------------------------------------------------------------------
# SMTP: postfix delivering through the dovecot's LMTP

_POSTFIX_QUEUE = {  # queue sub-folder: (owner, group, mode), as postfix's own set-permissions makes them
    "active": ("postfix", "root", 0o700), "bounce": ("postfix", "root", 0o700),
    "corrupt": ("postfix", "root", 0o700), "defer": ("postfix", "root", 0o700),
    "deferred": ("postfix", "root", 0o700), "flush": ("postfix", "root", 0o700),
    "hold": ("postfix", "root", 0o700), "incoming": ("postfix", "root", 0o700),
    "private": ("postfix", "root", 0o700), "saved": ("postfix", "root", 0o700),
    "trace": ("postfix", "root", 0o700), "maildrop": ("postfix", "postdrop", 0o730),
    "public": ("postfix", "postdrop", 0o710), "pid": ("root", "root", 0o755),
}

_POSTFIX_MASTER_CF = """\
{address}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class SmtpServer:
    """A private postfix on 127.0.0.1 that hands all mail to an ImapServer's LMTP."""

    root: Path
    port: int
    imap: ImapServer
    host: str = HOST
    capture_address: str = CAPTURE_ADDRESS
    process: subprocess.Popen | None = field(default=None, repr=False)
    startup_seconds: float = 0.0

    @property
    def cafile(self) -> Path:
        """The CA to verify STARTTLS against (the same as the IMAP server's)."""
        return self.imap.cafile

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context for smtplib.starttls(context=...)."""
        return self.imap.ssl_context()

    def log(self) -> str:
        """postfix's log (one line per accepted message and per delivery attempt)."""
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def _home(self, address: str) -> Path:
        return Path(self.imap.doveadm("user", "-f", "home", address).strip())

    def delivered(self) -> list[bytes]:
        """Every message postfix accepted and delivered so far, once each, oldest first.

        The bytes are what LMTP stored, with CRLF line ends as IMAP would return them: the message
        as sent plus Return-Path and Received headers on top.
        """
        capture = self.imap.root / "home" / self.capture_address / "Maildir"
        return [_crlf(p.read_bytes()) for p in _maildir_files(capture)]

    def delivered_to(self, address: str) -> list[bytes]:
        """The messages in `address`'s INBOX; for the secretariat that is the IMAP INBOX itself."""
        return [_crlf(p.read_bytes()) for p in _maildir_files(self._home(address) / "Maildir")]

    def wait_for_delivery(self, count: int = 1, timeout: float = 10.0) -> list[bytes]:
        """delivered(), once it holds at least `count` messages (delivery is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.delivered()
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(messages)} of {count} messages delivered after {timeout}s:\n{self.log()}")
            time.sleep(0.02)

    def start(self, timeout: float = 10.0) -> None:
        """Run postfix's master on this folder's config and wait for the SMTP port."""
        if self.process is not None:
            return
        started = time.monotonic()
        with open(self.root / "master.stdout", "ab") as out:
            self.process = subprocess.Popen(
                [POSTFIX_MASTER, "-c", str(self.root / "etc"), "-d"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.root,
            )
        try:
            wait_for_ports(self.host, (self.port,), timeout, self.process)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop the postfix master and its daemons (the whole process group); idempotent.

        Queued mail stays in the queue folder; start() again delivers it.
        """
        _stop_process_group(self.process)
        self.process = None

    def cleanup(self) -> None:
        """Stop and remove the folder (kept when RENRAKU_KEEP_MAIL_SERVERS is set)."""
        self.stop()
        if not os.environ.get("RENRAKU_KEEP_MAIL_SERVERS"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SmtpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _postfix_main_cf(root: Path, imap: ImapServer) -> str:
    lmtp = f"lmtp:inet:{imap.host}:{imap.lmtp_port}"
    return f"""# renraku test server: private postfix instance, nothing shared with a system postfix
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = {POSTFIX_DAEMONS}
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
inet_interfaces = {HOST}
inet_protocols = ipv4
myhostname = smtp.{MAIL_DOMAIN}
mydomain = {MAIL_DOMAIN}
myorigin = {MAIL_DOMAIN}
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
# Every recipient, any domain, goes to the test dovecot's LMTP: nothing leaves this machine.
default_transport = {lmtp}
relay_transport = {lmtp}
always_bcc = {CAPTURE_ADDRESS}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access inline:{{ {{ {REFUSED_ADDRESS} = 550 5.1.1 no such user }} }},
  permit_mynetworks, permit_sasl_authenticated, reject
# SMTP AUTH (the secretariat's IMAP user and password) is offered after STARTTLS, and optional.
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:{imap.host}:{imap.auth_port}
smtpd_tls_auth_only = yes
smtp_dns_support_level = disabled
lmtp_host_lookup = native
smtp_host_lookup = native
smtpd_tls_cert_file = {imap.root}/cert.pem
smtpd_tls_key_file = {imap.root}/key.pem
smtpd_tls_security_level = may
message_size_limit = 52428800
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
biff = no
"""


def start_smtp_server(imap: ImapServer, timeout: float = 10.0) -> SmtpServer:
    """Start a private postfix that delivers through `imap`'s LMTP, and wait for its port."""
    root = server_folder("smtp")
    postfix_ids = {name: pwd.getpwnam(name).pw_uid for name in ("postfix", "root")}
    group_ids = {name: grp.getgrnam(name).gr_gid for name in ("postdrop", "root")}
    (root / "etc").mkdir()
    (root / "queue").mkdir(mode=0o755)
    for name, (owner, group, mode) in _POSTFIX_QUEUE.items():
        path = root / "queue" / name
        path.mkdir()
        os.chown(path, postfix_ids[owner], group_ids[group])
        path.chmod(mode)
    (root / "data").mkdir(mode=0o700)
    os.chown(root / "data", postfix_ids["postfix"], group_ids["root"])
    (root / "etc" / "main.cf").write_text(_postfix_main_cf(root, imap))
    last_error: Exception | None = None
    for _attempt in range(3):
        server = SmtpServer(root, free_port(), imap)
        (root / "etc" / "master.cf").write_text(_POSTFIX_MASTER_CF.format(address=HOST, port=server.port))
        # Postfix re-reads a config file whose mtime is this very second (it might be half
        # written) for up to two seconds; files dated a minute back are read at once.
        past = time.time() - 60
        for name in ("main.cf", "master.cf"):
            os.utime(root / "etc" / name, (past, past))
        try:
            server.start(timeout)
        except (RuntimeError, TimeoutError) as error:
            last_error = error
            continue
        return server
    log = (root / "maillog").read_text(errors="replace") if (root / "maillog").exists() else ""
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"postfix did not start: {last_error}\n{log}")


# --------------------------------------------------------------------------------------------
# pytest fixtures


@pytest.fixture
def imap_server_factory() -> Iterator[Callable[..., ImapServer]]:
    """Start dovecots with options, e.g. `imap_server_factory(move=False)`; all stopped after.

    Options: move (advertise MOVE), drop_capabilities, require_tls; see start_imap_server.
    """
    skip_unless_installed()
    started: list[ImapServer] = []

    def factory(move: bool = True, drop_capabilities: Sequence[str] = (), require_tls: bool = False) -> ImapServer:
        server = start_imap_server(move=move, drop_capabilities=drop_capabilities, require_tls=require_tls)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.cleanup()


@pytest.fixture
def imap_server(imap_server_factory: Callable[..., ImapServer]) -> ImapServer:
    """A fresh dovecot for this test: empty INBOX, MOVE advertised, command log on."""
    return imap_server_factory()


@pytest.fixture
def smtp_server(imap_server: ImapServer) -> Iterator[SmtpServer]:
    """A fresh postfix for this test, delivering into `imap_server` (the same test's dovecot)."""
    skip_unless_installed(smtp=True)
    server = start_smtp_server(imap_server)
    yield server
    server.cleanup()


# --------------------------------------------------------------------------------------------
# PostgreSQL: a private cluster


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian keeps them per version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    """A PostgreSQL cluster in a temp folder on a free port (never the system service); its URL.

    Used by the tests (`postgres_url`) and by bench/scale_db.py.
    """
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed (apt install postgresql)")
    # Directly under /tmp: pytest's own temp folders are private to root, the server user can't enter.
    data = Path(tempfile.mkdtemp(prefix="renraku-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        shutil.chown(data, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port("127.0.0.1")
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "renraku", "--auth=trust",
                    "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w", "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        for _ in range(50):
            if subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        yield f"postgresql+psycopg://renraku@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
