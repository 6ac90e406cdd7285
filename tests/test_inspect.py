"""The memory inspector (``optical-memory serve``) without a browser: the
routes over a seeded store (SQLite and PostgreSQL), the host and write
guards, and the line boxes its highlights come from."""
from __future__ import annotations

import html
import io
import re

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

from click.testing import CliRunner
from inspect_seed import NEEDLE, seed
from PIL import Image

from optical_memory import OpticalMemory
from optical_memory.cli import main
from optical_memory.errors import InputError
from optical_memory.inspect import check_host, create_app, is_loopback
from optical_memory.render.boxes import (
    hit_boxes,
    page_offset,
    span_boxes,
    text_boxes,
)


@pytest.fixture
def mem(store_url, uid):
    m = OpticalMemory(store_url, keep_last=4)
    seed(m, user=f"{uid}a", other_user=f"{uid}b", n=300)
    yield m
    m.close()


def client(mem, **kw):
    from starlette.testclient import TestClient

    return TestClient(create_app(mem, **kw), base_url="http://127.0.0.1")


def links(text: str, cls: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(rf'class="{cls}" href="([^"]+)"', text)]


def test_scopes_lists_every_exact_scope_with_counts(mem, uid):
    mine = [c for c in mem.scopes() if c.scope.user_id.startswith(uid)]
    assert [(c.scope.user_id, c.scope.agent_id, c.scope.session_id) for c in mine] == [
        (f"{uid}a", None, "s1"), (f"{uid}b", "helper", None)]
    assert mine[0].items == 300 and mine[0].pages == len(mem.list_pages(user_id=f"{uid}a"))
    assert mine[0].pages >= 2
    assert (mine[1].items, mine[1].pages) == (6, 0)


def test_views_render_from_the_public_api(mem, uid):
    user = f"{uid}a"
    c = client(mem)
    home = c.get("/")
    assert home.status_code == 200 and user in home.text
    timeline = c.get(f"/scope?user={user}")
    assert timeline.status_code == 200
    pages = mem.list_pages(user_id=user)
    cards = re.findall(r'data-page="([0-9a-f]+)"', timeline.text)
    assert sorted(cards) == sorted(p.id for p in pages) and len(cards) >= 2
    assert "Turns on no page yet" in timeline.text  # the keep_last window
    # a page: every tier side by side, each item highlighted once per tier
    page = pages[0]
    view = c.get(f"/page/{page.id}?user={user}")
    assert view.status_code == 200
    tiers = re.findall(r'class="tierfig[^"]*" data-tier="(\w+)"', view.text)
    assert tiers == list(mem.aging.names)
    rec = mem.get_page(page.id, user_id=user)
    boxes = sum(len(span_boxes(rec, i, mem.render_config)) for i in rec.item_ids)
    assert boxes > 0 and view.text.count('class="ov span"') == len(tiers) * boxes
    assert 'id="closeup"' not in view.text
    focused = c.get(f"/page/{page.id}?user={user}&item={rec.item_ids[1]}")
    assert focused.text.count('class="ov span"') == (len(tiers) + 1) * len(
        span_boxes(rec, rec.item_ids[1], mem.render_config))  # every tier + the close-up
    for item_id in page.item_ids[:3]:
        assert f'id="item-{item_id}"' in view.text
    one = c.get(f"/page/{page.id}?user={user}&tier={tiers[-1]}")
    assert re.findall(r'data-tier="(\w+)"', one.text) == [tiers[-1]]
    png = c.get(f"/png/{page.id}?user={user}&tier={tiers[-1]}")
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == mem.aging.size(
        tiers[-1], (page.width, page.height))
    thumb = c.get(f"/png/{page.id}?user={user}&w=160")
    assert Image.open(io.BytesIO(thumb.content)).width == 160


def test_timeline_numbers_the_newest_turns_back_and_all_on_request(mem, uid):
    from optical_memory.inspect import views
    from optical_memory.scope import Scope

    scope = Scope(f"{uid}a")
    full = views.timeline(mem, scope, window=None)
    part = views.timeline(mem, scope, window=150)
    assert full.complete and not part.complete and part.numbered == 150
    total = full.numbered
    assert total == 300
    cards = {c.page.id: c for _, cs in full.tiers for c in cs}
    numbered = 0
    for _, cs in part.tiers:
        for c in cs:
            f = cards[c.page.id]
            if c.first_turn is None:
                assert c.unnumbered == c.items and f.first_turn <= total - 150
            elif c.unnumbered == 0:  # counted back: 1 = the newest turn
                numbered += 1
                assert (c.first_turn, c.last_turn) == (total + 1 - f.last_turn,
                                                       total + 1 - f.first_turn)
            else:  # straddles the window: its newest turns are numbered
                assert c.first_turn == total + 1 - f.last_turn and c.last_turn == 150
    assert numbered >= 1
    assert [i.id for _, i in part.waiting] == [i.id for _, i in full.waiting]
    assert [n for n, _ in full.waiting] == list(range(total - len(full.waiting) + 1, total + 1))
    c = client(mem)
    html = c.get(f"/scope?user={uid}a").text  # 300 turns: under the window, all numbered
    assert 'id="number-all"' not in html and "turns 1–" in html


def test_search_highlights_the_hit_on_its_page(mem, uid):
    user = f"{uid}a"
    c = client(mem)
    res = c.get(f"/search?user={user}&q={NEEDLE}")
    assert res.status_code == 200 and 'class="ov hit"' in res.text
    target = links(res.text, "hit-link")[0]
    page = c.get(target)
    assert page.status_code == 200
    # the hit's words, once per tier and once in the close-up
    assert page.text.count('class="ov hit"') == len(mem.aging.names) + 1
    assert 'id="closeup"' in page.text
    assert c.get(f"/search?user={user}&q=zzzqqq").text.count("No match") == 1


def test_context_view_matches_the_library(mem, uid):
    user = f"{uid}a"
    c = client(mem)
    res = c.get(f"/context?user={user}&budget=2500&target=openai:gpt-4o&keep_last=6")
    assert res.status_code == 200
    ctx = mem.context(2500, target="openai:gpt-4o", keep_last=6, user_id=user)
    images = sum(1 for m in ctx.messages if isinstance(m["content"], list)
                 for b in m["content"] if b.get("type") == "image")
    assert images > 0
    assert res.text.count('class="ctx-page"') == images
    assert f'<span id="context-tokens">{ctx.accounting.context_tokens}</span>' in res.text
    table = res.text.split('id="accounting"')[1].split("</table>")[0]
    cells = [html.unescape(x) for x in re.findall(r"<td[^>]*>([^<]*)</td>", table)]
    assert cells == [x for row in ctx.accounting.rows() for x in row]


def test_bad_input_is_a_clear_page_not_a_crash(mem, uid):
    c = client(mem)
    user = f"{uid}a"
    assert c.get(f"/page/nope?user={user}").status_code == 404
    page = mem.list_pages(user_id=user)[0]
    assert c.get(f"/page/{page.id}?user={user}&tier=huge").status_code == 400
    assert c.get(f"/context?user={user}&budget=abc").status_code == 400
    assert c.get(f"/search?user={user}&q=x&k=0").status_code == 400
    # another user's page is not found, not shown
    assert c.get(f"/page/{page.id}?user=someone-else").status_code == 404
    assert c.get("/niah/../etc").status_code in (400, 404)


def test_read_only_by_default_and_deletes_need_a_token(mem, uid):
    user = f"{uid}a"
    page = mem.list_pages(user_id=user)[0]
    item = page.item_ids[0]
    ro = client(mem)
    assert "delete-link" not in ro.get(f"/page/{page.id}?user={user}").text
    assert ro.get(f"/delete?user={user}&item={item}").status_code == 403
    assert ro.post(f"/delete?user={user}", data={"item": item, "token": "x"}).status_code == 403
    assert mem.get_item(item, user_id=user) is not None
    rw = client(mem, allow_writes=True)
    view = rw.get(f"/page/{page.id}?user={user}")
    confirm = rw.get(links(view.text, "delete-link")[0])
    token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
    assert rw.post(f"/delete?user={user}", data={"item": item, "token": "0" * 64}
                   ).status_code == 403
    assert rw.post(f"/delete?user={user}", data={"item": item, "token": token},
                   headers={"origin": "http://evil.example"}).status_code == 403
    # the token is bound to the item: it does not delete another one
    other = page.item_ids[1]
    assert rw.post(f"/delete?user={user}", data={"item": other, "token": token}
                   ).status_code == 403
    assert mem.get_item(item, user_id=user) is not None
    done = rw.post(f"/delete?user={user}", data={"item": item, "token": token},
                   follow_redirects=False)
    assert done.status_code == 303
    assert mem.get_item(item, user_id=user) is None
    assert mem.get_item(other, user_id=user) is not None


def test_host_guards():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    with pytest.raises(InputError, match="--allow-remote"):
        check_host("0.0.0.0", allow_remote=False)
    check_host("0.0.0.0", allow_remote=True)
    res = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--store", ":memory:"])
    assert res.exit_code == 1 and "--allow-remote" in res.output


def test_serve_command_starts_and_answers(tmp_path):
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from inspect_seed import free_port

    db = tmp_path / "s.db"
    with OpticalMemory(str(db), keep_last=2) as m:
        seed(m, n=60)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "optical_memory", "serve", "--store", str(db),
                             "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        body = ""
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    body = r.read().decode()
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        assert "alice" in body and "read-only" in body, proc.stderr.read() if proc.poll() else ""
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "http://127.0.0.1:" in proc.stderr.read()


def test_serve_never_creates_a_store(tmp_path):
    missing = tmp_path / "typo" / "memory.db"
    res = CliRunner().invoke(main, ["serve", "--store", str(missing), "--port", "0"])
    assert res.exit_code == 1 and "nothing was created" in res.output
    assert not missing.parent.exists()


def test_dns_rebinding_host_header_is_refused():
    m = OpticalMemory(":memory:")
    c = client(m)
    assert c.get("/").status_code == 200
    assert c.get("/", headers={"host": "attacker.example"}).status_code == 400
    m.close()


def test_niah_folders_render_their_plots(tmp_path):
    folder = tmp_path / "run1"
    folder.mkdir()
    Image.new("L", (40, 30), 200).save(folder / "heatmap_x_base.png")
    (folder / "notes.txt").write_text("not shown")
    m = OpticalMemory(":memory:")
    c = client(m, niah_dirs=[tmp_path])
    listing = c.get("/niah")
    target = links(listing.text, "niah-link")
    assert len(target) == 1
    one = c.get(target[0])
    src = re.findall(r'<img src="([^"]+)"', one.text)
    assert len(src) == 1 and c.get(src[0]).headers["content-type"] == "image/png"
    assert c.get(src[0].replace("heatmap_x_base.png", "notes.txt")).status_code == 400
    assert c.get("/niah/file/0/../../etc/passwd").status_code == 400
    m.close()


# --------------------------------------------------------------------------
# Line boxes (optical_memory.render.boxes)
# --------------------------------------------------------------------------


def test_line_boxes_cover_exactly_the_ink(tmp_path):
    m = OpticalMemory(str(tmp_path / "b.db"), keep_last=2)
    seed(m, n=120)
    for page in m.list_pages(user_id="alice"):
        rec = m.get_page(page.id, user_id="alice")
        ink = np.asarray(Image.open(io.BytesIO(rec.png)).convert("L")) < 160
        lines = rec.text.split("\n")
        boxes = text_boxes(rec, 0, len(rec.text), m.render_config)
        assert len(boxes) == sum(1 for line in lines if line)
        covered = np.zeros_like(ink)
        for b in boxes:
            covered[int(b.y0):int(np.ceil(b.y1)), int(b.x0):int(np.ceil(b.x1)) + 1] = True
            # the line's last inked column (its middle rows: ascenders and
            # descenders of the lines around reach into the box) is at its right edge
            cols = np.nonzero(ink[round(b.y0 + 3):round(b.y1 - 3)].any(axis=0))[0]
            assert cols.size and b.x1 - 0.6 * rec.font_size <= cols.max() <= b.x1 + 1
        assert not (ink & ~covered).any()


def test_hit_boxes_find_the_words_on_the_page(tmp_path):
    m = OpticalMemory(str(tmp_path / "h.db"), keep_last=2)
    seed(m, n=120)
    hit = m.retrieve(NEEDLE, user_id="alice")[0]
    item = m.get_item(hit.item_id, user_id="alice")
    page = m.get_page(hit.page_id, user_id="alice")
    start = page_offset(page, hit.item_id, item.text, hit.span[0])
    assert page.text[start:start + len(NEEDLE)] == NEEDLE
    boxes = hit_boxes(page, hit.item_id, item.text, hit.span, m.render_config)
    assert len(boxes) == 1 and boxes[0].x1 > boxes[0].x0
    assert page_offset(page, hit.item_id, item.text, len(item.text) + 5) is None


@pytest.mark.slow  # tesseract reads ~6 pages
def test_page_and_context_read_back_per_tier(tmp_path):
    m = OpticalMemory(str(tmp_path / "r.db"), keep_last=2)
    seed(m, n=120)
    c = client(m)
    page = m.list_pages(user_id="alice")[0]
    res = c.get(f"/page/{page.id}?user=alice&readback=1")
    rows = res.text.split('id="readback"')[1].split("</table>")[0]
    found = re.findall(r"<tr><td>(\w+)</td><td>(\d+)×(\d+)</td><td>(\w+)</td>\s*"
                       r'<td class="num">([\d.]+)</td>', rows)
    assert [r[0] for r in found] == list(m.aging.names)
    direct = m.decode(page.id, tier=m.aging.names[0], user_id="alice")
    assert float(found[0][4]) == pytest.approx(direct.precision, abs=1e-3)
    assert float(found[0][4]) > 0.9
    ctx = c.get("/context?user=alice&budget=6000&readback=1")
    table = ctx.text.split('id="context-readback"')[1].split("</table>")[0]
    assert re.search(r'<td class="num">1</td><td class="num">(0\.9\d\d|1\.000)</td>', table)
    m.close()
