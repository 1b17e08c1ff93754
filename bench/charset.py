"""The characters Tesseract's models can give at all.

A field holding a character that no model the reader uses has is beyond reading from the image,
whatever the reader does: 颯, 琥, 珀, 櫛, 煌, 柊, 紬 and 栞, frequent in given names, are in neither
jpn's 2,694 characters nor Japanese's 2,709. The benchmark counts such fields apart, so that a
measure of reading says how much of a loss is the model's alphabet and how much the reader's.
"""

from __future__ import annotations

import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

# Names the unicharset gives to entries that are no character of a text.
_SPECIAL = {"NULL", "Joined", "Broken"}


def model_langs(config: dict) -> set[str]:
    """Every model named by the OCR settings of a reading configuration (reading.toml `[ocr.*]`)."""
    langs: set[str] = set()
    for setting in config.get("ocr", {}).values():
        langs.add(setting["lang"])
        langs.update(setting.get("more_langs", []))
    return langs


@lru_cache(maxsize=8)
def model_characters(langs: frozenset[str]) -> frozenset[str]:
    """The characters any of the models can give (their LSTM unicharsets, taken out with Tesseract's
    own combine_tessdata)."""
    import tesserocr

    datapath = Path(tesserocr.get_languages()[0])
    chars: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for lang in sorted(langs):
            found = sorted(datapath.glob(f"**/{lang}.traineddata"))
            if not found:
                continue
            prefix = f"{tmp}/{lang}."
            subprocess.run(["combine_tessdata", "-u", str(found[0]), prefix], check=True, capture_output=True)
            lines = Path(prefix + "lstm-unicharset").read_text(encoding="utf-8").splitlines()[1:]
            for line in lines:
                entry = line.split(" ", 1)[0]
                if entry and entry not in _SPECIAL:
                    chars.update(entry)
    return frozenset(chars)


def beyond(text: str, chars: frozenset[str]) -> str:
    """The characters of `text` (spaces aside) that none of the models has, in order, once each."""
    return "".join(dict.fromkeys(c for c in text if not c.isspace() and c not in chars))
