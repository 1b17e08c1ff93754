"""`renraku process` shows its progress on a terminal, and nothing where output is not a terminal."""

from __future__ import annotations

import os
import pty
import random
import select
import subprocess
import sys
from pathlib import Path

from renraku.samples.generator import invent_set, render_pdf


def _run(args: list[str], env: dict[str, str], terminal: bool) -> tuple[int, str]:
    """The command's stderr, seen through a pseudo-terminal or through a pipe."""
    if not terminal:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        return done.returncode, done.stderr
    master, slave = pty.openpty()
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return process.wait(timeout=60), seen.decode("utf-8", "replace")


def test_process_shows_pages_rate_and_time_left_on_a_terminal_only(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(2):
        (inbox / f"set{n}.pdf").write_bytes(render_pdf(invent_set(random.Random(70 + n))))
    env = {**os.environ, "RENRAKU_HOME": str(tmp_path / "home"), "RENRAKU_WORKERS": "1"}
    env.pop("RENRAKU_DB_URL", None)
    command = [sys.executable, "-m", "renraku.cli", "process", str(inbox)]

    code, shown = _run(command, env, terminal=True)
    assert code == 0
    last = shown.rstrip().rsplit("\r", 1)[-1]
    assert last.startswith("6 pages, 2/2 files, ") and "pages/min" in last and "left" in last, shown

    env["RENRAKU_HOME"] = str(tmp_path / "home2")
    code, logged = _run(command, env, terminal=False)
    assert code == 0 and "pages/min" not in logged and "\r" not in logged
