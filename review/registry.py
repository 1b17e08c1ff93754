"""The registry search on the desk (登録簿): who is registered where, in what state, and from which
application, found by name, kana, e-mail, facility, municipality or facility number.

Every role may read it, as the queue and the 送受信確認 view (reading is not audited; the registry
leaves the desk only through the audited exports). The search itself is sinks/registry.search: one
query a page and one per kind of detail, at 50,000 staff (bench/scale_db.py).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_login import login_required

from renraku import normalize
from renraku.review.listing import PAGE_SIZE
from renraku.sinks import cases, confirmation, registry
from renraku.sinks import models as m
from renraku.validators import load_rule_config

bp = Blueprint("registry", __name__)
STATE_NAMES = {"": "すべて", "active": "登録中", "removed": "削除済み", "suspended": "停止中（紛失・盗難）"}
FILTERS = ("municipality", "facility", "state")  # not personal: these may stand in the URL
KEPT_SEARCHES = 5  # searches whose words the session keeps (the cookie stays small)


def _application_number(source: str) -> int | None:
    """The application a row came from (its `source` is A000012), or None for an imported row."""
    digits = source[1:]
    return int(digits) if source.startswith("A") and digits.isdigit() else None


@bp.route("/registry", methods=["POST"])
@login_required
def search_words() -> Any:
    """The search form is posted: names and e-mail addresses stay out of URLs (a TLS proxy's access log
    records them, docs/admin.md), kept in the signed session under a short key the URL carries."""
    args = {k: request.form.get(k, "")[:40] for k in FILTERS if request.form.get(k)}
    words = request.form.get("q", "")[:100]
    if normalize.searchable(words):
        kept = dict(list(session.get("registry_words", {}).items())[-(KEPT_SEARCHES - 1):])
        args["w"] = key = secrets.token_hex(6)  # not urlsafe: its "_" and "-" read like words typed
        session["registry_words"] = kept | {key: words}
    return redirect(url_for("registry.search", **args), code=303)


@bp.route("/registry")
@login_required
def search() -> Any:
    ctx = current_app.extensions["renraku"]
    key = request.args.get("w", "")
    state = request.args.get("state", "")
    query = registry.RegistryQuery(words=session.get("registry_words", {}).get(key, ""),
                                   municipality=request.args.get("municipality", "")[:40],
                                   facility=request.args.get("facility", "")[:20],
                                   state=state if state in registry.STAFF_STATES else "")
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
    args = {k: v for k, v in (("w", key if query.words else ""), ("municipality", query.municipality),
                              ("facility", query.facility), ("state", query.state)) if v}
    return render_template(
        "registry.html", rows=found.rows, query=query, matching=found.matching, page=found.page, pages=found.pages,
        municipalities=load_rule_config().get("area", {}).get("municipalities", []), states=STATE_NAMES,
        confirm_names=confirmation.STATE_NAMES, forgotten=bool(key) and not query.words,
        prev_url=url_for("registry.search", **args, page=found.page - 1) if found.page > 1 else None,
        next_url=url_for("registry.search", **args, page=found.page + 1) if found.page < found.pages else None)
