"""The content-addressed document store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from renraku.errors import StorageError
from renraku.sinks.store import DocumentStore, sha256


def test_bytes_are_kept_once_under_their_hash_with_private_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = DocumentStore(tmp_path / "home" / "documents")
        digest = store.put(b"%PDF-1.4 original")
        assert store.put(b"%PDF-1.4 original") == digest == sha256(b"%PDF-1.4 original")
    finally:
        os.umask(old)
    path = store.path(digest)
    assert path.read_bytes() == b"%PDF-1.4 original"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (path.parent, path.parent.parent, store.root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [digest]  # no temporary files left behind
    assert store.verify(digest)


def test_tampering_is_detected_and_a_missing_document_is_an_error(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path / "documents")
    digest = store.put(b"abc")
    store.path(digest).write_bytes(b"abd")
    assert not store.verify(digest)
    with pytest.raises(StorageError):
        store.get("0" * 64)


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "0" * 63, "g" * 64])
def test_keys_that_are_not_hashes_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        DocumentStore(tmp_path).path(key)
