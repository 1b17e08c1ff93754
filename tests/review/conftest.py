"""A review desk with data: the demo inbox processed, three people, a served app."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from renraku.context import Context
from renraku.pipeline.run import Batch, Received
from renraku.review import create_app
from renraku.review.auth import add_user
from renraku.samples.generator import invent_set, render_pdf
from renraku.sinks import models as m

PEOPLE = {"tanaka": ("reviewer", "reviewer-pass-1"), "suzuki": ("supervisor", "supervisor-pass-1"),
          "kansa": ("auditor", "auditor-pass-1")}


@pytest.fixture
def people(ctx: Context) -> dict[str, tuple[str, str]]:
    with ctx.sessions.begin() as s:
        for name, (role, password) in PEOPLE.items():
            add_user(s, name, password, role)
    return PEOPLE


@pytest.fixture
def app(ctx: Context, people):
    application = create_app(ctx)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def data(ctx: Context) -> dict[str, int]:
    sheets = invent_set(random.Random(61))
    sheets[1].truth["staff[1].email"] = "info@clinic.example.jp"  # a shared address: an error to override
    with Batch(ctx) as batch:
        batch.receive(Received(render_pdf(sheets), "set.pdf", "set.pdf"))
    with ctx.sessions() as s:
        app = s.scalars(select(m.Application)).one()
        return {"app": app.id, "finding": next(f.id for f in app.findings if f.severity == "error"),
                "field": app.sheets[0].fields[0].id, "page": app.sheets[0].page_id,
                "batch": batch.report.batch_id}


def login(client, name: str) -> None:
    from flask import Flask  # noqa: F401

    page = client.get("/login")
    token = _token(page.get_data(as_text=True))
    response = client.post("/login", data={"name": name, "password": PEOPLE[name][1], "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def _token(html: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def token_for(client, url: str = "/") -> str:
    return _token(client.get(url).get_data(as_text=True))


@pytest.fixture
def served(app) -> str:
    """The app on a free port of 127.0.0.1 (waitress, in a thread) for the browser."""
    from waitress.server import create_server

    from renraku.review.security import WAITRESS_OPTIONS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = create_server(app, host="127.0.0.1", port=port, threads=4, **WAITRESS_OPTIONS)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.close()


DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser():
    """Debian's Chromium through Playwright (no browser downloaded)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking",
                                                              "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


def screenshot(page, path: Path, height: int | None = None) -> Path:  # type: ignore[no-untyped-def]
    """The top of the viewport as a small PNG (256 colours) fit for docs/."""
    from PIL import Image

    size = page.viewport_size
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": size["width"], "height": height or size["height"]})
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def keyboard_login(page, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.wait_for_selector("input[name=name]:focus")
    page.keyboard.type(name)  # the name field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(PEOPLE[name][1])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/")
