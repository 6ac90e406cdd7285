"""Calibration against the user's own model (``optical-memory calibrate``),
end to end against a local OpenAI-compatible stub, and what a memory does
with the calibration file: its layout and its legibility decisions.

The stub plays a vision model that reads type of at least ``MIN_PX`` px (at
the size it is sent) and misses every third character of anything smaller.
It knows the sample pages' text because the test renders the same sample
pages the sweep does (the public ``fit`` functions) and looks each request's
image up by its pixels.
"""
from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner
from stub_openai import StubOpenAI, request_image

from optical_memory import OpticalMemory
from optical_memory.age import AgePolicy, Tier
from optical_memory.cli import main
from optical_memory.errors import ConfigError
from optical_memory.fit import (
    Calibration,
    CalibrationEntry,
    calibrate_decoder,
    first_page,
    font_path,
    resample,
    sample_texts,
    sweep_plan,
    user_calibration_path,
)
from optical_memory.fit.calibration import _packaged_path
from optical_memory.render import RenderConfig

MIN_PX = 5.5
SIZES = (9.0, 11.0, 13.0)
MODEL = "stub-vlm"
#: Ages fast: pages are "small" after 2 newer items, "tiny" after 4.
FAST = (Tier("base", 1, 1.0), Tier("small", 3, 0.625), Tier("tiny", None, 0.5))


def _key(img) -> str:
    return hashlib.sha1(np.asarray(img.convert("L")).tobytes()).hexdigest()


class FakeVLM:
    """Reads the sweep's pages: exactly when the type is ≥ MIN_PX px as
    sent, else with every third character missing."""

    def __init__(self, target: str = "deepseek-ocr:base") -> None:
        from PIL import Image

        sweep = sweep_plan(target, sizes=SIZES)
        self.pages: dict[str, tuple[float, str]] = {}
        for size in sweep.sizes:
            cfg = RenderConfig(width=sweep.master_side, height=sweep.master_side,
                               font_size=size, line_spacing=sweep.line_spacing,
                               margin=sweep.margin, newline_mode=sweep.newline_mode,
                               font_path=font_path(sweep.font), hinting=sweep.hinting)
            for src in sample_texts("latin", sweep.samples):
                page = first_page(src, cfg).page
                for side in sweep.sides:
                    px = resample(page.pixels, side)
                    self.pages[_key(Image.fromarray(px))] = (size * side / sweep.master_side,
                                                             page.text)
        self.sizes_seen: list[tuple[int, int]] = []

    def __call__(self, body: dict) -> str:
        img = request_image(body)
        self.sizes_seen.append(img.size)
        px, text = self.pages[_key(img)]
        return text if px >= MIN_PX else "".join(c for i, c in enumerate(text) if i % 3)


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    for var in ("OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def _run(*args):
    return CliRunner().invoke(main, list(args))


def test_calibrate_command_end_to_end_against_the_stub(memory_home):
    vlm = FakeVLM()
    with StubOpenAI(responder=vlm) as stub:
        res = _run("calibrate", "--decoder", "openai", "--base-url", stub.base_url,
                   "--model", MODEL, "--sizes", "9,11,13", "--json")
    assert res.exit_code == 0, res.output
    # 3 sizes × 3 tier sizes × 1 page; each tier image sent at its own size
    assert len(stub.requests) == 9
    assert sorted(vlm.sizes_seen) == sorted([(1024, 1024), (640, 640), (512, 512)] * 3)
    assert {r["body"]["model"] for r in stub.requests} == {MODEL}
    path = user_calibration_path()
    assert path.is_file() and path.parent == memory_home
    data = json.loads(res.stdout)
    assert data["path"] == str(path) and data["model"] == MODEL
    got = {(e["font_size"], e["side"]): e["mean_precision"] for e in data["entries"]}
    assert len(got) == 9
    for (size, side), prec in got.items():
        legible = size * side / 1024 >= MIN_PX
        assert (prec == 1.0) if legible else (prec < 0.9), (size, side, prec)
    # the memory now lays pages out at the densest size the model reads,
    # and its tiers carry the model's read-back at that size
    assert data["layout"]["font_size"] == 9.0
    tiers = {t["tier"]: t for t in data["tiers"]}
    assert {t["source"] for t in tiers.values()} == {"user-calibrated"}
    assert tiers["base"]["readback"] == tiers["small"]["readback"] == 1.0  # 9, 5.6 px
    assert tiers["tiny"]["readback"] < 0.9 and tiers["tiny"]["legible"] is False  # 4.5 px
    cal = Calibration.load(path)
    assert cal.meta["decoders"]["openai"]["model"] == MODEL
    assert cal.meta["decoders"]["openai"]["base_url"] == stub.base_url

    # `tiers` for that decoder now reports the user's figures, labelled as such
    res = _run("tiers", "--decoder", "openai", "--no-decode", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["tier"]: r for r in json.loads(res.stdout)}
    assert rows["small"]["calibrated"] == 1.0 and rows["small"]["legible"] is True
    assert rows["tiny"]["calibrated_source"] == "user-calibrated"
    assert MODEL in rows["tiny"]["calibrated_by"]
    table = _run("tiers", "--decoder", "openai", "--no-decode").output
    assert f"your calibration (openai: model {MODEL}" in table
    # the shipped reader keeps its own (CPU) figures, labelled as such
    table = _run("tiers", "--no-decode").output
    assert "shipped, CPU reader native" in table and "optical-memory calibrate" in table
    table = _run("tiers", "--decoder", "tesseract", "--no-decode").output
    assert "shipped, CPU reader tesseract" in table


def test_tiers_without_a_calibration_says_so():
    rows = json.loads(_run("tiers", "--decoder", "openai", "--no-decode", "--json").stdout)
    assert all(r["calibrated"] is None for r in rows)
    assert "run `optical-memory calibrate`" in rows[0]["calibrated_by"]
    out = _run("tiers", "--decoder", "openai", "--no-decode").output
    assert "CPU reader tesseract; nothing calibrated for openai" in out


def _calibrate(stub, out=None, **kw):
    return calibrate_decoder(sweep_plan("deepseek-ocr:base", sizes=SIZES), "openai",
                             options={"base_url": stub.base_url, "model": MODEL}, out=out, **kw)


def _tiers_after_six_documents(mem: OpticalMemory) -> list[str]:
    for i in range(6):
        mem.add_document(f"Document {i}: the vault code is {1000 + i}. " * 20)
    mem.compact()
    return sorted(p.tier for p in mem.list_pages())


def test_a_calibration_file_changes_layout_and_legibility(tmp_path):
    with StubOpenAI(responder=FakeVLM()) as stub:
        path = tmp_path / "mine.json"
        _calibrate(stub, out=path)
    opts = {"base_url": "http://127.0.0.1:9/v1", "model": MODEL}  # never called
    aging = AgePolicy(tiers=FAST)

    with OpticalMemory(":memory:", decoder="openai", decoder_options=opts, aging=aging) as plain:
        assert plain.calibration is None  # no file in the data folder
        assert plain.render_config.font_size == 11.0  # the shipped (tesseract) layout
        # nothing says the model reads smaller tiers: pages stay fresh
        assert _tiers_after_six_documents(plain) == ["base"] * 6
        acc = plain.context(50_000).accounting
        assert acc.per_tier["base"].readback is None

    with OpticalMemory(":memory:", decoder="openai", decoder_options=opts, aging=aging,
                       calibration=str(path)) as mine:
        assert mine.calibration is not None and MODEL in mine.calibration.label
        assert mine.render_config.font_size == 9.0  # the densest size the model reads
        assert mine.render_config.newline_mode == "marker"
        # the model reads 9 px type at 640² (5.6 px) but not at 512² (4.5 px):
        # old pages shrink to small and no further
        assert _tiers_after_six_documents(mine) == ["base"] * 2 + ["small"] * 4
        acc = mine.context(50_000).accounting
        assert acc.per_tier["small"].readback == 1.0
        assert acc.per_tier["small"].readback_source == "user-calibrated"
        assert acc.faded.pages == 0

    # fade mode shrinks regardless, and the accounting says what was lost
    with OpticalMemory(":memory:", decoder="openai", decoder_options=opts,
                       aging=AgePolicy(tiers=FAST, mode="fade"), calibration=path) as fade:
        assert _tiers_after_six_documents(fade) == ["base"] * 2 + ["small"] * 2 + ["tiny"] * 2
        acc = fade.context(50_000).accounting
        assert acc.per_tier["tiny"].readback < 0.9 and acc.faded.pages == 2


def test_the_data_folder_calibration_is_picked_up_for_its_decoder_and_model(caplog):
    with StubOpenAI(responder=FakeVLM()) as stub:
        _calibrate(stub)  # default: the user's data folder
    assert user_calibration_path().is_file()
    with OpticalMemory(":memory:", decoder="openai", decoder_options={"model": MODEL}) as mem:
        assert mem.calibration is not None and mem.render_config.font_size == 9.0
    # another reader is not affected
    with OpticalMemory(":memory:") as mem:
        assert mem.calibration is None and mem.render_config.font_size == 11.0
    # nor is another model behind the same decoder (it was not measured)
    with caplog.at_level(logging.WARNING, logger="optical_memory.fit.user"):
        mem = OpticalMemory(":memory:", decoder="openai", decoder_options={"model": "other"})
    assert mem.calibration is None and mem.render_config.font_size == 11.0
    assert "not used" in caplog.text
    mem.close()


def test_recalibrating_keeps_other_decoders_and_replaces_its_own(tmp_path):
    path = tmp_path / "cal.json"
    other = CalibrationEntry("tesseract", "latin", 1024, 1024, "condensed", "marker", 1.1,
                             10.0, 4, 0.99, 0.98, 3000.0, 12000.0, 2)
    Calibration([other], {"decoders": {"tesseract": {"note": "mine"}}}).save(path)
    with StubOpenAI(responder=FakeVLM()) as stub:
        _calibrate(stub, out=path)
        _calibrate(stub, out=path)
    cal = Calibration.load(path)
    assert sum(e.decoder == "tesseract" for e in cal.entries) == 1
    assert sum(e.decoder == "openai" for e in cal.entries) == 9
    assert set(cal.meta["decoders"]) == {"tesseract", "openai"}


def test_calibrate_errors_write_nothing(tmp_path):
    # an unreachable endpoint: a clean error, no file
    res = _run("calibrate", "--base-url", "http://127.0.0.1:9/v1", "--model", MODEL,
               "--sizes", "10", "--timeout", "2")
    assert res.exit_code == 1 and "DecodeError" in res.output
    assert not user_calibration_path().exists()
    # the shipped calibration is refused before any request
    with StubOpenAI(responder=FakeVLM()) as stub:
        res = _run("calibrate", "--base-url", stub.base_url, "--model", MODEL,
                   "--out", str(_packaged_path()))
        assert res.exit_code == 1 and "refusing to overwrite" in res.output
        assert stub.requests == []
    # no model named anywhere
    res = _run("calibrate", "--base-url", "http://127.0.0.1:9/v1", "--sizes", "10")
    assert res.exit_code == 1 and "needs a model" in res.output
    res = _run("calibrate", "--decoder", "tesseract", "--preset", "deepseek-ocr")
    assert res.exit_code == 2 and "--preset is an openai option" in res.output
    res = _run("calibrate", "--model", MODEL, "--sizes", "9,x")
    assert res.exit_code == 2
    res = _run("calibrate", "--model", MODEL, "--sizes", "1")
    assert res.exit_code == 1 and "font sizes" in res.output
    # an explicit calibration file must exist
    with pytest.raises(ConfigError, match="calibration file not found"):
        OpticalMemory(":memory:", decoder="openai", calibration=str(tmp_path / "nope.json"))
    with pytest.raises(ConfigError, match="calibration must be"):
        OpticalMemory(":memory:", calibration=42)  # type: ignore[arg-type]


def test_default_sweep_is_small_and_centred_on_the_shipped_layout():
    sweep = sweep_plan("deepseek-ocr:base")
    assert sweep.sizes == (9.0, 10.0, 11.0, 12.0, 14.0)
    assert sweep.sides == (1024, 640, 512) and sweep.samples == 1 and sweep.reads == 15
    assert sweep.newline_mode == "marker"
