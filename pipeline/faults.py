"""Fault injection for tests: kill the process at a named step, as a power cut would.

Set RENRAKU_FAULT to "step" or "step:n" (the n-th time the step is reached, from 1). The intake
calls `checkpoint(step)` between fetch, store, record and mark; the crash tests run the intake in a
child process with a random fault and check that a rerun finds every document exactly once.
RENRAKU_FAULT_PAUSE="step:seconds" makes every pass through a step slow instead, so that tests of
two workers see them really overlap. Without the variables a checkpoint costs two dictionary lookups.
"""

from __future__ import annotations

import os
import signal
import time

_counts: dict[str, int] = {}


def checkpoint(step: str) -> None:
    pause = os.environ.get("RENRAKU_FAULT_PAUSE")
    if pause and pause.rpartition(":")[0] == step:
        time.sleep(float(pause.rpartition(":")[2]))
    fault = os.environ.get("RENRAKU_FAULT")
    if not fault:
        return
    name, _, nth = fault.rpartition(":")
    if not nth.isdigit():  # "scan:stored" without a count
        name, nth = fault, "1"
    if name != step:
        return
    _counts[step] = _counts.get(step, 0) + 1
    if _counts[step] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
