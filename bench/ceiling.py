"""What Tesseract could give at best: for each text field, is the truth among its readings at all?

    python -m renraku.bench.ceiling SET_DIR... [--style typed|hand] [--out FILE.json]

Each image page of the labelled sets is read as the pipeline does (`prepare_page`, the staged OCR of
`ocr_prepared`, `ImageReader.finish`); then every crop of a text field is read once more every way
the reader knows (each variant of `ocr.VARIANTS`, stacked and alone, with each model of its
setting: 24 readings). Per channel, style and side of the vocabulary split it prints the share of
non-empty text fields whose value renraku gave right, whose truth one of the pipeline's own
readings gave (what a better choice among them could reach), and one of all readings (what no
choice can pass with this engine). A reading counts as it stands, with only its kind's format made
canonical (a date's era, a phone's hyphens); a reading moved toward a list does not.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from renraku import normalize
from renraku.bench.labelled import LabelledPage, load_set, same

if TYPE_CHECKING:
    from renraku.pipeline.pages import Page
    from renraku.pipeline.read import ReadContext


@dataclass
class Ceiling:
    """One field: renraku's value right, and whether any pipeline reading / any reading gave the truth."""

    set: str
    file: str
    page: int
    channel: str
    style: str
    split: str
    path: str
    truth: str
    value: str
    right: bool
    pipeline: bool
    any_reading: bool


def gives(path: str, kind: str, texts: Iterable[str], truth: str) -> bool:
    """Whether one of the reading texts is the truth as it stands (its kind's format made canonical:
    令和7年7月29日 is 2025-07-29; phones compare by digits)."""
    return any(same(path, t, truth) or same(path, normalize.normalise(kind, t).value, truth) for t in texts)


def page_ceiling(lp: LabelledPage, page: Page, ctx: ReadContext, set_name: str) -> list[Ceiling]:
    from renraku.extractors import ocr
    from renraku.extractors.escalation import ocr_prepared
    from renraku.extractors.image_reader import ImageReader, vocabulary
    from renraku.pipeline.read import prepare_page

    result = prepare_page(page, ctx)
    if result.pending is None:
        return []
    reader = ImageReader(ctx.template(result.pending.form_id), ctx.config, vocabulary())
    found = ocr_prepared([(reader, result.pending)])[0]
    values = {r.path: r.value for r in reader.finish(result.pending, found)}
    wanted = {p: t for p, t in lp.fields.items() if not isinstance(t, bool) and str(t).strip()}
    more: dict[str, list[str]] = defaultdict(list)
    variants = tuple(ocr.VARIANTS) + ocr.alone(tuple(ocr.VARIANTS))
    for name, crops in result.pending.crops.items():
        crops = {k: c for k, c in crops.items() if k in wanted}
        setting = reader.settings_by_name[name]
        for lang in (setting.lang, *setting.more_langs):
            way = setting if lang == setting.lang else setting.with_lang(lang)
            for k, readings in (ocr.read(crops, way, variants) if crops else {}).items():
                more[str(k)] += [r.text for r in readings]
    out = []
    for path, truth in wanted.items():
        if path not in found:  # empty crop: nothing was read
            continue
        kind = reader.specs[path].kind
        own = [r.text for r in found[path]]
        in_pipeline = gives(path, kind, own, truth)
        out.append(Ceiling(set_name, lp.file, lp.page, lp.degrade, lp.style, lp.split(path), path, str(truth),
                           str(values.get(path, "")), same(path, values.get(path), truth), in_pipeline,
                           in_pipeline or gives(path, kind, more[path], truth)))
    return out


def table(rows: list[Ceiling]) -> dict[str, dict[str, float]]:
    """Per channel, style and split (and all channels together): fields and the three shares."""
    groups: dict[str, list[Ceiling]] = defaultdict(list)
    for r in rows:
        for channel in (r.channel, "all"):
            groups[f"{channel}/{r.style}/{r.split or '-'}"].append(r)
    return {key: {"fields": len(rs), "renraku": sum(r.right for r in rs) / len(rs),
                  "pipeline": sum(r.right or r.pipeline for r in rs) / len(rs),
                  "any_reading": sum(r.right or r.any_reading for r in rs) / len(rs)}
            for key, rs in sorted(groups.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--style", choices=("typed", "hand"), help="only sheets of this style")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "ceiling.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    from renraku.config import Settings
    from renraku.extractors.fields import reading_config
    from renraku.extractors.templates import load_templates
    from renraku.pipeline.pages import load_pages, sniff_media_type
    from renraku.pipeline.read import ReadContext

    settings = Settings()
    ctx = ReadContext(load_templates(settings.templates_dir), reading_config(settings.reading_config))
    rows: list[Ceiling] = []
    for set_dir in args.sets:
        loaded: dict[str, list] = {}
        for lp in load_set(set_dir):
            if lp.form_id == "cover" or lp.degrade == "typed_pdf" or (args.style and lp.style != args.style):
                continue
            if lp.file not in loaded:
                loaded[lp.file] = load_pages(lp.data, sniff_media_type(lp.data, lp.name))
            rows += page_ceiling(lp, loaded[lp.file][lp.page - 1], ctx, set_dir.name)
    shares = table(rows)
    print(f"{'channel/style/split':28} {'fields':>6} {'renraku':>8} {'pipeline':>9} {'any':>6}")
    for key, s in shares.items():
        print(f"{key:28} {s['fields']:6} {100 * s['renraku']:8.1f} {100 * s['pipeline']:9.1f} "
              f"{100 * s['any_reading']:6.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"shares": shares, "fields": [asdict(r) for r in rows]}, ensure_ascii=False,
                                   indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
