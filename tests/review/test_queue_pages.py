"""The queue with more rows than a page: pages in the right order, counts of the whole queue."""

from __future__ import annotations

import re

from sqlalchemy import select

from renraku.bench.scale_db import fill
from renraku.context import Context
from renraku.review.listing import OPEN_STATES, PAGE_SIZE
from renraku.sinks import confirmation
from renraku.sinks import models as m
from tests.review.conftest import login

ROW_ID = re.compile(r'<td><a href="[^"]+">([AM]\d{6})</a></td>')


def expected_order(ctx: Context, keep) -> list[str]:  # type: ignore[no-untyped-def]
    """The queue's promise, computed the slow way: urgent reports, then open errors, then the oldest."""
    with ctx.sessions() as s:
        bounced = confirmation.attention(s, ctx.settings)  # shown as 確認メール要対応, whatever their state
        rows = []
        for a in s.scalars(select(m.Application).order_by(m.Application.id)):
            if keep("attention" if a.id in bounced else a.status, a.kind):
                rows.append((True, not any(f.blocking for f in a.findings), a.created_at, a.public_id))
        for msg in s.scalars(select(m.Message).order_by(m.Message.id)):
            if keep(msg.status, msg.kind):
                rows.append((not msg.urgent, True, msg.created_at, msg.public_id))
    return [r[3] for r in sorted(rows)]  # (not urgent, no open error, received, id)


def pages(client, url: str) -> tuple[list[list[str]], str]:  # type: ignore[no-untyped-def]
    """Every page of `url`, following the next links; and the first page's HTML."""
    found, first = [], ""
    while url:
        html = client.get(url).get_data(as_text=True)
        first = first or html
        found.append(ROW_ID.findall(html))
        link = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = link.group(1).replace("&amp;", "&") if link else ""
    return found, first


def test_the_queue_pages_through_more_rows_than_a_page_in_order_with_counts(app, ctx: Context) -> None:
    counts = fill(ctx.engine, scale=0.02)  # 400 applications, 40 messages (some urgent), findings, sheets
    client = app.test_client()
    login(client, "suzuki")

    everything, html = pages(client, "/?status=all")
    total = counts["applications"] + counts["messages"]
    assert [len(p) for p in everything] == [PAGE_SIZE] * 4 + [total - 4 * PAGE_SIZE]
    assert f"{total} 件（全 {total} 件） 1 / 5 ページ" in html
    assert [i for p in everything for i in p] == expected_order(ctx, lambda status, kind: True)
    assert everything[0][0].startswith("M")  # a lost-device report leads the queue

    with ctx.sessions() as s:
        bounced = confirmation.attention(s, ctx.settings)
        approved = set(s.scalars(select(m.Application.id).where(m.Application.status == "approved")))
        approved -= set(bounced)
    assert bounced and re.search(f'value="approved"\\s*>承認済み（{len(approved)}）<', html)
    assert re.search(f'value="attention"\\s*>確認メール要対応（{len(bounced)}）<', html)

    still_open, html = pages(client, "/?status=open&kind=new_facility")
    wanted = expected_order(ctx, lambda status, kind: status in OPEN_STATES and kind == "new_facility")
    assert len(wanted) > PAGE_SIZE and [i for p in still_open for i in p] == wanted
    assert f"{len(wanted)} 件（全 {total} 件）" in html

    beyond = client.get("/?status=all&page=99").get_data(as_text=True)  # past the end: the last page
    assert ROW_ID.findall(beyond) == everything[-1]
