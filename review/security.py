"""What protects the review desk beyond logins and roles: response headers, login throttling.

See docs/security.md for the whole picture and what the administrator must configure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from flask import Flask, Response
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from renraku.config import Settings
from renraku.sinks import models as m

# The desk loads only its own script, style sheet and images. Inline style *attributes* are allowed
# (the boxes on a page are placed by them); inline scripts, other sites and framing are not.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
                           "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
# waitress without its name in a Server header (`ident` is the header's text; empty leaves it out)
WAITRESS_OPTIONS = {"ident": ""}


def install_headers(app: Flask, settings: Settings) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        h = response.headers
        h.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if response.mimetype == "text/html" or response.mimetype == "application/json":
            h.setdefault("Cache-Control", "no-store")  # pages carry personal data: no copies on disk
        if settings.ui_secure_cookies:  # served over TLS: browsers should never try plain HTTP
            h.setdefault("Strict-Transport-Security", "max-age=31536000")
        h.pop("Server", None)
        return response


def name_hash(secret: str, name: str) -> str:
    """What the audit log and the throttle keep of a name typed at the login: a keyed hash."""
    return hmac.new(secret.encode(), name.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def locked_out(session: Session, settings: Settings, name_hash_: str, address: str) -> bool:
    """Too many failures lately for this name (known or not: the same for both) or from this address."""
    since = m.utcnow() - dt.timedelta(minutes=settings.ui_login_window_minutes)

    def failures(*where) -> int:  # type: ignore[no-untyped-def]
        return session.scalar(select(func.count()).select_from(m.LoginFailure)
                              .where(m.LoginFailure.at >= since, *where)) or 0
    return (failures(m.LoginFailure.name_hash == name_hash_) >= settings.ui_login_max_failures
            or failures(m.LoginFailure.address == address) >= settings.ui_login_max_failures_per_address)


def note_failure(session: Session, settings: Settings, name_hash_: str, address: str) -> None:
    window = dt.timedelta(minutes=settings.ui_login_window_minutes)
    session.execute(delete(m.LoginFailure).where(m.LoginFailure.at < m.utcnow() - 2 * window))
    session.add(m.LoginFailure(name_hash=name_hash_, address=address[:64]))


def forget_failures(session: Session, name_hash_: str) -> None:
    """A successful login starts the count of that name afresh (not the address's)."""
    session.execute(delete(m.LoginFailure).where(m.LoginFailure.name_hash == name_hash_))
