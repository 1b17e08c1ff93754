"""Reading the crops of many pages at once: each crop plain, then the doubtful ones again, stage by stage.

A crop-reading costs Tesseract about the same however the crop is laid out (≈ 10 ms with `jpn`);
the accuracy comes from reading the doubtful crops again other ways (alone, enlarged, binarised,
with the second model) and letting the readings vote. Few Tesseract calls for a whole batch: the
crops of all pages of one setting go to one call per worker and stage.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from renraku.extractors import ocr

if TYPE_CHECKING:
    from renraku.extractors.image_reader import ImageReader, PreparedPage

TITLE = "__title__"  # the crop of the printed title, read to check the classification


@dataclass(frozen=True)
class Stage:
    """One round of reading doubtful crops again (reading.toml [[image.escalation]])."""

    variants: tuple[str, ...]  # with the setting's own model
    other_models: tuple[str, ...] = ()  # with each of the setting's other models
    settled: int = 0  # after it, a crop with this many readings agreeing on a value of its shape stops (0: never)


def ocr_prepared(pages: list[tuple[ImageReader, PreparedPage]],
                 workers: int = 1) -> list[dict[Hashable, list[ocr.Reading]]]:
    """OCR for many pages at once: per page, the readings of each crop (for `ImageReader.finish`).

    Every crop is read plain first, the crops of all pages of a setting in one Tesseract call per
    worker; only the crops whose plain reading is doubtful (`ImageReader.needs_more`) are read the
    other ways (alone, enlarged, binarised, another model), stage by stage until their readings
    agree (`ImageReader.settled`), and those still without a word once more each on its own
    (`lone_variants`, thickened strokes among them). Few calls for a whole batch, instead of
    several per page.
    """
    plain = [ocr.Request(reader.settings_by_name[name], crops, reader.variants)
             for reader, page in pages for name, crops in page.crops.items()]
    owners = [p for p, (_reader, page) in enumerate(pages) for _name in page.crops]
    first = ocr.read_requests(plain, workers)
    results: list[dict[Hashable, list[ocr.Reading]]] = [{} for _ in pages]
    for p, found in zip(owners, first, strict=True):
        results[p] |= found
    disagreeing = [reader.disagreeing(found) for (reader, _page), found in zip(pages, results, strict=True)]
    doubtful = [{k for k, rs in found.items() if k in disagreeing[p] or any(reader.needs_more(k, r) for r in rs)}
                for p, ((reader, _page), found) in enumerate(zip(pages, results, strict=True))]
    confirming = [reader.confirmed_only(found, disagreeing[p])
                  for p, ((reader, _page), found) in enumerate(zip(pages, results, strict=True))]
    for s in range(max((len(reader.stages) for reader, _page in pages), default=0)):
        more, more_owners = [], []
        for p, request in zip(owners, plain, strict=True):
            reader = pages[p][0]
            # crops read only to confirm go on canvases of their own: stacked with the doubtful ones,
            # they would change how Tesseract lays out (and so reads) those
            for group, ways in ((doubtful[p] - confirming[p], reader.escalation(request.setting, s)),
                                (doubtful[p] & confirming[p], reader.confirmation(request.setting))):
                crops = {k: c for k, c in request.crops.items() if k in group}
                for setting, variants in ways if crops else []:
                    more.append(ocr.Request(setting, crops, variants))
                    more_owners.append(p)
        for p, found in zip(more_owners, ocr.read_requests(more, workers), strict=True):
            for k, rs in found.items():
                results[p][k] = results[p][k] + rs
        for p, (reader, _page) in enumerate(pages):  # confirmed or not at once: read no more
            doubtful[p] = {k for k in doubtful[p] - confirming[p]
                           if k in disagreeing[p] or not reader.settled(k, results[p][k], s)}
    missed, missed_owners = [], []
    for p, request in zip(owners, plain, strict=True):
        reader = pages[p][0]
        lost = {k: request.crops[k] for k in request.crops
                if k != TITLE and not any(r.words for r in results[p][k])}
        if lost:
            missed.append(ocr.Request(request.setting, lost, ocr.alone(reader.lone_variants)))
            missed_owners.append(p)
    for p, found in zip(missed_owners, ocr.read_requests(missed, workers), strict=True):
        results[p] |= found
    return results
