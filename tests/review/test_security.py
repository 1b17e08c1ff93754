"""The review desk refuses what a person may not do, and cannot be tricked into serving files."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from renraku.context import Context
from renraku.sinks import models as m
from tests.review.conftest import login, token_for


def test_every_page_and_image_refuses_an_anonymous_request(app, data) -> None:
    client = app.test_client()
    ids = {"app_id": data["app"], "field_id": data["field"], "page_id": data["page"], "finding_id": data["finding"],
           "batch_id": data["batch"], "message_id": 1, "document_id": 1, "fmt": "csv",
           "conf_id": 1, "export_id": 1, "case_id": 1, "action": "link"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "auth.login"):
            continue
        url = rule.build(ids, append_unknown=False)[1] if rule.arguments else rule.rule
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(url, method=method)
            assert response.status_code in (302, 400, 401), (method, url, response.status_code)
            if response.status_code == 302:
                assert "/login" in response.headers["Location"]
            checked += 1
    assert checked >= 15


def test_a_reviewer_corrects_but_cannot_decide_or_override(app, data) -> None:
    client = app.test_client()
    login(client, "tanaka")
    token = token_for(client)
    assert client.post(f"/applications/{data['app']}/approve", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/applications/{data['app']}/reject", data={"csrf_token": token,
                                                                   "reason": "x"}).status_code == 403
    assert client.post(f"/findings/{data['finding']}/override", data={"csrf_token": token,
                                                                     "reason": "ok"}).status_code == 403
    assert client.get("/users").status_code == 403 and client.get("/export.zip").status_code == 403
    assert client.post(f"/fields/{data['field']}", data={"csrf_token": token, "value": "2025-09-01"}).status_code == 302


def test_an_auditor_reads_everything_and_changes_nothing(app, data, ctx: Context) -> None:
    client = app.test_client()
    login(client, "kansa")
    token = token_for(client)
    for url, form in [(f"/fields/{data['field']}", {"value": "x"}), (f"/applications/{data['app']}/approve", {}),
                      (f"/applications/{data['app']}/reject", {"reason": "x"}),
                      (f"/findings/{data['finding']}/override", {"reason": "x"}), ("/users", {"name": "x"})]:
        assert client.post(url, data={"csrf_token": token, **form}).status_code == 403, url
    for url in ["/", f"/applications/{data['app']}", "/audit", f"/batches/{data['batch']}", "/export.zip",
                f"/batches/{data['batch']}/export.xlsx", f"/trace/fields/{data['field']}"]:
        assert client.get(url).status_code == 200, url
    with ctx.sessions() as s:
        assert s.get(m.Application, data["app"]).status != "approved"
        assert {e.action for e in s.scalars(select(m.AuditEntry))} >= {"login", "export"}


def test_a_form_post_without_its_csrf_token_fails(app, data, ctx: Context) -> None:
    client = app.test_client()
    login(client, "suzuki")
    assert client.post(f"/fields/{data['field']}", data={"value": "tampered"}).status_code == 400
    assert client.post(f"/applications/{data['app']}/approve").status_code == 400
    assert client.post("/logout").status_code == 400
    with ctx.sessions() as s:
        assert s.get(m.Field, data["field"]).value != "tampered"


@pytest.mark.parametrize("url", ["/pages/..%2F..%2F..%2Fetc%2Fpasswd/picture", "/pages/1/../../../etc/passwd",
                                 "/fields/%2e%2e%2fsecret_key/crop", "/static/../secret_key",
                                 "/static/..%2f..%2frenraku.db", "/pages/999999/picture"])
def test_an_image_route_cannot_reach_files_outside_the_store(app, data, url: str) -> None:
    client = app.test_client()
    login(client, "suzuki")
    response = client.get(url)
    assert response.status_code == 404
    assert b"root:" not in response.data and b"SQLite" not in response.data


def test_session_cookies_are_httponly_and_samesite(app, data) -> None:
    client = app.test_client()
    login(client, "tanaka")
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_a_tampered_audit_log_shows_on_the_audit_page(app, data, ctx: Context) -> None:
    client = app.test_client()
    login(client, "suzuki")
    assert "改ざんされていません" in client.get("/audit").get_data(as_text=True)
    with ctx.sessions.begin() as s:
        entry = s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id)).first()
        entry.actor = "someone else"
    assert "検証できません" in client.get("/audit").get_data(as_text=True)
