"""Tesseract decoder: the Debian ``tesseract`` binary, run once per image.

The image is piped to ``tesseract stdin stdout`` as PNG (no temp files).
Defaults follow ``docs/measurements.md``: page segmentation mode 6 ("a
single uniform block of text"), which dense pages need (automatic layout
drops whole regions), and ``OMP_THREAD_LIMIT=1`` in the child's environment
(28–33 s per page without it, ~5 s with it; parallelism comes from running
several processes, see :func:`optical_memory.decode.decode_many`).

Languages: ``lang`` names them ("eng", "rus+eng", "jpn"); pages the memory
wrote are read with the languages their scripts call for
(:mod:`optical_memory.decode.languages`), and ``lang="auto"`` finds them on a
bare image with a first pass (see :class:`TesseractDecoder`).
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from optical_memory.decode.base import (
    DecodeResult,
    ImageInput,
    clean_text,
    coerce_image,
    encode_image,
    upscale,
)
from optical_memory.decode.languages import (
    AUTO_FIRST_PASS,
    UNSPACED_LANGS,
    debian_package,
    first_pass_shares,
    tesseract_languages,
    upscale_for,
)
from optical_memory.errors import DecodeError, DependencyMissingError, InputError

logger = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng"
_debian_package = debian_package  # (old name)

# A run of spaces between two characters of unspaced scripts (Han, kana,
# CJK punctuation and fullwidth forms; not Hangul, which is written with spaces).
_UNSPACED = ("\u2e80-\u2fdf\u3000-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
             "\uf900-\ufaff\uff00-\uff60")
_SPACE_BETWEEN_UNSPACED = re.compile(rf"(?<=[{_UNSPACED}]) +(?=[{_UNSPACED}])")


def join_unspaced(text: str) -> str:
    """``text`` without the spaces tesseract puts between ideographs / kana
    (Chinese and Japanese are written without them; Japanese pages read
    0.946 → 0.954 without them)."""
    return _SPACE_BETWEEN_UNSPACED.sub("", text)


@functools.lru_cache(maxsize=8)
def _installed_languages(cmd: str) -> frozenset[str]:
    proc = subprocess.run(
        [cmd, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise DependencyMissingError(
            f"{cmd!r} --list-langs failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}"
        )
    # First line is 'List of available languages in "<dir>" (N):'.
    return frozenset(line.strip() for line in proc.stdout.splitlines()[1:] if line.strip())


#: Tesseract's LSTM "corrects" straight quotes to curly ones; the renderer
#: draws what the source holds, so for Latin pages these four are blacklisted
#: and it picks its next-best reading (the straight quote). Source text with
#: real curly quotes pays for it (they read as straight).
LATIN_ARGS = ("-c", "tessedit_char_blacklist=\u201c\u201d\u2018\u2019")

#: Pages are read upscaled (Lanczos) to this long side: tesseract wants an
#: x-height well above the ~5 px of 10-11 px page text. On pydoc pages in
#: marker mode, 2× (2048 for a 1024 page) lifts 10 px from 0.913 to 0.973 and
#: 11 px from 0.955 to 0.985; 3× adds < 0.001 (benchmarks/fidelity.py).
DEFAULT_UPSCALE_TO = 2048

#: ... but never by more than this factor (an aged 512 page: 4×); small
#: snippets blown up further read worse, not better.
MAX_UPSCALE_FACTOR = 4

#: ``lang="auto"`` reads its first pass at this long side (smaller images,
#: e.g. aged tiers, are upscaled to it; larger ones are read as they are).
AUTO_FIRST_SIDE = 1024

_WARNED_MISSING: set[tuple[str, ...]] = set()


class TesseractDecoder:
    """Read a page with the tesseract binary.

    lang:          tesseract language string, "eng" or e.g. "chi_sim+eng"; or
                   "auto": a first pass (at least :data:`AUTO_FIRST_SIDE`
                   px, no further upscaling) with every installed language of
                   :data:`~optical_memory.decode.languages.AUTO_FIRST_PASS`
                   finds the page's scripts
                   (:func:`~optical_memory.decode.languages.first_pass_shares`),
                   a second reads it with the languages and upscaling (2×,
                   CJK 3×, unless ``upscale_to`` is None) they call for;
                   the result's ``meta`` has both.
    psm:           page segmentation mode; 6 (uniform block) suits dense pages.
    upscale_to:    enlarge images whose long side is below this many px
                   (Lanczos, at most :data:`MAX_UPSCALE_FACTOR`×) before
                   reading; None reads the image as stored.
    dpi:           resolution reported to tesseract (pages carry none; without
                   it tesseract guesses 70 and warns).
    tesseract_cmd: the binary, a name on PATH or a path.
    timeout:       seconds before one read is abandoned (DecodeError).
    extra_args:    further command-line arguments (e.g. ("-c", "var=value"));
                   None = :data:`LATIN_ARGS` when ``lang`` has no CJK language.
    lang_fallback: a language of ``lang`` whose pack is not installed is left
                   out, with a warning naming the package (at least "eng" is
                   read), instead of raising :class:`DependencyMissingError`;
                   the memory reads its pages so.
    join_unspaced: drop spaces read between ideographs / kana
                   (:func:`join_unspaced`); None = when ``lang`` holds
                   Chinese or Japanese.
    """

    name = "tesseract"

    def __init__(
        self,
        lang: str = "eng",
        psm: int = 6,
        upscale_to: int | None = DEFAULT_UPSCALE_TO,
        dpi: int = 300,
        tesseract_cmd: str = "tesseract",
        timeout: float | None = 300.0,
        extra_args: Sequence[str] | None = None,
        lang_fallback: bool = False,
        join_unspaced: bool | None = None,
    ) -> None:
        if not 0 <= int(psm) <= 13:
            raise InputError(f"psm must be in 0..13 (got {psm})")
        if upscale_to is not None and upscale_to <= 0:
            raise InputError(f"upscale_to must be a positive int or None (got {upscale_to})")
        resolved = shutil.which(tesseract_cmd)
        if resolved is None:
            raise DependencyMissingError(
                f"tesseract binary not found (tesseract_cmd={tesseract_cmd!r}); "
                f"install it: {INSTALL_HINT}"
            )
        have = _installed_languages(resolved)
        self.auto_langs: tuple[str, ...] = ()
        if lang == "auto":
            self.auto_langs = tuple(code for code in AUTO_FIRST_PASS if code in have)
            if "eng" not in self.auto_langs:
                raise DependencyMissingError(f"tesseract language 'eng' not installed; "
                                             f"install: apt-get install {debian_package('eng')}")
        else:
            lang = self._installed(lang, have, fallback=lang_fallback)
        self.lang = lang
        self.lang_fallback = bool(lang_fallback)
        self.join_unspaced = join_unspaced
        self.psm = int(psm)
        self.upscale_to = upscale_to
        self.dpi = int(dpi)
        self.tesseract_cmd = resolved
        self.timeout = timeout
        self._extra_args = None if extra_args is None else tuple(extra_args)
        self.extra_args = self._args_for(lang)

    def _args_for(self, lang: str) -> tuple[str, ...]:
        if self._extra_args is not None:
            return self._extra_args
        cjk = any(code.startswith(("chi", "jpn", "kor")) for code in lang.split("+"))
        return () if cjk else LATIN_ARGS

    @staticmethod
    def _installed(lang: str, have: frozenset[str], *, fallback: bool) -> str:
        """``lang`` when every language of it is installed; else the installed
        ones with a warning (``fallback``), or :class:`DependencyMissingError`."""
        codes = [code for code in lang.split("+") if code]
        missing = [code for code in codes if code not in have]
        if not missing and codes:
            return lang
        install = " ".join(debian_package(m) for m in missing)
        if fallback:
            kept = [code for code in codes if code in have] or (["eng"] if "eng" in have else [])
            if kept:
                if tuple(missing) not in _WARNED_MISSING:
                    _WARNED_MISSING.add(tuple(missing))
                    logger.warning(
                        "tesseract language(s) %s not installed: reading with %r instead, "
                        "which reads text in those scripts poorly (install: apt-get install %s)",
                        ", ".join(missing), "+".join(kept), install)
                return "+".join(kept)
        raise DependencyMissingError(
            f"tesseract language(s) {missing or [lang]} not installed "
            f"(installed: {', '.join(sorted(have)) or 'none'}); "
            f"install: apt-get install {install or debian_package('eng')}"
        )

    @classmethod
    def availability(cls) -> bool | str:
        cmd = shutil.which("tesseract")
        if cmd is None:
            return f"tesseract binary not on PATH ({INSTALL_HINT})"
        try:
            langs = _installed_languages(cmd)
        except (DependencyMissingError, OSError, subprocess.SubprocessError) as exc:
            return f"tesseract does not run: {exc}"
        if "eng" in langs:
            return True
        return "no 'eng' language data (apt-get install tesseract-ocr-eng)"

    def command(self, lang: str | None = None) -> list[str]:
        """The argument vector run for each image (input and output: pipes)."""
        lang = lang or self.lang
        return [
            self.tesseract_cmd, "stdin", "stdout",
            "-l", lang, "--psm", str(self.psm), "--dpi", str(self.dpi),
            *self._args_for(lang),
        ]

    def decode(self, image: ImageInput) -> DecodeResult:
        t0 = time.perf_counter()
        img = coerce_image(image)
        size = img.size
        meta: dict[str, Any] = {}
        lang, upscale_to = self.lang, self.upscale_to
        if self.auto_langs:
            first = "+".join(self.auto_langs)
            shares = first_pass_shares(self._read(img, first, AUTO_FIRST_SIDE)[0])
            langs = tesseract_languages(shares)
            lang = self._installed("+".join(langs), _installed_languages(self.tesseract_cmd),
                                   fallback=True)
            if self.upscale_to is not None:
                upscale_to = upscale_for(langs, max(size))
            meta["first_pass"] = {"lang": first, "scripts": shares,
                                  "seconds": round(time.perf_counter() - t0, 3)}
        text, scale = self._read(img, lang, upscale_to)
        unspaced = self.join_unspaced
        if unspaced is None:
            unspaced = any(code in UNSPACED_LANGS for code in lang.split("+"))
        if unspaced:
            text = join_unspaced(text)
        return DecodeResult(
            text=text,
            decoder=self.name,
            seconds=time.perf_counter() - t0,
            meta={"lang": lang, "psm": self.psm, "size": size, "scale": scale, **meta},
        )

    def _read(self, img: Any, lang: str, upscale_to: int | None) -> tuple[str, float]:
        """Text tesseract reads from PIL image ``img`` with ``lang``, upscaled
        to ``upscale_to`` (at most :data:`MAX_UPSCALE_FACTOR`×); and the scale."""
        size = img.size
        target = None if upscale_to is None else min(upscale_to, MAX_UPSCALE_FACTOR * max(size))
        img, scale = upscale(img, target)
        png = encode_image(img)
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        cmd = self.command(lang)
        try:
            proc = subprocess.run(
                cmd, input=png, capture_output=True, env=env, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DecodeError(
                f"tesseract timed out after {self.timeout} s on a {size} image") from exc
        except OSError as exc:
            raise DecodeError(f"cannot run {cmd[0]!r}: {exc}") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise DecodeError(f"tesseract exited {proc.returncode}: {err[:500]}")
        return clean_text(proc.stdout.decode("utf-8", "replace")), scale
