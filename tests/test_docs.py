"""The README and the guides in docs/: short, complete where it matters, no dead links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from renraku.cli import build_parser
from renraku.config import Settings

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GUIDES = [REPO / "docs" / name for name in ("admin.md", "staff.md", "reading.md")]


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    commands = [line.split("#")[0].strip() for line in lines[:8] if line.startswith("./dev.sh")]
    assert commands == ["./dev.sh demo", "./dev.sh test"]


@pytest.mark.parametrize("doc", [README, *GUIDES], ids=lambda p: p.name)
def test_every_link_and_picture_is_there(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    assert targets or doc == GUIDES[2]
    missing = [t for t in targets if t and not (doc.parent / t).exists()]
    assert not missing


def test_the_admin_guide_lists_every_setting() -> None:
    text = (REPO / "docs" / "admin.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`RENRAKU_{name.upper()}`" not in text]
    assert not missing


def test_the_readme_names_only_commands_that_exist() -> None:
    parser = build_parser()
    table = README.read_text(encoding="utf-8").split("## Commands", 1)[1].split("\n## ", 1)[0]
    for words in re.findall(r"`renraku ([a-z]+(?: [a-z]+)?)", table):
        first, *rest = words.split()
        sub = parser._subparsers._group_actions[0].choices[first]
        if rest and sub._subparsers is not None:
            assert rest[0] in sub._subparsers._group_actions[0].choices, words
