"""Logins, roles and users. Passwords: argon2 (argon2-cffi); sessions: Flask-Login.

A session names the user and their `session_version`; logout, a password or role change and
deactivation raise the version, so every cookie issued before stops working. A login does the same
work for a name that does not exist (a dummy hash is verified), and failures are throttled per name
and per address (review/security.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from renraku.errors import PermissionDenied
from renraku.review import security
from renraku.sinks import audit
from renraku.sinks import models as m
from renraku.sinks.queue import AUDITOR, REVIEWER, SUPERVISOR, Actor

ROLES = (REVIEWER, SUPERVISOR, AUDITOR)
ROLE_NAMES = {REVIEWER: "確認担当", SUPERVISOR: "責任者", AUDITOR: "監査"}
hasher = PasswordHasher()
bp = Blueprint("auth", __name__)
login_manager = LoginManager()


class Person(UserMixin):
    def __init__(self, user: m.User) -> None:
        self.id = str(user.id)
        self.name = user.name
        self.role = user.role
        self.version = user.session_version

    def get_id(self) -> str:
        return f"{self.id}:{self.version}"

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role)


def sessions():  # type: ignore[no-untyped-def]
    return current_app.extensions["renraku"].sessions


@login_manager.user_loader
def _load(session_id: str) -> Person | None:
    user_id, _, version = session_id.partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None  # also a cookie from before sessions had versions
    with sessions()() as s:
        user = s.get(m.User, int(user_id))
        ok = user is not None and user.active and user.session_version == int(version)
        return Person(user) if ok else None


def revoke_sessions(user: m.User) -> None:
    """Every session of this user ends (the next request of each goes to the login page)."""
    user.session_version = (user.session_version or 0) + 1


def init(app: Any) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "ログインしてください"


def add_user(session: Session, name: str, password: str, role: str, actor: str = "setup") -> m.User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    _check_strength(password)
    if not name or len(name) > 80:
        raise ValueError("名前は1〜80文字で入力してください")
    if session.scalar(select(m.User).where(m.User.name == name)) is not None:
        raise ValueError(f"{name} は既に登録されています")
    user = m.User(name=name, password_hash=hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user_add", f"user:{name}", {"role": role})
    return user


def set_password(session: Session, user: m.User, password: str, actor: str) -> None:
    _check_strength(password)
    user.password_hash = hasher.hash(password)
    revoke_sessions(user)
    audit.record(session, actor, "password_change", f"user:{user.name}")


def _check_strength(password: str) -> None:
    if len(password) < 10:
        raise ValueError("パスワードは10文字以上にしてください")


_dummy_hash: list[str] = []


def check_password(user: m.User | None, password: str) -> bool:
    """The password of `user`; for no user, the same argon2 work against a dummy hash (and False),
    so that the time a login takes does not tell which names exist."""
    if not _dummy_hash:
        _dummy_hash.append(hasher.hash(secrets.token_hex(16)))
    try:
        return hasher.verify(user.password_hash if user is not None else _dummy_hash[0], password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def _supervisors_left(session: Session, without: m.User) -> int:
    return session.scalar(select(func.count()).select_from(m.User).where(
        m.User.role == SUPERVISOR, m.User.active, m.User.id != without.id)) or 0


def change_user(session: Session, user: m.User, action: str, role: str | None, actor: str) -> None:
    """Deactivate a person or change their role; never leaves the desk without an active supervisor."""
    if action not in ("deactivate", "role") or (action == "role" and role not in ROLES):
        raise ValueError("操作が正しくありません")
    losing = action == "deactivate" or role != SUPERVISOR
    if user.role == SUPERVISOR and user.active and losing and _supervisors_left(session, user) == 0:
        raise ValueError("最後の責任者は停止も役割の変更もできません。先に別の人を責任者にしてください")
    if action == "deactivate":
        user.active = False
    else:
        user.role = str(role)
    revoke_sessions(user)
    audit.record(session, actor, f"user_{action}", f"user:{user.name}", {"role": user.role, "active": user.active})


def role_required(*roles: str) -> Callable:
    """Only these roles may use the view (others get 403); it also needs a login."""
    def wrap(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def inner(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return inner
    return wrap


@bp.errorhandler(PermissionDenied)
def _denied(exc: PermissionDenied) -> Any:
    abort(403)


ANONYMOUS = "(未ログイン)"  # the actor of a failed login: what was typed is not a person


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:200]
        password = request.form.get("password", "")[:1000]
        settings = current_app.extensions["renraku"].settings
        typed = security.name_hash(current_app.secret_key, name)
        address = request.remote_addr or ""
        with sessions().begin() as s:
            user = s.scalar(select(m.User).where(m.User.name == name)) if len(name) <= 80 else None
            locked = security.locked_out(s, settings, typed, address)
            right = check_password(user, password)  # always the same work, known name or not
            if user is not None and user.active and right and not locked:
                if hasher.check_needs_rehash(user.password_hash):
                    user.password_hash = hasher.hash(password)
                security.forget_failures(s, typed)
                audit.record(s, user.name, "login", f"user:{user.name}")
                person = Person(user)
            else:
                security.note_failure(s, settings, typed, address)
                detail = {"address": address} | ({} if user is not None else {"name_hash": typed[:16]})
                audit.record(s, ANONYMOUS, "login_locked" if locked else "login_failed",
                             f"user:{user.name}" if user is not None else "user:?", detail)
                person = None
        if person is not None:
            login_user(person)
            target = request.args.get("next", "")
            safe = target.startswith("/") and not target.startswith("//")
            return redirect(target if safe else url_for("views.queue"))
        if locked:
            flash(f"ログインの失敗が続いたため、しばらくログインできません。"
                  f"{settings.ui_login_window_minutes:.0f}分ほど待ってからやり直してください")
        else:
            flash("ユーザー名またはパスワードが違います")
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    with sessions().begin() as s:
        user = s.get(m.User, int(current_user.id))
        if user is not None:
            revoke_sessions(user)  # a copy of this session's cookie is worthless from now on
        audit.record(s, current_user.name, "logout", f"user:{current_user.name}")
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/users", methods=["GET", "POST"])
@role_required(SUPERVISOR)
def users() -> Any:
    if request.method == "POST":
        form = request.form
        try:
            with sessions().begin() as s:
                action = form.get("action", "add")
                if action == "add":
                    if form.get("role") not in ROLES:
                        raise ValueError("役割を選んでください")
                    add_user(s, form.get("name", "").strip(), form.get("password", ""), form["role"],
                             actor=current_user.name)
                else:
                    user_id = form.get("user_id", "")
                    user = s.get(m.User, int(user_id)) if user_id.isdigit() and len(user_id) < 10 else None
                    if user is None:
                        raise ValueError("そのユーザーは見つかりません")
                    change_user(s, user, action, form.get("role"), current_user.name)
            flash("保存しました")
        except ValueError as exc:  # our own messages, in Japanese
            flash(str(exc))
        return redirect(url_for("auth.users"))
    with sessions()() as s:
        people = s.scalars(select(m.User).order_by(m.User.id)).all()
    return render_template("users.html", people=people, roles=ROLES, role_names=ROLE_NAMES)
