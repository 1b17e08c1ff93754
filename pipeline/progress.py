"""A progress line for long runs on a terminal: pages done, rate, time left.

Why: a month's backlog takes a while; the person at the terminal wants to know how far it is. On
anything that is not a terminal (a log file, the scheduler, a pipe) it writes nothing, so logs stay
clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_SECONDS = 0.5


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class Progress:
    """Counts files and pages as they are recorded and redraws one line (at most twice a second)."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.files_total: int | None = None
        self.files = 0
        self.pages = 0
        self._t0 = clock()
        self._drawn = 0.0
        self._width = 0

    def expect(self, files: int) -> None:
        """How many files this run will take (time left is estimated from them)."""
        self.files_total = (self.files_total or 0) + files

    def advance(self, pages: int, files: int = 1) -> None:
        self.files += files
        self.pages += pages
        now = self.clock()
        if self.enabled and (now - self._drawn >= REDRAW_SECONDS or self.files == self.files_total):
            self._drawn = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now if now is not None else self.clock()) - self._t0, 1e-6)
        rate = self.pages / elapsed * 60
        files = f"{self.files}/{self.files_total}" if self.files_total else str(self.files)
        text = f"{self.pages} pages, {files} files, {rate:.1f} pages/min"
        if self.files_total and self.files:
            left = elapsed / self.files * max(0, self.files_total - self.files)
            text += f", about {_duration(left)} left"
        return text

    def _draw(self, now: float) -> None:
        text = self.line(now)
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """End the line (the report that follows starts on its own line)."""
        if self.enabled and self.files:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
