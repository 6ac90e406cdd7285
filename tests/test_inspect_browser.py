"""The memory inspector in a real browser: Debian's chromium driven by
Playwright (``executable_path``: no browser download), over a live server on a
random loopback port and a seeded store.

Clicks scope → page → tier → search hit (highlight present) → context (image
count and accounting equal the library's own ``context()``) → the repository's
NIAH results (plots and forgetting table), and fails on
any failed request, HTTP error or console error. Screenshots of each view go
to ``$OPTICAL_MEMORY_SCREENSHOTS`` (default ``runs/inspector-screens``, not
in git). Skipped, saying why, only where chromium or Playwright is missing
(``scripts/setup.sh`` installs both).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

CHROMIUM = next((p for p in (os.environ.get("OPTICAL_MEMORY_CHROMIUM"),
                             shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p), None)
if CHROMIUM is None:
    pytest.skip("chromium not installed (scripts/setup.sh installs Debian's chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed (pip install playwright)")

from inspect_seed import NEEDLE, seed, serving  # noqa: E402

from optical_memory import OpticalMemory  # noqa: E402
from optical_memory.inspect import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGET, TARGET, KEEP_LAST = 4000, "deepseek-ocr:base", 6


def screens_dir() -> Path:
    out = Path(os.environ.get("OPTICAL_MEMORY_SCREENSHOTS", ROOT / "runs" / "inspector-screens"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def browser_page():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
                if r.status >= 400 else None)
        try:
            yield page, problems
        finally:
            context.close()
            browser.close()


def test_click_through_scope_page_tier_hit_and_context(browser_page, tmp_path):
    page, problems = browser_page
    shots = screens_dir()
    mem = OpticalMemory(str(tmp_path / "m.db"), keep_last=4)
    seed(mem, n=400)
    try:
        with serving(create_app(mem, niah_dirs=[ROOT / "benchmarks" / "niah"])) as base:
            page.goto(base + "/")
            page.screenshot(path=str(shots / "1-scopes.png"))
            assert page.locator("#scopes tbody tr").count() == 2

            page.click("a.scope-link >> text=alice")
            page.wait_for_load_state("networkidle")
            cards = page.locator("a.card")
            assert cards.count() == len(mem.list_pages(user_id="alice"))
            page.screenshot(path=str(shots / "2-timeline.png"))

            first = cards.first.get_attribute("data-page")
            cards.first.click()
            page.wait_for_load_state("networkidle")
            assert first in page.url
            tiers = page.locator("figure.tierfig")
            assert tiers.count() == len(mem.aging.names)
            assert page.locator(".ov.span").count() > 0
            # every tier image really loaded (not a broken image)
            widths = page.eval_on_selector_all("figure.tierfig img", "els => els.map(e => e.naturalWidth)")
            assert all(w > 0 for w in widths)
            page.screenshot(path=str(shots / "3-page.png"), full_page=False)

            last_tier = mem.aging.names[-1]
            page.click(f"a.tier-link >> text=tier {last_tier}")
            page.wait_for_load_state("networkidle")
            assert f"tier={last_tier}" in page.url
            assert page.locator("figure.tierfig").count() == 1
            assert page.locator("figure.tierfig").get_attribute("data-tier") == last_tier
            page.screenshot(path=str(shots / "4-tier.png"))

            page.click("header nav >> text=search")
            page.fill("input[name=q]", NEEDLE)
            page.click("#search-form button")
            page.wait_for_load_state("networkidle")
            assert page.locator("#hit-1 .ov.hit").count() >= 1
            page.screenshot(path=str(shots / "5-search.png"))
            page.click("#hit-1 a.hit-link")
            page.wait_for_load_state("networkidle")
            # the hit's words, on every tier and in the close-up, visible there
            assert page.locator("#tiers .ov.hit").count() == len(mem.aging.names)
            assert page.locator("#closeup .ov.hit").count() == 1
            box = page.locator("#closeup .ov.hit").bounding_box()
            frame = page.locator("#closeup .closeup").bounding_box()
            assert box is not None and frame is not None and box["width"] > 20
            assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
            assert frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"]
            page.screenshot(path=str(shots / "6-hit-on-page.png"))

            page.click("header nav >> text=context")
            page.fill("input[name=budget]", str(BUDGET))
            page.select_option("select[name=target]", TARGET)
            page.fill("input[name=keep_last]", str(KEEP_LAST))
            page.click("#context-form button")
            page.wait_for_load_state("networkidle")
            ctx = mem.context(BUDGET, target=TARGET, keep_last=KEEP_LAST, user_id="alice")
            images = sum(1 for m in ctx.messages if isinstance(m["content"], list)
                         for b in m["content"] if b.get("type") == "image")
            assert images > 0
            assert page.locator("img.ctx-page").count() == images
            assert page.inner_text("#image-count") == str(images)
            assert page.inner_text("#context-tokens") == str(ctx.accounting.context_tokens)
            rows = page.eval_on_selector_all(
                "#accounting tbody tr",
                "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))")
            assert [tuple(r) for r in rows] == ctx.accounting.rows()
            page.screenshot(path=str(shots / "7-context.png"))

            page.click("header nav >> text=NIAH results")
            page.click("a.niah-link >> nth=0")
            page.wait_for_load_state("networkidle")
            plots = page.eval_on_selector_all(".plots img", "els => els.map(e => e.naturalWidth)")
            assert plots and all(w > 0 for w in plots)
            assert page.locator("#niah-tiers tbody tr").count() >= 1
            page.screenshot(path=str(shots / "8-niah.png"))
    finally:
        mem.close()
    assert not problems, "\n".join(problems)
    for name in ("1-scopes", "3-page", "6-hit-on-page", "7-context"):
        assert (shots / f"{name}.png").stat().st_size > 1000
