"""The document store: every received byte, kept once, under its sha256.

Files are written to a temporary name, flushed to disk and renamed into place, so a crash leaves
either the whole file or nothing; the folder is fsynced after the rename. Originals hold personal
data: folders are 0700 and files 0600, whatever the process umask says.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from renraku.errors import StorageError

DIR_MODE, FILE_MODE = 0o700, 0o600


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DocumentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise StorageError(f"不正な文書キーです: {digest[:80]!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def ensure_dir(self, folder: Path) -> None:
        """Create the store root and `folder` below it, each 0700 (umask does not loosen it)."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for d in [self.root, *reversed(folder.relative_to(self.root).parents), folder]:
            full = d if d.is_absolute() else self.root / d
            full.mkdir(mode=DIR_MODE, exist_ok=True)
            os.chmod(full, DIR_MODE)

    def put(self, data: bytes) -> str:
        """Store `data` durably and return its sha256; storing the same bytes again is a no-op."""
        digest = sha256(data)
        target = self.path(digest)
        if target.exists() and target.stat().st_size == len(data):
            return digest
        try:
            self.ensure_dir(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            try:
                os.fchmod(fd, FILE_MODE)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StorageError(f"文書を保存できません: {exc}") from exc
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"文書 {digest[:12]}… が保存場所にありません") from exc

    def verify(self, digest: str) -> bool:
        """True when the stored bytes still hash to their key (an auditor's check)."""
        return sha256(self.get(digest)) == digest


class PictureStore:
    """Page pictures for the review desk, as the field boxes see them (derived, re-creatable).

    Kept beside the originals with the same care (they show personal data): folders 0700, files 0600.
    Paths are built from a document's sha256 and a page number only, never from a request.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._docs = DocumentStore(self.root)

    def path(self, digest: str, page: int) -> Path:
        base = self._docs.path(digest)  # validates the key
        return base.parent / f"{digest}-p{int(page)}.png"

    def put(self, digest: str, page: int, png: bytes) -> None:
        target = self.path(digest, page)
        try:
            self._docs.ensure_dir(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), FILE_MODE)
                fh.write(png)
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(f"ページ画像を保存できません: {exc}") from exc

    def get(self, digest: str, page: int) -> bytes | None:
        try:
            return self.path(digest, page).read_bytes()
        except FileNotFoundError:
            return None
