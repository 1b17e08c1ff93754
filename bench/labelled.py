"""Labelled sets (the dev set, generated sets): truth per page, matched to files by sha256."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from renraku import normalize

CHANNELS = ("typed_pdf", "scan", "fax_fine", "fax_standard", "photo")


@dataclass
class LabelledPage:
    file: str
    page: int
    form_id: str
    set_id: str
    style: str
    degrade: str
    fields: dict[str, Any]
    name: str = ""
    sha256: str = ""
    data: bytes = field(default=b"", repr=False)
    values: str = ""  # the value source of a generated set (usual | wide); "" where the set does not say
    oov: dict[str, str] = field(default_factory=dict)  # fields whose value no list of the reader holds: why
    font: str = ""  # the font family it was written in (generated sets)

    def split(self, path: str) -> str:
        """Which side of the vocabulary split a field is on: oov, in, or "" for an unlabelled set."""
        if not self.values:
            return ""
        return "oov" if path in self.oov else "in"


def _attachment(eml: Path, name: str) -> bytes:
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    for part in msg.walk():
        if part.get_filename() == name:
            return part.get_payload(decode=True) or b""
    raise KeyError(f"{eml.name}#{name}")


def load_set(directory: Path) -> list[LabelledPage]:
    directory = Path(directory)
    pages, cache = [], {}
    for line in (directory / "truth.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        t = json.loads(line)
        file = t["file"]
        if file not in cache:
            if "#" in file:
                eml, name = file.split("#", 1)
                cache[file] = (name, _attachment(directory / eml, name))
            else:
                cache[file] = (Path(file).name, (directory / file).read_bytes())
        name, data = cache[file]
        pages.append(LabelledPage(file, int(t["page"]), t["form_id"], t.get("set_id", ""), t.get("style", "typed"),
                                  t.get("degrade", "typed_pdf"), t.get("fields", {}), name,
                                  hashlib.sha256(data).hexdigest(), data, t.get("values", ""), t.get("oov", {}),
                                  t.get("font", "")))
    return pages


def _canonical(path: str, value: Any) -> str:
    s = normalize.compact("" if value is None else str(value))
    if path.endswith(("phone", "fax", "postal_code")):
        return normalize.digits(s)
    return s.lower() if path.endswith("email") else s


# Fields whose values the form does not close (SPEC §2 paths, last part): a value changed toward a
# list there can hide an error (issue 18); job, check boxes and the admin mark are closed.
OPEN_FIELDS = frozenset({"facility_name", "facility_name_kana", "facility_type_other", "address",
                         "representative_title", "representative_name", "contact_name", "contact_email",
                         "notifier_name", "medical_association", "name", "name_kana", "email"})


def open_field(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in OPEN_FIELDS and not path.startswith("facility_type.")


def field_kind(path: str) -> str:
    """A field path without its row (staff[2].name: name; the people's names all: name)."""
    last = path.split("].", 1)[-1]
    if last in ("representative_name", "contact_name", "notifier_name"):
        return "name"
    return "email" if last == "contact_email" else last


def changed_from_raw(path: str, value: Any, raw: str) -> bool:
    """Does a field's value differ from what OCR read (its raw text), beyond normalisation? On an
    open field that is a repair, a dictionary or a vote at work."""
    if not raw or isinstance(value, bool):
        return False
    a, b = _canonical(path, value), _canonical(path, raw)
    if path.endswith("kana"):
        a, b = normalize.kana(a), normalize.kana(b)
    return a != b


def same(path: str, got: Any, truth: Any) -> bool:
    """Is a read value right, the way acceptance counts it (NFKC, no spaces; phones by digits)?"""
    if isinstance(truth, bool):
        return got is truth
    return _canonical(path, got) == _canonical(path, truth)
