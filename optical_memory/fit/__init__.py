"""Fit / legibility: the densest layout whose pages a decoder still reads back.

    from optical_memory.fit import fit, recommended_config
    cfg = recommended_config("deepseek-ocr:base")          # a RenderConfig
    result = fit(text, "deepseek-ocr:base", verify=True)   # pages + measured precision
    result.page_precision, result.config.font_size

How the choice is made
----------------------
The package ships a *calibration* (``optical_memory/data/calibration.json``):
for each (decoder, script, page side, font, newline mode, line spacing, font
size) the mean and minimum read-back precision over sample pages, with the
text tokens (o200k) and characters each page held. ``benchmarks/fidelity.py
--write-calibration`` regenerates it and prints the full table;
:func:`calibrate` measures a new one and writes it to the user's data folder
(``calibration.json`` there, :func:`user_calibration_path`), never over the
shipped file; pass it on with ``calibration=load_calibration(path)``.
:func:`calibrate_decoder` runs a small sweep (:func:`sweep_plan`: a few font
sizes × the age tiers) against the user's own reader, e.g. a served vision
model (``optical-memory calibrate``); a memory reading with that decoder uses
the result from then on (:func:`resolve_calibration`, :mod:`~optical_memory.fit.user`).

:func:`recommended_config` returns the layout holding the most text tokens
per page among those whose mean precision reaches ``threshold`` (default
:data:`optical_memory.config.DEFAULT_READBACK`, the floor the memory's own
layout uses); :func:`fit` renders with it and, with ``verify=True``, checks
every page. Page sides and scoring: :mod:`optical_memory.fit.choose`.

Modules: :mod:`~optical_memory.fit.calibration` (the data and where it
lives), :mod:`~optical_memory.fit.choose` (choosing a layout, scoring),
:mod:`~optical_memory.fit.sweep` (:func:`fit`, :func:`calibrate`, sample pages),
:mod:`~optical_memory.fit.user` (the user's own reader, and a memory using it).
"""
from __future__ import annotations

from .calibration import (
    _CACHE,  # noqa: F401  (re-export)
    CALIBRATION_FILE,
    FONTS,  # noqa: F401  (re-export)
    Calibration,
    CalibrationEntry,
    _packaged_path,  # noqa: F401  (re-export)
    check_writable,  # noqa: F401  (re-export)
    font_path,
    load_calibration,
    merge,
    user_calibration_path,
)
from .choose import (
    _CJK_RE,  # noqa: F401  (re-export)
    SCRIPTS,  # noqa: F401  (re-export)
    TESSERACT_LATIN_ARGS,  # noqa: F401  (re-export)
    _check_script,  # noqa: F401  (re-export)
    _check_threshold,  # noqa: F401  (re-export)
    _Choice,  # noqa: F401  (re-export)
    _choose,  # noqa: F401  (re-export)
    _config_for,  # noqa: F401  (re-export)
    _round_size,  # noqa: F401  (re-export)
    decoder_options,
    detect_script,
    page_precision,
    recommended_config,
    recommended_entry,
)
from .sweep import (
    DEFAULT_SIZES,  # noqa: F401  (re-export)
    FitResult,
    Progress,  # noqa: F401  (re-export)
    SamplePage,  # noqa: F401  (re-export)
    _items_text,  # noqa: F401  (re-export)
    _render,  # noqa: F401  (re-export)
    calibrate,
    first_page,
    fit,
    resample,
    sample_texts,
)
from .user import (
    CPU_READERS,
    SweepPlan,
    UserCalibration,
    calibrate_decoder,
    layout_origin,
    resolve_calibration,
    sweep_plan,
)

__all__ = [
    "CALIBRATION_FILE",
    "CPU_READERS",
    "Calibration",
    "CalibrationEntry",
    "FitResult",
    "SweepPlan",
    "UserCalibration",
    "calibrate",
    "calibrate_decoder",
    "decoder_options",
    "detect_script",
    "first_page",
    "fit",
    "font_path",
    "layout_origin",
    "load_calibration",
    "merge",
    "page_precision",
    "recommended_config",
    "recommended_entry",
    "resample",
    "resolve_calibration",
    "sample_texts",
    "sweep_plan",
    "user_calibration_path",
]
