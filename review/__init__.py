"""The review desk: office staff correct and approve, a supervisor decides, an auditor traces.

Server-rendered pages (Flask, Jinja2) with a little JavaScript for the keyboard. Logins use
Flask-Login with argon2 password hashes (argon2-cffi); every form and request that changes
something carries a CSRF token (Flask-WTF); session cookies are HttpOnly, SameSite=Lax, and Secure
when served over TLS. Every page and image needs a login. Security headers and login throttling:
review/security.py; Japanese error pages: review/errors.py; the whole picture: docs/security.md.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from renraku.config import Settings, load_settings
from renraku.context import Context, open_context


def _secret_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(settings.home) / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def create_app(ctx: Context | None = None, settings: Settings | None = None) -> Flask:
    ctx = ctx or open_context(settings or load_settings())
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(ctx.settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=ctx.settings.ui_secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        WTF_CSRF_TIME_LIMIT=None,  # a reviewer's page stays open all morning
        MAX_CONTENT_LENGTH=2_000_000,
    )
    app.json.ensure_ascii = False  # the audit view shows a reason as written, not as \uXXXX (tojson still escapes <>&')
    if ctx.settings.ui_trusted_proxies:  # behind a TLS proxy: the client's address and scheme from it
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = ctx.settings.ui_trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    app.extensions["renraku"] = ctx
    CSRFProtect(app)
    from renraku.review import auth, confirmations, desk, errors, registry, security, views

    errors.install(app)  # before the blueprints: their routes use its bounded <int:…>
    security.install_headers(app, ctx.settings)
    desk.install(app)
    auth.init(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(confirmations.bp)
    app.register_blueprint(registry.bp)
    return app
