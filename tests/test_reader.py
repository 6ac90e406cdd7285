"""The native reader: character set, line finding, the shipped weights at
every tier, the ``native`` decoder through the registry and the memory, and a
training smoke run (when torch is installed)."""
from __future__ import annotations

import importlib.util
import io
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from optical_memory.age.renditions import resample_page
from optical_memory.config import default_render_config
from optical_memory.decode import available_decoders, get_decoder, precision
from optical_memory.reader.charset import CHARSET, UNKNOWN, Codec, is_trainable
from optical_memory.reader.data import license_text
from optical_memory.reader.infer import NumpyReader, default_weights
from optical_memory.reader.lines import crop_lines, find_lines, layout_boxes
from optical_memory.render import NEWLINE_MARKER, Renderer
from optical_memory.types import Page

PROSE = (
    "The licenses for most software are designed to take away your freedom to share and "
    "change it. By contrast, the GNU General Public License is intended to guarantee your "
    "freedom to share and change free software--to make sure the software is free for all "
    "its users.\nThis General Public License applies to most of the Free Software "
    "Foundation's software and to any other program whose authors commit to using it. "
    "(Some other Free Software Foundation software is covered by the GNU Lesser General "
    "Public License instead.) You can apply it to your programs, too.\n"
)
#: Read-back floors of the shipped weights on a held-out page (licence prose,
#: the memory's default layout); measured well above these (benchmarks/reader.py).
FLOORS = {1.0: 0.985, 0.625: 0.975, 0.5: 0.96}


def _png_array(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


@pytest.fixture(scope="module")
def page() -> Page:
    """One held-out page at the memory's default layout (1024², 11 px, markers)."""
    text = license_text()[2000:9000] or PROSE * 12
    cfg = default_render_config("deepseek-ocr:base")
    return Renderer(cfg).render_text(text)[0]


def _tier(page: Page, scale: float) -> Page:
    if scale == 1.0:
        return page
    side = round(page.width * scale)
    return resample_page(page, (side, side))


# -- character set ------------------------------------------------------------


def test_charset_covers_scripts_and_marker():
    assert NEWLINE_MARKER in CHARSET
    for ch in "aZ09~éß€ŁœΩωЖж–“”•→≤":
        assert ch in CHARSET, ch
    assert len(set(CHARSET)) == len(CHARSET)
    assert "中" not in CHARSET and UNKNOWN not in CHARSET


def test_codec_round_trip_space_runs_and_unknowns():
    codec = Codec()
    text = "def f(x):»        return x  # Ωμέγα, Жизнь"
    ids = codec.encode(text)
    assert codec.decode(ids) == text
    assert len(ids) < len(text)  # the run of 8 spaces is one class
    out = codec.decode(codec.encode("a 中文 b"))
    assert out == f"a {UNKNOWN}{UNKNOWN} b"
    assert codec.encode("x\u00a0y") == codec.encode("x y")
    assert codec.ctc_collapse([0, 5, 5, 0, 5, 0, 0, 7]) == [5, 5, 7]


def test_trainable_text_rejects_control_and_combining():
    assert is_trainable("plain text » ok")
    assert not is_trainable("e\u0301")
    assert not is_trainable("a\x07b")


# -- lines --------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_find_lines_on_bare_png(page: Page, scale: float):
    tier = _tier(page, scale)
    gray = _png_array(tier.to_png())  # a bare PNG: no layout known
    found = find_lines(gray)
    known = layout_boxes(page.meta, (tier.width, tier.height))
    assert known is not None
    assert len(found) == page.meta["lines"] == len(known)
    tops = np.array([b.top for b in found]) - np.array([b.top for b in known])
    assert np.abs(tops).max() < 0.1 * known[0].pitch
    crops = crop_lines(gray, found)
    assert all(c is not None and c.shape[0] == 16 for c in crops)


def test_find_lines_blank_and_single_line():
    assert find_lines(np.full((200, 300), 255, np.uint8)) == []
    img = Image.new("L", (400, 60), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(img).text((10, 20), "one line only", fill=0)
    boxes = find_lines(np.asarray(img))
    assert len(boxes) == 1


# -- weights and decoder ------------------------------------------------------


def test_weights_ship_in_package_and_load_offline(monkeypatch: pytest.MonkeyPatch):
    path = default_weights()
    assert path.is_file()
    size = sum(p.stat().st_size for p in path.parent.iterdir())
    assert size < 20 * 1024 * 1024

    def no_network(*args, **kwargs):
        raise AssertionError("the reader must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    reader = NumpyReader()
    assert reader.recipe["charset"] == CHARSET
    assert reader.recipe["training"]["steps"] > 0
    assert reader.parameters < 5_000_000


def test_inference_does_not_import_torch():
    code = ("import sys, numpy as np\n"
            "from optical_memory.decode import get_decoder\n"
            "d = get_decoder('native')\n"
            "d.decode(np.full((64, 64), 255, np.uint8))\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_has_native():
    assert available_decoders()["native"] is True
    assert get_decoder("native").name == "native"


@pytest.mark.parametrize("scale", sorted(FLOORS, reverse=True))
def test_each_tier_reads_back_above_floor(page: Page, scale: float):
    decoder = get_decoder("native")
    tier = _tier(page, scale)
    result = decoder.decode(tier)  # a Page: lines from its layout
    assert result.meta["line_source"] == "layout"
    p = precision(page.text, result.text, marker=NEWLINE_MARKER)
    assert p >= FLOORS[scale], (scale, p)
    conf = result.meta["line_confidence"]
    assert len(conf) == result.meta["lines"] and all(0 < c <= 1 for c in conf if c)
    bare = decoder.decode(tier.to_png())  # bare PNG: lines from the ink profile
    assert bare.meta["line_source"] == "ink"
    assert precision(page.text, bare.text, marker=NEWLINE_MARKER) >= FLOORS[scale] - 0.01


def test_unknown_class_reads_as_replacement_mark_and_is_counted():
    reader = NumpyReader()
    codec = reader.codec
    ids = [*codec.encode("ab"), codec.unknown_id, *codec.encode("c")]
    logits = np.full((2 * len(ids), codec.num_classes), -5.0, np.float32)
    for k, cid in enumerate(ids):  # each class on one frame, a blank after it
        logits[2 * k, cid] = 5.0
        logits[2 * k + 1, 0] = 5.0
    read = reader._decode(logits)
    assert read.text == f"ab{UNKNOWN}c" and read.unknown == 1


def test_unknown_glyphs_are_counted_not_guessed():
    cfg = default_render_config("deepseek-ocr:base")
    page = Renderer(cfg).render_text("Hello 世界 world, and 東京 again.")[0]
    result = get_decoder("native").decode(page)
    assert result.meta["unknown"] >= 2
    assert UNKNOWN in result.text
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in result.text)
    assert "Hello" in result.text and "world" in result.text
    off = get_decoder("native", unknown=False).decode(page)
    # the model alone outputs its unknown class over some ideographs and
    # guesses letters over others; the ink check marks at least as many
    assert off.meta["unknown"] <= result.meta["unknown"]
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in off.text)


def test_mark_unknown_width_and_doubt_rules():
    from optical_memory.reader.unknown import advances, em_frames, mark_unknown

    codec = Codec()
    adv = advances(codec.charset, codec.max_space_run)
    em = em_frames(16, 1.1, 3)
    uid = codec.unknown_id
    sp = frozenset({codec.encode(" ")[0]})
    t, h, space = codec.encode("t")[0], codec.encode("h")[0], codec.encode(" ")[0]
    inked = np.ones(40, bool)
    inked[20:22] = False
    # "h" at 0, " " at 20, "t" at 22 whose span (22..40) is far wider than a "t"
    ids = np.array([h, space, t])
    frames = np.array([0, 20, 22])
    prob = np.array([0.99, 0.99, 1.0])
    low = np.zeros(3)
    out = mark_unknown(ids, frames, prob, low, inked, em, adv, uid, sp)
    n_h = round(20 / em)  # "h"'s span is wide too: 20 inked frames
    assert list(out) == [uid] * n_h + [space] + [uid] * round(18 / em)
    # spans that fit their characters: nothing marked
    fit = np.array([0, 2, 4])
    assert list(mark_unknown(ids, fit, prob, low, inked[:6], em, adv, uid, sp)) == list(ids)
    # doubt: low probability while the unknown class is likely
    doubt = mark_unknown(ids, fit, np.array([0.99, 0.99, 0.4]), np.array([0, 0, 0.2]),
                         inked[:6], em, adv, uid, sp)
    assert list(doubt) == [h, space, uid]


def test_memory_reads_its_pages_with_native(tmp_path):
    from optical_memory import OpticalMemory

    with OpticalMemory(tmp_path / "m.db", decoder="native") as mem:
        mem.add(PROSE * 40, kind="document")
        pages = mem.list_pages()
        assert pages
        for tier in ("base", "tiny"):
            d = mem.decode(pages[0].id, tier=tier)
            assert d.decoder == "native"
            assert d.precision is not None and d.precision >= FLOORS[0.5], (tier, d.precision)


# -- training -----------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_training_smoke_run_resumes_and_exports(tmp_path):
    import torch

    from optical_memory.reader.model import LineReader
    from optical_memory.reader.train import batch_arrays, export, make_batch, train

    arch = {"c1": 4, "c2": 8, "c3": 8, "hidden": 16}
    state = train(tmp_path, steps=2, batch=4, threads=1, checkpoint_every=1, eval_every=100,
                  arch=arch, heldout_per_tier=2, log=lambda m: None)
    assert state["step"] == 2 and (tmp_path / "checkpoint.pt").is_file()
    state = train(tmp_path, steps=3, batch=4, threads=1, resume=True, eval_every=100,
                  arch=arch, heldout_per_tier=2, log=lambda m: None)
    assert state["step"] == 3
    dest = export(tmp_path, tmp_path / "weights")
    reader = NumpyReader(dest / "reader.json")
    codec = Codec()
    samples, _ = make_batch(1, 0, codec, 3)
    x, _ = batch_arrays(samples)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    model = LineReader(codec.num_classes, saved["state"]["arch"])
    model.load_state_dict(saved["model"])
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy().transpose(0, 2, 1)
    np.testing.assert_allclose(reader.logits(x[:, 0]), ref, atol=1e-3, rtol=1e-3)


def test_training_init_from_another_run_changes_pool_width(tmp_path):
    import torch

    from optical_memory.reader.train import train

    arch = {"c1": 4, "c2": 8, "c3": 8, "hidden": 16}
    train(tmp_path / "a", steps=2, batch=4, threads=1, eval_every=100, arch=arch,
          heldout_per_tier=2, log=lambda m: None)
    src = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    state = train(tmp_path / "b", steps=0, batch=4, threads=1, eval_every=100,
                  arch={**arch, "pool_w": 2}, init=tmp_path / "a" / "checkpoint.pt",
                  heldout_per_tier=2, log=lambda m: None)
    assert state["step"] == 0 and state["arch"]["pool_w"] == 2
    assert state["init"]["steps"] == 2 and state["init"]["arch"]["pool_w"] == 3
    dst = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    for k, v in src["model"].items():  # the weights carried over unchanged
        assert torch.equal(v, dst["model"][k]), k
    with pytest.raises(RuntimeError):  # shapes that differ are refused, not reshaped
        train(tmp_path / "c", steps=0, batch=4, threads=1, arch={**arch, "hidden": 8},
              init=tmp_path / "a" / "checkpoint.pt", heldout_per_tier=2, log=lambda m: None)


def test_stretch_is_tuned_on_validation_text_not_held_out():
    from optical_memory.reader import tune

    assert tune.VALIDATION_CHAT_SEED < 100  # held-out chats are seeds >= 100
    assert tune.best_stretch({1.0: {1024: 0.98, 512: 0.90}, 1.1: {1024: 0.99, 512: 0.95},
                              1.2: {1024: 0.99, 512: 0.95}}) == 1.1  # tie: nearest to 1
    held = license_text()[:2000]
    pages = tune.validation_pages(1)
    assert len(pages) == 3 and all(held[:200] not in p.text for p in pages)


def test_look_alike_prior_rule_and_counts():
    from optical_memory.reader.context import ContextPrior, char_class, count_contexts

    assert [char_class(c) for c in ("", " ", NEWLINE_MARKER, "a", "b", "Q", "7", "#")] == \
        ["S", "S", "S", "v", "c", "U", "D", "P"]
    counts = count_contexts(["In It If Is hello all call " * 10, "x0y 1O2 " * 30])
    prior = ContextPrior(counts, margin=3.0, weight=1.0)
    assert prior.log_ratio("l", " ", "n") < 0 < prior.log_ratio("I", " ", "n")
    # a close call at a word start before a consonant becomes the capital ...
    assert prior.resolve(["l", "n"], [0.5, None]) == ["I", "n"]
    # ... a confident glyph stays as read, and so does a context never seen
    assert prior.resolve(["l", "n"], [3.5, None]) == ["l", "n"]
    assert prior.resolve(["l"], [0.5]) == ["l"]
    assert prior.resolve(["h", "e", "I", "l", "o"], [None, None, 0.5, 0.5, None])[2] == "l"


def test_look_alike_prior_ships_with_the_weights():
    """The shipped prior is the tuning's choice for these weights (margin 0:
    off, when no margin beat none on the tuning pages)."""
    import json

    from optical_memory.reader import context

    prior = context.load_prior()
    assert prior is not None and prior.margin >= 0 and prior.weight >= 0
    scores = json.loads(context.default_path().read_text(encoding="utf-8"))["scores"]
    assert scores[f"{prior.margin:g}/{prior.weight:g}"] == max(scores.values())
    reader = NumpyReader()
    assert reader.context is not None and reader.context.margin == prior.margin
    # before punctuation the language decides, not the neighbours: left as read
    assert prior.resolve(["l", "'"], [0.1, None]) == ["l", "'"]
    # the counts come from the training text, never the validation slices
    from optical_memory.reader.data import pydoc_text, stdlib_text

    prose, code_a, code_b, _chat = context.training_texts()
    code, start = stdlib_text(), len(stdlib_text()) // 3  # tune.validation_pages' slices
    assert pydoc_text()[-60_000:] not in prose and len(prose) == len(pydoc_text()) - 60_000
    assert code_a == code[:start] and code_b == code[start + 40_000:]


# -- engines ------------------------------------------------------------------

needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                               reason="onnxruntime not installed")


@needs_ort
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_int8_onnx_engine_reads_as_the_numpy_engine(page: Page, scale: float):
    tier = _tier(page, scale)
    fast = get_decoder("native", engine="onnx").decode(tier)
    exact = get_decoder("native", engine="numpy").decode(tier)
    assert fast.meta["engine"] == "onnx" and exact.meta["engine"] == "numpy"
    p_fast = precision(page.text, fast.text, marker=NEWLINE_MARKER)
    p_exact = precision(page.text, exact.text, marker=NEWLINE_MARKER)
    assert abs(p_fast - p_exact) <= 0.004, (p_fast, p_exact)
    assert p_fast >= FLOORS[scale]


def _weights_copy(tmp_path):
    import shutil

    dest = tmp_path / "weights"
    shutil.copytree(default_weights().parent, dest)
    return dest


@needs_ort
def test_engine_auto_falls_back_to_numpy(tmp_path, monkeypatch: pytest.MonkeyPatch):
    import json

    from optical_memory.errors import ConfigError

    dest = _weights_copy(tmp_path)
    assert NumpyReader(dest / "reader.json").engine == "onnx"
    recipe = json.loads((dest / "reader.json").read_text(encoding="utf-8"))
    recipe["onnx"]["weights_sha256"] = "0" * 64  # an ONNX file made from other weights
    (dest / "reader.json").write_text(json.dumps(recipe), encoding="utf-8")
    assert NumpyReader(dest / "reader.json").engine == "numpy"
    with pytest.raises(ConfigError, match="other weights"):
        NumpyReader(dest / "reader.json", engine="onnx")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert NumpyReader(engine="auto").engine == "numpy"
    with pytest.raises(ConfigError, match="onnxruntime is not installed"):
        NumpyReader(engine="onnx")
    with pytest.raises(ConfigError):
        NumpyReader(engine="gpu")


@needs_ort
@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx not installed")
def test_quantize_exports_an_int8_model_close_to_float(tmp_path):
    from optical_memory.reader.quantize import calibration_batches, export_onnx

    dest = _weights_copy(tmp_path)
    (dest / "reader.int8.onnx").unlink()
    out = export_onnx(dest, batches=1, seed=7)
    assert out.is_file()
    reader = NumpyReader(dest / "reader.json", engine="onnx")
    x = calibration_batches(reader, 1, seed=99)[0]
    agree = (reader.logits(x).argmax(-1) == reader.logits_numpy(x).argmax(-1)).mean()
    assert agree > 0.97, agree


def test_decode_many_reads_native_pages_in_threads(page: Page):
    from optical_memory.decode import decode_many

    tiers = [_tier(page, s) for s in (1.0, 0.625, 0.5)]
    one = [get_decoder("native").decode(t).text for t in tiers]
    many = decode_many(tiers, decoder="native", workers=2)
    assert [r.text for r in many] == one


def test_memory_with_native_hands_pages_of_other_scripts_to_a_fallback(tmp_path):
    """decoder="native" reads Latin pages itself and gives a Chinese page to
    tesseract (or rapidocr); a decoder named for the call is used as named."""
    from optical_memory import OpticalMemory
    from optical_memory.decode.readback import native_fallback

    assert native_fallback({"latin": 0.8, "greek": 0.2}) is None
    fallback = native_fallback({"han": 1.0})
    from optical_memory.decode.readback import _installed

    assert native_fallback({"latin": 0.5, "cyrillic": 0.5}) is None  # native reads Russian
    assert native_fallback({"cyrillic": 0.7, "hebrew": 0.3}) == (
        "tesseract" if "tesseract" in _installed() else None)  # rapidocr reads no Hebrew
    zh = "车库的钥匙放在厨房的蓝色盒子里。" * 60
    with OpticalMemory(tmp_path / "m.db", decoder="native") as mem:
        en = mem.add_document(license_text()[:3000], user_id="u").page_ids[0]
        cn = mem.add_document(zh, user_id="u").page_ids[0]
        assert mem.decode(en, user_id="u").decoder == "native"
        got = mem.decode(cn, user_id="u")
        assert got.decoder == (fallback or "native")
        if fallback is not None:
            assert any("\u4e00" <= ch <= "\u9fff" for ch in got.text)
        assert mem.decode(cn, decoder="native", user_id="u").decoder == "native"


def test_cli_decode_notes_when_an_image_is_not_one_of_ours(tmp_path):
    """`optical-memory decode` reads with native by default; on an image this
    package did not draw (another face and size) it says so and names tesseract,
    and on one of its own pages it does not."""
    import json

    from click.testing import CliRunner
    from PIL import ImageDraw, ImageFont

    from optical_memory.cli import main

    im = Image.new("L", (900, 120), 255)
    draw = ImageDraw.Draw(im)
    try:
        font = ImageFont.truetype("DejaVuSerif.ttf", 18)
    except OSError:
        pytest.skip("DejaVu Serif not installed")
    draw.text((10, 10), "The lurking worker keeps an eye on the queue of jobs.", font=font,
              fill=0)
    draw.text((10, 50), "Invoices are paid within thirty days of the date shown.", font=font,
              fill=0)
    foreign = tmp_path / "foreign.png"
    im.save(foreign)
    res = CliRunner().invoke(main, ["decode", str(foreign), "--json"])
    assert res.exit_code == 0, res.output
    assert "--decoder tesseract reads it better" in res.stderr
    assert json.loads(res.stdout)["pages"][0]["confidence"] < 0.92
    ours = tmp_path / "ours.png"
    ours.write_bytes(Renderer(default_render_config("deepseek-ocr:base")).render_text(
        PROSE * 4)[0].to_png())
    res = CliRunner().invoke(main, ["decode", str(ours)])
    assert res.exit_code == 0 and "reads it better" not in res.stderr


def test_training_text_sources_are_found_offline():
    """The Russian and word-list training text comes from what the machine
    has: tesseract's word lists (its own tools read them) and the Russian man
    pages, troff markup stripped."""
    import random

    from optical_memory.reader import data

    assert data._troff_line('.SH "SEE ALSO"') == "SEE ALSO"
    assert data._troff_line("\\fBls\\fR \\- list \\(em files") == "ls - list — files"
    assert data._troff_line('.\\" a comment') == "" and data._troff_line(".TH LS 1") == ""
    man = data.russian_man_text()
    assert "\\" not in man and "\n.TH" not in man
    words = data.tesseract_words("eng")
    if not words:
        pytest.skip("tesseract's eng pack or its dawg2wordlist tool is missing")
    assert len(words) > 10_000 and all(is_trainable(w) for w in words[:2000])
    text = data.word_sentences(random.Random(0), 400, words, title=0.4)
    assert len(text) >= 400 and text[0].isupper()
    ru = data.russian_words()
    assert not ru or (len(ru) > 10_000 and all(w == w.lower() for w in ru[:500]))
    # the held-out Russian (gettext catalogues) is another source than the training text
    assert "rus word list" in " ".join(data.RECIPE["train_text"])
    assert not any("locale" in t for t in data.RECIPE["train_text"])
