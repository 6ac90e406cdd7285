"""Decoders: coercion, registry, tesseract, rapidocr, the OpenAI-compatible
client (against a local stub), metrics and decode_many.

Test images are drawn here with PIL so these tests do not depend on the
renderer.
"""
from __future__ import annotations

import base64
import io
import shutil
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from stub_openai import StubOpenAI

from optical_memory.decode import (
    Decoder,
    DecodeResult,
    available_decoders,
    cer,
    coerce_image,
    decode_many,
    decoder_names,
    edit_distance,
    get_decoder,
    normalize_whitespace,
    precision,
    upscale,
)
from optical_memory.decode.openai_compat import OpenAICompatDecoder
from optical_memory.decode.rapidocr import boxes_to_lines
from optical_memory.errors import (
    DecodeError,
    DependencyMissingError,
    InputError,
    UnknownTargetError,
)
from optical_memory.types import Page

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PARAGRAPH = (
    "Optical memory keeps old agent context as page images. A vision model\n"
    "reads each page with far fewer tokens than the text it holds, and every\n"
    "page can be decoded back to text to prove the pixels still hold it.\n"
    "The quick brown fox jumps over the lazy dog; pack my box with five\n"
    "dozen liquor jugs. Numbers too: 1024 pixels, 14 px fonts, 0.98 precision."
)

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="tesseract binary not installed (apt-get install tesseract-ocr tesseract-ocr-eng)",
)
needs_rapidocr = pytest.mark.skipif(
    available_decoders().get("rapidocr") is not True,
    reason="rapidocr/onnxruntime not installed (pip install 'optical-memory[rapidocr]')",
)


def draw_text(text: str, size: int = 14, width: int = 1024, margin: int = 12) -> np.ndarray:
    """Black text on white, one line per "\\n"; returns uint8 [H, W]."""
    font = ImageFont.truetype(FONT_PATH, size)
    lines = text.split("\n")
    step = round(size * 1.4)
    img = Image.new("L", (width, 2 * margin + step * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * step), line, fill=0, font=font)
    return np.asarray(img)


@pytest.fixture(scope="module")
def paragraph_pixels() -> np.ndarray:
    return draw_text(PARAGRAPH)


# --------------------------------------------------------------------------
# Metrics (hand-computed values)


def test_normalize_whitespace():
    assert normalize_whitespace("  a \n\n b\t\tc  ") == "a b c"
    assert normalize_whitespace("\n \t") == ""


def test_marker_whitespace_scores_like_a_line_break():
    # in break mode "a \n  b" and "a b" are equal; with the marker drawn for
    # the newline, the spaces around it do not count either, the marker does
    assert normalize_whitespace("a » »  b", marker="»") == "a»»b"
    assert precision("end.»»Next", "end.» »Next", marker="»") == 1.0
    assert precision("end.»»Next", "end.» »Next") < 1.0  # without the marker rule
    assert precision("for»the", "forethe", marker="»") == pytest.approx(1 - 1 / 7)
    assert precision("a»b", "a b", marker="»") == pytest.approx(1 - 1 / 3)  # the marker must be read


def test_precision_hand_values():
    assert precision("", "") == 1.0
    assert precision("abc", "") == 0.0
    assert precision("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert precision("abcd", "abed") == pytest.approx(0.75)
    # whitespace/layout does not count after normalisation
    assert precision("hello\nworld", "hello   world ") == 1.0
    assert precision("hello\nworld", "hello world", normalize=False) == pytest.approx(1 - 1 / 11)
    assert edit_distance("kitten", "sitting") == 3


def test_cer_hand_values():
    assert cer("", "") == 0.0
    assert cer("", "x") == 1.0
    assert cer("abcd", "abed") == pytest.approx(0.25)
    assert cer("ab", "abcdef") == pytest.approx(2.0)


# --------------------------------------------------------------------------
# Coercion and upscaling


def test_coerce_every_input_kind(tmp_path, paragraph_pixels):
    arr = paragraph_pixels
    pil = Image.fromarray(arr)
    png = io.BytesIO()
    pil.save(png, format="PNG")
    jpeg = io.BytesIO()
    pil.save(jpeg, format="JPEG", quality=95)
    path = tmp_path / "page.png"
    path.write_bytes(png.getvalue())
    page = Page(pixels=arr, text=PARAGRAPH, spans=(), font_size=14)
    rgba = Image.fromarray(np.dstack([arr] * 3 + [np.full_like(arr, 255)]))

    inputs = {
        "page": page,
        "array": arr,
        "array_rgb": np.dstack([arr] * 3),
        "pil": pil,
        "pil_rgba": rgba,
        "png_bytes": png.getvalue(),
        "jpeg_bytes": jpeg.getvalue(),
        "path": path,
        "str_path": str(path),
    }
    for kind, value in inputs.items():
        img = coerce_image(value)
        assert img.mode in ("L", "RGB"), kind
        assert img.size == (arr.shape[1], arr.shape[0]), kind
        gray = np.asarray(img.convert("L"), dtype=np.int16)
        tol = 40 if kind == "jpeg_bytes" else 0
        assert np.abs(gray - arr).max() <= tol, kind


def test_coerce_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match="not found"):
        coerce_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="cannot decode image bytes"):
        coerce_image(b"not an image")
    with pytest.raises(InputError, match="uint8"):
        coerce_image(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(InputError, match="shape"):
        coerce_image(np.zeros((4, 4, 5), dtype=np.uint8))
    with pytest.raises(InputError, match="got int"):
        coerce_image(42)


def test_upscale_long_side():
    img = Image.new("L", (512, 256), 255)
    big, scale = upscale(img, 1024)
    assert big.size == (1024, 512) and scale == 2.0
    same, scale = upscale(Image.new("L", (1024, 300), 255), 1024)
    assert same.size == (1024, 300) and scale == 1.0
    assert upscale(img, None)[0] is img
    with pytest.raises(InputError):
        upscale(img, 0)


# --------------------------------------------------------------------------
# Registry


def test_unknown_decoder_lists_names():
    with pytest.raises(UnknownTargetError) as info:
        get_decoder("no-such-ocr")
    msg = str(info.value)
    assert "no-such-ocr" in msg
    for name in ("tesseract", "rapidocr", "openai"):
        assert name in msg


def test_unknown_option_is_input_error():
    with pytest.raises(InputError, match=r"'colour'.*known: .*base_url"):
        get_decoder("openai", model="m", colour="blue")


def test_available_decoders_reports_each():
    avail = available_decoders()
    assert set(avail) == set(decoder_names()) >= {"tesseract", "rapidocr", "openai"}
    for value in avail.values():
        assert value is True or (isinstance(value, str) and value)


def test_missing_tesseract_binary():
    with pytest.raises(DependencyMissingError, match="apt-get install tesseract-ocr"):
        get_decoder("tesseract", tesseract_cmd="/nonexistent/bin/tesseract")


@needs_tesseract
def test_missing_tesseract_language_names_package():
    with pytest.raises(DependencyMissingError, match="tesseract-ocr-xx-yy"):
        get_decoder("tesseract", lang="xx_yy+eng")


# --------------------------------------------------------------------------
# Tesseract


@needs_tesseract
def test_tesseract_reads_paragraph(paragraph_pixels):
    decoder = get_decoder("tesseract")
    assert isinstance(decoder, Decoder)
    result = decoder.decode(paragraph_pixels)
    assert isinstance(result, DecodeResult)
    assert result.decoder == "tesseract" and result.seconds > 0
    assert precision(PARAGRAPH, result.text) >= 0.98, result.text
    # line structure kept (tesseract may add a blank line at a paragraph
    # break), no trailing whitespace
    lines = [line for line in result.text.split("\n") if line]
    assert len(lines) == len(PARAGRAPH.split("\n"))
    assert all(line == line.rstrip() for line in result.text.split("\n"))


@needs_tesseract
def test_tesseract_blank_page_reads_empty():
    blank = np.full((1024, 1024), 255, dtype=np.uint8)
    assert get_decoder("tesseract").decode(blank).text == ""


@needs_tesseract
def test_tesseract_upscales_aged_page(paragraph_pixels):
    """A page resampled to half size reads back after upscaling to 1024."""
    src = Image.fromarray(paragraph_pixels)
    small = src.resize((src.width // 2, src.height // 2), Image.Resampling.LANCZOS)
    result = get_decoder("tesseract", upscale_to=1024).decode(small)
    assert result.meta["scale"] == pytest.approx(2.0)
    assert result.meta["size"] == small.size
    assert precision(PARAGRAPH, result.text) >= 0.95, result.text


# --------------------------------------------------------------------------
# RapidOCR


def test_boxes_to_lines_reading_order():
    def box(x0, y0, x1, y1):
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    boxes = [box(300, 52, 400, 70), box(10, 10, 200, 28), box(10, 50, 290, 70), box(203, 11, 260, 29)]
    texts = ["right", "first", "second", "line"]
    # "first" and "line" 3 px apart on a 19 px line: no space; 10 px gap: space.
    assert boxes_to_lines(boxes, texts) == ["firstline", "second right"]
    assert boxes_to_lines([], []) == []


@needs_rapidocr
def test_rapidocr_reads_short_line():
    text = "Optical memory reads pages back 2024"
    result = get_decoder("rapidocr").decode(draw_text(text, size=20, width=600))
    assert result.decoder == "rapidocr"
    assert precision(text, result.text) >= 0.9, result.text
    assert get_decoder("rapidocr").decode(np.full((200, 600), 255, np.uint8)).text == ""


# --------------------------------------------------------------------------
# decode_many


@needs_tesseract
def test_decode_many_keeps_order_with_two_workers():
    words = ["alpha one", "bravo two", "charlie three", "delta four"]
    images = [draw_text(w, size=28, width=400) for w in words]
    seen = []
    results = decode_many(images, "tesseract", workers=2, progress=lambda d, t: seen.append((d, t)))
    assert [r.text for r in results] == words
    assert seen[0] == (0, 4) and seen[-1] == (4, 4) and len(seen) == 5


@needs_tesseract
def test_decode_many_in_process_and_errors():
    images = [draw_text("one", size=28, width=300), draw_text("two", size=28, width=300)]
    assert [r.text for r in decode_many(images, "tesseract", workers=1)] == ["one", "two"]
    assert decode_many([], workers=2) == []
    with pytest.raises(UnknownTargetError):
        decode_many(images, "nope")
    with pytest.raises(InputError):
        decode_many(images, workers=0)


# --------------------------------------------------------------------------
# OpenAI-compatible endpoint (local stub)


def _data_url_png(body: dict, position: int) -> bytes:
    part = body["messages"][0]["content"][position]
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return base64.b64decode(url[len(prefix):])


def test_openai_deepseek_preset_request_shape(paragraph_pixels):
    with StubOpenAI(reply_text="Optical memory keeps\nold context.  \n<｜end▁of▁sentence｜>") as stub:
        decoder = get_decoder("openai", base_url=stub.base_url, api_key="", preset="deepseek-ocr")
        result = decoder.decode(paragraph_pixels)

    assert result.text == "Optical memory keeps\nold context."
    assert result.decoder == "openai"
    assert result.meta["usage"]["completion_tokens"] == 12
    assert result.meta["finish_reason"] == "stop"
    (req,) = stub.requests
    assert req["path"] == "/v1/chat/completions"
    assert "Authorization" not in req["headers"]
    body = req["body"]
    assert body["model"] == "deepseek-ai/DeepSeek-OCR"
    assert body["temperature"] == 0
    assert "max_tokens" not in body
    content = body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url", "text"]  # image first
    assert content[1]["text"] == "Free OCR."
    png = _data_url_png(body, 0)
    sent = np.asarray(Image.open(io.BytesIO(png)))
    assert np.array_equal(sent, paragraph_pixels)  # stored pixels, not upscaled
    assert body["skip_special_tokens"] is False
    assert body["vllm_xargs"] == {
        "ngram_size": 30,
        "window_size": 90,
        "whitelist_token_ids": [128821, 128822],
    }


def test_openai_generic_options(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    pixels = draw_text("hi", size=20, width=100)
    with StubOpenAI(reply_text="hi") as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        decoder = OpenAICompatDecoder(
            model="qwen-vl",
            prompt="Read it.",
            image_first=False,
            max_tokens=64,
            extra_body={"vllm_xargs": {"seed": 1}},
        )
        assert decoder.decode(pixels).text == "hi"
    body = stub.requests[0]["body"]
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer sk-test"
    assert body["model"] == "qwen-vl" and body["max_tokens"] == 64
    assert [p["type"] for p in body["messages"][0]["content"]] == ["text", "image_url"]
    assert body["messages"][0]["content"][0]["text"] == "Read it."
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(_data_url_png(body, 1)))), pixels)
    assert body["vllm_xargs"] == {"seed": 1} and "skip_special_tokens" not in body


def test_openai_http_error_is_decode_error():
    with StubOpenAI(status=400, error_body='{"error": {"message": "max_tokens too large"}}') as stub:
        decoder = get_decoder("openai", base_url=stub.base_url, model="m")
        with pytest.raises(DecodeError, match=r"HTTP 400 .*max_tokens too large"):
            decoder.decode(draw_text("x", width=50))


def test_openai_retries_5xx_and_429_then_succeeds():
    # two retryable failures (503, then 429 with Retry-After: 0), then the reply
    with StubOpenAI(reply_text="third time lucky", statuses=[503, 429], retry_after="0") as stub:
        decoder = get_decoder("openai", base_url=stub.base_url, model="m", backoff=0.01)
        result = decoder.decode(draw_text("x", width=50))
    assert result.text == "third time lucky"
    assert len(stub.requests) == 3


def test_openai_gives_up_after_max_retries_and_never_retries_a_4xx():
    with StubOpenAI(statuses=[500, 502, 503, 504]) as stub:
        decoder = get_decoder("openai", base_url=stub.base_url, model="m", max_retries=2,
                              backoff=0.01)
        with pytest.raises(DecodeError, match=r"HTTP 503 .*\(3 tries\)"):
            decoder.decode(draw_text("x", width=50))
    assert len(stub.requests) == 3
    with StubOpenAI(status=401) as stub:
        decoder = get_decoder("openai", base_url=stub.base_url, model="m", backoff=0.01)
        with pytest.raises(DecodeError, match="HTTP 401"):
            decoder.decode(draw_text("x", width=50))
    assert len(stub.requests) == 1  # a client error is not retried


def test_openai_timeout_is_retried_then_a_decode_error():
    with StubOpenAI(reply_text="late", delay=1.0) as stub:
        decoder = get_decoder("openai", base_url=stub.base_url, model="m", timeout=0.2,
                              max_retries=1, backoff=0.01)
        t0 = time.perf_counter()
        with pytest.raises(DecodeError, match=r"no reply .* within 0.2 s \(2 tries\)"):
            decoder.decode(draw_text("x", width=50))
        assert time.perf_counter() - t0 < 5
    assert len(stub.requests) == 2
    for bad in ({"timeout": 0}, {"max_retries": -1}, {"backoff": -1.0}):
        with pytest.raises(InputError):
            get_decoder("openai", base_url="http://127.0.0.1:9/v1", model="m", **bad)


def test_openai_unreachable_and_bad_config(monkeypatch):
    with StubOpenAI() as stub:
        url = stub.base_url
    decoder = get_decoder("openai", base_url=url, model="m", timeout=5)
    with pytest.raises(DecodeError, match=r"cannot reach|no reply"):
        decoder.decode(draw_text("x", width=50))
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(InputError, match="needs a model"):
        get_decoder("openai", base_url=url)
    with pytest.raises(InputError, match="unknown preset"):
        get_decoder("openai", base_url=url, preset="nope")
