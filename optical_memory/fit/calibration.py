"""Calibration data: measured read-back of page layouts, and where it lives.

A :class:`Calibration` is a list of :class:`CalibrationEntry` (one per
decoder, script, page side, face, newline mode, line spacing and font size)
plus ``meta`` on how they were measured. The package ships one
(``optical_memory/data/calibration.json``, :func:`load_calibration` with no
path reads it); :func:`~optical_memory.fit.calibrate` writes new ones to the
user's data folder (:func:`user_calibration_path`), never over the shipped
file (:func:`check_writable`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Faces a calibration may name: key → bundled file (None = the renderer default).
FONTS: dict[str, str | None] = {
    "sans": None,
    "condensed": "DejaVuSansCondensed.ttf",
}

#: File name of a calibration: the shipped one inside the package, and the
#: default output of :func:`~optical_memory.fit.calibrate` in the data folder.
CALIBRATION_FILE = "calibration.json"


def font_path(font: str) -> str | None:
    """File of calibration face ``font`` (None: the renderer's bundled default)."""
    try:
        name = FONTS[font]
    except KeyError:
        raise ConfigError(f"unknown font {font!r} (known: {', '.join(FONTS)})") from None
    if name is None:
        return None
    return str(resources.files("optical_memory.render") / "fonts" / name)


@dataclass(frozen=True)
class CalibrationEntry:
    """Measured read-back of one layout on one decoder.

    side: side of the square image the decoder read (px). master_side: side
    the page was rendered at (== side for fresh pages; larger: resampled down
    with Lanczos, then upscaled back to master_side by the decoder).
    font_size: px at master_side. mean/min_precision: over ``samples`` pages.
    tokens_per_page / chars_per_page: mean source text each page held
    (o200k_base tokens, characters).
    """

    decoder: str
    script: str
    side: int
    master_side: int
    font: str
    newline_mode: str
    line_spacing: float
    font_size: float
    margin: int
    mean_precision: float
    min_precision: float
    tokens_per_page: float
    chars_per_page: float
    samples: int
    hinting: str = "normal"  # RenderConfig.hinting (absent in older files: "normal")

    @property
    def fresh(self) -> bool:
        return self.side == self.master_side

    @property
    def effective_font_size(self) -> float:
        """Font size in px at the side the decoder read."""
        return self.font_size * self.side / self.master_side

    @property
    def family(self) -> tuple:
        """Entries differing only in font size share a family (a size ladder)."""
        return (self.decoder, self.script, self.side, self.master_side, self.font,
                self.newline_mode, self.line_spacing, self.margin, self.hinting)


@dataclass
class Calibration:
    """A set of :class:`CalibrationEntry` plus how they were measured (``meta``)."""

    entries: list[CalibrationEntry]
    meta: dict[str, Any] = field(default_factory=dict)

    # -- (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "meta": self.meta, "entries": [asdict(e) for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ConfigError(
                f"calibration must be a dict with version 1 (got version "
                f"{data.get('version') if isinstance(data, dict) else type(data).__name__!r})"
            )
        try:
            entries = [CalibrationEntry(**e) for e in data["entries"]]
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"malformed calibration entries: {exc}") from exc
        return cls(entries=entries, meta=dict(data.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"calibration file not found: {str(path)!r}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"calibration file {str(path)!r} is not JSON: {exc}") from exc
        return cls.from_dict(data)

    # -- queries -----------------------------------------------------------------
    def select(self, decoder: str, script: str) -> list[CalibrationEntry]:
        out = [e for e in self.entries if e.decoder == decoder and e.script == script]
        if not out:
            have = sorted({(e.decoder, e.script) for e in self.entries})
            raise ConfigError(
                f"no calibration for decoder {decoder!r}, script {script!r} "
                f"(calibrated: {', '.join(f'{d}/{s}' for d, s in have) or 'nothing'}); "
                "run optical_memory.fit.calibrate() for it"
            )
        return out


def _packaged_path() -> Path:
    """The calibration shipped inside the package (read-only for :func:`calibrate`)."""
    return Path(str(resources.files("optical_memory") / "data" / CALIBRATION_FILE))


def user_calibration_path() -> Path:
    """Default output of :func:`~optical_memory.fit.calibrate`:
    ``calibration.json`` in the user's data folder
    (:func:`optical_memory.store.paths.data_dir`, ``$OPTICAL_MEMORY_HOME`` when set)."""
    from ..store.paths import data_dir

    return data_dir() / CALIBRATION_FILE


def check_writable(path: str | Path) -> Path:
    """``path`` when :func:`~optical_memory.fit.calibrate` may write it:
    a :class:`ConfigError` for the calibration shipped inside the package."""
    p = Path(path)
    if p.resolve() == _packaged_path().resolve():
        raise ConfigError(
            f"refusing to overwrite the calibration shipped with the package ({str(p)!r}); "
            f"calibrate() writes to {str(user_calibration_path())!r} by default, or pass "
            "another out= path"
        )
    return p


_CACHE: dict[str, Calibration] = {}


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibration at ``path``, or the one the package ships (cached)."""
    p = Path(path) if path is not None else _packaged_path()
    key = str(p.resolve())
    cal = _CACHE.get(key)
    if cal is None:
        cal = _CACHE[key] = Calibration.load(p)
    return cal


def merge(*calibrations: Calibration) -> Calibration:
    """One calibration holding every entry; later ones replace equal keys."""
    by_key: dict[tuple, CalibrationEntry] = {}
    meta: dict[str, Any] = {}
    for cal in calibrations:
        meta.update(cal.meta)
        for e in cal.entries:
            key = (*e.family, e.font_size)
            by_key[key] = e
    return Calibration(entries=list(by_key.values()), meta=meta)
