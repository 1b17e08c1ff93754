"""Confidence of an OCR or mark reading: a probability of being right, fitted on labelled data.

What was seen about a reading (Tesseract's word confidences, whether the value has its kind's
shape, how much had to be repaired, how close a job came to the closed list, how clearly a mark
box is ticked or empty) is its `Evidence`. A logistic model per group of kinds turns evidence into
a probability; its coefficients are data (`calibration.json`), fitted by `bench/calibrate.py` on
generated sheets whose truth is known, never guessed. The review threshold in reading.toml is
then chosen on the same data so that what is not flagged is right at least 99.5 % of the time.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"
log = logging.getLogger(__name__)
_WARNED: set[str] = set()

GROUPS = {
    "text": "jpn", "name": "jpn", "kana": "kana", "job": "job", "date": "date",
    "phone": "digits", "postal_code": "digits", "email": "email",
    "checkbox": "checkbox", "admin_mark": "admin_mark", "seal": "seal",
}


@dataclass
class Evidence:
    kind: str
    mean_conf: float = 0.0
    min_conf: float = 0.0
    plausible: bool = True
    repairs: int = 0
    vocabulary: float = 1.0
    chars: int = 0
    title_ok: bool = True
    agreement: float = 1.0  # share of the other readings that gave the same value
    channel: str = "scan"  # fax_fine | fax_standard | photo | scan
    page_conf: float = 0.0  # Tesseract's mean confidence over the page's text: low on handwriting
    corroborated: bool = False  # another box holds the same characters (a sheet of the same set)
    contradicted: bool = False  # another box that should agree cannot be made to (corroborate.py)
    sounds_right: bool = False  # the kana reading fits the name (or the name fits the address)
    lookalike: bool = False  # a name holding a glyph that looks and sounds like another (太郎/太朗)
    known_name: bool = False  # a name (or a name's kana) that is a surname and a given name (names.py)
    weak_match: bool = False  # a closed list's entry taken for a reading that looked little like it (glyphs.py)
    disputed_match: bool = False  # a closed list's entry taken for an inexact reading most other readings did not give
    # values of the kind's shape the crop's readings gave and how often (pooled over sheets; no feature)
    alternatives: tuple[tuple[str, int], ...] = ()
    letter_gap: float = 0.0  # widest gap between an address's letters, in usual gaps (ocr.widest_letter_gap)
    ink_pieces: tuple[int, ...] = ()  # heights of the pieces of ink in the crop (ink.piece_heights)
    rival: float = 0.0  # best score of another character in one place of the chosen reading (ocr.Word.rival)
    # what put the value in, if not the crop's reading as voted: a corroboration rule's name, "list"
    # (a repair toward a vocabulary list), "dictionary" (the name dictionary outvoted the readings).
    # Such a value vouches for nothing and is vouched for by nothing (corroboration.py); no feature.
    derived: str = ""
    empty: bool = False
    stray_ink: int = 0
    mark_share: float = 0.0
    mark_on: float = 0.05
    mark_off: float = 0.01

    def group(self) -> str:
        return "empty" if self.empty else GROUPS.get(self.kind, "jpn")

    def features(self) -> list[float]:
        """The model's inputs for this group (the first is the intercept)."""
        if self.empty:
            return [1.0, math.log1p(self.stray_ink)]
        if self.kind in ("checkbox", "admin_mark", "seal"):
            mid, half = (self.mark_on + self.mark_off) / 2, max(1e-6, (self.mark_on - self.mark_off) / 2)
            return [1.0, min(4.0, abs(self.mark_share - mid) / half)]
        return [1.0, self.mean_conf, self.min_conf, float(self.plausible), float(min(self.repairs, 3)),
                self.vocabulary, math.log1p(self.chars), float(self.title_ok), self.agreement,
                float(self.channel == "photo"), float(self.channel == "fax_standard"),
                float(self.channel == "fax_fine"), self.page_conf, float(self.corroborated),
                float(self.contradicted), float(self.sounds_right), float(self.lookalike), float(self.known_name),
                float(self.weak_match), float(self.disputed_match)]


# Until a fit exists, a cautious prior: only readings Tesseract is very sure of, with the right
# shape and nothing repaired, come out above a 0.9 threshold.
PRIOR = {
    "empty": [4.0, -1.0],
    "mark": [-1.0, 2.5],
    "text": [-11.0, 6.0, 4.0, 2.0, -1.5, 0.0, 0.0, 1.0, 2.0, -1.0, -1.0, -0.5, 0.0, 1.0, -1.0, 0.5, -1.0, 0.0,
             -1.0, -1.0],
}


@lru_cache(maxsize=2)
def _load(path: str) -> dict:
    p = Path(path)
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}


def _coefficients(path: str) -> dict[str, list[float]]:
    return _load(path).get("coefficients", {})


def calibrated_threshold(channel: str | None = None, calibration: Path = CALIBRATION_FILE,
                         default: float = 0.9) -> float:
    """The review threshold chosen on labelled data for a channel kind (see bench/calibrate.py);
    the strictest one when the channel is not known."""
    data = _load(str(calibration))
    return float(data.get("thresholds", {}).get(channel, data.get("threshold", default)))


def _prior(group: str) -> list[float]:
    if group == "empty":
        return PRIOR["empty"]
    if group in ("checkbox", "admin_mark", "seal"):
        return PRIOR["mark"]
    return PRIOR["text"]


def probability(features: list[float], coefficients: list[float]) -> float:
    z = sum(f * c for f, c in zip(features, coefficients, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def confidence(evidence: Evidence, calibration: Path = CALIBRATION_FILE) -> float:
    group = evidence.group()
    features = evidence.features()
    coefficients = _coefficients(str(calibration)).get(group)
    if coefficients is None or len(coefficients) != len(features):
        if coefficients is not None and group not in _WARNED:  # fitted for other evidence: the prior flags more
            _WARNED.add(group)
            log.warning("calibration for %s does not fit the evidence; run bench/calibrate.py", group)
        coefficients = _prior(group)
    return round(probability(features, coefficients), 4)


def fit_logistic(x: list[list[float]], y: list[int], l2: float = 1.0, iterations: int = 50) -> list[float]:
    """Logistic regression by Newton's method with a light ridge (no intercept penalty)."""
    import numpy as np

    X, Y = np.asarray(x, float), np.asarray(y, float)
    w = np.zeros(X.shape[1])
    reg = np.eye(X.shape[1]) * l2
    reg[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -30, 30)))
        grad = X.T @ (p - Y) + reg @ w
        hess = X.T @ (X * (p * (1 - p))[:, None]) + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return [float(v) for v in w]
