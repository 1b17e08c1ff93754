"""The Prefect flows and their schedule. Thin: every step is a function of pipeline/ that runs and
is tested without Prefect; Prefect adds retries, a schedule that never overlaps, and a record of
each run (a table artifact summarising the batch).

Two ways to run it: `serve()` (one machine: `renraku serve`, a Prefect server of its own, one pass
at a time), or `deploy()` (`renraku deploy`: a deployment on a process work pool, whose runs any
number of `prefect worker start --pool renraku` processes take, on this machine or others, sharing
one PostgreSQL and one document store; docs/scale.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.types.entrypoint import EntrypointType

from renraku.config import Settings, load_settings
from renraku.context import open_context
from renraku.errors import ConfigError
from renraku.pipeline.intake import run_once

# Transient IMAP and network faults are retried by the source itself (with backoff); the task is
# retried once more as a whole after a longer pause, which is safe: a pass is idempotent.


@task(name="pull-and-read", retries=2, retry_delay_seconds=[30, 120])
def pull_and_read(settings: Settings) -> dict:
    with open_context(settings) as ctx:
        report = run_once(ctx, wait=False)
    if report is None:
        return {"skipped": True}
    return {"batch": report.batch_id, **report.stats(),
            "items": [{"source": i.source_ref, "status": i.status, "sheets": i.sheets, "reason": i.reason}
                      for i in report.items]}


@flow(name="renraku-intake", log_prints=False)
def intake() -> dict:
    """One pass over the inbox and the scan folder, recorded as one batch.

    Settings come from the environment and config file of the serving process (never as run
    parameters: those are stored by Prefect, and the IMAP password must not be).
    """
    settings = load_settings()
    summary = pull_and_read(settings)
    logger = get_run_logger()
    if summary.get("skipped"):
        logger.info("another pass was running; skipped")
        return summary
    logger.info("batch %s: %s items, %s sheets, %s findings, %s urgent", summary["batch"], len(summary["items"]),
                summary["sheets"], summary["findings"], summary["urgent"])
    create_table_artifact(
        key="renraku-batch",
        table=[{"item": i["source"], "status": i["status"], "sheets": i["sheets"], "reason": i["reason"]}
               for i in summary["items"]] or [{"item": "(nothing new)", "status": "", "sheets": 0, "reason": ""}],
        description=(f"batch {summary['batch']}: {summary['recorded']} recorded, {summary['duplicates']} duplicates, "
                     f"{summary['failed']} failed; {summary['sheets']} sheets, {summary['findings']} findings, "
                     f"{summary['urgent']} urgent; {summary['seconds']} s"),
    )
    return summary


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A Prefect server of renraku's own (schedules need one; Prefect's temporary server cannot run
    them), unless PREFECT_API_URL already names one."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(home / "prefect")),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            raise RuntimeError("the Prefect server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _schedule(settings: Settings) -> dict:
    return {"cron": settings.cron} if settings.cron else {"interval": settings.interval_minutes * 60}


def deploy(settings: Settings | None = None) -> str:
    """Register the intake as a deployment of the process work pool `settings.work_pool` (made if
    missing) on the Prefect server of PREFECT_API_URL; returns the deployment's id.

    The workers import `renraku.flows` from their own installation (no code is stored in Prefect)
    and take the settings from their own environment. At most `settings.intake_runs` runs at once
    (one per worker); a scheduled run beyond that is cancelled, the next one comes anyway.
    """
    settings = settings or load_settings()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigError("Prefect サーバーの URL（PREFECT_API_URL）がありません", code="prefect_api")
    _ensure_pool(settings.work_pool)
    limit = ConcurrencyLimitConfig(limit=settings.intake_runs, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    return str(intake.deploy("renraku-intake", work_pool_name=settings.work_pool, build=False, push=False,
                             entrypoint_type=EntrypointType.MODULE_PATH, concurrency_limit=limit,
                             print_next_steps=False, ignore_warnings=True, **_schedule(settings)))


def _ensure_pool(name: str) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async def create() -> None:
        async with get_client() as client:
            with suppress(ObjectAlreadyExists):
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))

    asyncio.run(create())


def serve(settings: Settings | None = None) -> None:
    """Run the intake on its schedule until stopped; a run never starts while one is running."""
    settings = settings or load_settings()
    schedule = _schedule(settings)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with prefect_server(settings.home) as url, temporary_settings({PREFECT_API_URL: url}):
        intake.serve(
            name="renraku-intake",
            global_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
            **schedule,
        )
