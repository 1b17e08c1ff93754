"""The reviewer's notes: one catalogue (notes.toml) for every rule and repair of the readers."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from renraku.errors import ConfigError

NOTES_FILE = Path(__file__).resolve().parent / "notes.toml"


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, str]:
    with open(NOTES_FILE, "rb") as fh:
        return tomllib.load(fh)


def text(key: str) -> str:
    """The Japanese note for `key`; a key missing from the catalogue is a bug in the caller."""
    try:
        return _catalogue()[key]
    except KeyError:
        raise ConfigError(f"notes.toml にメモ「{key}」がありません") from None
