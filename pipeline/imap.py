"""The secretariat's inbox: new messages fetched once, stored, recorded, then marked processed.

A message's identity is (account, folder, UIDVALIDITY, UID), kept as the receipt's source:
imap://account/folder;UIDVALIDITY=v/;UID=u. Per folder the highest UID taken is remembered for its
UIDVALIDITY, and only newer UIDs are asked for, so a poll of a big inbox with nothing new downloads
no message bodies. Bodies are fetched with BODY.PEEK[] (\\Seen is never set as a side effect). Order
per message: fetch → store the raw bytes → record (one transaction, with its receipt) → mark
processed on the server (a keyword, or MOVE to a folder, or COPY + \\Deleted + UID EXPUNGE where the
server has no MOVE) → remember the UID. A crash anywhere repeats at most the steps after the last
one that finished: a message recorded but not marked is marked without being fetched again.
When UIDVALIDITY changes, every message is looked at again by its headers: one already recorded
(by Message-ID, or by content if it has none) is only marked, never recorded twice.

Several workers (on PostgreSQL) poll the same folder: each claims a window of UIDs before looking
at them and leaves the UIDs another worker holds to it (pipeline/claims.py). The remembered UID only
ever passes UIDs this worker saw done, so a UID the other worker held (and may not finish: killed)
is looked at again by the next poll, which finds its receipt, or takes it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from renraku.config import Settings
from renraku.errors import RenrakuError
from renraku.pipeline import faults
from renraku.pipeline.pages import EML
from renraku.pipeline.run import Batch, ItemOutcome, Received
from renraku.sinks import models as m

log = logging.getLogger(__name__)
FETCH_WINDOW = 8  # messages fetched, then read together (both cores) and recorded in order
TRANSIENT = (OSError, socket.timeout, ssl.SSLError, IMAPClientError)


class ImapError(RenrakuError):
    """The inbox cannot be reached or refuses (after the retries)."""

    code = "imap"
    exit_code = 8


@dataclass(frozen=True)
class Identity:
    account: str
    folder: str
    uidvalidity: int
    uid: int

    @property
    def ref(self) -> str:
        return f"imap://{self.account}/{self.folder};UIDVALIDITY={self.uidvalidity}/;UID={self.uid}"


def connect(settings: Settings) -> IMAPClient:
    """Log in with the configured TLS mode, verifying the server's certificate."""
    if not settings.imap_host or not settings.imap_user or settings.imap_password is None:
        raise ImapError("IMAP の設定（RENRAKU_IMAP_HOST, _USER, _PASSWORD）がありません", code="imap_config")
    context = ssl.create_default_context(cafile=str(settings.imap_cafile) if settings.imap_cafile else None)
    tls = settings.imap_tls
    port = settings.imap_port or (993 if tls == "ssl" else 143)
    client = IMAPClient(settings.imap_host, port=port, ssl=tls == "ssl", ssl_context=context,
                        timeout=settings.imap_timeout)
    try:
        if tls == "starttls":
            client.starttls(context)
        client.login(settings.imap_user, settings.imap_password.get_secret_value())
    except Exception:
        with _quietly():
            client.logout()
        raise
    return client


def _quietly() -> contextlib.suppress:
    return contextlib.suppress(Exception)  # closing a connection that is already gone


def with_retries(action: Callable[[], object], attempts: int = 4, first_wait: float = 1.0) -> object:
    """Run `action`, again after a growing pause when the network or server fails for a moment."""
    wait = first_wait
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except TRANSIENT as exc:
            if attempt == attempts:
                raise ImapError(f"受信箱に接続できません（{type(exc).__name__}）") from exc
            log.warning("IMAP attempt %d failed (%s); retrying in %.0f s", attempt, type(exc).__name__, wait)
            time.sleep(wait)
            wait *= 4
    return None


class ImapSource:
    def __init__(self, settings: Settings, batch: Batch) -> None:
        self.settings = settings
        self.batch = batch
        self.account = settings.imap_account or f"{settings.imap_user}@{settings.imap_host}"
        self.folder = settings.imap_folder
        self.mark = settings.imap_processed

    # ------------------------------------------------------------------------------ state

    def _mailbox(self) -> tuple[int, int] | None:
        with self.batch.ctx.sessions() as s:
            row = s.scalar(select(m.Mailbox).where(m.Mailbox.account == self.account, m.Mailbox.folder == self.folder))
            return (row.uidvalidity, row.last_uid) if row else None

    def _remember(self, uidvalidity: int, last_uid: int) -> None:
        for attempt in (1, 2):  # two workers meeting a new folder both add its row: the second updates
            try:
                with self.batch.ctx.sessions.begin() as s:
                    row = s.scalar(select(m.Mailbox).where(m.Mailbox.account == self.account,
                                                           m.Mailbox.folder == self.folder).with_for_update())
                    if row is None:
                        s.add(m.Mailbox(account=self.account, folder=self.folder, uidvalidity=uidvalidity,
                                        last_uid=last_uid))
                    elif row.uidvalidity != uidvalidity:
                        row.uidvalidity, row.last_uid = uidvalidity, last_uid
                    else:
                        row.last_uid = max(row.last_uid, last_uid)
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    def _recorded_refs(self, refs: list[str]) -> set[str]:
        with self.batch.ctx.sessions() as s:
            found = s.scalars(select(m.Receipt.source_ref).where(m.Receipt.source_ref.in_(refs)))
            return set(found)

    def _recorded_message_ids(self, ids: list[str]) -> set[str]:
        with self.batch.ctx.sessions() as s:
            return set(s.scalars(select(m.Document.message_id).where(m.Document.message_id.in_(ids),
                                                                     m.Document.parent_id.is_(None))))

    # ----------------------------------------------------------------------------- polling

    def poll(self) -> list[ItemOutcome]:
        """One pass over the folder: everything new is taken, exactly once."""
        client = with_retries(lambda: connect(self.settings))
        assert isinstance(client, IMAPClient)
        try:
            info = client.select_folder(self.folder)
            uidvalidity = int(info[b"UIDVALIDITY"])
            state = self._mailbox()
            if state is not None and state[0] == uidvalidity:
                candidates = [u for u in client.search(["UID", f"{state[1] + 1}:*"]) if u > state[1]]
                resync = False
            else:  # first contact, or the server renumbered the folder: look at everything by header
                candidates = client.search(["ALL"])
                resync = True
                log.info("IMAP %s: %s, %d messages to look at", self.folder,
                         "first contact" if state is None else "UIDVALIDITY changed", len(candidates))
            if self.batch.progress is not None and not resync:
                self.batch.progress.expect(len(candidates))
            return self._take(client, uidvalidity, sorted(candidates), resync)
        finally:
            with _quietly():
                client.logout()

    def _take(self, client: IMAPClient, uidvalidity: int, uids: list[int], resync: bool) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome] = []
        step = 200 if resync else FETCH_WINDOW  # headers are cheap to look at in bulk; bodies are not
        claims = self.batch.claims
        done_upto: int | None = None  # every UID up to here was seen done by this worker
        for start in range(0, len(uids), step):
            window = uids[start:start + step]
            refs = {u: Identity(self.account, self.folder, uidvalidity, u).ref for u in window}
            mine = claims.take(refs.values())
            try:
                held = [u for u in window if refs[u] in mine]
                todo = self._not_yet_taken(client, uidvalidity, held, resync) if held else []
                for i in range(0, len(todo), FETCH_WINDOW):
                    outcomes += self._fetch_and_record(client, uidvalidity, todo[i:i + FETCH_WINDOW])
            finally:
                claims.release(mine)
            others = [u for u in window if refs[u] not in mine]  # another worker's: not known done
            if done_upto is None or done_upto == uids[start - 1]:
                done_upto = min(others) - 1 if others else max(window)
                self._remember(uidvalidity, done_upto)
        if not uids:
            self._remember(uidvalidity, 0)
        return outcomes

    def _not_yet_taken(self, client: IMAPClient, uidvalidity: int, uids: list[int], resync: bool) -> list[int]:
        """The UIDs still to fetch; those already recorded (or marked) are only marked processed."""
        refs = {u: Identity(self.account, self.folder, uidvalidity, u).ref for u in uids}
        done = self._recorded_refs(list(refs.values()))
        marked: set[int] = set()
        if resync or self.mark.startswith("$"):
            data = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if resync else \
                client.fetch(uids, ["FLAGS"])
            keyword = self.mark.encode()
            marked = {u for u, d in data.items() if keyword in d.get(b"FLAGS", ())}
            if resync:
                ids = {u: _message_id(d) for u, d in data.items()}
                known = self._recorded_message_ids([i for i in ids.values() if i])
                done |= {refs[u] for u, i in ids.items() if i and i in known and u in refs}
        to_mark = [u for u in uids if refs[u] in done and u not in marked]
        if to_mark:
            self._mark_processed(client, to_mark)
        return [u for u in uids if refs[u] not in done and u not in marked]

    def _fetch_and_record(self, client: IMAPClient, uidvalidity: int, uids: list[int]) -> list[ItemOutcome]:
        if not uids:
            return []
        data = client.fetch(uids, ["BODY.PEEK[]"])
        faults.checkpoint("imap:fetched")
        received = []
        for uid in uids:
            raw = data.get(uid, {}).get(b"BODY[]")
            if raw is None:
                log.warning("IMAP UID %d vanished before it could be fetched", uid)
                continue
            ident = Identity(self.account, self.folder, uidvalidity, uid)
            received.append(Received(bytes(raw), f"uid-{uid}.eml", ident.ref, "imap", EML))
        outcomes = self.batch.receive_many(received)  # stored, then recorded with its receipt
        self._mark_processed(client, [int(r.source_ref.rsplit("=", 1)[1]) for r in received])
        faults.checkpoint("imap:marked")
        return outcomes

    def _mark_processed(self, client: IMAPClient, uids: list[int]) -> None:
        if not uids:
            return
        if self.mark.startswith("$"):
            client.add_flags(uids, [self.mark.encode()], silent=True)
            return
        if client.has_capability("MOVE"):
            client.move(uids, self.mark)
        else:  # RFC 6851's fallback: the copy exists before the original goes
            client.copy(uids, self.mark)
            client.add_flags(uids, [b"\\Deleted"], silent=True)
            client.uid_expunge(uids)


def _message_id(fetched: dict) -> str | None:
    for key, value in fetched.items():
        if isinstance(key, bytes) and key.startswith(b"BODY[HEADER"):
            text = bytes(value).decode("latin-1", "replace")
            _, _, rest = text.partition(":")
            rest = rest.strip()
            return rest or None
    return None


def ensure_folder(settings: Settings) -> None:
    """Create the folder processed mail is moved to, when marking means moving."""
    if settings.imap_processed.startswith("$"):
        return
    client = connect(settings)
    try:
        if not client.folder_exists(settings.imap_processed):
            client.create_folder(settings.imap_processed)
    finally:
        with _quietly():
            client.logout()
