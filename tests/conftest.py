"""Shared fixtures: a private RENRAKU_HOME per test, the templates, the labelled dev set."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from renraku.config import DEFAULT_TEMPLATES_DIR, Settings
from renraku.context import Context, open_context
from renraku.extractors.fields import reading_config
from renraku.extractors.templates import Template, load_templates
from renraku.pipeline.read import ReadContext

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """A cache folder of this test run (the dictionary indexes, extractors/kana_match.py), not the user's."""
    config.renraku_cache = tempfile.mkdtemp(prefix="renraku-test-cache-")  # type: ignore[attr-defined]
    os.environ["XDG_CACHE_HOME"] = config.renraku_cache  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(getattr(config, "renraku_cache", ""), ignore_errors=True)


def shared_dir() -> Path | None:
    """The secretariat's shared folder (forms, dev set, scorer) beside the checkout."""
    for candidate in (os.environ.get("RENRAKU_SHARED"), REPO.parent / "shared", "/work/shared"):
        if candidate and (Path(candidate) / "dev-set" / "truth.jsonl").exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def templates() -> list[Template]:
    return load_templates(DEFAULT_TEMPLATES_DIR)


@pytest.fixture(scope="session")
def read_ctx(templates: list[Template]) -> ReadContext:
    return ReadContext(templates, reading_config(Settings().reading_config))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("RENRAKU_HOME", str(home))
    monkeypatch.delenv("RENRAKU_DB_URL", raising=False)
    monkeypatch.delenv("RENRAKU_CONFIG", raising=False)
    return home


@pytest.fixture
def ctx(home: Path) -> Context:
    context = open_context()
    yield context
    context.close()


@pytest.fixture(scope="session")
def dev_set() -> Path:
    shared = shared_dir()
    if shared is None:
        pytest.skip("the shared dev set (../shared/dev-set) is not beside this checkout")
    return shared / "dev-set"


@dataclass
class DevRun:
    """The dev set processed once for the whole test session (OCR takes a while)."""

    home: Path
    export: Path
    report: object


@pytest.fixture(scope="session")
def dev_run(dev_set: Path, tmp_path_factory: pytest.TempPathFactory) -> DevRun:
    from renraku.pipeline.run import process_paths
    from renraku.sinks.export import export

    home = tmp_path_factory.mktemp("dev-home")
    context = open_context(Settings(home=home))
    try:
        report = process_paths(context, [dev_set / "files", dev_set / "emails"])
        with context.sessions() as s:
            export(s, home / "export")
    finally:
        context.close()
    return DevRun(home, home / "export", report)


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
