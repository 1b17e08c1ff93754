"""Backup and restore of one installation: the database and the files under RENRAKU_HOME.

The database is copied first (SQLite's online backup API: a consistent copy while the service
runs), the document store after it. Documents are stored before they are recorded, so every
document the copied database names is already in the store when the store is copied; the backup
may hold a few newer documents too, which is harmless. PostgreSQL is dumped with pg_dump by the
administrator (docs/admin.md); `backup` then copies the files and says so.

A restore checks every document against its sha256 (its name) and the audit log's chain.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url

from renraku.config import Settings
from renraku.errors import ConfigError, StorageError
from renraku.sinks.store import DIR_MODE, FILE_MODE, DocumentStore, sha256

DATABASE = "renraku.db"
MANIFEST = "manifest.json"
FOLDERS = ("documents", "pages")  # the originals; the page pictures the review desk shows
FILES = ("secret_key", "renraku.toml")  # kept if present: sessions and settings survive a restore


@dataclass
class BackupSummary:
    directory: Path
    database: str  # "sqlite" or a note that PostgreSQL is dumped separately
    documents: int
    pages: int


@dataclass
class RestoreSummary:
    home: Path
    documents: int
    missing: list[str]  # sha256 the database names but the store does not hold
    audit_entries: int
    audit_ok: bool


def _sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


def _private_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(FILE_MODE)


def _copy_tree(src: Path, dst: Path, check: bool) -> int:
    """Copy every file of `src` (0700/0600); with `check`, each file must hash to its own name."""
    n = 0
    for path in sorted(src.rglob("*")):
        if not path.is_file() or path.name.startswith(".incoming-"):
            continue
        if check and sha256(path.read_bytes()) != path.name:
            raise StorageError(f"文書 {path.name[:12]}… の内容が名前の sha256 と一致しません（バックアップの破損）")
        target = dst / path.relative_to(src)
        DocumentStore(dst).ensure_dir(target.parent)
        _private_copy(path, target)
        n += 1
    return n


def backup(settings: Settings, out: Path) -> BackupSummary:
    """Write a copy of the installation to `out` (which must not exist or be empty)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"バックアップ先が空ではありません: {out}")
    out.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    out.chmod(DIR_MODE)
    db_path = _sqlite_path(settings)
    if db_path is not None:
        if not db_path.exists():
            raise ConfigError(f"データベースがありません: {db_path}")
        source, target = sqlite3.connect(db_path), sqlite3.connect(out / DATABASE)
        try:
            with target:
                source.backup(target)
        finally:
            source.close()
            target.close()
        (out / DATABASE).chmod(FILE_MODE)
        database = "sqlite"
    else:
        database = "postgresql: not included, dump it with pg_dump (docs/admin.md)"
    counts = {name: _copy_tree(settings.home / name, out / name, check=name == "documents")
              if (settings.home / name).is_dir() else 0 for name in FOLDERS}
    for name in FILES:
        if (settings.home / name).is_file():
            _private_copy(settings.home / name, out / name)
    summary = BackupSummary(out, database, counts["documents"], counts["pages"])
    (out / MANIFEST).write_text(json.dumps({"database": database, "documents": summary.documents,
                                            "pages": summary.pages}, indent=1) + "\n")
    return summary


def restore(backup_dir: Path, settings: Settings) -> RestoreSummary:
    """Put a backup into RENRAKU_HOME (which must hold no database yet), then check it."""
    from renraku.context import open_context
    from renraku.sinks import audit
    from renraku.sinks.models import Document

    backup_dir = Path(backup_dir)
    if not (backup_dir / MANIFEST).is_file():
        raise ConfigError(f"バックアップではありません（{MANIFEST} がありません）: {backup_dir}")
    db_path = _sqlite_path(settings)
    if db_path is not None:
        if not (backup_dir / DATABASE).is_file():
            raise ConfigError("このバックアップにはデータベースがありません（PostgreSQL は pg_restore で戻します）")
        if db_path.exists():
            raise ConfigError(f"復元先にはすでにデータベースがあります: {db_path}")
    home = settings.home
    home.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for name in FOLDERS:
        if (backup_dir / name).is_dir():
            _copy_tree(backup_dir / name, home / name, check=name == "documents")
    for name in FILES:
        if (backup_dir / name).is_file() and not (home / name).exists():
            _private_copy(backup_dir / name, home / name)
    if db_path is not None:
        _private_copy(backup_dir / DATABASE, db_path)
    with open_context(settings) as ctx, ctx.sessions() as session:  # applies newer migrations too
        digests = session.scalars(select(Document.sha256)).all()
        store = DocumentStore(ctx.settings.documents_dir)
        missing = [d for d in digests if not store.path(d).is_file()]
        chain = audit.verify(session)
    return RestoreSummary(home, len(digests), missing, chain.entries, chain.ok)
