"""A month's backlog (issue 20): about 1,000 mixed pages through one `renraku process`, measured from outside.

    python -m renraku.bench.backlog --data DIR [--pages 1000] [--seed 20] [--skip-full] [--skip-kill]
    python -m renraku.bench.backlog --data DIR --largest 30 --suffix .jpg

Generates the backlog into DIR once (reused when DIR already holds it): sets made by
samples/degrade.py through its five channels — typed PDFs with a text layer, image-only scanned
PDFs (and a scanner's PNGs), fine and standard fax TIFFs (several pages, some behind a cover
page), phone photos — a share of them sent as .eml messages with the files attached; values
usual or outside the reader's lists (`--values mixed`). Generation runs in two processes.

Then, each in a fresh RENRAKU_HOME:

- **full**: one `renraku process` over the whole backlog with stderr on a pseudo-terminal (the
  progress line must appear there). The whole process tree (renraku, its page workers,
  Tesseract) is sampled every 0.2 s: memory as the sum of PSS (/proc/PID/smaps_rollup: forked
  workers share pages, a sum of RSS counts them twice; both are reported) and CPU (cumulative
  user+system time of the tree, children reaped included). Reports pages, wall time, pages per
  minute, peak memory, cores used on average and the share of seconds with both cores busy, and
  checks the database against what was generated (documents, pages, sheets, form ids).
- **kill**: `renraku process` with stderr to a file (nothing may be written there: not a
  terminal), SIGKILL to its process group once about half the pages are recorded; then a rerun of
  the same command. Checks that every generated file and attachment is recorded exactly once,
  that the rerun read exactly the pages not recorded before the kill (its batch's `pages_read`)
  and found every document recorded by the first run a duplicate by its hash, without opening it.

- **largest** (`--largest N`, instead of the two above): one `renraku process` of the N largest
  generated files (`--suffix .jpg`: phone photos only), measured the same way and not checked: a
  proxy of a few minutes for the peak memory (PSS hardly depends on how busy the machine is).

Prints one JSON line per run and a summary; writes them to DIR/results.jsonl as well. The machine
is shared: the JSON says how busy all cores were during each run (/proc/stat) beside what
renraku's tree used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import pty
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

PAGES_PER_SET = 2.6  # degrade.py: 3 of 4 sets are three sheets, 1 of 4 one; 2 in 5 faxes add a cover
PARTS = 2  # generator processes
SAMPLE_SECONDS = 0.2
PROGRESS = re.compile(r"(\d+) pages, (\d+)/(\d+) files, ([\d.]+) pages/min(?:, about (.+?) left)?")


# ------------------------------------------------------------------------------- the backlog

@dataclass
class Backlog:
    inputs: list[Path]  # what `renraku process` is given (the generated files and e-mails)
    pages: int
    forms: Counter[str]
    files: dict[str, str]  # sha256 -> path of every file handed in (e-mails included)
    attachments: dict[str, str]  # sha256 -> "mail.eml#name"
    mix: dict[str, Any] = field(default_factory=dict)

    @property
    def documents(self) -> int:
        return len(self.files) + len(self.attachments)


def make_backlog(data: Path, pages: int, seed: int) -> Backlog:
    """Generate the backlog into `data` (two generator processes), or reuse what is there."""
    n = math.ceil(pages / PAGES_PER_SET / PARTS)
    parts = [data / f"part-{k}" for k in range(PARTS)]
    todo = []
    for k, part in enumerate(parts):
        manifest = part / "backlog.json"
        wanted = {"n": n, "seed": seed * 100 + k, "values": "mixed"}
        if manifest.exists() and json.loads(manifest.read_text()) == wanted and (part / "truth.jsonl").exists():
            continue
        if part.exists() and any(part.iterdir()):
            raise SystemExit(f"{part} holds something else than the backlog asked for: use another --data")
        todo.append((part, wanted, subprocess.Popen(
            [sys.executable, "-m", "renraku.samples.degrade", "--out", str(part), "--n", str(n),
             "--seed", str(wanted["seed"]), "--values", "mixed"], stdout=subprocess.PIPE, text=True)))
    for part, wanted, proc in todo:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"generating {part} failed")
        (part / "backlog.json").write_text(json.dumps(wanted))
        print(out.strip(), file=sys.stderr)
    return read_backlog(parts)


def read_backlog(parts: list[Path]) -> Backlog:
    truth = [json.loads(line) for part in parts for line in (part / "truth.jsonl").read_text().splitlines()]
    sets = [json.loads(line) for part in parts for line in (part / "sets.jsonl").read_text().splitlines()]
    inputs = [part / sub for part in parts for sub in ("files", "emails") if (part / sub).is_dir()]
    files, attachments = {}, {}
    for folder in inputs:
        for path in sorted(folder.iterdir()):
            data = path.read_bytes()
            files[hashlib.sha256(data).hexdigest()] = str(path)
            if path.suffix == ".eml":
                message = BytesParser(policy=policy.default).parsebytes(data)
                for att in message.iter_attachments():
                    body = att.get_payload(decode=True)
                    attachments[hashlib.sha256(body).hexdigest()] = f"{path.name}#{att.get_filename()}"
    channels = Counter(t["degrade"] for t in truth)
    mix = {"sets": len(sets), "pages_by_channel": dict(sorted(channels.items())),
           "files": sum(1 for p in files.values() if not p.endswith(".eml")),
           "emails": sum(1 for p in files.values() if p.endswith(".eml")), "attachments": len(attachments),
           "by_suffix": dict(sorted(Counter(Path(p).suffix.lower() for p in files.values()).items())),
           "multi_page_faxes": sum(1 for s in sets if s["degrade"].startswith("fax") and
                                   sum(1 for t in truth if t["file"] == s["files"][0]) > 1),
           "styles": dict(Counter(s["style"] for s in sets)), "values": dict(Counter(s["values"] for s in sets)),
           "megabytes": round(sum(Path(p).stat().st_size for p in files.values()) / 1e6, 1)}
    return Backlog(inputs, len(truth), Counter(t["form_id"] for t in truth), files, attachments, mix)


# ------------------------------------------------------------------------------- measuring a process tree

def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root: int) -> list[int]:
    """The process and all its descendants (page workers, Tesseract)."""
    kids, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += kids.get(pid, [])
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in kB; (0, 0) when it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = dict(re.findall(r"^(Pss|Rss):\s+(\d+) kB", text, re.M))
    return int(values.get("Pss", 0)), int(values.get("Rss", 0))


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _cpu_ticks(pid: int) -> int:
    """User and system time of a process and of its children it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(f) for f in fields[11:15])  # utime stime cutime cstime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Sampler(threading.Thread):
    """Samples a process tree every 0.2 s: peak memory, and CPU use per second."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.peak_pss = self.peak_rss = self.peak_processes = 0
        self.peak_at = 0.0
        self.at_peak: list[str] = []  # "name MB" of each process at the peak
        self.t0 = time.monotonic()
        self.cores: list[float] = []  # cores used by the tree, per second
        self.machine0 = _machine_ticks()

    def run(self) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        last_t, last_cpu = time.monotonic(), 0
        while not self.stop.is_set():
            pids = tree(self.root)
            mem = [_memory_kb(p) for p in pids]
            pss, rss = sum(m[0] for m in mem), sum(m[1] for m in mem)
            if pss > self.peak_pss:
                self.peak_pss, self.peak_at = pss, time.monotonic() - self.t0
                self.at_peak = [f"{_name(p)} {m[0] // 1024}" for p, m in zip(pids, mem, strict=True)]
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_processes = max(self.peak_processes, len(pids))
            now = time.monotonic()
            if now - last_t >= 1.0:
                cpu = sum(_cpu_ticks(p) for p in pids)
                self.cores.append(max(0, cpu - last_cpu) / hz / (now - last_t))
                last_t, last_cpu = now, cpu
            self.stop.wait(SAMPLE_SECONDS)

    def summary(self) -> dict[str, Any]:
        busy0, total0 = self.machine0
        busy1, total1 = _machine_ticks()
        cores = self.cores[1:]  # the first second counts from before the start
        return {"peak_pss_mb": round(self.peak_pss / 1024), "peak_rss_sum_mb": round(self.peak_rss / 1024),
                "peak_at_s": round(self.peak_at), "at_peak_pss_mb": self.at_peak,
                "peak_processes": self.peak_processes,
                "seconds_both_cores_busy": round(sum(1 for c in cores if c >= 1.5) / max(1, len(cores)), 2),
                "seconds_one_core_or_less": round(sum(1 for c in cores if c < 1.0) / max(1, len(cores)), 2),
                "machine_busy": round((busy1 - busy0) / max(1, total1 - total0), 2)}


# ------------------------------------------------------------------------------- one run

def db_counts(home: Path) -> dict[str, Any]:
    """What the database holds: documents, pages and sheets, per batch too, and the batches' stats."""
    path = home / "renraku.db"
    if not path.exists():
        return {"documents": 0, "pages": 0, "sheets": 0}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        counts: dict[str, Any] = {"documents": one("SELECT count(*) FROM documents"),
                                  "pages": one("SELECT count(*) FROM pages"),
                                  "sheets": one("SELECT count(*) FROM sheets")}
        counts["forms"] = dict(con.execute("SELECT form_id, count(*) FROM sheets GROUP BY form_id").fetchall())
        counts["pages_by_batch"] = dict(con.execute(
            "SELECT d.batch_id, count(*) FROM pages p JOIN documents d ON p.document_id = d.id "
            "GROUP BY d.batch_id").fetchall())
        counts["batches"] = [{"id": i, "status": st, **{k: v for k, v in json.loads(stats or "{}").items()
                                                        if k != "read"}}
                             for i, st, stats in con.execute("SELECT id, status, stats FROM batches ORDER BY id")]
        counts["sha256"] = Counter(r[0] for r in con.execute("SELECT sha256 FROM documents"))
        counts["sha_by_batch"] = {}
        for sha, batch in con.execute("SELECT sha256, batch_id FROM documents"):
            counts["sha_by_batch"][sha] = batch
        counts["applications"] = one("SELECT count(*) FROM applications")
        return counts
    except sqlite3.OperationalError:  # not migrated yet
        return {"documents": 0, "pages": 0, "sheets": 0}
    finally:
        con.close()


def _pages_recorded(home: Path) -> int:
    path = home / "renraku.db"
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM pages").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def run_process(backlog: Backlog, home: Path, log: Path, *, terminal: bool,
                kill_at_pages: int | None = None) -> dict[str, Any]:
    """One `renraku process` of the backlog into `home`, its tree sampled; SIGKILLed at a page count."""
    env = {**os.environ, "RENRAKU_HOME": str(home)}
    for key in ("RENRAKU_CONFIG", "RENRAKU_DB_URL", "RENRAKU_FAULT"):
        env.pop(key, None)
    master = slave = None
    if terminal:
        master, slave = pty.openpty()
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "renraku.cli", "process", *map(str, backlog.inputs)],
                                env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=slave if slave is not None else err, start_new_session=True)
        screen = bytearray()
        reader = None
        if master is not None:
            os.close(slave)  # type: ignore[arg-type]

            def drain() -> None:
                while True:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:  # the child closed the terminal
                        return
                    if not chunk:
                        return
                    screen.extend(chunk)
            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
        sampler = Sampler(proc.pid)
        sampler.start()
        killed_at = None
        if kill_at_pages is not None:
            while proc.poll() is None:
                recorded = _pages_recorded(home)
                if recorded >= kill_at_pages:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed_at = recorded
                    break
                time.sleep(0.5)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        if reader is not None:
            reader.join(timeout=5)
            os.close(master)  # type: ignore[arg-type]
            err.write(bytes(screen))
    counts = db_counts(home)
    batch = counts.get("batches", [{}])[-1] if counts.get("batches") else {}
    read = batch.get("pages_read")
    result = {"returncode": proc.returncode, "wall_s": round(wall, 1),
              "pages_recorded": counts["pages"], "pages_read": read,
              "pages_per_min": round((read if read is not None else counts["pages"]) / wall * 60, 1),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
              "cores_used": round((usage.ru_utime + usage.ru_stime) / wall, 2), **sampler.summary()}
    if killed_at is not None:
        result["killed_at_pages"] = killed_at
    stderr = log.with_suffix(".err").read_bytes().decode("utf-8", "replace")
    lines = [m.group(0) for m in PROGRESS.finditer(stderr)]
    result["progress_lines"] = len(lines)
    if lines:
        result["progress_first"], result["progress_last"] = lines[0], lines[-1]
    result["stderr_bytes"] = len(stderr.encode())
    return result


# ------------------------------------------------------------------------------- checks

def check_records(backlog: Backlog, counts: dict[str, Any]) -> dict[str, Any]:
    """The database against what was generated: every file and attachment once, every page a sheet."""
    shas: Counter[str] = counts["sha256"]
    missing = [p for s, p in (backlog.files | backlog.attachments).items() if s not in shas]
    doubled = [s for s, n in shas.items() if n > 1]
    checks = {
        "documents": [counts["documents"], backlog.documents],
        "pages": [counts["pages"], backlog.pages],
        "sheets": [counts["sheets"], backlog.pages],
        "missing_documents": missing[:5], "doubled_documents": doubled[:5],
        "form_ids_recorded": counts["forms"], "form_ids_generated": dict(sorted(backlog.forms.items())),
        "applications": counts["applications"],
    }
    checks["ok"] = (not missing and not doubled and counts["documents"] == backlog.documents
                    and counts["pages"] == backlog.pages == counts["sheets"])
    return checks


def check_rerun(backlog: Backlog, first: dict[str, Any], counts: dict[str, Any]) -> dict[str, Any]:
    """After a kill and a rerun: the rerun read exactly the pages the killed run had not recorded,
    and took each document the killed run had recorded as a duplicate (by its hash, unopened)."""
    before_pages = first["pages"]  # recorded when killed (all by batch 1)
    before_docs = set(first["sha256"])
    batches = counts["batches"]
    second = batches[-1]
    top_level_before = sum(1 for s in backlog.files if s in before_docs)
    by_batch = counts["pages_by_batch"]
    checks = {
        "batches": [(b["id"], b["status"]) for b in batches],
        "pages_recorded_before_kill": before_pages,
        "pages_read_by_rerun": second.get("pages_read"),
        "pages_not_recorded_before_kill": backlog.pages - before_pages,
        "pages_recorded_by_rerun": by_batch.get(second["id"], 0),
        "documents_recorded_before_kill": len(before_docs),
        "files_before_kill_found_duplicate_by_rerun": second.get("duplicates"),
        "files_recorded_before_kill": top_level_before,
        "documents_moved_to_rerun": sum(1 for s in before_docs if counts["sha_by_batch"].get(s) != batches[0]["id"]),
    }
    checks["ok"] = (second.get("pages_read") == backlog.pages - before_pages == by_batch.get(second["id"], 0)
                    and second.get("duplicates") == top_level_before and checks["documents_moved_to_rerun"] == 0
                    and [b["status"] for b in batches] == ["interrupted", "done"])
    return checks


# ------------------------------------------------------------------------------- main

def fresh(home: Path) -> Path:
    """An empty RENRAKU_HOME (kept after the run, for a look at its database)."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    return home


def largest(backlog: Backlog, n: int, suffix: str, data: Path, emit: Callable[[dict[str, Any]], None]) -> int:
    """One run of the `n` largest files (named on the command line), for its peak memory."""
    files = sorted((Path(p) for p in backlog.files.values() if p.lower().endswith(suffix.lower())),
                   key=lambda p: p.stat().st_size, reverse=True)[:n]
    run = run_process(Backlog(files, 0, Counter(), {}, {}), fresh(data / "homes" / "largest"), data / "largest",
                      terminal=False)
    emit({"what": f"the {len(files)} largest files{f' ({suffix})' if suffix else ''}",
          "megabytes": round(sum(p.stat().st_size for p in files) / 1e6, 1), **run})
    return 0 if run["returncode"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder for the generated backlog (kept, reused)")
    parser.add_argument("--pages", type=int, default=1000, help="about this many pages")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of pages recorded when the kill comes")
    parser.add_argument("--skip-full", action="store_true", help="only the kill and the rerun")
    parser.add_argument("--skip-kill", action="store_true", help="only the full run")
    parser.add_argument("--largest", type=int, metavar="N", help="only a run of the N largest files (a proxy)")
    parser.add_argument("--suffix", default="", help="with --largest: only files whose name ends so (.jpg)")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    results = args.data / "results.jsonl"

    def emit(row: dict[str, Any]) -> None:
        row = {"at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), **row}
        line = json.dumps(row, ensure_ascii=False, default=str)
        print(line, flush=True)
        with open(results, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    t0 = time.monotonic()
    backlog = make_backlog(args.data, args.pages, args.seed)
    emit({"what": "backlog", "pages": backlog.pages, "documents": backlog.documents, **backlog.mix,
          "seconds": round(time.monotonic() - t0, 1)})
    if args.largest:
        return largest(backlog, args.largest, args.suffix, args.data, emit)
    all_ok = True
    if not args.skip_kill:
        home = fresh(args.data / "homes" / "kill")
        killed = run_process(backlog, home, args.data / "killed", terminal=False,
                             kill_at_pages=round(backlog.pages * args.kill_at))
        first = db_counts(home)
        emit({"what": "killed run (stderr a file)", **killed})
        rerun = run_process(backlog, home, args.data / "rerun", terminal=True)
        counts = db_counts(home)
        checks = {"records": check_records(backlog, counts), "rerun": check_rerun(backlog, first, counts)}
        quiet = killed["progress_lines"] == 0
        rerun["progress_shown"] = rerun["progress_lines"] > 0
        all_ok &= (checks["records"]["ok"] and checks["rerun"]["ok"] and quiet and rerun["progress_shown"]
                   and killed["returncode"] == -9 and rerun["returncode"] == 0)
        both = killed["wall_s"] + rerun["wall_s"]
        read = killed["pages_recorded"] + (rerun["pages_read"] or 0)
        emit({"what": "rerun after the kill (stderr a terminal)", **rerun, "quiet_when_not_a_terminal": quiet,
              **checks, "both_runs": {"wall_s": round(both, 1), "pages": read,
                                      "pages_per_min": round(read / both * 60, 1),
                                      "peak_pss_mb": max(killed["peak_pss_mb"], rerun["peak_pss_mb"])}})
    if not args.skip_full:
        home = fresh(args.data / "homes" / "full")
        run = run_process(backlog, home, args.data / "full", terminal=True)
        checks = check_records(backlog, db_counts(home))
        run["progress_shown"] = run["progress_lines"] > 0
        all_ok &= checks["ok"] and run["progress_shown"] and run["returncode"] == 0
        emit({"what": "full run (stderr a terminal)", "pages": backlog.pages, **run, "records": checks})
    emit({"what": "summary", "ok": all_ok, "seconds": round(time.monotonic() - t0, 1)})
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
