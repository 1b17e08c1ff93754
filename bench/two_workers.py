"""Two workers, one PostgreSQL, one inbox and scan folder: killed and rerun, round after round.

    python -m renraku.bench.two_workers [--rounds 20] [--mails 10] [--files 9] [--seed 20]

Starts a private PostgreSQL and Dovecot (tests/servers.py). Each round new mail arrives in the
inbox (a third with a one-sheet typed PDF, the rest plain text) and new files in the scan folder;
two `renraku run --once` processes start together on the same database and RENRAKU_HOME, and one
of them is killed at a random point of its batch (SIGKILL: at a random step of the intake,
pipeline/faults.py, or a random time after its batch began, whichever comes first); then one
clean rerun. A round in which the victim
finished before either came is reported and run again, so `--rounds` counts real kills. After
each round every message and file that arrived so far must be recorded exactly once, marked or
moved. Prints one JSON line per round and a total: `duplicated` (a document recorded twice, or a
message or file recorded from two receipts), `lost` (arrived and not recorded, or not marked or
moved after the rerun).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JST = dt.timezone(dt.timedelta(hours=9))
STEPS = ["imap:fetched", "imap:stored", "imap:recorded", "imap:marked", "scan:stored", "scan:recorded",
         "scan:moved"]


@dataclass
class Arrivals:
    """What has been put into the inbox and the scan folder so far, by content."""

    scan: Path
    files: set[str] = field(default_factory=set)  # sha256 of each file written
    count: int = 0

    def mail(self, n: int, pdf: bytes | None) -> bytes:
        from renraku.samples.generator import eml_with_attachments

        return eml_with_attachments([(f"申込書_{n}.pdf", pdf)] if pdf else [], subject=f"申込書の送付 {n}",
                                    sender=f"施設{n} <sender{n}@clinic.example.jp>",
                                    when=dt.datetime(2025, 9, 1, 9, 0, tzinfo=JST) + dt.timedelta(minutes=n),
                                    body=f"お世話になっております。{n}\n", message_id=f"<w{n}@clinic.example.jp>")

    def arrive(self, server: Any, mails: int, files: int, rng: random.Random) -> None:
        """New mail (a third with a typed one-sheet PDF) and new scan files (typed PDFs, or not a form)."""
        from renraku.samples.generator import invent_set, render_pdf

        raw = []
        for _ in range(mails):
            self.count += 1
            pdf = render_pdf(invent_set(random.Random(rng.random()))[:1]) if self.count % 3 == 0 else None
            raw.append(self.mail(self.count, pdf))
        server.append_many("INBOX", raw)
        for _ in range(files):
            self.count += 1
            data = render_pdf(invent_set(random.Random(rng.random()))[:1]) if self.count % 2 else \
                f"scan {self.count} %PDF-1.4 not really a pdf".encode()
            (self.scan / f"fax_{self.count:04d}.pdf").write_bytes(data)
            self.files.add(hashlib.sha256(data).hexdigest())


class Worker:
    """`renraku run --once` as its own process (with a fault that kills it at a step, if given)."""

    def __init__(self, env: dict[str, str], fault: str | None = None) -> None:
        child = {**os.environ, **env}
        child.pop("RENRAKU_FAULT", None)
        if fault:
            child["RENRAKU_FAULT"] = fault
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (read and closed by stderr())
        self.process = subprocess.Popen([sys.executable, "-m", "renraku.cli", "run", "--once"], env=child,
                                        stdout=subprocess.DEVNULL, stderr=self.log)

    def wait(self, timeout: float = 600) -> int:
        return self.process.wait(timeout=timeout)

    def stderr(self) -> str:
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")[-3000:]
        self.log.close()
        return text


def tally(db_url: str, server: Any, arrivals: Arrivals, pids: dict[str, int] | None = None) -> dict[str, Any]:
    """Every message in the inbox and every file written: recorded once, marked or moved? And who took
    what (receipts of the batches of the processes `pids` names)."""
    from sqlalchemy import create_engine, func, select

    from renraku.sinks import models as m

    inbox = server.messages("INBOX")
    expected = {hashlib.sha256(msg.raw).hexdigest() for msg in inbox} | arrivals.files
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            tops = list(conn.scalars(select(m.Document.sha256).where(m.Document.parent_id.is_(None))))
            first = list(conn.scalars(select(m.Receipt.source_ref).where(m.Receipt.duplicate.is_(False))))
            seen_again = conn.scalar(select(func.count()).select_from(m.Receipt).where(m.Receipt.duplicate)) or 0
            by_batch = dict(conn.execute(select(m.Receipt.batch_id, func.count()).group_by(m.Receipt.batch_id)).all())
            batch_pid = {b.id: (b.stats or {}).get("pid") for b in conn.execute(select(m.Batch.id, m.Batch.stats))}
            running = conn.scalar(select(func.count()).select_from(m.Batch).where(m.Batch.status == "running"))
    finally:
        engine.dispose()
    recorded = set(tops)
    left_in_scan = [p for p in arrivals.scan.iterdir() if p.is_file()]
    return {
        "expected": len(expected), "documents": len(tops),
        "duplicated": (len(tops) - len(recorded)) + (len(first) - len(set(first))),
        "lost": len(expected - recorded) + sum(1 for msg in inbox if "$Renraku" not in msg.flags) + len(left_in_scan),
        "seen_again": seen_again, "batches_taking": sum(1 for n in by_batch.values() if n),
        "batches_left_running": running,
        "took": {name: sum(by_batch.get(b, 0) for b, p in batch_pid.items() if p == pid)
                 if pid in batch_pid.values() else None  # None: it died before its batch began
                 for name, pid in (pids or {}).items()},
    }


def began(db_url: str, process: subprocess.Popen, timeout: float = 60) -> bool:
    """Wait until `process` has begun its batch (its row names its pid); False if it ended first."""
    from sqlalchemy import create_engine, select

    from renraku.sinks import models as m

    engine = create_engine(db_url)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                if any((stats or {}).get("pid") == process.pid
                       for stats in conn.scalars(select(m.Batch.stats).where(m.Batch.status == "running"))):
                    return True
            time.sleep(0.05)
        return False
    finally:
        engine.dispose()


def run_rounds(rounds: int, mails: int, files: int, seed: int, db_url: str, server: Any, home: Path,
               scan: Path, log: Any = None) -> list[dict[str, Any]]:
    """The kill-and-rerun rounds; one result per round (its counts are for everything so far)."""
    from renraku.sinks.db import make_engine, migrate

    engine = make_engine(db_url)
    migrate(engine)  # the schema before the first round, so that `began` can look
    engine.dispose()
    rng = random.Random(seed)
    arrivals = Arrivals(scan)
    env = {**server.env("ssl"), "RENRAKU_DB_URL": db_url, "RENRAKU_HOME": str(home), "RENRAKU_SCAN_DIR": str(scan),
           "RENRAKU_SCAN_SETTLE_SECONDS": "0", "RENRAKU_WORKERS": "1"}
    results: list[dict[str, Any]] = []
    n = 0
    while sum(r["killed"] for r in results) < rounds and n < 3 * rounds:
        n += 1
        arrivals.arrive(server, mails, files, rng)
        t0 = time.monotonic()
        fault, timer = f"{rng.choice(STEPS)}:{rng.randint(1, 2)}", rng.uniform(0.0, 4.0)
        victim, other = Worker(env, fault), Worker(env)
        try:
            if began(db_url, victim.process):
                victim.wait(timeout=timer)
            how = fault if victim.process.returncode == -signal.SIGKILL else "finished first"
        except subprocess.TimeoutExpired:
            victim.process.send_signal(signal.SIGKILL)
            how = f"{timer:.1f} s into its batch"
        codes = [victim.wait(), other.wait()]
        rerun = Worker(env)
        codes.append(rerun.wait())
        result = {"round": n, "killed": codes[0] == -signal.SIGKILL, "kill": how, "exit": codes,
                  **tally(db_url, server, arrivals, {"killed": victim.process.pid, "other": other.process.pid,
                                                     "rerun": rerun.process.pid}),
                  "seconds": round(time.monotonic() - t0, 1)}
        errors = [w.stderr() for w in (victim, other, rerun)]
        if codes[1:] != [0, 0]:
            result["stderr"] = errors[1:]
        results.append(result)
        if log is not None:
            print(json.dumps(result, ensure_ascii=False), file=log, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--mails", type=int, default=10)
    parser.add_argument("--files", type=int, default=9)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder beside the package
    from tests.servers import private_postgres, start_imap_server

    t0 = time.monotonic()
    with private_postgres() as db_url, start_imap_server() as server, \
            tempfile.TemporaryDirectory(prefix="renraku-two-workers-") as tmp:
        scan = Path(tmp) / "scan"
        scan.mkdir()
        results = run_rounds(args.rounds, args.mails, args.files, args.seed, db_url, server, Path(tmp) / "home",
                             scan, log=sys.stdout)
    total = {"total": True, "rounds": len(results), "killed": sum(r["killed"] for r in results),
             "killed_mid_batch": sum(1 for r in results if r["killed"] and r["took"]["killed"] is not None),
             "documents": results[-1]["documents"] if results else 0,
             "duplicated_rounds": sum(1 for r in results if r["duplicated"]),
             "lost_rounds": sum(1 for r in results if r["lost"]),
             "duplicated": results[-1]["duplicated"] if results else 0, "lost": results[-1]["lost"] if results else 0,
             "seen_again": results[-1]["seen_again"] if results else 0, "seconds": round(time.monotonic() - t0, 1)}
    print(json.dumps(total, ensure_ascii=False))
    return 0 if not total["duplicated"] and not total["lost"] and not total["duplicated_rounds"] \
        and not total["lost_rounds"] else 1


if __name__ == "__main__":
    sys.exit(main())
