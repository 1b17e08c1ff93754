"""The inbox at scale: polls of a 10,000-message folder against a real Dovecot.

    python -m renraku.bench.scale_imap [--messages 10000] [--new 50] [--repeat 5]

Starts a private Dovecot (tests/servers.py), appends N messages already marked processed (the
folder after months of work), then times `run_once` passes as the service runs them: the first
contact (flags and Message-ID headers only), idle polls (target < 1 s, no message bodies), and a
poll after `--new` new messages arrive (only those bodies fetched). The server's own log of the
client's commands (dovecot rawlog) says what was fetched. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

JST = dt.timezone(dt.timedelta(hours=9))


def mail(n: int) -> bytes:
    from renraku.samples.generator import eml_with_attachments

    return eml_with_attachments([], subject=f"お問い合わせ {n}", sender=f"施設{n} <sender{n}@clinic.example.jp>",
                                when=dt.datetime(2025, 9, 1, 9, 0, tzinfo=JST) + dt.timedelta(minutes=n),
                                body=f"お世話になっております。{n}\n", message_id=f"<scale{n}@clinic.example.jp>")


def measure(messages: int, new: int, repeat: int) -> list[dict[str, Any]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder beside the package
    from renraku.config import Settings
    from renraku.context import open_context
    from renraku.pipeline.intake import run_once
    from tests.servers import fetched_uids, start_imap_server

    results: list[dict[str, Any]] = []
    with start_imap_server() as server, tempfile.TemporaryDirectory(prefix="renraku-scale-imap-") as tmp:
        t0 = time.perf_counter()
        server.append_many("INBOX", (mail(n) for n in range(messages)), flags=["$Renraku"])
        results.append({"what": "append (harness)", "messages": messages,
                        "seconds": round(time.perf_counter() - t0, 1)})
        os.environ.update(server.env("ssl"))
        os.environ.pop("RENRAKU_SCAN_DIR", None)
        ctx = open_context(Settings(home=Path(tmp) / "home"))
        try:
            def poll(what: str) -> dict[str, Any]:
                server.clear_client_commands()
                t0 = time.perf_counter()
                report = run_once(ctx)
                seconds = time.perf_counter() - t0
                commands = server.client_commands()
                return {"what": what, "seconds": round(seconds, 3), "taken": len(report.items) if report else None,
                        "commands": len(commands), "bodies_fetched": len(fetched_uids(commands))}

            results.append(poll(f"first contact with {messages} (headers only)"))
            idle = [poll(f"idle poll of {messages}") for _ in range(repeat)]
            results.append({**idle[-1], "seconds_p50": round(statistics.median(i["seconds"] for i in idle), 3),
                            "seconds_max": max(i["seconds"] for i in idle),
                            "bodies_fetched": sum(i["bodies_fetched"] for i in idle)})
            uids = server.append_many("INBOX", [mail(messages + n) for n in range(new)])
            server.clear_client_commands()
            t0 = time.perf_counter()
            report = run_once(ctx)
            seconds = time.perf_counter() - t0
            got = fetched_uids(server.client_commands())
            results.append({"what": f"poll with {new} new among {messages + new}", "seconds": round(seconds, 3),
                            "taken": len(report.items) if report else None, "bodies_fetched": len(got),
                            "only_the_new": sorted(got) == sorted(uids)})
        finally:
            ctx.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--new", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5, help="idle polls timed")
    args = parser.parse_args(argv)
    for row in measure(args.messages, args.new, args.repeat):
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
