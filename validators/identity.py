"""Is this the same facility? Names as sheets write them, with OCR slips, and phone numbers.

Used to group sheets that arrive separately into one set, to notice a set whose sheets name
different facilities, and to find a facility in the registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

from renraku import normalize


def facility_key(name: str, config: dict[str, Any]) -> str:
    """The name without white space, legal-entity prefix (医療法人…会, 株式会社 …) or punctuation."""
    s = normalize.text(name)
    entities = sorted(config.get("facility", {}).get("legal_entities", []), key=len, reverse=True)
    for entity in entities:
        entity = normalize.text(entity)
        if not s.startswith(entity):
            continue
        rest = s[len(entity):]
        _head, sep, tail = rest.partition(" ")
        if sep and tail:  # 「医療法人さくら会 さくら在宅クリニック」: the entity is the first word
            s = tail
        elif entity.startswith(("医療法人", "社会福祉法人", "社会医療法人")) and "会" in rest[:-1]:
            s = rest[rest.index("会") + 1:]  # 「医療法人さくら会さくら在宅クリニック」
        else:
            s = rest
        break
    return re.sub(r"[\s・･.,、。()（）「」]", "", s)


def names_match(a: str, b: str, config: dict[str, Any]) -> bool:
    """Same facility name up to OCR slips: a few substituted characters, not a different word."""
    ka, kb = facility_key(a, config), facility_key(b, config)
    if not ka or not kb:
        return False
    if ka == kb:
        return True
    per = int(config.get("facility", {}).get("name_edits_per", 12))
    allowed = max(1, max(len(ka), len(kb)) // per)
    return len(ka) == len(kb) and Levenshtein.distance(ka, kb) <= allowed


def names_near(a: str, b: str, config: dict[str, Any]) -> bool:
    """Alike enough that a misreading could explain the difference (本町肪問外裏ステーション and
    本町訪問看護ステーション), though too far apart for `names_match`."""
    ka, kb = facility_key(a, config), facility_key(b, config)
    near = float(config.get("facility", {}).get("doubtful_similarity", 0.5))
    return bool(ka and kb) and Levenshtein.normalized_similarity(ka, kb) >= near


@dataclass(frozen=True)
class FacilityIdentity:
    name: str = ""
    phone: str = ""  # digits
    postal_code: str = ""  # digits

    def same_as(self, other: FacilityIdentity, config: dict[str, Any]) -> bool:
        if self.phone and other.phone:
            if self.phone != other.phone:
                return False  # two branches of one chain share a name pattern, never a number
            ka, kb = facility_key(self.name, config), facility_key(other.name, config)
            return bool(ka and kb) and Levenshtein.normalized_similarity(ka, kb) >= 0.7
        return names_match(self.name, other.name, config)
