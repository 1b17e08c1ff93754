"""Reading a window of pages: pages handed to the workers as they are opened read as a window read at once."""

from __future__ import annotations

import json
from pathlib import Path

from renraku.pipeline.read import ReadContext, open_document, page_pool, prepare_ahead, read_opened, walk


def _readings(docs: list) -> list[tuple]:
    return [(p.classification.form_id, [(r.path, r.value, r.confidence, r.needs_review) for r in p.readings])
            for doc in docs for d in walk(doc) for p in d.pages]


def test_pages_prepared_while_the_next_files_open_read_the_same_and_let_their_pixels_go(
        dev_set: Path, read_ctx: ReadContext) -> None:
    truth = [json.loads(line) for line in (dev_set / "truth.jsonl").read_text().splitlines()]
    # a photo, a fax and a scanned PDF (rendered in the workers): one file of each
    names = [min(t["file"].split("#")[0] for t in truth if t["degrade"] == channel)
             for channel in ("photo", "fax_standard", "scan")]

    def opened() -> list:
        return [open_document((dev_set / name).read_bytes(), Path(name).name, read_ctx) for name in names]

    at_once = opened()
    pool = page_pool(read_ctx, 2)
    try:
        read_opened(at_once, read_ctx, pool)
        docs, ahead = [], {}
        for doc in opened():  # as a batch opens a window: each file's pages to the workers at once
            docs.append(doc)
            ahead |= prepare_ahead([p for d in walk(doc) for p in d.loaded], pool)
        pages = [p for doc in docs for d in walk(doc) for p in d.loaded]
        for future in ahead.values():
            future.result()
        assert pages and all(p.image is None for p in pages)  # prepared: only the crops are kept
        read_opened(docs, read_ctx, pool, ahead)
    finally:
        pool.shutdown()
    assert _readings(docs) == _readings(at_once) and any(r for _f, r in _readings(docs))
