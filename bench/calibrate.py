"""Fit the confidence model on labelled pages and choose the review threshold.

    python -m renraku.bench.calibrate SET_DIR... [--validate SET_DIR...] [--target 0.995]

Every image page of the sets is classified and read as the pipeline does; each field's evidence is
paired with whether its value is right. A logistic model per group of kinds is fitted and written to
extractors/calibration.json; then, on the validation sets (or the same ones, if none), the lowest
threshold is found at which the fields *not* flagged are right at least `--target` of the time,
with a margin: the reported threshold is written to calibration.json for reading.toml to use.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from renraku.bench.labelled import LabelledPage, load_set, same
from renraku.config import Settings
from renraku.extractors import calibration
from renraku.extractors.fields import reading_config
from renraku.extractors.templates import load_templates
from renraku.pipeline.pages import load_pages, sniff_media_type
from renraku.pipeline.read import PageResult, ReadContext, corroborate_item, read_page

Row = tuple[str, list[float], bool, str, str, bool]  # group, features, right, channel, style, noted


def _rows_for(args: tuple[list[LabelledPage], ReadContext]) -> list[Row]:
    """The rows of one received item (a file, or a mail with its attachments), read and
    corroborated across its sheets as the pipeline does."""
    pages, ctx = args
    os.environ["OMP_THREAD_LIMIT"] = "1"
    loaded: dict[str, list] = {}
    read: list[tuple[LabelledPage, PageResult]] = []
    for lp in pages:
        if lp.file not in loaded:
            loaded[lp.file] = load_pages(lp.data, sniff_media_type(lp.data, lp.name))
        if lp.form_id == "cover" or lp.degrade == "typed_pdf":
            continue
        read.append((lp, read_page(loaded[lp.file][lp.page - 1], ctx)))
    corroborate_item([result for _lp, result in read], ctx)
    out: list[Row] = []
    for lp, result in read:
        for r in result.readings:
            if r.evidence is None or r.path not in lp.fields:
                continue
            out.append((r.evidence.group(), r.evidence.features(), same(r.path, r.value, lp.fields[r.path]),
                        lp.degrade, lp.style, bool(r.note)))
    return out


def collect(set_dirs: list[Path], ctx: ReadContext, workers: int) -> list[Row]:
    by_item: dict[tuple[str, str], list[LabelledPage]] = defaultdict(list)
    for d in set_dirs:
        for lp in load_set(d):
            by_item[(str(d), lp.file.split("#", 1)[0])].append(lp)
    jobs = [(pages, ctx) for pages in by_item.values()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [row for rows in pool.map(_rows_for, jobs) for row in rows]


def fit(rows: list[Row]) -> dict[str, list[float]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row[0]].append(row)
    coefficients = {}
    for group, items in sorted(groups.items()):
        y = [int(r[2]) for r in items]
        if len(set(y)) < 2:  # all right (or all wrong): a cautious constant, not an infinite weight
            share = (sum(y) + 1) / (len(y) + 2)
            width = len(items[0][1])
            coefficients[group] = [math.log(share / (1 - share))] + [0.0] * (width - 1)
            continue
        coefficients[group] = calibration.fit_logistic([r[1] for r in items], y, l2=1.0)
    return coefficients


def _lowest(scored: list[tuple[float, bool]], target: float, margin: int) -> float:
    """The lowest threshold at which accepted fields are right at least `target` of the time,
    counting `margin` more wrong fields than were seen."""
    for t in sorted({p for p, _ok in scored}):
        accepted = [ok for p, ok in scored if p >= t]
        if (sum(accepted) - margin) / len(accepted) >= target:
            return round(t, 4)
    return 1.0


def choose_threshold(rows: list[Row], coefficients: dict[str, list[float]], target: float,
                     margin: int = 2) -> dict[str, Any]:
    """A review threshold per channel kind (the reader knows how a page came, not whether it was
    typed or handwritten): each the lowest at which that channel's accepted fields meet the target
    for typed and for handwritten sheets alike; then all channels together must meet it with a
    margin, or every threshold is raised to the one that does. A field a reader noted a doubt on
    (a bold repair, a value without its kind's shape) is reviewed whatever its confidence: it is
    counted among the validated fields, never among those a threshold accepts."""
    acceptable = [r for r in rows if not (len(r) > 5 and r[5])]
    scored = [(calibration.probability(r[1], coefficients[r[0]]), r[2], r[3]) for r in acceptable]
    styled = [(p, ok, ch, r[4]) for (p, ok, ch), r in zip(scored, acceptable, strict=True)]
    channels = sorted({ch for _p, _ok, ch in scored})
    thresholds = {ch: max(_lowest([(p, ok) for p, ok, c, st in styled if c == ch and st == style], target, 1)
                          for style in {st for _p, _ok, c, st in styled if c == ch})
                  for ch in channels}
    pooled = [ok for p, ok, ch in scored if p >= thresholds[ch]]
    if pooled and (sum(pooled) - margin) / len(pooled) < target:
        floor = _lowest([(p, ok) for p, ok, _ch in scored], target, margin)
        thresholds = {ch: max(t, floor) for ch, t in thresholds.items()}
    per_channel = {}
    for ch in channels:
        acc = [ok for p, ok, c in scored if c == ch and p >= thresholds[ch]]
        per_channel[ch] = {"threshold": thresholds[ch], "accepted": len(acc),
                           "fields": sum(1 for r in rows if r[3] == ch),
                           "precision": round(sum(acc) / max(1, len(acc)), 4)}
    accepted = [ok for p, ok, ch in scored if p >= thresholds[ch]]
    return {"threshold": max(thresholds.values(), default=1.0), "thresholds": thresholds,
            "accepted": len(accepted), "validated_fields": len(rows),
            "precision": round(sum(accepted) / max(1, len(accepted)), 4), "per_channel": per_channel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--validate", nargs="*", type=Path, default=[])
    parser.add_argument("--target", type=float, default=0.995)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=calibration.CALIBRATION_FILE)
    parser.add_argument("--from-rows", type=Path, help="refit from the rows an earlier run saved (no reading)")
    args = parser.parse_args()
    settings = Settings()
    ctx = ReadContext(load_templates(settings.templates_dir), reading_config(settings.reading_config))
    t0 = time.monotonic()
    if args.from_rows:
        saved = json.loads(args.from_rows.read_text())
        rows, check = [tuple(r) for r in saved["fit"]], [tuple(r) for r in saved["check"]]
    else:
        rows = collect(args.sets, ctx, args.workers)
        check = collect(args.validate, ctx, args.workers) if args.validate else rows
        cache = args.out.with_suffix(".rows.json")  # to refit without reading again (--from-rows)
        cache.write_text(json.dumps({"fit": rows, "check": check}))
    coefficients = fit(rows)
    chosen = choose_threshold(check, coefficients, args.target)
    report = {"fitted_on": [p.name for p in args.sets], "validated_on": [p.name for p in args.validate],
              "fitted_fields": len(rows), "target": args.target, **chosen, "coefficients": coefficients}
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(rows)} fields fitted in {time.monotonic() - t0:.0f} s; threshold {chosen['threshold']} accepts "
          f"{chosen['accepted']}/{chosen['validated_fields']} at precision {chosen['precision']}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
