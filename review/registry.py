"""The registry search on the desk (登録簿): who is registered where, in what state, and from which
application, found by name, kana, e-mail, facility, municipality or facility number.

Every role may read it, as the queue and the 送受信確認 view (reading is not audited; the registry
leaves the desk only through the audited exports). The search itself is sinks/registry.search: one
query a page and one per kind of detail, at 50,000 staff (bench/scale_db.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import login_required

from renraku.review.listing import PAGE_SIZE
from renraku.sinks import cases, confirmation, registry
from renraku.sinks import models as m
from renraku.validators import load_rule_config

bp = Blueprint("registry", __name__)
STATE_NAMES = {"": "すべて", "active": "登録中", "removed": "削除済み", "suspended": "停止中（紛失・盗難）"}


def _application_number(source: str) -> int | None:
    """The application a row came from (its `source` is A000012), or None for an imported row."""
    digits = source[1:]
    return int(digits) if source.startswith("A") and digits.isdigit() else None


@bp.route("/registry")
@login_required
def search() -> Any:
    ctx = current_app.extensions["renraku"]
    query = registry.RegistryQuery(words=request.args.get("q", "")[:200],
                                   municipality=request.args.get("municipality", "")[:40],
                                   facility=request.args.get("facility", "")[:20],
                                   state=request.args.get("state", "") if request.args.get("state") in
                                   registry.STAFF_STATES else "")
    number = request.args.get("page", "1")
    now = m.utcnow()
    with ctx.sessions() as s:
        found = registry.search(s, query, int(number) if number.isdigit() and len(number) < 7 else 1, PAGE_SIZE)
        registry.details(s, found.rows)
    for r in found.rows:
        r["facility_number"] = m.public_id("F", r["facility_id"])
        r["from"] = _application_number(r["source"] or "")
        conf = r["confirmation"]
        r["confirm_state"] = confirmation.state(conf, ctx.settings, now) if conf else ""
        r["case_state"] = cases.STATE_NAMES[r["case"].state] if r["case"] else ""
    args = {k: v for k, v in (("q", query.words), ("municipality", query.municipality),
                              ("facility", query.facility), ("state", query.state)) if v}
    return render_template(
        "registry.html", rows=found.rows, query=query, matching=found.matching, page=found.page, pages=found.pages,
        municipalities=load_rule_config().get("area", {}).get("municipalities", []), states=STATE_NAMES,
        confirm_names=confirmation.STATE_NAMES,
        prev_url=url_for("registry.search", **args, page=found.page - 1) if found.page > 1 else None,
        next_url=url_for("registry.search", **args, page=found.page + 1) if found.page < found.pages else None)
