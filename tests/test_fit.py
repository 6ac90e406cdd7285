"""Fit / legibility: layout choice from the calibration, verified read-back."""
from __future__ import annotations

import dataclasses
import itertools
import shutil
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest

from optical_memory.errors import ConfigError, InputError, UnknownTargetError
from optical_memory.fit import (
    Calibration,
    CalibrationEntry,
    calibrate,
    detect_script,
    fit,
    load_calibration,
    page_precision,
    recommended_config,
    recommended_entry,
    sample_texts,
    user_calibration_path,
)
from optical_memory.render import NEWLINE_MARKER, RenderConfig, Renderer
from optical_memory.types import Page

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="tesseract binary not installed")

PARAGRAPH = (
    "The library keeps long conversations as pages of text drawn in a small, clear font. "
    "A vision model reads such a page with about ten times fewer tokens than the text "
    "itself would cost, and a plain OCR engine running on the CPU reads the same page "
    "back to prove that the pixels still hold every word. When a page fails that check, "
    "the text is drawn again in a larger size until it reads back cleanly."
)


def _entry(size: float, mean: float, tokens: float, **kw) -> CalibrationEntry:
    base = dict(decoder="tesseract", script="latin", side=1024, master_side=1024, font="sans",
                newline_mode="marker", line_spacing=1.2, font_size=size, margin=4,
                mean_precision=mean, min_precision=mean - 0.01, tokens_per_page=tokens,
                chars_per_page=tokens * 4, samples=3)
    base.update(kw)
    return CalibrationEntry(**base)


SYNTH = Calibration(entries=[
    _entry(9.0, 0.95, 4000), _entry(10.0, 0.985, 3300), _entry(11.0, 0.992, 2800),
    _entry(12.0, 0.995, 2300), _entry(14.0, 0.997, 1700),
    _entry(12.0, 0.999, 600, newline_mode="break"),
    # aged entries at 512 (the 1024 master resampled): not used for 1024 targets
    _entry(14.0, 0.99, 1700, side=512),
])


# --------------------------------------------------------------------------
# recommended_config


def test_recommended_config_picks_densest_passing_entry():
    cfg = recommended_config("deepseek-ocr:base", threshold=0.99, calibration=SYNTH)
    assert (cfg.width, cfg.height) == (1024, 1024)
    assert cfg.font_size == 11.0 and cfg.newline_mode == "marker" and cfg.line_spacing == 1.2
    assert recommended_config(threshold=0.98, calibration=SYNTH).font_size == 10.0
    assert recommended_config(threshold=0.996, calibration=SYNTH).font_size == 14.0
    # Nothing reaches 1.0: the most legible entry, never an exception.
    worst = recommended_config(threshold=1.0, calibration=SYNTH)
    assert (worst.font_size, worst.newline_mode) == (12.0, "break")


def test_hinted_family_is_chosen_with_its_hinting():
    cal = Calibration(entries=[*SYNTH.entries,
                               _entry(11.0, 0.993, 3100, line_spacing=1.1, hinting="slight")])
    cfg = recommended_config(threshold=0.99, calibration=cal)
    assert (cfg.font_size, cfg.line_spacing, cfg.hinting) == (11.0, 1.1, "slight")
    assert recommended_config(threshold=0.99, calibration=SYNTH).hinting == "normal"
    # files written before the field existed load as normal hinting
    old = cal.to_dict()
    for e in old["entries"]:
        e.pop("hinting")
    assert {e.hinting for e in Calibration.from_dict(old).entries} == {"normal"}


def test_recommended_config_matches_shipped_calibration():
    cal = load_calibration()
    pool = [e for e in cal.entries if e.decoder == "tesseract" and e.script == "latin"
            and e.side == 1024 and e.master_side == 1024]
    assert pool, "the shipped calibration must cover tesseract / latin at 1024"
    for threshold in (0.9, 0.95, 0.97, 0.98, 0.99):
        passing = [e for e in pool if e.mean_precision >= threshold]
        if not passing:
            continue
        best = max(passing, key=lambda e: (e.tokens_per_page, e.mean_precision))
        cfg = recommended_config("deepseek-ocr:base", threshold=threshold)
        assert (cfg.font_size, cfg.newline_mode, cfg.line_spacing) == (
            best.font_size, best.newline_mode, best.line_spacing)


@pytest.mark.parametrize("cal", [SYNTH, None], ids=["synthetic", "shipped"])
def test_higher_threshold_never_denser(cal):
    thresholds = [0.5 + i / 100 for i in range(51)]
    dens = [recommended_entry(threshold=t, calibration=cal).tokens_per_page for t in thresholds]
    assert all(a >= b for a, b in itertools.pairwise(dens)), dens


def test_other_page_sides_scale_font_from_nearest_calibrated_side():
    base = recommended_config("deepseek-ocr:base", calibration=SYNTH)
    large = recommended_config("deepseek-ocr:large", calibration=SYNTH)  # 1280², not calibrated
    assert (large.width, large.height) == (1280, 1280)
    assert large.font_size == pytest.approx(base.font_size * 1280 / 1024, abs=0.25)
    # 512: the aged entry (14 px at 1024 read at 512 = 7 px) is the nearest side.
    tiny = recommended_config("deepseek-ocr:tiny", calibration=SYNTH)
    assert (tiny.width, tiny.font_size) == (512, 7.0)


def test_errors():
    with pytest.raises(UnknownTargetError, match="no-such-model"):
        recommended_config("no-such-model")
    with pytest.raises(UnknownTargetError):
        fit(PARAGRAPH, "no-such-model")
    with pytest.raises(InputError, match="threshold"):
        recommended_config(threshold=1.5)
    with pytest.raises(InputError, match="script"):
        recommended_config(script="klingon")
    with pytest.raises(ConfigError, match="no calibration for decoder 'nope'"):
        recommended_config(decoder="nope")


def test_the_native_reader_never_sets_the_layout():
    """A calibration of the native reader (shipped or the user's) would lay pages
    out as densely as a reader trained on them reads; the layout stays the one
    calibrated for LAYOUT_DECODER, and tiers / layout_origin say so."""
    from dataclasses import replace

    from optical_memory.config import LAYOUT_DECODER, default_render_config
    from optical_memory.fit import layout_origin
    from optical_memory.fit.user import UserCalibration

    dense = Calibration(entries=[replace(e, decoder="native") for e in SYNTH.entries])
    user = UserCalibration("native", dense, {"measured_at": "2026-12-05"})
    got = default_render_config("deepseek-ocr:base", "native", calibration=user)
    assert got == default_render_config("deepseek-ocr:base", LAYOUT_DECODER)
    assert got.font_size != recommended_config(decoder="native", calibration=dense).font_size
    origin = layout_origin(user, "native", "deepseek-ocr:base")
    assert "your calibration" not in origin and "native never sets the layout" in origin


def test_defaults_are_the_memorys():
    from optical_memory.config import DEFAULT_DECODER, DEFAULT_READBACK, LAYOUT_DECODER
    from optical_memory.memory import default_render_config

    assert recommended_config() == recommended_config(decoder=LAYOUT_DECODER,
                                                      threshold=DEFAULT_READBACK)
    assert recommended_config(calibration=SYNTH).font_size == 10.0  # the 0.985 entry
    assert default_render_config("deepseek-ocr:base").font_size == recommended_config().font_size
    # the memory's default reader never sets the layout: pages are laid out as for tesseract
    assert DEFAULT_DECODER == "native"
    assert default_render_config("deepseek-ocr:base", DEFAULT_DECODER) == \
        default_render_config("deepseek-ocr:base", LAYOUT_DECODER)


# --------------------------------------------------------------------------
# Calibration data


def test_calibration_json_round_trip(tmp_path):
    path = SYNTH.save(tmp_path / "cal.json")
    back = load_calibration(path)
    assert back.entries == SYNTH.entries
    assert Calibration.from_dict(SYNTH.to_dict()).entries == SYNTH.entries
    (tmp_path / "bad.json").write_text('{"version": 7, "entries": []}')
    with pytest.raises(ConfigError, match="version"):
        Calibration.load(tmp_path / "bad.json")


def test_shipped_calibration_keys():
    cal = load_calibration()
    fields = {f.name for f in dataclasses.fields(CalibrationEntry)}
    assert {"decoder", "script", "side", "font_size", "newline_mode", "line_spacing",
            "mean_precision", "min_precision", "tokens_per_page", "chars_per_page",
            "samples"} <= fields
    assert {e.script for e in cal.entries} >= {"latin", "cjk"}
    for e in cal.entries:
        assert 0.0 <= e.min_precision <= e.mean_precision <= 1.0 and e.samples >= 1


def test_sample_texts_are_deterministic_and_split():
    a = sample_texts("latin", 3, split="calibrate")
    assert a == sample_texts("latin", 3, split="calibrate")
    b = sample_texts("latin", 3, split="report")
    assert all(len(t) >= 40_000 for t in a + b)
    assert not {t[:200] for t in a} & {t[:200] for t in b}
    zh = sample_texts("cjk", 2)
    assert detect_script(zh[0]) == "cjk" and detect_script(a[0]) == "latin"


def test_marker_scoring_strict_and_lenient():
    page = Renderer(RenderConfig(256, 256, newline_mode="marker")).render_text("ab\ncd")[0]
    assert page.text == f"ab{NEWLINE_MARKER}cd"
    assert page_precision(page, f"ab{NEWLINE_MARKER}cd") == 1.0
    assert page_precision(page, "ab cd") == pytest.approx(0.8)  # the newline was lost
    assert page_precision(page, "ab cd", marker_as_space=True) == 1.0


# --------------------------------------------------------------------------
# Read-back (tesseract)


@needs_tesseract
def test_known_paragraph_at_default_density_reads_back():
    """Must-show: a known paragraph at the default density reads back ≥ 0.98.

    The default density is the calibrated one, ``recommended_config()``
    (deepseek-ocr:base, tesseract, threshold ``DEFAULT_READBACK`` = 0.98, the
    memory's own floor), read with the decoder settings the calibration used.
    """
    from optical_memory.decode import get_decoder
    from optical_memory.fit import decoder_options

    page = Renderer(recommended_config()).render_text(PARAGRAPH)[0]
    read = get_decoder("tesseract", **decoder_options("tesseract", "latin")).decode(page)
    assert page_precision(page, read.text) >= 0.98, read.text


@needs_tesseract
def test_dense_prose_layout_reads_back():
    """The layout behind the 12×+ prose figure (sans 10.5 px, lines 1.1 em,
    slight hinting, marker mode) on a full-width page of known prose: ≥ 0.985
    (benchmarks/RESULTS.md: 0.990 mean over 8 full LICENSE pages)."""
    from optical_memory.decode import get_decoder
    from optical_memory.fit import decoder_options

    cfg = RenderConfig(width=1024, height=160, font_size=10.5, line_spacing=1.1,
                       hinting="slight", newline_mode="marker")
    text = "\n".join(PARAGRAPH.split(". "))  # newlines: markers inside the lines
    page = Renderer(cfg).render_text(text * 3)[0]
    assert page.text.count(NEWLINE_MARKER) == 6
    read = get_decoder("tesseract", **decoder_options("tesseract", "latin")).decode(page)
    assert page_precision(page, read.text) >= 0.985, read.text


@needs_tesseract
def test_fit_verify_records_precision_per_page():
    result = fit(PARAGRAPH, "deepseek-ocr:base", verify=True, workers=1)
    assert result.config == recommended_config("deepseek-ocr:base")
    assert result.page_precision is not None and len(result.page_precision) == len(result.pages)
    assert min(result.page_precision) >= 0.98
    for page, p in zip(result.pages, result.page_precision):
        assert isinstance(page, Page)
        assert page.meta["fit"]["precision"] == p
        assert page.meta["fit"]["font_size"] == result.font_size == page.font_size
    unverified = fit(PARAGRAPH)
    assert unverified.page_precision is None and unverified.ok is None
    assert unverified.pages[0].meta["fit"]["precision"] is None


@needs_tesseract
def test_fit_steps_up_when_a_page_fails():
    # A calibration that (wrongly) claims 4 px reads perfectly: verification
    # catches it and re-renders at the next size up.
    cal = Calibration(entries=[_entry(4.0, 0.999, 9000), _entry(12.0, 0.995, 2300)])
    result = fit(PARAGRAPH, threshold=0.98, verify=True, calibration=cal, workers=1)
    assert [a[0] for a in result.attempts] == [4.0, 12.0]
    assert result.attempts[0][1] < 0.98
    assert result.font_size == 12.0 and result.ok
    assert result.expected_precision == 0.995


@needs_tesseract
def test_calibrate_writes_entries(tmp_path):
    cal = calibrate(sizes=(12.0,), samples=1, newline_modes=("marker",), workers=1,
                    out=tmp_path / "c.json")
    (e,) = cal.entries
    assert (e.decoder, e.script, e.side, e.font_size, e.newline_mode) == (
        "tesseract", "latin", 1024, 12.0, "marker")
    assert e.tokens_per_page > 1000 and e.mean_precision > 0.9
    assert load_calibration(tmp_path / "c.json").entries == cal.entries


def _blind_decoder(monkeypatch):
    """Stand in for the decoders: every page reads back empty; counts the pages."""
    import optical_memory.decode as decode

    calls: list[int] = []

    def decode_many(images, **kw):
        calls.append(len(images))
        return [SimpleNamespace(text="") for _ in images]

    monkeypatch.setattr(decode, "decode_many", decode_many)
    return calls


def _packaged_file():
    return Path(str(resources.files("optical_memory") / "data" / "calibration.json"))


def test_calibrate_writes_to_the_user_data_folder_by_default(memory_home, monkeypatch):
    calls = _blind_decoder(monkeypatch)
    shipped = _packaged_file().read_bytes()
    cal = calibrate(sizes=(12.0,), samples=1, newline_modes=("marker",), workers=1)
    assert calls == [1]
    path = memory_home / "calibration.json"
    assert user_calibration_path() == path and path.is_file()
    assert load_calibration(path).entries == cal.entries
    assert _packaged_file().read_bytes() == shipped
    assert load_calibration() is not load_calibration(path)  # reading: the shipped file


def test_calibrate_refuses_to_overwrite_the_shipped_file(monkeypatch):
    calls = _blind_decoder(monkeypatch)
    shipped = _packaged_file().read_bytes()
    for out in (_packaged_file(), str(_packaged_file())):
        with pytest.raises(ConfigError, match="shipped with the package"):
            calibrate(sizes=(12.0,), samples=1, newline_modes=("marker",), out=out)
    assert calls == [] and _packaged_file().read_bytes() == shipped
    # measuring without writing is fine
    calibrate(sizes=(12.0,), samples=1, newline_modes=("marker",), out=_packaged_file(),
              write=False)
    assert _packaged_file().read_bytes() == shipped
