"""Tesseract decoder: the Debian ``tesseract`` binary, run once per image.

The image is piped to ``tesseract stdin stdout`` as PNG (no temp files).
Defaults follow ``docs/measurements.md``: page segmentation mode 6 ("a
single uniform block of text"), which dense pages need (automatic layout
drops whole regions), and ``OMP_THREAD_LIMIT=1`` in the child's environment
(28–33 s per page without it, ~5 s with it; parallelism comes from running
several processes, see :func:`optical_memory.decode.decode_many`).
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Sequence

from optical_memory.decode.base import (
    DecodeResult,
    ImageInput,
    clean_text,
    coerce_image,
    encode_image,
    upscale,
)
from optical_memory.errors import DecodeError, DependencyMissingError, InputError

logger = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng"


def _debian_package(lang: str) -> str:
    """Debian package holding a traineddata: "chi_sim" → "tesseract-ocr-chi-sim"."""
    return "tesseract-ocr-" + lang.lower().replace("_", "-")


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


class TesseractDecoder:
    """Read a page with the tesseract binary.

    lang:          tesseract language string, "eng" or e.g. "chi_sim+eng".
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
        missing = [code for code in lang.split("+") if code and code not in have]
        if missing or not lang:
            raise DependencyMissingError(
                f"tesseract language(s) {missing or [lang]} not installed "
                f"(installed: {', '.join(sorted(have)) or 'none'}); "
                f"install: apt-get install {' '.join(_debian_package(m) for m in missing)}"
            )
        self.lang = lang
        self.psm = int(psm)
        self.upscale_to = upscale_to
        self.dpi = int(dpi)
        self.tesseract_cmd = resolved
        self.timeout = timeout
        if extra_args is None:
            cjk = any(code.startswith(("chi", "jpn", "kor")) for code in lang.split("+"))
            extra_args = () if cjk else LATIN_ARGS
        self.extra_args = tuple(extra_args)

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

    def command(self) -> list[str]:
        """The argument vector run for each image (input and output: pipes)."""
        return [
            self.tesseract_cmd, "stdin", "stdout",
            "-l", self.lang, "--psm", str(self.psm), "--dpi", str(self.dpi),
            *self.extra_args,
        ]

    def decode(self, image: ImageInput) -> DecodeResult:
        t0 = time.perf_counter()
        img = coerce_image(image)
        size = img.size
        target = (None if self.upscale_to is None
                  else min(self.upscale_to, MAX_UPSCALE_FACTOR * max(size)))
        img, scale = upscale(img, target)
        png = encode_image(img)
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        cmd = self.command()
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
        text = clean_text(proc.stdout.decode("utf-8", "replace"))
        return DecodeResult(
            text=text,
            decoder=self.name,
            seconds=time.perf_counter() - t0,
            meta={"lang": self.lang, "psm": self.psm, "size": size, "scale": scale},
        )
