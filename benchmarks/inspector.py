"""How fast the memory inspector (``optical-memory serve``) shows a big scope.

A synthetic agent session (:func:`optical_memory.conversation.generate_conversation`)
of ``--turns`` messages (default 10,000) is stored in a fresh SQLite memory, in
adds of 500 (each add pages and ages what it can). The inspector then runs
with uvicorn on a loopback port, as ``optical-memory serve`` runs it, and the
first view of each kind is timed over real HTTP, the very first request to a
freshly started server (cold: the memory's caches are empty) and the median
of 5 repeats (warm):

- scopes: the store's scopes with their counts;
- timeline: the scope's pages by tier with the turns each holds (the view
  the scope link opens: the newest 1,000 turns numbered), its HTML; its
  thumbnails load lazily, timed apart (the ones on the first screen, fetched
  cold); and the same with every turn numbered (``numbers=all``);
- page: one page at every tier with every item's region highlighted;
- search: a keyword search with its hits highlighted on their pages.

With Debian's chromium installed the timeline is also loaded in a real
browser (Playwright) and timed to its ``load`` event (HTML, CSS and the
thumbnails on the first screen). The goal: under 1 s.

Run: ``python benchmarks/inspector.py [--turns 10000]``; prints a markdown
table and writes ``benchmarks/results/inspector.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from optical_memory import OpticalMemory
from optical_memory.conversation import generate_conversation
from optical_memory.inspect import create_app

HERE = Path(__file__).resolve().parent
USER = "bench"
GOAL_S = 1.0


def build(path: Path, turns: int) -> tuple[OpticalMemory, float, int]:
    conv = generate_conversation(turns=turns, seed=7)
    mem = OpticalMemory(path)
    t0 = time.perf_counter()
    for i in range(0, len(conv.messages), 500):
        mem.add(conv.messages[i:i + 500], user_id=USER)
    return mem, time.perf_counter() - t0, len(conv.messages)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CPU: dict[str, float] = {}


def _get(url: str) -> tuple[float, bytes]:
    t0, c0 = time.perf_counter(), time.process_time()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
        assert r.status == 200, (url, r.status)
    CPU[url] = time.process_time() - c0  # server and client share this process
    return time.perf_counter() - t0, body


def _timed(url: str, repeats: int = 5) -> tuple[float, float, float, bytes]:
    cold, body = _get(url)
    cpu = CPU[url]
    warm = statistics.median(_get(url)[0] for _ in range(repeats))
    return cold, cpu, warm, body


BROWSER_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const p = performance.getEntriesByName('first-contentful-paint')[0];
  return [n.responseEnd - n.startTime, p ? p.startTime : NaN,
          n.domContentLoadedEventEnd - n.startTime, n.loadEventEnd - n.startTime];
}"""


def browser_load(url: str, warm_url: str) -> list[float] | None:
    """Seconds from navigation start to: the HTML received, the first
    contentful paint, DOMContentLoaded and ``load``, in headless chromium; or
    ``None`` when chromium or playwright is missing. The browser first opens
    ``warm_url`` (a static file: its own start-up is not the page's load)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(warm_url, wait_until="load")
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        ms = page.evaluate(BROWSER_JS)
        browser.close()
    return [float(x) / 1000 for x in ms]


@contextmanager
def serving(mem: OpticalMemory) -> Iterator[str]:
    """The inspector over ``mem`` on a free loopback port (uvicorn, in a thread)."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(mem), host="127.0.0.1", port=port,
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run(turns: int, folder: Path) -> dict:
    path = folder / "inspector.db"
    mem, build_s, messages = build(path, turns)
    stats = mem.stats(user_id=USER)
    mem.close()
    rows: list[tuple[str, float, float, float | None]] = []
    load_before = os.getloadavg()[0]
    with OpticalMemory(path) as mem, serving(mem) as base:  # a fresh process's memory: cold
        rows.append(("scopes", *_timed(base + "/")[:3]))
        cold, cpu, warm, html = _timed(f"{base}/scope?user={USER}")
        rows.append(("timeline (HTML)", cold, cpu, warm))
        thumbs = re.findall(r'src="(/png/[^"]+)"', html.decode())
        first_screen = [u.replace("&amp;", "&") for u in thumbs[:16]]
        t0, c0 = time.perf_counter(), time.process_time()
        for u in first_screen:
            _get(base + u)
        rows.append((f"timeline thumbnails, first {len(first_screen)} (cold)",
                     time.perf_counter() - t0, time.process_time() - c0, None))
        rows.append(("timeline, every turn numbered (`numbers=all`)",
                     *_timed(f"{base}/scope?user={USER}&numbers=all")[:3]))
        page_id = re.findall(r'data-page="([0-9a-f]+)"', html.decode())[-1]
        rows.append(("page at every tier", *_timed(f"{base}/page/{page_id}?user={USER}")[:3]))
        rows.append(("search (5 hits on their pages)",
                     *_timed(f"{base}/search?user={USER}&q=deploy+error+config")[:3]))
    loads = []
    for _ in range(3):  # each on a freshly started server: cold again
        with OpticalMemory(path) as mem, serving(mem) as base:
            loads.append(browser_load(f"{base}/scope?user={USER}", f"{base}/static/style.css"))
    load = None if loads[0] is None else [statistics.median(x) for x in zip(*loads)]
    return {"turns": messages, "build_s": build_s, "stats": stats, "rows": rows,
            "browser_s": load, "html_kib": len(html) / 1024, "thumbs": len(thumbs),
            "load": (load_before, os.getloadavg()[0])}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "inspector.md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.turns, Path(tmp))
    st = r["stats"]
    tiers = ", ".join(f"{k} {v}" for k, v in st.tiers.items())
    out = [
        "# Memory inspector: first view of a big scope",
        "",
        f"One scope of {r['turns']:,} stored turns (synthetic agent session, seed 7: "
        f"{st.text_tokens:,} o200k_base text tokens) on {st.pages} pages ({tiers}; "
        "deepseek-ocr:base layout), fresh SQLite memory built in adds of 500 in "
        f"{r['build_s']:.0f} s (rendering and aging included). The inspector served by "
        "uvicorn on loopback, timed over HTTP with urllib: the first request to a freshly "
        "started server (cold; with the CPU seconds the process spent on it, which "
        "waiting for a shared CPU does not inflate) and the median of 5 repeats (warm). "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, load "
        f"average {r['load'][0]:.1f} → {r['load'][1]:.1f} while it ran.",
        "",
        "| view | cold s | cold CPU s | warm s (median of 5) |",
        "|---|---:|---:|---:|",
    ]
    for name, cold, cpu, warm in r["rows"]:
        out.append(f"| {name} | {cold:.3f} | {cpu:.3f} | "
                   f"{'-' if warm is None else f'{warm:.3f}'} |")
    b = r["browser_s"]
    out += [
        "",
        f"Timeline HTML: {r['html_kib']:.0f} KiB, {r['thumbs']} page thumbnails "
        "(lazy-loaded: only those on screen are fetched). "
        + (f"In headless chromium (Playwright, Debian's build), median of 3 loads each on "
           f"a freshly started server (the browser, once started, first opened the server's "
           f"stylesheet, so its own start-up is left out): HTML received {b[0]:.2f} s, first contentful paint "
           f"**{b[1]:.2f} s**, DOMContentLoaded {b[2]:.2f} s, `load` event {b[3]:.2f} s "
           "after navigation start."
           if b is not None else "Chromium not installed: no browser timing."),
        "",
        f"Goal: the first view of a {r['turns']:,}-turn scope under {GOAL_S:g} s (the "
        "timeline's HTML over HTTP, cold"
        + (", and its first contentful paint and `load` event in chromium"
           if b is not None else "") + "): "
        + ("**met**." if all(c < GOAL_S for n, c, _, _ in r["rows"] if n == "timeline (HTML)")
           and (b is None or max(b[1], b[3]) < GOAL_S) else "**not met**."),
    ]
    report = "\n".join(out) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)  # benchmark script output (not library code)
    return report


if __name__ == "__main__":
    main()
