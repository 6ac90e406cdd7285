"""Pages in their own scripts: detection, recorded scripts, decoder languages,
read-back of Russian / Japanese / Korean / Chinese pages, ``--lang auto``."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from optical_memory import OpticalMemory
from optical_memory.config import default_render_config
from optical_memory.decode import LineGrid, available_decoders, get_decoder, precision
from optical_memory.decode.languages import (
    first_pass_shares,
    page_options,
    page_shares,
    tesseract_languages,
    tesseract_options,
)
from optical_memory.errors import DependencyMissingError
from optical_memory.render import NEWLINE_MARKER, RenderConfig, Renderer
from optical_memory.scripts import (
    NEEDS_SHAPING,
    detect_scripts,
    han_variant,
    script_of,
    script_shares,
    shares_above,
    unsupported_scripts,
)

DATA = Path(__file__).parent / "data"
ZH = Path(__file__).parents[1] / "optical_memory" / "data" / "zh_prose.txt"


def _installed_langs() -> frozenset[str]:
    if available_decoders().get("tesseract") is not True:
        return frozenset()
    import shutil

    from optical_memory.decode.tesseract import _installed_languages

    return _installed_languages(shutil.which("tesseract"))


LANGS = _installed_langs()


def needs_lang(*langs: str):
    missing = [lang for lang in langs if lang not in LANGS]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"tesseract language pack(s) {missing} not installed "
               f"(apt-get install {' '.join('tesseract-ocr-' + m.replace('_', '-') for m in missing)}"
               "; scripts/setup.sh installs them)")


needs_rapidocr = pytest.mark.skipif(available_decoders().get("rapidocr") is not True,
                                    reason="rapidocr not installed")


def _prose(name: str, chars: int) -> str:
    path = ZH if name == "zh" else DATA / f"{name}_prose.txt"
    return path.read_text(encoding="utf-8")[:chars]


def _page(text: str, height: int = 256, **overrides):
    """A page at the memory's default layout (11 px, 1.1 em, marker mode), cut short."""
    cfg = replace(default_render_config("deepseek-ocr:base"), height=height, **overrides)
    return Renderer(cfg).render_text(text)[0]


def _strict(page, text: str) -> float:
    return precision(page.text, text, marker=NEWLINE_MARKER)


# --------------------------------------------------------------------------
# Detection (pure)


def test_script_of_characters():
    assert [script_of(c) for c in "aЖ中あア한αשم"] == [
        "latin", "cyrillic", "han", "hiragana", "katakana", "hangul", "greek", "hebrew", "arabic"]
    assert [script_of(c) for c in "1 ,。ー!\n"] == [None] * 7  # shared by every script
    assert script_of("é") == script_of("ß") == script_of("\u1ea1") == "latin"
    assert script_of("\U00020000") == "han" and script_of("\uff21") == "latin"


def test_detect_scripts_orders_by_frequency_and_ignores_strays():
    assert detect_scripts("Привет, мир! hello") == ("cyrillic", "latin")
    assert detect_scripts("hello world") == ("latin",)
    assert detect_scripts("") == () and detect_scripts("12 + 3 = 15 !?") == ()
    text = "The quick brown fox jumps over the lazy dog. " * 20 + "да"
    assert script_shares(text)["cyrillic"] < 0.01
    assert detect_scripts(text) == ("latin",)  # one stray word does not count
    assert detect_scripts(text, min_share=0.0) == ("latin", "cyrillic")
    assert detect_scripts("ж") == ("cyrillic",)  # the most frequent one always counts


def test_detect_scripts_japanese_korean_and_chinese_variants():
    assert set(detect_scripts(_prose("ja", 400))) == {"hiragana", "han", "katakana"}
    assert detect_scripts(_prose("ko", 400)) == ("hangul",)
    assert detect_scripts(_prose("zh", 400)) == ("han",)
    traditional = "我們這個國家的學生說話很有禮貌，時間過得真快，還記得開學那天。"
    assert han_variant(traditional) == "hant" and detect_scripts(traditional) == ("hant",)
    simplified = "我们这个国家的学生说话很有礼貌，时间过得真快，还记得开学那天。"
    assert detect_scripts(simplified) == ("han",)
    # Japanese kanji are never "hant", whatever forms they share with Chinese
    assert "hant" not in detect_scripts("東京の時間は長い。會話と學問。")


def test_script_shares_sum_to_one_and_match_counts():
    shares = script_shares("abc абв 中")
    assert shares == {"cyrillic": pytest.approx(3 / 7, abs=1e-4),
                      "latin": pytest.approx(3 / 7, abs=1e-4), "han": pytest.approx(1 / 7, abs=1e-4)}
    assert list(shares) == ["cyrillic", "latin", "han"]  # ties by name
    assert shares_above({"latin": 0.01, "han": 0.99}) == ("han",)
    assert shares_above({"latin": 0.5, "cyrillic": 0.5}) == ("cyrillic", "latin")


def test_unsupported_scripts_are_the_rtl_and_shaping_ones():
    assert unsupported_scripts("hello мир 中文 한국어") == ()
    assert unsupported_scripts("שלום and مرحبا and नमस्ते") == ("devanagari", "arabic", "hebrew")
    assert unsupported_scripts("a ก") == ("thai",)  # any character of them counts
    assert {"arabic", "hebrew", "devanagari"} <= NEEDS_SHAPING


# --------------------------------------------------------------------------
# Language selection


@pytest.mark.parametrize("shares, langs", [
    ({}, ["eng"]),
    ({"latin": 1.0}, ["eng"]),
    ({"cyrillic": 1.0}, ["rus"]),
    ({"cyrillic": 0.7, "latin": 0.3}, ["rus", "eng"]),
    ({"latin": 0.9, "cyrillic": 0.1}, ["eng", "rus"]),
    ({"latin": 0.99, "cyrillic": 0.01}, ["eng"]),           # below MIN_SHARE
    ({"han": 1.0}, ["chi_sim"]),
    ({"hant": 1.0}, ["chi_tra"]),
    ({"han": 0.6, "latin": 0.4}, ["chi_sim"]),              # chi_sim reads Latin; +eng hurts
    ({"latin": 0.9, "han": 0.1}, ["eng", "chi_sim"]),       # English page quoting Chinese
    ({"hiragana": 0.5, "han": 0.35, "katakana": 0.05, "latin": 0.1}, ["jpn"]),
    ({"han": 0.7, "hiragana": 0.3}, ["jpn"]),               # kana make Han Japanese
    ({"hangul": 1.0}, ["kor"]),
    ({"hangul": 0.95, "latin": 0.05}, ["kor"]),             # labels only: eng costs kor
    ({"hangul": 0.7, "latin": 0.3}, ["kor", "eng"]),        # much Latin: kor reads it poorly
    ({"greek": 0.8, "latin": 0.2}, ["ell", "eng"]),
    ({"hebrew": 1.0}, ["eng"]),                             # drawn unshaped: nothing better
])
def test_tesseract_languages_for_page_scripts(shares, langs):
    assert tesseract_languages(shares) == langs


def test_tesseract_options_upscale_cjk_more():
    assert tesseract_options({"cyrillic": 1.0}) == {"lang": "rus", "upscale_to": 2048,
                                                    "lang_fallback": True}
    assert tesseract_options({"hangul": 1.0})["upscale_to"] == 3072
    assert tesseract_options({"han": 1.0}, long_side=1280)["upscale_to"] == 3840


def test_page_options_from_a_rendered_page():
    page = _page("Съешь же ещё этих мягких французских булок, да выпей чаю. " * 4, height=128)
    assert list(page.meta["scripts"]) == ["cyrillic"]
    assert page_options("tesseract", page.meta) == {"lang": "rus", "upscale_to": 2048,
                                                    "lang_fallback": True}
    grid = page_options("rapidocr", page.meta)["line_grid"]
    assert (grid.top, grid.pitch, grid.height) == (4.0, pytest.approx(12.1), 128)
    assert page_options("openai", page.meta) == {}
    # pages stored before scripts were recorded: from their text, else Latin
    assert page_shares({}, "Привет") == {"cyrillic": 1.0}
    assert page_shares({}, None) == {}
    assert page_options("tesseract", {})["lang"] == "eng"


def test_first_pass_shares_see_through_cjk_garbage():
    assert first_pass_shares("ыва abc 中文字中文字 " + "garbage " * 10) == {"han": 1.0}
    assert first_pass_shares("한국어 텍스트 " + "xx " * 10) == {"hangul": 1.0}
    assert first_pass_shares("これは日本語 abc") == {"hiragana": 1.0}
    assert first_pass_shares("plain English, и немного по-русски") == {
        "latin": pytest.approx(12 / 28, abs=1e-3), "cyrillic": pytest.approx(16 / 28, abs=1e-3)}


def test_line_grid_rows_scale_with_the_image():
    grid = LineGrid(4.0, 12.1, 1024)
    rows = grid.rows(1024, pad=0.0)
    assert len(rows) == RenderConfig(font_size=11, line_spacing=1.1).lines_per_page == 83
    assert rows[0][:2] == (4, 17) and rows[1][:2] == (16, 29)
    half = grid.rows(512, pad=0.0)
    assert len(half) == 83 and half[10][0] == int((4 + 10 * 12.1) / 2)
    assert LineGrid.of_page({"margin": 4}) is None


@pytest.mark.skipif(available_decoders().get("tesseract") is not True,
                    reason="tesseract not installed")
def test_missing_pack_falls_back_with_a_warning_or_raises_when_named(caplog):
    from optical_memory.decode.tesseract import TesseractDecoder

    have = frozenset({"eng", "osd"})
    with caplog.at_level("WARNING", logger="optical_memory.decode.tesseract"):
        assert TesseractDecoder._installed("xx_test+eng", have, fallback=True) == "eng"
        assert TesseractDecoder._installed("xx_test", have, fallback=True) == "eng"
    assert "apt-get install tesseract-ocr-xx-test" in caplog.text
    with pytest.raises(DependencyMissingError, match="tesseract-ocr-xx-test"):
        TesseractDecoder._installed("xx_test", have, fallback=False)
    with pytest.raises(DependencyMissingError, match="apt-get install tesseract-ocr-zz-none"):
        get_decoder("tesseract", lang="zz_none")
    assert get_decoder("tesseract", lang="zz_none+eng", lang_fallback=True).lang == "eng"


# --------------------------------------------------------------------------
# Read-back in the page's own scripts


@needs_lang("rus")
def test_russian_page_reads_back_with_rus():
    page = _page(_prose("ru", 5000))
    assert next(iter(page.meta["scripts"])) == "cyrillic"
    today = get_decoder("tesseract").decode(page)  # "eng", what every page got before
    now = get_decoder("tesseract", **page_options("tesseract", page.meta)).decode(page)
    assert now.meta["lang"] == "rus"
    assert _strict(page, today.text) < 0.5
    assert _strict(page, now.text) >= 0.99


@needs_lang("jpn")
def test_japanese_page_reads_back_with_jpn():
    page = _page(_prose("ja", 1500), height=160)
    now = get_decoder("tesseract", **page_options("tesseract", page.meta)).decode(page)
    assert now.meta["lang"] == "jpn"
    assert _strict(page, now.text) >= 0.9  # eng reads it at ~0.0 (measured: 0.95 at 1024²)
    assert _strict(page, get_decoder("tesseract").decode(page).text) < 0.3


@needs_lang("kor")
def test_korean_page_reads_back_with_kor():
    page = _page(_prose("ko", 1200), height=160)
    now = get_decoder("tesseract", **page_options("tesseract", page.meta)).decode(page)
    assert now.meta["lang"] == "kor" and _strict(page, now.text) >= 0.95


@needs_rapidocr
def test_rapidocr_reads_a_dense_cjk_page_on_its_line_grid():
    page = _page(_prose("zh", 1200), height=96)
    grid = page_options("rapidocr", page.meta)["line_grid"]
    on_grid = get_decoder("rapidocr", line_grid=grid).decode(page.to_png())
    assert on_grid.meta["line_grid"] and _strict(page, on_grid.text) >= 0.97
    # the page as an aged tier (resampled to 640 wide, read upscaled): the grid scales
    aged = page.to_pil().resize((640, 60))
    read = get_decoder("rapidocr", line_grid=grid, upscale_to=1024).decode(aged)
    assert _strict(page, read.text) > 0.85


@needs_lang("rus")
def test_memory_decode_and_text_free_readback_use_the_page_scripts(tmp_path, uid):
    text = _prose("ru", 1500)
    with OpticalMemory(tmp_path / "m.db") as mem:
        res = mem.add_document(text, title="рынок", user_id=uid)
        rec = mem.get_page(res.page_ids[0], user_id=uid)
        assert rec.meta["scripts"]["cyrillic"] > 0.9  # recorded when the memory wrote it
        back = mem.decode(res.page_ids[0], user_id=uid)
        assert back.precision >= 0.99
    with OpticalMemory(tmp_path / "blind.db", keep_text=False) as blind:
        blind.add_document(text, user_id=uid)
        hits = blind.retrieve("пенсионеры", user_id=uid)  # found through the read-back
        assert hits and hits[0].page_id is not None


# --------------------------------------------------------------------------
# CLI


@needs_lang("rus", "jpn")
@pytest.mark.parametrize("name, lang", [("ru", "rus"), ("ja", "jpn")])
def test_cli_decode_lang_auto(tmp_path, name, lang):
    from optical_memory.cli import main

    page = Renderer(RenderConfig(width=512, height=160, font_size=12)).render_text(
        _prose(name, 600))[0]
    png, ref = tmp_path / "page.png", tmp_path / "page.txt"
    png.write_bytes(page.to_png())
    ref.write_text(page.text, encoding="utf-8")
    res = CliRunner().invoke(main, ["decode", str(png), "--lang", "auto", "--reference", str(ref),
                                    "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["pages"][0]["lang"] == lang
    assert out["precision"] >= 0.9
    eng = CliRunner().invoke(main, ["decode", str(png), "--decoder", "tesseract",
                                    "--reference", str(ref), "--json"])
    assert json.loads(eng.stdout)["precision"] < out["precision"] - 0.3


def test_cli_lang_is_a_tesseract_option(tmp_path):
    from optical_memory.cli import main

    png = tmp_path / "p.png"
    png.write_bytes(_page("hello", height=64).to_png())
    res = CliRunner().invoke(main, ["decode", str(png), "--decoder", "openai", "--lang", "auto"])
    assert res.exit_code != 0 and "tesseract option" in res.output
