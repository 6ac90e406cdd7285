"""Renderer: layout, span round-trips, fallback, determinism, goldens."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
import string
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optical_memory.errors import ConfigError, EmptyInputError, InputError
from optical_memory.render import (
    NEWLINE_MARKER,
    RenderConfig,
    Renderer,
    RenderItem,
    Turn,
    render_text,
)
from optical_memory.render.fonts import BOLD, MONO, REGULAR
from optical_memory.render.markdown import document_runs

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("OPTICAL_MEMORY_REGEN_GOLDEN") == "1"

SMALL = RenderConfig(width=256, height=256, system_fallback=False)

PROSE = (
    "Optical memory keeps old context as pages. A vision-language model reads a page "
    "with far fewer tokens than the text it holds, and every page maps back to its "
    "source text, character by character.\n\nNew paragraphs start on a new line; "
    "long words like https://example.com/a/very/long/path/that/cannot/fit/on/one/line/at/all "
    "are hard-wrapped."
)
CHAT = [
    Turn("t1", "user", "Where did we put the deploy key?", name="alice", time="12:03"),
    Turn("t2", "assistant", "In the vault, under ops/deploy.\n  - rotated on 2026-11-02\n"
         "  - owner: bob"),
]
DOC = """# Release notes

Version **0.1** adds:

- page rendering
- span maps

```python
def area(w, h):
    return w * h
```

| mode | px |
|------|----|
| tiny | 512 |
"""


def _roundtrip(pages, items):
    """Concatenated span slices reproduce every item's text exactly."""
    got: dict[str, list[str]] = {it.item_id: [] for it in items}
    texts = {it.item_id: it.text for it in items}
    for p in pages:
        for sp in p.spans:
            got[sp.item_id].append(texts[sp.item_id][sp.start:sp.end])
    for item_id, text in texts.items():
        assert "".join(got[item_id]) == text, item_id


def _check_page_slices(pages, items, marker: bool):
    """A span's Page.text slice is its source slice up to the whitespace policy."""
    texts = {it.item_id: it.text for it in items}
    for p in pages:
        for sp in p.spans:
            src = texts[sp.item_id][sp.start:sp.end]
            if marker:
                src = re.sub(r"\r\n|\r|\n", NEWLINE_MARKER, src)
            vis = p.text[sp.page_start:sp.page_end]
            assert "".join(vis.split()) == "".join(src.split())
        for line in p.text.split("\n"):
            assert line == line.rstrip(), f"line ends in whitespace: {line!r}"


def _mixed_items():
    rng = random.Random(7)
    words = [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 12)))
        for _ in range(3000)
    ]
    prose = " ".join(words[:1500]) + "\n\n  indented\ttab\r\nwindows line\rold mac\n"
    return [
        RenderItem("a", "text", prose),
        RenderItem.from_turn(Turn("t1", "user", "short question?", name="al")),
        RenderItem.from_turn(Turn("t2", "assistant", " ".join(words[1500:]))),
        RenderItem("d", "document", DOC * 3),
        RenderItem.from_turn(Turn("t3", "user", "")),
        RenderItem("z", "text", "x" * 700 + "   \n\n\t  "),
    ]


@pytest.mark.parametrize("mode", ["break", "marker"])
def test_spans_roundtrip_mixed_items(mode):
    items = _mixed_items()
    cfg = RenderConfig(width=256, height=256, newline_mode=mode, system_fallback=False)
    pages = Renderer(cfg).layout(items)
    assert len(pages) > 3
    _roundtrip(pages, items)
    _check_page_slices(pages, items, marker=mode == "marker")
    assert sum(p.chars for p in pages) == sum(len(it.text) for it in items)
    # an item continues onto the next page: some item has spans on two pages
    owners = [sp.item_id for p in pages for sp in p.spans]
    assert len(owners) > len(items)


def test_render_items_pages_carry_spans_text_and_meta():
    items = _mixed_items()[:3]
    pages = Renderer(SMALL).render_items(items)
    _roundtrip(pages, items)
    for i, p in enumerate(pages):
        assert p.index == i
        assert p.pixels.shape == (256, 256) and p.pixels.dtype == np.uint8
        assert p.font_size == 10.0
        for key in ("width", "height", "font_size", "line_spacing", "newline_mode",
                    "lines", "chars"):
            assert key in p.meta
        assert p.meta["lines"] == len(p.text.split("\n")) <= SMALL.lines_per_page
        assert p.pixels.min() < 128  # something dark was drawn


def test_turn_label_and_content():
    wide = RenderConfig(width=512, height=256, system_fallback=False)
    pages = Renderer(wide).render_turns(CHAT)
    text = pages[0].text
    assert text.startswith("[user\u00b7alice 12:03] Where did we put")
    assert "\n[assistant] In the vault" in text
    sp = pages[0].spans[0]
    assert text[sp.page_start:sp.page_end] == CHAT[0].content
    assert Turn("x", "tool", "r", time="09:00").label == "[tool 09:00]"
    nolabel = Renderer(RenderConfig(512, 256, label_style="none")).render_turns(CHAT)
    assert nolabel[0].text.startswith("Where did we put")


def test_cjk_breaks_per_character():
    text = "光学记忆把旧的上下文渲染成页面图像视觉语言模型用更少的词元读取它们" * 6
    cfg = RenderConfig(width=128, height=512)
    pages = Renderer(cfg).layout(text)
    lines = pages[0].text.split("\n")
    assert len(lines) > 3
    assert all(" " not in ln for ln in lines)
    assert "".join(lines) == text  # broken between characters, none lost
    # lines are filled: every line but the last is within one glyph of full width
    assert len({len(ln) for ln in lines[:-1]}) == 1


def test_long_url_hard_wrapped_without_loss():
    rng = random.Random(1)
    url = "https://example.com/" + "".join(
        rng.choice(string.ascii_letters + string.digits + "/+=_-") for _ in range(480)
    )
    assert len(url) == 500
    text = "see " + url + " end"
    for cfg in (SMALL, RenderConfig(width=128, height=64, system_fallback=False)):
        pages = Renderer(cfg).layout(text)
        joined = "".join(p.text.replace("\n", "") for p in pages)
        assert joined == "see " + url + " end"
        _roundtrip(pages, [RenderItem("text", "text", text)])
    # the URL starts on the first line (it fills the rest of that line)
    first = Renderer(SMALL).layout(text)[0].text.split("\n")[0]
    assert first.startswith("see https://")


def test_indentation_and_tabs_preserved():
    text = "def f(x):\n    if x:\n\treturn 1\n  \tpass\n"
    page = Renderer(SMALL).render_text(text)[0]
    assert page.text.split("\n") == ["def f(x):", "    if x:", "    return 1", "    pass"]
    _roundtrip([page], [RenderItem("text", "text", text)])


def test_wrap_point_whitespace_kept_in_span_not_drawn():
    text = "alpha " * 200
    pages = Renderer(SMALL).layout(text)
    assert all(ln.endswith("alpha") for p in pages for ln in p.text.split("\n"))
    _roundtrip(pages, [RenderItem("text", "text", text)])


@pytest.mark.parametrize("bad", ["", "   ", "\n\t \n"])
def test_empty_input_raises(bad):
    with pytest.raises(EmptyInputError):
        render_text(bad, SMALL)
    with pytest.raises(EmptyInputError):
        Renderer(SMALL).render_turns([Turn("a", "user", bad)])


def test_no_items_and_bad_items_raise():
    with pytest.raises(EmptyInputError):
        Renderer(SMALL).render_items([])
    with pytest.raises(InputError, match="duplicate item_id 'x'"):
        Renderer(SMALL).render_items([RenderItem("x", "text", "a"), RenderItem("x", "text", "b")])
    with pytest.raises(InputError, match="'pdf'"):
        RenderItem("x", "pdf", "a")


def test_missing_glyph_counted_and_drawn_as_box():
    text = "ab\ue000\ue000cd"
    r = Renderer(SMALL)
    page = r.render_text(text)[0]
    assert page.missing_glyphs == {"\ue000": 2}
    assert page.text == text  # the character stays in the text, drawn as a box
    plain = r.render_text("abcd")[0]
    # boxes add ink compared with the same text without them
    assert (page.pixels < 128).sum() > (plain.pixels < 128).sum()


@pytest.mark.parametrize("control", ["\f", "\v", "\x07", "\x1b", "\x00", "\x7f", "\x85"])
def test_control_characters_are_drawn_as_whitespace(control):
    r = Renderer(SMALL)
    text = f"page one{control}page two"
    page = r.render_text(text)[0]
    spaced = r.render_text("page one page two")[0]
    assert page.missing_glyphs == {}
    assert page.text == "page one page two"  # drawn (and scored) as a space
    assert np.array_equal(page.pixels, spaced.pixels)
    (span,) = page.spans
    assert text[span.start:span.end] == text  # the source keeps the control character


def test_form_feed_runs_and_line_ends_follow_the_whitespace_policy():
    r = Renderer(SMALL)
    page = r.render_text("a\f\f\fb\n\fc\f\x0b")[0]
    assert page.text == "a   b\n c"  # a run is as wide as its characters; trailing dropped
    assert page.missing_glyphs == {}
    assert "\f" not in page.text and (page.pixels < 128).any()
    only = r.render_text("\x07\x07 x")[0]
    assert only.text == "   x" and only.missing_glyphs == {}


def test_page_meta_records_scripts_and_unsupported_ones(caplog):
    r = Renderer(RenderConfig(width=256, height=128))
    ru = r.render_text("Привет, мир! hello")[0]
    assert list(ru.meta["scripts"]) == ["cyrillic", "latin"]
    assert ru.meta["scripts"]["cyrillic"] == pytest.approx(9 / 14, abs=1e-4)
    assert "unsupported_scripts" not in ru.meta
    assert Renderer(SMALL).render_text("12 + 3")[0].meta["scripts"] == {}
    with caplog.at_level("WARNING", logger="optical_memory.render"):
        he = r.render_text("שלום עולם and مرحبا")[0]
    assert set(he.meta["unsupported_scripts"]) == {"hebrew", "arabic"}
    assert "right to left or needs glyph shaping" in caplog.text
    assert "arabic, hebrew" in caplog.text


def test_system_fallback_for_cjk_when_available():
    r = Renderer(RenderConfig(width=256, height=64))
    page = r.render_text("中文 text")[0]
    fs = r.fonts
    if fs.resolve(REGULAR, "中").face < 0:
        pytest.skip("no system CJK font installed")
    assert page.missing_glyphs == {}
    bundled_only = Renderer(RenderConfig(width=256, height=64, system_fallback=False))
    assert bundled_only.render_text("中文 text")[0].missing_glyphs == {"中": 1, "文": 1}


def test_deterministic_png():
    a = Renderer(SMALL).render_text(PROSE)[0].to_png()
    b = Renderer(RenderConfig(width=256, height=256, system_fallback=False)).render_text(PROSE)[0]
    assert a == b.to_png()


def test_hinting_changes_pixels_and_advances_deterministically():
    slight = RenderConfig(width=256, height=256, system_fallback=False, font_size=11,
                          hinting="slight")
    normal = RenderConfig(width=256, height=256, system_fallback=False, font_size=11)
    a, b = Renderer(slight).render_text(PROSE)[0], Renderer(slight).render_text(PROSE)[0]
    assert a.to_png() == b.to_png() and a.meta["hinting"] == "slight"
    n = Renderer(normal).render_text(PROSE)[0]
    assert n.to_png() != a.to_png()
    # normal hinting rounds advances to whole pixels; slight keeps fractions
    adv = [Renderer(c).fonts.char_advance(REGULAR, ch) for c in (normal, slight) for ch in "aemw"]
    assert all(x == int(x) for x in adv[:4]) and any(x != int(x) for x in adv[4:])
    with pytest.raises(ConfigError, match="hinting"):
        RenderConfig(hinting="medium")


def test_page_count_grows_with_text():
    r = Renderer(SMALL)
    counts = [len(r.layout("word " * n)) for n in (50, 500, 5000)]
    assert counts[0] == 1 and counts[0] < counts[1] < counts[2]


def test_newline_marker_vs_break():
    text = "\n".join(f"line {i}: x = {i}" for i in range(200))
    item = [RenderItem("text", "text", text)]
    brk = Renderer(RenderConfig(256, 256, newline_mode="break")).layout(text)
    mrk = Renderer(RenderConfig(256, 256, newline_mode="marker")).layout(text)
    assert NEWLINE_MARKER not in brk[0].text
    assert mrk[0].text.count(NEWLINE_MARKER) > 10
    assert len(mrk) < len(brk)  # the marker packs short lines densely
    _roundtrip(brk, item)
    _roundtrip(mrk, item)
    _check_page_slices(mrk, item, marker=True)
    crlf = "a\r\nb\rc\n"
    mpages = Renderer(RenderConfig(256, 256, newline_mode="marker")).layout(crlf)
    assert mpages[0].text == f"a{NEWLINE_MARKER}b{NEWLINE_MARKER}c{NEWLINE_MARKER}"
    _roundtrip(mpages, [RenderItem("text", "text", crlf)])


def test_document_styles_per_line():
    runs = document_runs(DOC)
    assert runs[0][1] == 0 and runs[-1][2] == len(DOC)
    assert all(a[2] == b[1] for a, b in itertools.pairwise(runs))
    styled = {DOC[s:e].strip().splitlines()[0]: st for st, s, e in runs if DOC[s:e].strip()}
    assert styled["# Release notes"] == BOLD
    assert styled["```python"] == MONO
    assert styled["| mode | px |"] == MONO
    page = Renderer(SMALL).layout([RenderItem("d", "document", DOC)])[0]
    by_line = {"".join(t for _, t in ln): {s for s, _ in ln} for ln in page.lines}
    assert by_line["    return w * h"] == {MONO}
    assert by_line["# Release notes"] == {BOLD}
    assert by_line["- page rendering"] == {REGULAR}
    assert page.text == DOC.rstrip("\n")


def test_trailing_blank_page_not_emitted():
    cfg = RenderConfig(width=256, height=64, system_fallback=False)
    assert cfg.lines_per_page == 4
    text = "a\nb\nc\nd\n\n\n\n\n\n"
    pages = Renderer(cfg).layout(text)
    assert len(pages) == 1
    _roundtrip(pages, [RenderItem("text", "text", text)])


def test_custom_font_paths():
    from optical_memory.render import bundled_font_path

    mono = str(bundled_font_path("mono"))
    cfg = RenderConfig(width=256, height=64, font_path=mono, mono_font_path=mono,
                       system_fallback=False)
    r = Renderer(cfg)
    pages = r.render_turns([Turn("a", "user", "iiii")])
    assert pages[0].text == "[user] iiii"
    # monospace: "i" is as wide as "m"
    assert r.fonts.width(REGULAR, "i") == r.fonts.width(REGULAR, "m")
    assert r.fonts.width(BOLD, "i") == r.fonts.width(REGULAR, "i")


def test_config_validation_says_values():
    with pytest.raises(ConfigError, match=r"height 20 .* line height 24"):
        RenderConfig(width=256, height=20, font_size=20)
    with pytest.raises(ConfigError, match="'wrap'"):
        RenderConfig(newline_mode="wrap")
    with pytest.raises(ConfigError, match="font file not found"):
        Renderer(RenderConfig(font_path="/nonexistent/font.ttf"))
    assert RenderConfig().lines_per_page == 84


def _golden_pages():
    r = Renderer(SMALL)
    return {
        "prose": r.render_text(PROSE)[0],
        "chat": r.render_turns(CHAT)[0],
        "doc": r.render_document(DOC)[0],
    }


def test_golden_pages():
    manifest_path = GOLDEN / "render.json"
    pages = _golden_pages()
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        manifest = {}
        for name, page in pages.items():
            (GOLDEN / f"render_{name}.png").write_bytes(page.to_png())
            manifest[name] = {
                "pixels_sha256": hashlib.sha256(page.pixels.tobytes()).hexdigest(),
                "text": page.text,
            }
        manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    manifest = json.loads(manifest_path.read_text())
    for name, page in pages.items():
        assert page.missing_glyphs == {}
        assert page.text == manifest[name]["text"], name
        want = np.asarray(Image.open(GOLDEN / f"render_{name}.png"))
        diff = int((want != page.pixels).sum())
        assert diff == 0, f"{name}: {diff} pixels differ from tests/golden/render_{name}.png"
        assert hashlib.sha256(page.pixels.tobytes()).hexdigest() == manifest[name]["pixels_sha256"]
