"""Database records: documents and what was read from them, applications, findings, batches.

The schema is changed only through Alembic migrations (sinks/migrations); a test checks that these
models and the migrated schema agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from renraku import normalize


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def public_id(letter: str, number: int) -> str:
    """A record's number as people see it (A000012, S000034): also for plain rows, without an object."""
    return f"{letter}{number:06d}"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class Batch(Base):
    """One run of the pipeline (a `renraku process` call or a scheduled pull): the unit of audit."""

    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # process | run
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running | done | failed
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)

    receipts: Mapped[list[Receipt]] = relationship(back_populates="batch")


class Document(Base):
    """Received bytes, stored content-addressed; an e-mail's attachments are its children."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(100))
    file_name: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(10))  # imap | scan | upload
    message_id: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    status: Mapped[str] = mapped_column(String(20))  # read | unsupported | unreadable | message
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)

    pages: Mapped[list[Page]] = relationship(back_populates="document", order_by="Page.number")
    children: Mapped[list[Document]] = relationship(back_populates="parent")
    parent: Mapped[Document | None] = relationship(back_populates="children", remote_side=[id])


class Receipt(Base):
    """Each time a batch was handed bytes: what it was (path, message) and whether already known.

    `source_ref` names where the bytes came from: a path, or an IMAP message as
    imap://account/folder;UIDVALIDITY=v/;UID=u (RFC 5092), so a message is never fetched twice.
    """

    __tablename__ = "receipts"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    source_ref: Mapped[str] = mapped_column(String(500), index=True)
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    batch: Mapped[Batch] = relationship(back_populates="receipts")
    document: Mapped[Document] = relationship()


class Page(Base):
    __tablename__ = "pages"
    __table_args__ = (UniqueConstraint("document_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))  # text | image
    width_pt: Mapped[float] = mapped_column(Float)
    height_pt: Mapped[float] = mapped_column(Float)
    dpi: Mapped[int] = mapped_column(Integer)  # resolution of pixel boxes on this page

    document: Mapped[Document] = relationship(back_populates="pages")
    sheet: Mapped[Sheet | None] = relationship(back_populates="page")


class Application(Base):
    """The sheets of one facility's set, or one change notice, and its state of review."""

    __tablename__ = "applications"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # new_facility | staff_change
    facility_name: Mapped[str] = mapped_column(Text, default="", index=True)
    status: Mapped[str] = mapped_column(String(20))  # incomplete | needs_review | ready | approved | rejected
    missing: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    decided_by: Mapped[str | None] = mapped_column(String(80))  # who approved or rejected
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    decision_note: Mapped[str | None] = mapped_column(Text)

    sheets: Mapped[list[Sheet]] = relationship(back_populates="application", order_by="Sheet.id")
    findings: Mapped[list[Finding]] = relationship(back_populates="application", order_by="Finding.id",
                                                   cascade="all, delete-orphan")

    @property
    def public_id(self) -> str:
        return public_id("A", self.id)


class Sheet(Base):
    """A sheet record: one classified page and the fields read from it."""

    __tablename__ = "sheets"
    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"), unique=True)
    form_id: Mapped[str] = mapped_column(String(40))
    score: Mapped[float] = mapped_column(Float, default=0.0)  # classification certainty
    method: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # needs_review | ready | unreadable | not_a_form
    reason: Mapped[str | None] = mapped_column(Text)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    page: Mapped[Page] = relationship(back_populates="sheet")
    application: Mapped[Application | None] = relationship(back_populates="sheets")
    fields: Mapped[list[Field]] = relationship(back_populates="sheet", order_by="Field.id",
                                               cascade="all, delete-orphan")

    @property
    def public_id(self) -> str:
        return public_id("S", self.id)


class Field(Base):
    __tablename__ = "fields"
    __table_args__ = (UniqueConstraint("sheet_id", "path"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sheet_id: Mapped[int] = mapped_column(ForeignKey("sheets.id"))
    path: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[Any] = mapped_column(JSON)  # str, or bool for marks
    raw: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float] = mapped_column(Float)
    needs_review: Mapped[bool] = mapped_column(Boolean)
    method: Mapped[str] = mapped_column(String(20))  # text_layer | ocr | mark | human
    note: Mapped[str] = mapped_column(Text, default="")
    # The pixel box on the page image at the page's dpi: where an auditor finds the value.
    x0: Mapped[int] = mapped_column(Integer)
    y0: Mapped[int] = mapped_column(Integer)
    x1: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)

    sheet: Mapped[Sheet] = relationship(back_populates="fields")


class Finding(Base):
    """A registration rule's verdict on an application (SPEC §4)."""

    __tablename__ = "findings"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    rule: Mapped[str] = mapped_column(String(40))
    field: Mapped[str | None] = mapped_column(String(80))
    sheet_id: Mapped[int | None] = mapped_column(ForeignKey("sheets.id"))
    severity: Mapped[str] = mapped_column(String(10))  # error | warning
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A supervisor may override an error with a written reason; the override survives re-checks
    # for as long as the same rule still finds the same field.
    overridden_by: Mapped[str | None] = mapped_column(String(80))
    overridden_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    override_reason: Mapped[str | None] = mapped_column(Text)

    application: Mapped[Application] = relationship(back_populates="findings")

    @property
    def blocking(self) -> bool:
        return self.severity == "error" and self.overridden_by is None


class Facility(Base):
    """A registered facility (the secretariat's ledger)."""

    __tablename__ = "facilities"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # identity.facility_key of the name
    name: Mapped[str] = mapped_column(Text)
    name_kana: Mapped[str] = mapped_column(Text, default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    source: Mapped[str] = mapped_column(String(40))  # import | A000012
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # name and kana as the registry search compares them (normalize.search_key); kept by `_keep_search_key`
    search_key: Mapped[str] = mapped_column(Text, default="", server_default="")

    staff: Mapped[list[Staff]] = relationship(back_populates="facility", order_by="Staff.id")

    def make_search_key(self) -> str:
        return normalize.search_key(self.name, self.name_kana)


class Staff(Base):
    """A registered person; removal keeps the row (active = false) for the record."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    name_kana: Mapped[str] = mapped_column(Text, default="")
    job: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str] = mapped_column(String(320))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_on: Mapped[dt.date | None] = mapped_column(Date)
    removed_on: Mapped[dt.date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(40))  # import | A000012
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # name, kana and e-mail as the registry search compares them; kept by `_keep_search_key`
    search_key: Mapped[str] = mapped_column(Text, default="", server_default="")

    facility: Mapped[Facility] = relationship(back_populates="staff")

    def make_search_key(self) -> str:
        return normalize.search_key(self.name, self.name_kana, self.email)


@event.listens_for(Facility, "before_insert")
@event.listens_for(Facility, "before_update")
@event.listens_for(Staff, "before_insert")
@event.listens_for(Staff, "before_update")
def _keep_search_key(_mapper: Any, _connection: Any, target: Facility | Staff) -> None:
    """Whoever writes a registry row through the ORM (import, approval, a change notice) keeps its key."""
    target.search_key = target.make_search_key()


class AuditEntry(Base):
    """An append-only, hash-chained log of what people did (corrections, decisions, overrides)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)  # no two entries continue one: no forks
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Mailbox(Base):
    """How far an IMAP folder has been read: the highest UID taken, per UIDVALIDITY."""

    __tablename__ = "mailboxes"
    __table_args__ = (UniqueConstraint("account", "folder"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(200))
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Message(Base):
    """Mail that is not (only) a form: a lost-device report, or something for a person to read."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # lost_device | other
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(Text, default="")
    sent: Mapped[str] = mapped_column(String(100), default="")  # the Date header as written
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | done
    note: Mapped[str] = mapped_column(Text, default="")  # why it is here (Japanese)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)

    document: Mapped[Document] = relationship()

    @property
    def public_id(self) -> str:
        return public_id("M", self.id)


class User(Base):
    """A person who works at the review desk. Passwords are stored as argon2 hashes only."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # reviewer | supervisor | auditor
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Part of every session cookie; raised on logout, password or role change and deactivation, so
    # that a copied cookie stops working at once (sessions are revocable on the server).
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoginFailure(Base):
    """A failed login, kept for throttling: by a hash of the name typed and by the client address."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    name_hash: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Confirmation(Base):
    """The 送受信確認 of one address (SPEC §5): queued on approval, sent, then confirmed or bounced.

    `token` is unguessable and used once; overdue is not stored but follows from `sent_at`.
    """

    __tablename__ = "confirmations"
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    # waiting | sent | confirmed | bounced | cancelled
    status: Mapped[str] = mapped_column(String(20), default="waiting", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")  # why bounced or cancelled (Japanese)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # confirmed or bounced
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))  # the reply or bounce that decided it
    mcs_export_id: Mapped[int | None] = mapped_column(ForeignKey("mcs_exports.id"))

    staff: Mapped[Staff] = relationship()
    application: Mapped[Application | None] = relationship()
    message: Mapped[Message | None] = relationship()
    mcs_export: Mapped[McsExport | None] = relationship()
    mails: Mapped[list[OutboxMail]] = relationship(back_populates="confirmation", order_by="OutboxMail.id")

    @property
    def public_id(self) -> str:
        return public_id("C", self.id)


class OutboxMail(Base):
    """A mail renraku sends, kept until the SMTP server took it (and after, as the record of the send).

    The Message-ID is fixed when the mail is queued and the attempt is committed before the SMTP
    conversation, so a crash between the server's acceptance and our commit leaves a row in
    `sending` that the next run resends with the same Message-ID and token (never a new token).
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    confirmation_id: Mapped[int] = mapped_column(ForeignKey("confirmations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # confirmation | reminder
    template: Mapped[str] = mapped_column(String(40))
    to_addr: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    references: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued | sending | sent | failed | cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    confirmation: Mapped[Confirmation] = relationship(back_populates="mails")


class McsExport(Base):
    """One MCS account list written (step ③): who wrote it, how many people, and when IDs were issued."""

    __tablename__ = "mcs_exports"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    by: Mapped[str] = mapped_column(String(80))
    rows: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    issued_by: Mapped[str | None] = mapped_column(String(80))


class Case(Base):
    """A lost or stolen device (紛失・盗難): received → suspension requested → resolved.

    While a case is not resolved its person shows as suspended in the registry and the exports.
    """

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    linked_by: Mapped[str | None] = mapped_column(String(80))  # "sender" or the reviewer who chose the person
    state: Mapped[str] = mapped_column(String(30), default="received")  # received | suspension_requested | resolved
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    requested_by: Mapped[str | None] = mapped_column(String(80))
    request_note: Mapped[str] = mapped_column(Text, default="")  # whom at the operator, how
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(80))
    resolution_note: Mapped[str] = mapped_column(Text, default="")

    message: Mapped[Message] = relationship()
    staff: Mapped[Staff | None] = relationship()

    @property
    def public_id(self) -> str:
        return public_id("K", self.id)
