"""Decoder settings for the scripts a page holds.

The renderer records each page's script shares (``Page.meta["scripts"]``,
:func:`optical_memory.scripts.script_shares`); :func:`page_options` turns
them into the options a decoder reads that page with, so a Russian page is
read with tesseract ``rus+eng`` and a Japanese one with ``jpn``, while the
memory itself never names a language.

Tesseract language choice (:func:`tesseract_languages`), measured on 1024²
pages at the memory's default layout (``benchmarks/fidelity_scripts.py``):

- One language per script (:data:`TESSERACT_LANGS`), those holding at least
  :data:`~optical_memory.scripts.MIN_SHARE` of the page's letters, joined
  with "+", the most frequent first: tesseract treats the first as the
  page's main language, and the order matters (an English page reads 0.980
  with ``eng+chi_sim``, 0.918 with ``chi_sim``).
- Kana make a page Japanese: its Han characters count toward ``jpn``.
- ``chi_sim``/``chi_tra``/``jpn`` read Latin themselves, and adding ``eng``
  costs them dearly (a page half Chinese, half English: ``chi_sim`` 0.908,
  ``chi_sim+eng`` 0.790, ``eng+chi_sim`` 0.62; Japanese with a third Latin:
  ``jpn`` 0.942, ``jpn+eng`` 0.848), so once one of them holds
  :data:`CJK_ALONE_SHARE` of the page it reads without ``eng``.
- ``kor`` reads Latin poorly (a page 31% Latin: ``kor`` 0.749, ``kor+eng``
  0.927) while ``eng`` costs pure Korean (0.980 → 0.918): ``eng`` joins a
  Korean page from :data:`KOR_LATIN_SHARE` of Latin on.
- ``rus`` next to ``eng`` is nearly free on an English page (0.980 → 0.973)
  and ``eng`` next to ``rus`` free on a Russian one (0.9999 / 0.9998).

Upscaling: pages are read at 2× (2048 for a 1024 page) as before, CJK pages
at 3×: dense 11 px Chinese reads 0.80 at 2×, 0.85 at 3× (Japanese 0.946 →
0.950, Korean unchanged).

Missing language packs: a page's languages are wishes, not orders. When a
pack is not installed the decoder reads without it and logs a warning once
naming the Debian package (``apt-get install tesseract-ocr-rus``); a
language the caller names explicitly (``lang="rus"``) raises
:class:`~optical_memory.errors.DependencyMissingError` naming it instead.

rapidocr reads pages the memory wrote line by line on the page's line grid
(:class:`~optical_memory.decode.base.LineGrid`): its text detector reads the
dense CJK grid of the default layout column-wise (Chinese 0.02), the
recognizer on the known lines reads it at 0.99. Its bundled model reads
Latin, Chinese and Japanese only: a page holding other scripts is read
anyway, with a warning.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from optical_memory.scripts import MIN_SHARE, script_shares

logger = logging.getLogger(__name__)

#: Tesseract language (traineddata) reading each script.
TESSERACT_LANGS: dict[str, str] = {
    "latin": "eng", "cyrillic": "rus", "greek": "ell", "armenian": "hye", "georgian": "kat",
    "ethiopic": "amh", "han": "chi_sim", "hant": "chi_tra", "bopomofo": "chi_tra",
    "hiragana": "jpn", "katakana": "jpn", "hangul": "kor",
}
#: Languages written without spaces between words (their read-back drops the
#: spaces tesseract puts between ideographs / kana).
UNSPACED_LANGS = frozenset({"chi_sim", "chi_tra", "jpn"})
#: Languages of dense ideographic pages (read at :data:`CJK_UPSCALE` × the page).
CJK_LANGS = frozenset({*UNSPACED_LANGS, "kor"})
#: A Chinese or Japanese language holding this share of a page reads it without "eng".
CJK_ALONE_SHARE = 0.30
#: Latin share from which "eng" joins "kor" on a Korean page.
KOR_LATIN_SHARE = 0.08
#: Upscale factors (× the image's long side) for Latin-like and CJK pages.
UPSCALE = 2
CJK_UPSCALE = 3
#: ``lang="auto"``: the first pass reads with these (the installed ones), CJK
#: first: a CJK language first still reads Latin and Cyrillic, "eng" first
#: reads CJK as Latin garbage.
AUTO_FIRST_PASS = ("chi_sim", "jpn", "kor", "rus", "eng")
#: Share of CJK letters in a first pass that decides the page is CJK (a
#: first pass on a CJK page also yields Latin and Cyrillic garbage).
CJK_EVIDENCE = 0.05
#: Scripts rapidocr's bundled model reads.
RAPIDOCR_SCRIPTS = frozenset({"latin", "han", "hant", "hiragana", "katakana"})


def debian_package(lang: str) -> str:
    """Debian package holding a traineddata: "chi_sim" → "tesseract-ocr-chi-sim"."""
    return "tesseract-ocr-" + lang.lower().replace("_", "-")


def _ranked(shares: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(((k, float(v)) for k, v in shares.items()), key=lambda kv: (-kv[1], kv[0]))


def tesseract_languages(shares: Mapping[str, float]) -> list[str]:
    """Tesseract languages for a page with these script ``shares``, main one
    first (the rules are in the module docstring); ``["eng"]`` for a page
    without letters."""
    kana = shares.get("hiragana", 0.0) + shares.get("katakana", 0.0)
    japanese = kana >= MIN_SHARE
    by_lang: dict[str, float] = {}
    for script, share in _ranked(shares):
        lang = "jpn" if japanese and script in ("han", "hant") else TESSERACT_LANGS.get(script)
        if lang is not None:
            by_lang[lang] = by_lang.get(lang, 0.0) + share
    ranked = _ranked(by_lang)
    langs = [lang for i, (lang, share) in enumerate(ranked) if i == 0 or share >= MIN_SHARE]
    if not langs:
        return ["eng"]
    latin = by_lang.get("eng", 0.0)
    for lang, share in ranked:
        if lang in UNSPACED_LANGS and share >= CJK_ALONE_SHARE:
            langs = [lang, *(x for x in langs if x not in (lang, "eng"))]
            break
        if lang == "kor" and share >= CJK_ALONE_SHARE:
            keep_eng = latin >= KOR_LATIN_SHARE
            langs = [lang, *(x for x in langs if x != lang and (keep_eng or x != "eng"))]
            break
    return langs


def upscale_for(langs: Iterable[str], long_side: int = 1024) -> int:
    """The long side tesseract reads a ``long_side`` px page at."""
    cjk = any(lang in CJK_LANGS for lang in langs)
    return (CJK_UPSCALE if cjk else UPSCALE) * long_side


def tesseract_options(shares: Mapping[str, float], long_side: int = 1024) -> dict[str, Any]:
    """Tesseract options for a page with script ``shares`` (``long_side``:
    the page's master size; an aged tier is read upscaled from it)."""
    langs = tesseract_languages(shares)
    return {"lang": "+".join(langs), "upscale_to": upscale_for(langs, long_side),
            "lang_fallback": True}


def first_pass_shares(text: str) -> dict[str, float]:
    """Script shares of a ``lang="auto"`` first pass, cleaned of its garbage:
    when CJK letters hold :data:`CJK_EVIDENCE` of it the page is that CJK
    script alone (Korean, Japanese, then Chinese, by evidence); else the
    non-CJK scripts read."""
    shares = script_shares(text)
    hangul = shares.get("hangul", 0.0)
    kana = shares.get("hiragana", 0.0) + shares.get("katakana", 0.0)
    han_script = "hant" if "hant" in shares else "han"
    han = shares.get(han_script, 0.0)
    if hangul >= CJK_EVIDENCE and hangul >= kana:
        return {"hangul": 1.0}
    if kana >= CJK_EVIDENCE:
        return {"hiragana": 1.0}
    if han >= CJK_EVIDENCE:
        return {han_script: 1.0}
    cjk = {"hangul", "hiragana", "katakana", "han", "hant", "bopomofo"}
    rest = {s: v for s, v in shares.items() if s not in cjk}
    total = sum(rest.values())
    return {s: round(v / total, 4) for s, v in rest.items()} if total else {}


def page_shares(meta: Mapping[str, Any], text: str | None = None) -> dict[str, float]:
    """A stored page's script shares: its ``meta["scripts"]``, else (pages
    written before scripts were recorded) those of ``text`` when known, else
    ``{}`` (read as Latin)."""
    raw = meta.get("scripts") if isinstance(meta, Mapping) else None
    if isinstance(raw, Mapping):
        return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}
    return script_shares(text) if text else {}


def _long_side(meta: Mapping[str, Any]) -> int:
    try:
        return max(int(meta["width"]), int(meta["height"]))
    except (KeyError, TypeError, ValueError):
        return 1024


_WARNED: set[tuple[str, ...]] = set()


def _warn_once(key: tuple[str, ...], msg: str, *args: Any) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(msg, *args)


def page_options(decoder: str, meta: Mapping[str, Any], text: str | None = None, *,
                 shares: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Options ``decoder`` reads a stored or rendered page with, from the
    page's meta (its scripts, and its line grid for rapidocr); ``text``: its
    text, for pages that predate recorded scripts; ``shares``: the page's
    :func:`page_shares` when the caller has them already."""
    from optical_memory.decode.base import LineGrid

    shares = page_shares(meta, text) if shares is None else shares
    if decoder == "tesseract":
        return tesseract_options(shares, _long_side(meta))
    if decoder == "rapidocr":
        unread = sorted(s for s, v in shares.items()
                        if v >= MIN_SHARE and s not in RAPIDOCR_SCRIPTS)
        if unread:
            _warn_once(("rapidocr", *unread),
                       "rapidocr's bundled model does not read %s text; such pages read back "
                       "poorly (use decoder='tesseract' with its language packs)",
                       ", ".join(unread))
        grid = LineGrid.of_page(meta)
        return {"line_grid": grid} if grid is not None else {}
    return {}


__all__ = ["AUTO_FIRST_PASS", "CJK_ALONE_SHARE", "CJK_EVIDENCE", "CJK_LANGS",
           "KOR_LATIN_SHARE", "RAPIDOCR_SCRIPTS", "TESSERACT_LANGS", "UNSPACED_LANGS",
           "debian_package", "first_pass_shares", "page_options", "page_shares",
           "tesseract_languages", "tesseract_options", "upscale_for"]
