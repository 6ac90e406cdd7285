"""Every default of the memory, written once.

:class:`MemoryConfig` is what an :class:`~optical_memory.OpticalMemory` is
built from; the CLI, the MCP server and the LangChain integration read their
defaults from the constants here, so a default changes in one place.

Figures behind the defaults are in ``docs/measurements.md``.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from optical_memory.errors import ConfigError, InputError
from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER

if TYPE_CHECKING:  # pragma: no cover
    from optical_memory.age import AgePolicy
    from optical_memory.context.routing import ExactSpanPolicy
    from optical_memory.fit import Calibration, UserCalibration
    from optical_memory.render import RenderConfig

logger = logging.getLogger(__name__)

#: Read-back decoder of the memory: its legibility gate (which tier an aged
#: page may shrink to), ``decode()``, ``verify`` and the text of pages kept
#: without their source. The package's own reader, trained on the renderer's
#: pages (``benchmarks/results/reader.md``: held-out pages 0.998 / 0.997 /
#: 0.991 at 1024² / 640² / 512², ~10 pages/s on 2 cores); pages of scripts it
#: does not read well go to tesseract (:data:`~optical_memory.decode.readback.NATIVE_SCRIPTS`).
DEFAULT_DECODER = "native"
#: Reader whose shipped calibration sets the default page *layout* (font
#: size, spacing) when the memory's decoder has none of its own. The native
#: reader never sets density: it was trained on these very pages, so its
#: figures prove the pixels hold the text, not that a vision model reads
#: them; the layout stays the one a generic OCR reads at ``DEFAULT_READBACK``.
LAYOUT_DECODER = "tesseract"
#: Readers whose figures (shipped or the user's calibration) never pick the
#: layout: pages are laid out as for :data:`LAYOUT_DECODER` instead.
NO_LAYOUT_READERS = frozenset({"native"})
#: Recent chat turns kept as text (never paged while among them).
DEFAULT_KEEP_LAST = 8
#: Read-back precision the default page layout is chosen to reach
#: (the densest calibrated layout reading back at least this much).
DEFAULT_READBACK = 0.98
#: Legibility floor of the default age policy: in its "legible" mode a page
#: moves to a smaller tier only while it reads back at least this much there.
DEFAULT_MIN_READBACK = 0.95
#: ``context(exact_spans=...)`` by default (:mod:`optical_memory.context.routing`):
#: off, as measured (``benchmarks/results/routing.md``: the copies cost more tokens
#: per recalled value than the pages they sit on).
DEFAULT_EXACT_SPANS = "off"
#: Font size (px) used when no calibration fits the target and decoder:
#: 11 px on a 1024² page reads back ≈ 0.986 with tesseract on prose.
FALLBACK_FONT_PX = 11.0
#: Byte budget of the in-process caches (base64 tier images + vision tokens).
CACHE_BYTES = 768 * 1024 * 1024
#: Pages per ``DeepEncoder.encode`` call (bounds the float32 views held at once).
ENCODE_BATCH = 8
#: Tries at paging one scope's waiting turns while other processes page them too.
PAGING_ATTEMPTS = 5
#: Most characters one ``add`` / ``add_document`` takes (all its texts together).
MAX_ADD_CHARS = 1_000_000
#: Most pages one item may fill (checked at ``add`` by laying it out).
MAX_PAGES_PER_ITEM = 256
#: Longest speaker name / document title / time string (characters). Labels
#: are drawn on pages; an unbounded one could fill a page by itself.
MAX_NAME_CHARS = 256
MAX_TITLE_CHARS = 1_000
MAX_TIME_CHARS = 64
#: Deepest nesting accepted in tool-call arguments and chat-log lines.
MAX_NESTING = 64
#: Largest ``k`` of a retrieval and largest ``keep_last``.
MAX_K = 10_000
MAX_KEEP_LAST = 1_000_000


def check_count(name: str, value: object, maximum: int = 2**31 - 1) -> int:
    """``value`` when it is an ``int`` in ``[0, maximum]`` (not a bool), else
    :class:`InputError` naming the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{name} must be an int >= 0 (got {_short(value)})")
    if value > maximum:
        raise InputError(f"{name} must be at most {maximum} (got {_short(value)})")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class MemoryConfig:
    """How a memory is built; every field has the memory's default.

    store:     a SQLite path, ``sqlite://`` / ``postgresql://`` URL, or
               ``None`` for ``$OPTICAL_MEMORY_HOME/memory.db``.
    target:    the vision model pages are sized and billed for.
    tokenizer: text-token counter (tiktoken encoding name).
    decoder:   read-back decoder name (the legibility gate, ``decode()``);
               the layout is the one calibrated for it, else for
               :data:`LAYOUT_DECODER`.
    keep_text: keep each item's source text (else only pages and a hash).
    keep_last: recent turns kept as text.
    readback:  read-back the default layout is calibrated to reach.
    render_config / aging: page layout and age tiers (``None``: defaults
               for the target and decoder).
    decoder_options: keywords for :func:`~optical_memory.decode.get_decoder`.
    cache_bytes: byte budget of the in-process page-image and token caches.
    calibration: the user's own calibration of the decoder (``optical-memory
               calibrate``): a :class:`~optical_memory.fit.Calibration` or a
               file; ``None``: ``calibration.json`` in the data folder when
               there is one. Used when it calibrates ``decoder``: it sets
               the layout and the tier read-back (:mod:`optical_memory.fit.user`).
    exact_spans: what ``context()`` does with IDs and numbers that read back
               poorly from pixels: "auto", "always", "off" or an
               :class:`~optical_memory.context.routing.ExactSpanPolicy`.
    """

    store: str | None = None
    target: str = DEFAULT_TARGET
    tokenizer: str = DEFAULT_TOKENIZER
    decoder: str = DEFAULT_DECODER
    keep_text: bool = True
    keep_last: int = DEFAULT_KEEP_LAST
    readback: float = DEFAULT_READBACK
    render_config: RenderConfig | None = None
    aging: AgePolicy | None = None
    decoder_options: Mapping[str, Any] = field(default_factory=dict)
    cache_bytes: int = CACHE_BYTES
    calibration: Calibration | str | os.PathLike[str] | None = None
    exact_spans: str | ExactSpanPolicy = DEFAULT_EXACT_SPANS

    def __post_init__(self) -> None:
        from optical_memory.context.routing import ExactSpanPolicy

        ExactSpanPolicy.of(self.exact_spans)  # a bad mode fails here
        check_count("keep_last", self.keep_last, MAX_KEEP_LAST)
        check_count("cache_bytes", self.cache_bytes, 2**62)
        if isinstance(self.readback, bool) or not isinstance(self.readback, int | float) \
                or not 0 < self.readback <= 1:
            raise ConfigError(f"readback must be in (0, 1] (got {self.readback!r})")
        from optical_memory.age.policy import AgePolicy
        from optical_memory.render import RenderConfig

        if self.render_config is not None and not isinstance(self.render_config, RenderConfig):
            raise ConfigError("render_config must be a RenderConfig "
                              f"(got {type(self.render_config).__name__})")
        if self.aging is not None and not isinstance(self.aging, AgePolicy):
            raise ConfigError(f"aging must be an AgePolicy (got {type(self.aging).__name__})")
        if self.calibration is not None and not isinstance(self.calibration, str | os.PathLike):
            from optical_memory.fit import Calibration

            if not isinstance(self.calibration, Calibration):
                raise ConfigError("calibration must be a Calibration, a path or None "
                                  f"(got {type(self.calibration).__name__})")
        if not isinstance(self.decoder_options, Mapping):
            raise ConfigError("decoder_options must be a mapping "
                              f"(got {type(self.decoder_options).__name__})")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MemoryConfig:
        """A config from plain values (e.g. parsed JSON / TOML); unknown keys
        are a :class:`ConfigError` naming them."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown memory config key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))


def default_render_config(target: str, decoder: str = LAYOUT_DECODER, *,
                          readback: float = DEFAULT_READBACK,
                          calibration: UserCalibration | None = None) -> RenderConfig:
    """The memory's default page layout for ``target``.

    The densest calibrated layout reading back ≥ ``readback``
    (:func:`optical_memory.fit.recommended_config`), drawn with newlines as
    visible markers (``newline_mode="marker"``, the glyph is
    :data:`optical_memory.render.NEWLINE_MARKER`): chat turns, tool JSON and
    code are newline-heavy, and breaking lines there leaves half of each page
    blank (measured on the synthetic conversation at 11 px, 1024²: ~1,300
    text tokens per page with breaks, ~2,870 with markers). A user
    ``calibration`` of ``decoder`` (:func:`optical_memory.fit.resolve_calibration`)
    wins over the shipped one. Without a calibration for ``decoder`` it is
    the layout calibrated for
    :data:`LAYOUT_DECODER` (the native reader was trained on that layout and
    has no layout calibration: its figures never set the density), and
    without either the target's page at :data:`FALLBACK_FONT_PX`.
    """
    from optical_memory.render import RenderConfig
    from optical_memory.tokens import get_target

    config: RenderConfig | None = None
    from optical_memory.fit import recommended_config

    if decoder in NO_LAYOUT_READERS:
        decoder = LAYOUT_DECODER
    if calibration is not None and calibration.decoder == decoder:
        try:
            config = recommended_config(target, decoder=decoder, threshold=readback,
                                        calibration=calibration.calibration)
        except (ConfigError, InputError) as exc:
            logger.warning("the user calibration gives no layout for %s / %s (%s)",
                           target, decoder, exc)
    for dec in dict.fromkeys((decoder, LAYOUT_DECODER)):
        if config is not None:
            break
        try:
            config = recommended_config(target, decoder=dec, threshold=readback)
        except (ConfigError, InputError) as exc:
            logger.info("no calibrated layout for %s / %s (%s)", target, dec, exc)
    if config is None:
        w, h = get_target(target).page_size
        config = RenderConfig(width=w, height=h, font_size=FALLBACK_FONT_PX)
    return replace(config, newline_mode="marker")


__all__ = [
    "CACHE_BYTES",
    "DEFAULT_DECODER",
    "DEFAULT_KEEP_LAST",
    "DEFAULT_MIN_READBACK",
    "DEFAULT_READBACK",
    "DEFAULT_TARGET",
    "DEFAULT_TOKENIZER",
    "ENCODE_BATCH",
    "FALLBACK_FONT_PX",
    "LAYOUT_DECODER",
    "MAX_ADD_CHARS",
    "MAX_K",
    "MAX_KEEP_LAST",
    "MAX_NAME_CHARS",
    "MAX_NESTING",
    "MAX_PAGES_PER_ITEM",
    "MAX_TIME_CHARS",
    "MAX_TITLE_CHARS",
    "NO_LAYOUT_READERS",
    "PAGING_ATTEMPTS",
    "MemoryConfig",
    "check_count",
    "default_render_config",
]
