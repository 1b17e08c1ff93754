"""The scan folder, where the fax server and the office scanner drop files.

A file is taken only when it is complete: unchanged for a settling time (a fax server writes
slowly), which a file renamed into place already is. Subfolders are read; temporary names are
left alone; any file name (Japanese, spaces, odd characters) is fine. Order per file: read → store
the bytes → record → move the original to the processed folder (keeping its subfolder). Nothing is
deleted, and nothing is moved before it is stored and recorded; after a crash, a file still in the
folder is recognised by its content and only moved. Several workers (on PostgreSQL) share the
folder: a file is claimed before it is read (pipeline/claims.py), and one that is gone once
claimed was taken by another worker.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from renraku.pipeline import faults
from renraku.pipeline.run import Batch, ItemOutcome, Received

log = logging.getLogger(__name__)


class ScanFolderSource:
    def __init__(self, folder: Path, processed: Path, settle_seconds: float, ignore: list[str], batch: Batch):
        self.folder = Path(folder)
        self.processed = Path(processed)
        self.settle = settle_seconds
        self.ignore = ignore
        self.batch = batch

    def _ignored(self, path: Path) -> bool:
        rel = path.relative_to(self.folder)
        if self.processed == self.folder / rel.parts[0] or self.processed in path.parents:
            return True
        return any(fnmatch.fnmatch(part, pattern) for part in rel.parts for pattern in self.ignore)

    def ready(self, now: float | None = None) -> Iterator[Path]:
        """Complete files, oldest first."""
        now = time.time() if now is None else now
        found = []
        for path in self.folder.rglob("*"):
            try:
                if not path.is_file() or path.is_symlink() or self._ignored(path):
                    continue
                st = path.stat()
            except OSError:
                continue  # gone meanwhile (the fax server renamed it): next time
            if now - st.st_mtime >= self.settle:
                found.append((st.st_mtime, str(path), path))
        yield from (p for _t, _s, p in sorted(found))

    def _move_done(self, path: Path) -> None:
        target = self.processed / path.relative_to(self.folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        stem, suffix, n = target.stem, target.suffix, 1
        while target.exists():  # never overwrite: the same name may come twice with other content
            target = target.with_name(f"{stem}~{n}{suffix}")
            n += 1
        os.replace(path, target)

    def poll(self) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome] = []
        ready = list(self.ready())
        if self.batch.progress is not None:
            self.batch.progress.expect(len(ready))
        for start in range(0, len(ready), 8):
            paths = ready[start:start + 8]
            refs = {p: f"scan:{p.relative_to(self.folder).as_posix()}" for p in paths}
            mine = self.batch.claims.take(refs.values())
            try:
                outcomes += self._read([(p, refs[p]) for p in paths if refs[p] in mine])
            finally:
                self.batch.claims.release(mine)
        return outcomes

    def _read(self, paths: list[tuple[Path, str]]) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome] = []
        window: list[tuple[Path, Received]] = []
        for path, ref in paths:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # another worker took it, or the fax server renamed it: not ours
            except OSError as exc:
                outcomes.append(ItemOutcome(str(path), "", "failed", f"読めません: {exc.strerror}"))
                continue
            window.append((path, Received(data, path.name, ref, "scan")))
        return outcomes + (self._take(window) if window else [])

    def _take(self, window: list[tuple[Path, Received]]) -> list[ItemOutcome]:
        outcomes = self.batch.receive_many([r for _p, r in window])  # stored, then recorded
        for (path, _r), outcome in zip(window, outcomes, strict=True):
            if outcome.status == "failed":
                continue
            self._move_done(path)
            faults.checkpoint("scan:moved")
        return outcomes
