"""Training and evaluation lines, drawn by the memory's own renderer.

Every sample is a line of a page the renderer drew (the same code paths the
memory pages with: :class:`~optical_memory.render.Renderer`, labels, light
markdown, newline markers), aged to a tier by the same Lanczos resample of the
master (:func:`optical_memory.age.renditions.resample_png`), cut out with
:func:`~optical_memory.reader.lines.crop_line` and labelled with the text the
layout put on that line.

Text (offline, no download):

- **train**: the Python standard library's own ``.py`` sources (tests
  excluded), the ``pydoc_data`` topics, and synthetic text (Greek, Cyrillic and
  Latin-1/Extended-A pseudo-words, numbers, hashes, every symbol of the
  character set), with a few characters outside the set (CJK from
  ``optical_memory/data/zh_prose.txt``, Hebrew, Armenian, box drawing, ...)
  labelled unknown;
- **held out** (:func:`eval_texts`): ``/usr/share/common-licenses`` (prose),
  Pillow's ``.py`` sources (code) and the synthetic chat of
  :func:`optical_memory.conversation.generate_conversation` (never used for
  training). No held-out source is in the training text.

Layouts: the memory's page faces (DejaVu Sans, Sans Condensed, Sans Mono in
document code blocks, bold labels), 9.5-14 px, line spacing 1.1-1.3, break
and marker newlines, "normal" and "slight" hinting; tiers: the master, 640/1024
and 512/1024 of it, and a fifth of the time any scale in 0.45-1. Pages are
drawn narrower and shorter than a memory page (lines wrap the same way; a
resample is local, so a line of a 512-wide page aged by 0.625 looks like a
line of a 1024 page aged by 0.625).
"""
from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import random
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optical_memory.reader.charset import CHARSET, Codec, is_trainable
from optical_memory.reader.lines import LINE_HEIGHT, LineBox, crop_line, ink_right, layout_boxes

#: Tier scales sampled for training (plus a uniform scale, see RECIPE).
TIER_SCALES = (1.0, 0.625, 0.5)

#: The data recipe; its hash is recorded with the weights.
RECIPE = {
    "train_text": ["stdlib .py sources (no tests, no idlelib)", "pydoc_data.topics",
                   "synthetic multilingual/symbol text", "unknown glyphs (CJK, Hebrew, ...)",
                   "Russian: /usr/share/man/ru pages (troff stripped) and sentences of words "
                   "from tesseract's rus word list",
                   "English: sentences of words from tesseract's eng word list, many "
                   "capitalised (names: Ibarra, Illinois, O'Leary)"],
    "heldout_text": ["/usr/share/common-licenses", "PIL .py sources",
                     "generate_conversation (seeds >= 100)"],
    "source_weights": {"stdlib": 0.37, "pydoc": 0.25, "synthetic": 0.18, "russian": 0.12,
                       "words": 0.08},
    "fonts": {"condensed": 0.45, "sans": 0.4, "document (mono code)": 0.15},
    "font_px": [9.5, 14.0],
    "line_spacing": [1.1, 1.2, 1.3],
    "newline_mode": {"marker": 0.8, "break": 0.2},
    "hinting": {"normal": 0.85, "slight": 0.15},
    "tiers": {"1.0": 0.35, "0.625": 0.25, "0.5": 0.25, "uniform 0.45-1.0": 0.15},
    "page_width": [384, 512, 640, 768, 1024],
    "crop_jitter": {"shift": 0.08, "v_pad": [0.1, 0.2], "left_pad": [0.1, 0.5],
                    "right_pad": [0.1, 0.6], "stretch": [0.92, 1.15]},
    "line_height": LINE_HEIGHT,
}


def recipe_hash() -> str:
    blob = json.dumps(RECIPE, sort_keys=True).encode() + CHARSET.encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class LineSample:
    image: np.ndarray  # uint8 [LINE_HEIGHT, W], white = 255
    text: str
    scale: float


# --------------------------------------------------------------------------
# text pools


@functools.lru_cache(maxsize=1)
def stdlib_text() -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    skip = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3"}
    for f in sorted(root.rglob("*.py")):
        if skip & set(f.relative_to(root).parts):
            continue
        try:
            parts.append(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return "\n".join(parts)


_TROFF_ESCAPES = {"em": "—", "en": "–", "lq": "“", "rq": "”", "aq": "'", "dq": '"',
                  "hy": "-", "bu": "•", "co": "©", "rg": "®", "oq": "‘", "cq": "’"}


def _troff_line(line: str) -> str:
    import re

    if line.startswith((".\\\"", "'\\\"")) or line.startswith(".\\\""):
        return ""
    if line.startswith((".", "'")):
        parts = line[1:].split(None, 1)
        if not parts or parts[0] in ("TH", "so", "de", "ds", "nr", "if", "ie", "el", "ft",
                                     "ne", "in", "ti", "sp", "br", "PD", "na", "ad", "hy",
                                     "nh", "ll", "ta"):
            return ""
        line = parts[1] if len(parts) > 1 else ""
        line = line.replace('"', "")
    line = re.sub(r"\\\(([a-z][a-z])", lambda m: _TROFF_ESCAPES.get(m.group(1), ""), line)
    line = re.sub(r"\\f(\(..|\[[^]]*\]|.)", "", line)
    line = re.sub(r"\\s[-+]?\d", "", line)
    line = re.sub(r"\\\*\(Aq", "'", line)
    line = re.sub(r"\\\*(\(..|\[[^]]*\]|.)", "", line)
    return (line.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")
            .replace("\\ ", " ").replace("\\|", "").replace("\\^", "").replace("\\", "")
            .strip())


@functools.lru_cache(maxsize=1)
def russian_man_text() -> str:
    """The system's Russian manual pages, troff markup stripped ("" when none)."""
    import gzip

    parts: list[str] = []
    for f in sorted(Path("/usr/share/man/ru").rglob("*")):
        if not f.is_file():
            continue
        try:
            raw = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        lines = [_troff_line(x) for x in text.splitlines()]
        parts.append("\n".join(x for x in lines if x))
    return "\n\n".join(parts)


@functools.lru_cache(maxsize=1)
def russian_words() -> tuple[str, ...]:
    """Tesseract's Russian word list, lower-cased."""
    return tuple(sorted({w.lower() for w in tesseract_words("rus")}))


@functools.lru_cache(maxsize=4)
def tesseract_words(lang: str) -> tuple[str, ...]:
    """The word list of an installed tesseract language pack (its word dawg,
    read by tesseract's own ``combine_tessdata`` and ``dawg2wordlist``), as
    spelled there; () when the pack or the tools are missing."""
    import shutil
    import subprocess
    import tempfile

    tessdata = next((d for d in (Path("/usr/share/tesseract-ocr/5/tessdata"),
                                 Path("/usr/share/tesseract-ocr/4.00/tessdata"))
                     if (d / f"{lang}.traineddata").is_file()), None)
    if tessdata is None or not shutil.which("dawg2wordlist"):
        return ()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["combine_tessdata", "-u", str(tessdata / f"{lang}.traineddata"),
                        f"{tmp}/{lang}."], check=True, capture_output=True)
        subprocess.run(["dawg2wordlist", f"{tmp}/{lang}.lstm-unicharset",
                        f"{tmp}/{lang}.lstm-word-dawg", f"{tmp}/words.txt"], check=True,
                       capture_output=True)
        words = Path(f"{tmp}/words.txt").read_text(encoding="utf-8").split()
    return tuple(sorted({w for w in words if len(w) > 1 and is_trainable(w)}))


def russian_sentences(rng: random.Random, n_chars: int) -> str:
    return word_sentences(rng, n_chars, russian_words())


def word_sentences(rng: random.Random, n_chars: int, words: Sequence[str],
                   title: float = 0.06) -> str:
    """Sentences of random ``words``: a capital to start, commas, the odd
    number, ``title`` of the words title-cased, some upper-case."""
    if not words:
        return synthetic_text(rng, n_chars)
    out: list[str] = []
    size = 0
    while size < n_chars:
        k = rng.randint(4, 14)
        sent = [rng.choice(words) for _ in range(k)]
        sent[0] = sent[0].capitalize()
        for i in range(1, k):
            r = rng.random()
            if r < title:
                sent[i] = sent[i][:1].upper() + sent[i][1:]
            elif r < title + 0.02:
                sent[i] = sent[i].upper()
            elif r < title + 0.04:
                sent[i] = str(rng.randint(0, 10 ** rng.randint(1, 5)))
            if rng.random() < 0.1 and i < k - 1:
                sent[i] += ","
        text = " ".join(sent) + rng.choice([".", ".", ".", "?", "!", ":", ";"])
        out.append(text + ("\n" if rng.random() < 0.1 else " "))
        size += len(text) + 1
    return "".join(out)


@functools.lru_cache(maxsize=1)
def pydoc_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


@functools.lru_cache(maxsize=1)
def _cjk_chars() -> str:
    from importlib import resources

    text = (resources.files("optical_memory") / "data" / "zh_prose.txt").read_text("utf-8")
    return "".join(sorted({c for c in text if ord(c) >= 0x3000}))


_UNKNOWN_RANGES = ((0x5D0, 0x5EA), (0x531, 0x556), (0x2500, 0x257F), (0x10D0, 0x10F0),
                   (0x2200, 0x22FF), (0x25A0, 0x25FF), (0x0E01, 0x0E2E))


def _unknown_char(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_cjk_chars())
    lo, hi = rng.choice(_UNKNOWN_RANGES)
    for _ in range(20):
        ch = chr(rng.randint(lo, hi))
        if ch not in CHARSET and is_trainable(ch):
            return ch
    return rng.choice(_cjk_chars())


_GREEK = "".join(c for c in CHARSET if 0x386 <= ord(c) <= 0x3CE)
_CYRILLIC = "".join(c for c in CHARSET if 0x400 <= ord(c) <= 0x45F)
_LATIN_X = "".join(c for c in CHARSET if 0xC0 <= ord(c) <= 0x17F)
_SYMBOLS = "".join(c for c in CHARSET if ord(c) >= 0x2000 or 0xA1 <= ord(c) <= 0xBF)
_ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"


def _word(rng: random.Random, letters: str, lo: int = 1, hi: int = 10) -> str:
    w = "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))
    return w.capitalize() if rng.random() < 0.2 else w


def synthetic_text(rng: random.Random, n_chars: int) -> str:
    """Pseudo-text over the whole character set (scripts kept word by word)."""
    out: list[str] = []
    size = 0
    printable = CHARSET[1:95]
    while size < n_chars:
        r = rng.random()
        if r < 0.2:
            w = _word(rng, _GREEK)
        elif r < 0.4:
            w = _word(rng, _CYRILLIC)
        elif r < 0.55:
            w = _word(rng, _ASCII_LOWER + _LATIN_X * 2, 2, 10)
        elif r < 0.65:
            w = "".join(rng.choice(printable) for _ in range(rng.randint(1, 12)))
        elif r < 0.75:
            w = "".join(rng.choice(_SYMBOLS) for _ in range(rng.randint(1, 3)))
        elif r < 0.82:
            w = f"{rng.randint(0, 10 ** rng.randint(1, 9))}"
            if rng.random() < 0.3:
                w += rng.choice([".", ",", ":", "%", "€", "°", "‰"]) + str(rng.randint(0, 99))
        elif r < 0.87:
            w = "".join(rng.choice("0123456789abcdef") for _ in range(rng.randint(6, 40)))
        elif r < 0.9:
            w = rng.choice(_ASCII_LOWER) * rng.randint(2, 4)  # doubled letters
        else:
            w = _word(rng, _ASCII_LOWER, 1, 9)
        sep = " "
        if rng.random() < 0.05:
            sep = "\n"
        elif rng.random() < 0.04:
            sep = " " * rng.randint(2, 12)
        out.append(w + sep)
        size += len(w) + 1
    return "".join(out)


def _chunk(rng: random.Random, text: str, n: int) -> str:
    start = rng.randrange(0, max(1, len(text) - n))
    return text[start:start + n]


def _with_unknowns(rng: random.Random, text: str) -> str:
    if rng.random() > 0.25 or not text:
        return text
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars))
        if chars[i] not in "\n\r":
            chars[i] = _unknown_char(rng)
    return "".join(chars)


# --------------------------------------------------------------------------
# pages


@dataclass(frozen=True)
class PageSpec:
    width: int
    height: int
    font: str  # "sans" | "condensed"
    font_size: float
    line_spacing: float
    newline_mode: str
    hinting: str
    kind: str  # "text" | "turns" | "document"
    source: str  # "stdlib" | "pydoc" | "synthetic"
    scale: float


def random_spec(rng: random.Random, width: int | None = None) -> PageSpec:
    r = rng.random()
    font, kind = ("condensed", "text") if r < 0.45 else ("sans", "text")
    if rng.random() < 0.15:
        kind = "document"
    elif rng.random() < 0.3:
        kind = "turns"
    r = rng.random()
    source = ("stdlib" if r < 0.37 else "pydoc" if r < 0.62 else "synthetic" if r < 0.8
              else "russian" if r < 0.92 else "words")
    fs = rng.uniform(9.5, 14.0) if rng.random() < 0.5 else rng.choice([10.0, 10.5, 11.0, 11.0,
                                                                        11.5, 12.0])
    r = rng.random()
    scale = (1.0 if r < 0.35 else 0.625 if r < 0.6 else 0.5 if r < 0.85
             else rng.uniform(0.45, 1.0))
    return PageSpec(
        width=width or rng.choice(RECIPE["page_width"]),  # type: ignore[arg-type]
        height=rng.choice([160, 192, 240]),
        font=font, font_size=round(fs * 2) / 2 if rng.random() < 0.7 else fs,
        line_spacing=rng.choice([1.1, 1.1, 1.2, 1.2, 1.3]),
        newline_mode="marker" if rng.random() < 0.8 else "break",
        hinting="normal" if rng.random() < 0.85 else "slight",
        kind=kind, source=source, scale=scale,
    )


def _items(rng: random.Random, spec: PageSpec, text: str):
    from optical_memory.render import RenderItem, Turn

    if spec.kind == "turns":
        out = []
        pieces = [p for p in text.split("\n\n") if p.strip()] or [text]
        for i, piece in enumerate(pieces[:6]):
            role = rng.choice(["user", "assistant", "tool", "system"])
            name = rng.choice([None, None, "alice", "bob", "get_weather", "search"])
            time = rng.choice([None, f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"])
            out.append(RenderItem.from_turn(Turn(f"t{i}", role, piece, name, time)))
        return out
    if spec.kind == "document":
        lines = text.split("\n")
        cut = rng.randint(0, max(0, len(lines) - 1))
        doc = "# " + _word(rng, _ASCII_LOWER, 3, 12) + "\n" + "\n".join(lines[:cut]) \
            + "\n```python\n" + "\n".join(lines[cut:]) + "\n```\n"
        return [RenderItem("doc", "document", doc)]
    return [RenderItem("text", "text", text)]


def render_page(spec: PageSpec, rng: random.Random, text: str | None = None):
    """(page image at the spec's tier, line texts, line boxes) of one page of
    ``text`` (None: random text of the spec's source)."""
    from optical_memory.age.renditions import resample_png
    from optical_memory.fit.calibration import font_path
    from optical_memory.render import RenderConfig, Renderer

    cfg = RenderConfig(width=spec.width, height=spec.height, font_size=spec.font_size,
                       line_spacing=spec.line_spacing, margin=4, newline_mode=spec.newline_mode,
                       font_path=font_path(spec.font), hinting=spec.hinting)
    renderer = Renderer(cfg)
    n = int(spec.width * spec.height / (spec.font_size ** 2) * 0.9) + 50
    if text is None:
        if spec.source == "stdlib":
            text = _chunk(rng, stdlib_text(), n)
        elif spec.source == "pydoc":
            text = _chunk(rng, pydoc_text(), n)
        elif spec.source == "words":
            text = word_sentences(rng, n, tesseract_words("eng"), title=0.4)
        elif spec.source == "russian":
            text = (_chunk(rng, russian_man_text(), n) if rng.random() < 0.5 and
                    russian_man_text() else russian_sentences(rng, n))
        else:
            text = synthetic_text(rng, n)
        text = _with_unknowns(rng, text)
    if not text.strip():
        text = synthetic_text(rng, n)
    layouts = renderer.layout(_items(rng, spec, text))
    pl = layouts[0]
    page = renderer.draw(pl)
    lines = ["".join(f[1] for f in line) for line in pl.lines]
    boxes = layout_boxes(page.meta, (page.width, page.height)) or []
    if spec.scale == 1.0:
        return page.pixels, lines, boxes
    size = (max(8, round(spec.width * spec.scale)), max(8, round(spec.height * spec.scale)))
    from PIL import Image

    png = resample_png(page.to_png(), size)
    with Image.open(io.BytesIO(png)) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.uint8)
    boxes = layout_boxes(page.meta, size) or []
    return pixels, lines, boxes


def page_samples(spec: PageSpec, rng: random.Random, codec: Codec, *,
                 jitter: bool = True, text: str | None = None) -> list[LineSample]:
    """The lines of one page (:func:`render_page`), cropped as the reader
    crops them (``jitter``: with random shifts and margins, for training)."""
    pixels, lines, boxes = render_page(spec, rng, text)
    out: list[LineSample] = []
    for text, box in zip(lines, boxes):
        if not text.strip() or not is_trainable(text):
            continue
        right = ink_right(pixels, box)
        if right is None:
            continue
        if box.bottom > pixels.shape[0] + 0.5:
            continue
        if jitter:
            img = crop_line(pixels, LineBox(box.top, box.bottom, box.left + rng.uniform(-1, 1)),
                            right, v_pad=rng.uniform(0.1, 0.2),
                            left_pad=rng.uniform(0.1, 0.5), right_pad=rng.uniform(0.1, 0.6),
                            shift=rng.uniform(-0.08, 0.08), stretch=rng.uniform(0.92, 1.15))
        else:
            img = crop_line(pixels, box, right)
        out.append(LineSample(img, text.rstrip(), spec.scale))
    return out


def ctc_fits(ids: Sequence[int], frames: int) -> bool:
    need = len(ids) + sum(1 for a, b in itertools.pairwise(ids) if a == b)
    return 0 < need <= frames


# --------------------------------------------------------------------------
# held-out text


def license_text() -> str:
    root = Path("/usr/share/common-licenses")
    parts = []
    for f in sorted(root.iterdir()) if root.is_dir() else []:
        if f.is_file() and not f.is_symlink():
            parts.append(f.read_text(encoding="utf-8", errors="replace"))
    return "\n\n".join(parts)


def catalogue_text(lang: str, limit: int = 40_000) -> str:
    """Translated UI strings of the system's gettext catalogues for ``lang``
    (``/usr/share/locale/<lang>/LC_MESSAGES/*.mo``; strings over 20 characters
    without ``%`` placeholders, one per line, about ``limit`` characters; ""
    when there are none). Never training text: held out, or tuning material."""
    import gettext
    import glob

    out: list[str] = []
    for f in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            with open(f, "rb") as fh:
                cat = gettext.GNUTranslations(fh)
        except (OSError, ValueError):
            continue
        out += [v.strip() for v in cat._catalog.values()  # type: ignore[attr-defined]
                if isinstance(v, str) and len(v) > 20 and "%" not in v]
        if sum(map(len, out)) > limit:
            break
    return "\n".join(out)


def pil_code_text() -> str:
    import PIL

    root = Path(PIL.__file__).parent
    return "\n".join(f.read_text(encoding="utf-8") for f in sorted(root.glob("*.py")))


def chat_messages(seed: int, tokens: int = 6000) -> list[dict]:
    from optical_memory.conversation import generate_conversation

    return list(generate_conversation(tokens=tokens, seed=seed).messages)


__all__ = ["RECIPE", "TIER_SCALES", "LineSample", "PageSpec", "catalogue_text", "chat_messages",
           "ctc_fits",
           "license_text", "page_samples", "pil_code_text", "pydoc_text", "random_spec",
           "recipe_hash", "render_page", "stdlib_text", "synthetic_text"]
