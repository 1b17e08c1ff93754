"""Logins, roles and users. Passwords: argon2 (argon2-cffi); sessions: Flask-Login."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from renraku.errors import PermissionDenied
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

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role)


def sessions():  # type: ignore[no-untyped-def]
    return current_app.extensions["renraku"].sessions


@login_manager.user_loader
def _load(user_id: str) -> Person | None:
    with sessions()() as s:
        user = s.get(m.User, int(user_id)) if user_id.isdigit() else None
        return Person(user) if user is not None and user.active else None


def init(app: Any) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "ログインしてください"


def add_user(session: Session, name: str, password: str, role: str, actor: str = "setup") -> m.User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValueError("パスワードは10文字以上にしてください")
    if session.scalar(select(m.User).where(m.User.name == name)) is not None:
        raise ValueError(f"{name} は既に登録されています")
    user = m.User(name=name, password_hash=hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user_add", f"user:{name}", {"role": role})
    return user


def check_password(user: m.User, password: str) -> bool:
    try:
        return hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


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


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        with sessions().begin() as s:
            user = s.scalar(select(m.User).where(m.User.name == name))
            if user is not None and user.active and check_password(user, password):
                if hasher.check_needs_rehash(user.password_hash):
                    user.password_hash = hasher.hash(password)
                audit.record(s, user.name, "login", f"user:{user.name}")
                person = Person(user)
            else:
                audit.record(s, name[:80] or "(空)", "login_failed", "user")
                person = None
        if person is not None:
            login_user(person)
            target = request.args.get("next", "")
            safe = target.startswith("/") and not target.startswith("//")
            return redirect(target if safe else url_for("views.queue"))
        flash("ユーザー名またはパスワードが違います")
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    with sessions().begin() as s:
        audit.record(s, current_user.name, "logout", f"user:{current_user.name}")
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/users", methods=["GET", "POST"])
@role_required(SUPERVISOR)
def users() -> Any:
    if request.method == "POST":
        try:
            with sessions().begin() as s:
                action = request.form.get("action", "add")
                if action == "add":
                    add_user(s, request.form["name"].strip(), request.form["password"], request.form["role"],
                             actor=current_user.name)
                else:
                    user = s.get(m.User, int(request.form["user_id"]))
                    if user is None:
                        abort(404)
                    if action == "deactivate":
                        user.active = False
                    elif action == "role" and request.form.get("role") in ROLES:
                        user.role = request.form["role"]
                    audit.record(s, current_user.name, f"user_{action}", f"user:{user.name}",
                                 {"role": user.role, "active": user.active})
            flash("保存しました")
        except (ValueError, KeyError) as exc:
            flash(str(exc))
        return redirect(url_for("auth.users"))
    with sessions()() as s:
        people = s.scalars(select(m.User).order_by(m.User.id)).all()
    return render_template("users.html", people=people, roles=ROLES, role_names=ROLE_NAMES)
