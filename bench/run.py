"""The benchmark: accuracy, confidence and speed per channel and style, against plain Tesseract.

    python -m renraku.bench.run SET_DIR... [--out bench/out] [--baseline-pages N]

For each labelled set (the dev set, generated sets), the files of each channel kind are processed
by `renraku process` in a fresh worker process (own data folder; seconds and peak memory measured
for that run), the export is compared with the truth, and the same image pages are read by plain
full-page `tesseract -l jpn --psm 3`, one process per page as one would run it by hand (`ratio`),
and again held to one OpenMP thread, its fastest on this machine (`ratio1`): the speeds come from
one run on one machine and are reported as ratios. Machines here are shared and
noisy: read the ratio, not the seconds.

On generated sets whose truth labels each field in or out of the reader's lists (degrade.py
--values wide|mixed; every set it makes since issue 18), a second table gives field accuracy, STP
and precision of accepted fields for each side, and the count of accepted open fields whose value
a repair, dictionary or vote changed from what OCR read; every wrong accepted field is listed.
`--baseline-pages 0` skips the Tesseract comparison; `--keep DIR` keeps each channel's export.
`--repeat N` runs each channel N times, renraku and plain Tesseract in turns, and compares the
medians: one run's ratio moves by 0.3–0.5 on a shared machine (docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from renraku import normalize
from renraku.bench.charset import beyond, model_characters, model_langs
from renraku.bench.labelled import (
    CHANNELS,
    LabelledPage,
    changed_from_raw,
    field_kind,
    load_set,
    open_field,
    same,
)


def _measure_one(files: list[str], home: str, export_dir: str) -> None:
    """Child mode: process `files` into `home`, export, print seconds and peak memory as JSON."""
    from renraku.config import Settings
    from renraku.context import open_context
    from renraku.pipeline.run import process_paths
    from renraku.sinks.export import export

    with open_context(Settings(home=Path(home))) as ctx:
        t0 = time.monotonic()
        report = process_paths(ctx, [Path(f) for f in files])
        seconds = time.monotonic() - t0
        with ctx.sessions() as s:
            export(s, Path(export_dir))
            _export_raw(s, Path(export_dir) / RAW_FILE)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": seconds, "sheets": report.sheets, "peak_mb": round(max(own, workers) / 1024, 1)}))


RAW_FILE = "fields_raw.jsonl"  # beside the export: what OCR read of each field before repairs (not in SPEC §3)


def _export_raw(session: Any, path: Path) -> None:
    """Each field's raw reading and note, which the export (SPEC §3) leaves out, for the count of
    accepted values that a repair, dictionary or vote changed."""
    from sqlalchemy import select

    from renraku.sinks import models as m

    with open(path, "w", encoding="utf-8") as fh:
        for f in session.scalars(select(m.Field)):
            page = f.sheet.page
            fh.write(json.dumps({"sha256": page.document.sha256, "page": page.number, "path": f.path,
                                 "raw": f.raw, "note": f.note}, ensure_ascii=False) + "\n")


def _raw_readings(export_dir: Path) -> dict[tuple[str, int, str], str]:
    path = export_dir / RAW_FILE
    if not path.exists():
        return {}
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return {(r["sha256"], int(r["page"]), r["path"]): r["raw"] for r in rows}


def _files_by_channel(set_dir: Path, pages: list[LabelledPage]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for p in pages:
        out[p.degrade].add(str(set_dir / p.file.split("#", 1)[0]))
    return {k: sorted(v) for k, v in out.items()}


def _baseline_seconds(pages: list[LabelledPage], limit: int) -> tuple[float, float, int]:
    """Plain full-page Tesseract on the same image pages, seconds per page: as installed (OpenMP
    picks its threads; on this 2-core machine that is the slow case) and held to one thread (its
    fastest here, e.g. 0.96 s against 4.4 s on a fax page)."""
    import cv2

    from renraku.pipeline.pages import load_pages, sniff_media_type

    done, total, single = 0, 0.0, 0.0
    seen: dict[str, Any] = {}
    default_env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
    with tempfile.TemporaryDirectory(prefix="renraku-bench-") as tmp:
        for p in pages:
            if p.degrade == "typed_pdf" or done >= limit:
                continue
            if p.file not in seen:
                seen[p.file] = load_pages(p.data, sniff_media_type(p.data, p.name))
            page = seen[p.file][p.page - 1]
            page.load_image()  # a scanned PDF's page
            if page.image is None:
                continue
            path = os.path.join(tmp, "page.png")
            cv2.imwrite(path, page.image.pixels)
            command = ["tesseract", path, "stdout", "-l", "jpn", "--psm", "3"]
            t0 = time.monotonic()
            subprocess.run(command, capture_output=True, check=False, env=default_env)
            t1 = time.monotonic()
            subprocess.run(command, capture_output=True, check=False, env={**default_env, "OMP_THREAD_LIMIT": "1"})
            total += t1 - t0
            single += time.monotonic() - t1
            done += 1
    return (total / done if done else 0.0), (single / done if done else 0.0), done


def score(pages: list[LabelledPage], export_dir: Path, wrong: list[dict[str, Any]] | None = None,
          by_field: dict[tuple[str, str, str], Counter] | None = None,
          model_chars: frozenset[str] = frozenset()) -> dict[tuple[str, str], dict[str, float]]:
    """The acceptance measures per (channel, style), the way score.py counts them.

    On generated sets that label their fields (truth `values`, `oov`), the field measures are
    also counted apart for values in and out of the reader's lists (keys prefixed `in_`, `oov_`),
    with `changed_auto`: accepted open fields whose value is not what OCR read (a repair, a
    dictionary or a vote changed it). Wrong accepted fields are appended to `wrong`; `by_field`
    counts the same per (style, side, field kind) and per (style, side, "font:" font family). Given the
    OCR models' characters (`charset.model_characters`), a field of an image page holding one they lack
    is counted apart too (`beyond`): no reading of the image can give it."""
    sheets = {}
    for line in (export_dir / "sheets.jsonl").read_text(encoding="utf-8").splitlines():
        s = json.loads(line)
        sheets[(s["source"]["sha256"], int(s["source"]["page"]))] = s
    raws = _raw_readings(export_dir)
    counts: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for p in pages:
        c = counts[(p.degrade, p.style)]
        sheet = sheets.get((p.sha256, p.page))
        c["pages"] += 1
        got_form = sheet["form_id"] if sheet else None
        ok_cls = got_form == p.form_id or (p.form_id == "cover" and got_form in ("cover", "unknown"))
        c["class_ok"] += ok_cls
        if p.form_id == "cover":
            continue
        fields = sheet["fields"] if sheet else {}
        for path, truth in p.fields.items():
            f = fields.get(path) or {}
            value, review = f.get("value"), bool(f.get("needs_review", True)) or not ok_cls
            right = same(path, value, truth)
            if not review:
                c["auto"] += 1
                c["auto_ok"] += right
            split = p.split(path)
            if split:
                _count_split(c, split, path, truth, value, review, right, raws.get((p.sha256, p.page, path), ""),
                             model_chars if p.degrade != "typed_pdf" else frozenset())
                if by_field is not None and p.degrade != "typed_pdf" and str(truth).strip() and \
                        not isinstance(truth, bool):
                    for key in ((p.style, split, field_kind(path)), (p.style, split, f"font:{p.font}")):
                        by_field[key].update(fields=1, ok=right, auto=not review, wrong=not review and not right)
            if not review and not right and wrong is not None:
                wrong.append({"file": p.file, "page": p.page, "set_id": p.set_id, "degrade": p.degrade,
                              "style": p.style, "split": split, "path": path, "truth": truth, "value": value,
                              "confidence": f.get("confidence"), "raw": raws.get((p.sha256, p.page, path), ""),
                              "why_oov": p.oov.get(path, "")})
            if isinstance(truth, bool):
                c["marks"] += 1
                c["marks_ok"] += right
            elif str(truth).strip() == "":
                c["empty"] += 1
                c["false_fill"] += not right
            else:
                c["filled"] += 1
                c["filled_ok"] += right
                c["filled_auto"] += not review
    return counts


def _count_split(c: dict[str, float], split: str, path: str, truth: Any, value: Any, review: bool, right: bool,
                 raw: str, model_chars: frozenset[str] = frozenset()) -> None:
    """The field measures of one side of the vocabulary split (non-empty text fields only: marks
    and empty boxes have no list to be in or out of)."""
    if isinstance(truth, bool) or str(truth).strip() == "":
        return
    c[f"{split}_filled"] += 1
    c[f"{split}_filled_ok"] += right
    if model_chars and beyond(normalize.text(str(truth)), model_chars):
        c[f"{split}_beyond"] += 1
        c[f"{split}_beyond_ok"] += right
    if not review:
        c[f"{split}_auto"] += 1
        c[f"{split}_auto_ok"] += right
        if open_field(path) and changed_from_raw(path, value, raw):
            c[f"{split}_changed_auto"] += 1
            c[f"{split}_changed_auto_wrong"] += not right


def split_rows(counts: dict[tuple[str, str], dict[str, float]]) -> list[dict[str, Any]]:
    """Rows of the vocabulary split per channel and style, for the table and the JSON."""
    rows = []
    for (deg, style), c in sorted(counts.items()):
        for split in ("in", "oov"):
            n = c.get(f"{split}_filled", 0)
            if not n:
                continue
            auto = c.get(f"{split}_auto", 0)
            rows.append({"degrade": deg, "style": style, "split": split, "fields": int(n),
                         "field_accuracy": c[f"{split}_filled_ok"] / n, "stp": auto / n,
                         "auto_fields": int(auto), "auto_wrong": int(auto - c.get(f"{split}_auto_ok", 0)),
                         "auto_precision": c.get(f"{split}_auto_ok", 0) / auto if auto else None,
                         "changed_auto": int(c.get(f"{split}_changed_auto", 0)),
                         "changed_auto_wrong": int(c.get(f"{split}_changed_auto_wrong", 0)),
                         "beyond_model": int(c.get(f"{split}_beyond", 0)),
                         "readable_accuracy": _share(c[f"{split}_filled_ok"] - c.get(f"{split}_beyond_ok", 0),
                                                     n - c.get(f"{split}_beyond", 0))})
    return rows


def print_split(set_name: str, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        prec = f"{100 * r['auto_precision']:7.2f}" if r["auto_precision"] is not None else "    n/a"
        read = f"{100 * r['readable_accuracy']:7.2f}" if r["readable_accuracy"] is not None else "    n/a"
        print(f"{set_name[:10]:10} {r['degrade']:13} {r['style']:5} {r['split']:5} {r['fields']:6} "
              f"{100 * r['field_accuracy']:7.2f} {100 * r['stp']:6.2f} {r['auto_fields']:6} {r['auto_wrong']:6} {prec} "
              f"{r['changed_auto']:8} {r['changed_auto_wrong']:8} {r['beyond_model']:6} {read}", flush=True)


SPLIT_HEADER = (f"{'set':10} {'channel':13} {'style':5} {'split':5} {'fields':>6} {'field%':>7} {'STP%':>6} "
                f"{'auto':>6} {'wrong':>6} {'autoP%':>7} {'changed':>8} {'chg_bad':>8} {'beyond':>6} {'read%':>7}")


def _share(n: float, d: float) -> float | None:
    return n / d if d else None


def _pct(n: float, d: float) -> str:
    return f"{100 * n / d:6.2f}" if d else "   n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--baseline-pages", type=int, default=12, help="image pages per channel for plain Tesseract")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each channel, renraku and Tesseract in turns; the medians are compared")
    parser.add_argument("--keep", type=Path, help="copy each channel's export to KEEP/SET/CHANNEL, to look at "
                        "every field afterwards (review, confidence, note)")
    parser.add_argument("--measure-one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_one:
        files_json, home, export_dir = args.measure_one
        _measure_one(json.loads(Path(files_json).read_text()), home, export_dir)
        return
    if not args.sets:
        parser.error("name at least one labelled set folder")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    splits: list[tuple[str, list[dict[str, Any]]]] = []
    by_field: dict[str, dict[tuple[str, str, str], Counter]] = defaultdict(lambda: defaultdict(Counter))
    wrong: list[dict[str, Any]] = []
    header = (f"{'set':10} {'channel':13} {'style':5} {'pages':>5} {'class%':>7} {'field%':>7} {'mark%':>7} "
              f"{'fill%':>6} {'STP%':>6} {'autoP%':>7} {'s/page':>7} {'tess s/p':>8} {'ratio':>6} "
              f"{'tess1 s/p':>9} {'ratio1':>6} {'peakMB':>7}")
    print(header)
    from renraku.config import Settings
    from renraku.extractors.fields import reading_config

    model_chars = model_characters(frozenset(model_langs(reading_config(Settings().reading_config))))
    for set_dir in args.sets:
        pages = load_set(set_dir)
        for channel in CHANNELS:
            files = _files_by_channel(set_dir, pages).get(channel)
            if not files:
                continue
            channel_pages = [p for p in pages if p.degrade == channel]
            seconds, bases = [], []
            for turn in range(args.repeat):  # renraku and plain Tesseract in turns: both meet the same moments
                with tempfile.TemporaryDirectory(prefix="renraku-bench-") as tmp:
                    listing = Path(tmp) / "files.json"
                    listing.write_text(json.dumps(files))
                    run = subprocess.run([sys.executable, "-m", "renraku.bench.run", "--measure-one", str(listing),
                                          f"{tmp}/home", f"{tmp}/export"], capture_output=True, text=True, check=True)
                    measured = json.loads(run.stdout.strip().splitlines()[-1])
                    seconds.append(measured["seconds"])
                    if turn == 0:  # the readings are the same every time: scored once
                        found: list[dict[str, Any]] = []
                        counts = score(channel_pages, Path(tmp) / "export", found, by_field[set_dir.name],
                                       model_chars)
                        if args.keep:
                            shutil.copytree(Path(tmp) / "export", args.keep / set_dir.name / channel,
                                            dirs_exist_ok=True)
                bases.append(_baseline_seconds(channel_pages, args.baseline_pages) if channel != "typed_pdf"
                             else (0, 0, 0))
            wrong += [{"set": set_dir.name, **w} for w in found]
            splits.append((set_dir.name, split_rows(counts)))
            n_pages = len({(p.sha256, p.page) for p in channel_pages})
            per_page = statistics.median(seconds) / max(1, n_pages)
            base, base1 = (statistics.median(b[i] for b in bases) for i in (0, 1))
            base_n = bases[0][2]
            for (deg, style), c in sorted(counts.items()):
                row = {
                    "pages": c["pages"], "classification": c["class_ok"] / c["pages"],
                    "field_accuracy": c["filled_ok"] / c["filled"] if c["filled"] else None,
                    "marks": c["marks_ok"] / c["marks"] if c["marks"] else None,
                    "false_fill": c["false_fill"] / c["empty"] if c["empty"] else None,
                    "stp": c["filled_auto"] / c["filled"] if c["filled"] else None,
                    "auto_precision": c["auto_ok"] / c["auto"] if c["auto"] else None, "auto_fields": c["auto"],
                    "seconds_per_page": per_page, "tesseract_seconds_per_page": base,
                    "tesseract_1thread_seconds_per_page": base1, "tesseract_pages": base_n,
                    "runs": {"seconds_per_page": [round(x / max(1, n_pages), 3) for x in seconds],
                             "tesseract_1thread_seconds_per_page": [round(b[1], 3) for b in bases]},
                    "peak_mb": measured["peak_mb"],
                }
                results[f"{set_dir.name}/{deg}/{style}"] = row
                ratio = f"{base / per_page:6.2f}" if base and per_page else "   n/a"
                ratio1 = f"{base1 / per_page:6.2f}" if base1 and per_page else "   n/a"
                print(f"{set_dir.name[:10]:10} {deg:13} {style:5} {int(c['pages']):5} "
                      f"{_pct(c['class_ok'], c['pages'])} "
                      f"{_pct(c['filled_ok'], c['filled'])} {_pct(c['marks_ok'], c['marks'])} "
                      f"{_pct(c['false_fill'], c['empty']):>6} {_pct(c['filled_auto'], c['filled']):>6} "
                      f"{_pct(c['auto_ok'], c['auto'])} {per_page:7.2f} {base:8.2f} {ratio} {base1:9.2f} {ratio1} "
                      f"{measured['peak_mb']:7.0f}",
                      flush=True)
    if any(rows for _name, rows in splits):
        print("\nValues in and out of the reader's lists (non-empty text fields; changed: accepted open fields whose"
              "\nvalue is not OCR's raw reading, chg_bad: of those wrong; beyond: fields of image pages holding a"
              "\ncharacter no OCR model has, read%: exact of the others)")
        print(SPLIT_HEADER)
        for name, rows in splits:
            print_split(name, rows)
            results |= {f"{name}/{r['degrade']}/{r['style']}/{r['split']}": r for r in rows}
    if any(by_field.values()):
        print("\nBy field and by font, image channels together (fields, exact %, accepted %, wrong accepted)")
        for name, table in by_field.items():
            for (style, split, kind), k in sorted(table.items()):
                n = k["fields"]
                print(f"{name[:10]:10} {style:5} {split:5} {kind:22} {n:5} {100 * k['ok'] / n:7.2f} "
                      f"{100 * k['auto'] / n:7.2f} {k['wrong']:4}")
                results[f"{name}/fields/{style}/{split}/{kind}"] = dict(k)
    if wrong:
        print("\nWrong values accepted without review:")
        for w in wrong:
            print(f"  {w['set']} {w['degrade']}/{w['style']} {w['split'] or '-':3} {w['file']}#{w['page']} "
                  f"{w['path']}: truth {w['truth']!r} read {w['value']!r} (raw {w['raw']!r}) at {w['confidence']}")
    results["wrong_accepted"] = wrong
    out = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
