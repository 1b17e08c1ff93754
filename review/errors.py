"""Error pages in Japanese (our own template), and JSON errors for the page's script.

Werkzeug's English pages meant nothing to the office staff, and an HTML 403 broke the script that
expected JSON. Ids in URLs are bounded (a 20-digit id is "not found", not an overflow in the database).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("リクエストが正しくありません", "画面を開き直してから、もう一度操作してください。"),
    403: ("この操作の権限がありません", "この画面や操作は、別の役割の人のためのものです。"),
    404: ("見つかりません", "指定されたページ、申請またはファイルはありません。番号を確かめてください。"),
    405: ("この方法では操作できません", "画面のボタンから操作してください。"),
    413: ("送られたデータが大きすぎます", "入力を短くしてください。"),
    500: ("サーバーでエラーが起きました",
          "操作は記録されていません。しばらくしてからもう一度試し、続くときは管理者に連絡してください。"),
}


class BoundedInt(IntegerConverter):
    """`<int:…>` within the database's integer range: longer ids match no route (404)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or bool(request.headers.get("X-Requested-With"))


def _page(code: int, detail: str = "") -> Any:
    title, hint = MESSAGES.get(code, MESSAGES[500] if code >= 500 else MESSAGES[400])
    if wants_json():
        return jsonify({"error": f"{title}。{detail or hint}"}), code
    return render_template("error.html", code=code, title=title, hint=detail or hint), code


def install(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedInt

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if exc.code is None or exc.code < 400:
            return exc
        detail = exc.description if exc.code == 400 and "CSRF" in (exc.description or "") else ""
        return _page(exc.code, "画面の有効期限が切れました。画面を開き直してください。" if detail else "")

    @app.errorhandler(InternalServerError)
    def _internal(exc: InternalServerError) -> Any:
        original = getattr(exc, "original_exception", None)
        log.error("internal error on %s %s: %s", request.method, request.path, type(original).__name__)
        return _page(500)
