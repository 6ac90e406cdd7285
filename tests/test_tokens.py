"""Text counters (offline BPE) and vision-token cost models."""
from __future__ import annotations

import gzip
import hashlib
import socket

import pytest

import optical_memory.tokens as tokens
from optical_memory.errors import InputError, UnknownTargetError, VocabularyError
from optical_memory.tokens import (
    DEFAULT_TARGET,
    DEFAULT_TOKENIZER,
    TextCounter,
    count_tokens,
    get_counter,
    get_target,
    list_targets,
)
from optical_memory.tokens.text import load_counter, load_ranks
from optical_memory.tokens.vision import gundam_grid


def test_public_api_is_pinned():
    assert sorted(tokens.__all__) == sorted(
        [
            "DEFAULT_TARGET",
            "DEFAULT_TOKENIZER",
            "TextCounter",
            "VisionTarget",
            "count_tokens",
            "get_counter",
            "get_target",
            "list_targets",
        ]
    )
    assert DEFAULT_TOKENIZER == "o200k_base"
    assert DEFAULT_TARGET == "deepseek-ocr:base"
    assert DEFAULT_TARGET in list_targets()


# ----------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("name", "ids"),
    [("o200k_base", [24912, 2375]), ("cl100k_base", [15339, 1917])],
)
def test_known_ids(name, ids):
    counter = get_counter(name)
    assert isinstance(counter, TextCounter)
    assert counter.name == name
    assert counter.encode("hello world") == ids
    assert counter.count("hello world") == 2
    assert counter.decode(ids) == "hello world"


def test_counter_is_cached_and_default():
    assert get_counter() is get_counter("o200k_base")
    assert count_tokens("hello world") == 2
    assert count_tokens("hello world", tokenizer="cl100k_base") == 2
    assert count_tokens("") == 0


def test_round_trip_and_special_token_text_is_plain_text():
    counter = get_counter()
    text = "Grüße, 世界! <|endoftext|> def f(x):\n    return x ** 2\n"
    assert counter.decode(counter.encode(text)) == text
    assert counter.count(text) == len(counter.encode(text))
    assert counter.count("<|endoftext|>") > 1  # counted as text, not the special id
    assert 199999 not in counter.encode("<|endoftext|>")


def test_unknown_tokenizer_lists_known_names():
    with pytest.raises(UnknownTargetError) as err:
        get_counter("gpt5_base")
    msg = str(err.value)
    assert "gpt5_base" in msg and "o200k_base" in msg and "cl100k_base" in msg
    with pytest.raises(KeyError):
        count_tokens("x", tokenizer="nope")


def test_builds_without_network(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: no cached BPE
    counter = load_counter("o200k_base")  # fresh, bypasses get_counter's cache
    assert counter is not get_counter("o200k_base")
    assert counter.encode("hello world") == [24912, 2375]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_pinned_specs_are_tiktokens_own(name, monkeypatch, tmp_path):
    """tiktoken builds its own encoding from the same verified file, offline
    (its documented cache folder: the file named by the sha1 of its URL), and
    the pattern, special tokens, ranks and ids agree with ours."""
    import tiktoken_ext.openai_public as openai_public

    import optical_memory.tokens.text as text_mod

    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    data = gzip.decompress(text_mod.vocabulary_path(name).read_bytes())
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(socket, "socket", lambda *a, **k: pytest.fail("network"))
    theirs = openai_public.ENCODING_CONSTRUCTORS[name]()
    ours = text_mod.ENCODING_SPECS[name]
    assert theirs["pat_str"] == ours["pat_str"]
    assert theirs["special_tokens"] == ours["special_tokens"]
    built = text_mod.build_encoding(name)
    assert built._mergeable_ranks == theirs["mergeable_ranks"]
    sample = "Grüße, 世界! def f(x):\n    return x ** 2  # 12345 'll've\r\n\t end"
    import tiktoken

    reference = tiktoken.Encoding(**theirs)
    assert built.encode_ordinary(sample) == reference.encode_ordinary(sample)


def test_counter_is_built_on_first_use_only():
    counter = TextCounter("o200k_base")
    assert counter.name == "o200k_base" and counter._built is None  # naming costs nothing
    assert counter.count("hello world") == 2 and counter._built is not None
    with pytest.raises(UnknownTargetError):
        TextCounter("p50k_base")


def test_hash_mismatch_names_both_hashes():
    data = b"aGVsbG8= 0\nd29ybGQ= 1\n"
    good = hashlib.sha256(data).hexdigest()
    assert load_ranks(data, good) == {b"hello": 0, b"world": 1}
    with pytest.raises(VocabularyError) as err:
        load_ranks(data, "0" * 64, source="test.tiktoken")
    assert "0" * 64 in str(err.value) and good in str(err.value)


def test_corrupt_vocabulary_file_is_rejected(monkeypatch, tmp_path):
    import optical_memory.tokens.text as text_mod

    bad = tmp_path / "o200k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(b"aGVsbG8= 0\n"))
    monkeypatch.setattr(text_mod, "vocabulary_path", lambda name: bad)
    with pytest.raises(VocabularyError, match="446a9538cb6c348e"):
        load_counter("o200k_base")


def test_one_megabyte_counts():
    # speed is measured by benchmarks/render_speed.py ("Token counting"), not here
    counter = get_counter()
    line = "The quick brown fox jumps over the lazy dog; 1234 + 5678 = 6912.\n"
    text = (line * 16000)[:1_000_000]
    n = counter.count(text)
    assert 150_000 < n < 400_000
    # counting is additive over whole lines here (each line ends in a newline)
    assert counter.count(line * 1000) == 1000 * counter.count(line)


# --------------------------------------------------------------- vision


def test_registry_and_unknown_target():
    names = list_targets()
    assert names == sorted(names)
    for expected in (
        "deepseek-ocr:tiny", "deepseek-ocr:small", "deepseek-ocr:base", "deepseek-ocr:large",
        "deepseek-ocr:tiny-raw", "deepseek-ocr:base-raw", "deepseek-ocr:gundam", "deepseek-ocr:gundam-raw",
        "openai:gpt-4o", "openai:gpt-4o-low", "openai:gpt-4.1", "openai:gpt-4.1-mini",
        "openai:gpt-4.1-nano", "openai:o4-mini", "anthropic:claude", "gemini", "qwen2.5-vl",
    ):
        assert expected in names
    with pytest.raises(UnknownTargetError) as err:
        get_target("deepseek-ocr:huge")
    assert "deepseek-ocr:huge" in str(err.value) and "deepseek-ocr:base" in str(err.value)


@pytest.mark.parametrize("name", list_targets())
def test_every_target_is_documented_and_page_is_native(name):
    target = get_target(name)
    assert target.name == name and target.family and target.description and target.source
    w, h = target.page_size
    assert target.page_tokens == target.tokens(w, h) > 0
    # The default page is processed without rescale: the renderer's pixels are
    # the model's pixels.
    assert target.seen_size(w, h) == (w, h)
    with pytest.raises(AttributeError):
        target.name = "other"  # frozen


@pytest.mark.parametrize(
    ("mode", "raw", "fed"),
    [("tiny", 64, 73), ("small", 100, 111), ("base", 256, 273), ("large", 400, 421)],
)
def test_deepseek_single_view_counts_do_not_depend_on_size(mode, raw, fed):
    for size in ((1024, 1024), (300, 2000), (3000, 500)):
        assert get_target(f"deepseek-ocr:{mode}").tokens(*size) == fed
        assert get_target(f"deepseek-ocr:{mode}-raw").tokens(*size) == raw


def test_deepseek_seen_size_pad_vs_stretch():
    assert get_target("deepseek-ocr:base").seen_size(800, 1600) == (512, 1024)  # letterboxed
    assert get_target("deepseek-ocr:large").seen_size(2000, 1000) == (1280, 640)
    assert get_target("deepseek-ocr:tiny").seen_size(800, 1600) == (512, 512)  # stretched
    assert get_target("deepseek-ocr:small").seen_size(100, 50) == (640, 640)


def test_gundam_grid_rule():
    assert gundam_grid(600, 640) == (1, 1)  # no side > 640: global view only
    assert gundam_grid(1240, 1754) == (2, 3)  # A4 portrait
    assert gundam_grid(1754, 1240) == (3, 2)
    assert gundam_grid(1280, 1280) == (2, 2)  # tie (2,2)/(3,3): area too small for 3×3
    assert gundam_grid(1920, 1920) == (3, 3)  # tie: area > half of 3×3 grid → larger
    assert gundam_grid(700, 4000) == (1, 6)
    assert gundam_grid(700, 4000, max_tiles=6) == (1, 6)
    assert gundam_grid(5000, 500, max_tiles=6) == (6, 1)


def test_gundam_tokens():
    fed, raw = get_target("deepseek-ocr:gundam"), get_target("deepseek-ocr:gundam-raw")
    # A4 portrait: 2×3 tiles → 273 + 600 + 30 = 903; raw 6·100 + 256 = 856.
    assert fed.tokens(1240, 1754) == 903
    assert raw.tokens(1240, 1754) == 856
    assert fed.seen_size(1240, 1754) == (1280, 1920)
    # Small page: global view only.
    assert fed.tokens(600, 400) == 273 and raw.tokens(600, 400) == 256
    assert fed.seen_size(600, 400) == (1024, 683)
    assert fed.tokens(1920, 1920) == 273 + 900 + 30


def test_openai_tile_worked_examples():
    high = get_target("openai:gpt-4o")
    assert high.tokens(1024, 1024) == 765
    assert high.seen_size(1024, 1024) == (768, 768)
    assert high.tokens(2048, 4096) == 1105
    assert high.seen_size(2048, 4096) == (768, 1536)
    assert high.tokens(512, 512) == 255
    assert high.tokens(100, 100) == 255  # never upscaled
    assert high.tokens(4096, 8192) == 1105  # fit in 2048 first
    assert get_target("openai:gpt-4.1").tokens(1024, 1024) == 765
    low = get_target("openai:gpt-4o-low")
    assert low.tokens(4096, 4096) == low.tokens(10, 10) == 85
    assert low.seen_size(2048, 1024) == (512, 256)


def test_openai_patch_worked_examples():
    mini = get_target("openai:gpt-4.1-mini")
    assert mini.rule.patches(1024, 1024) == 1024
    assert mini.tokens(1024, 1024) == 1659  # 1024 × 1.62
    assert mini.seen_size(1800, 2400) == (1056, 1408)
    assert mini.rule.patches(1800, 2400) == 1452
    assert mini.tokens(1800, 2400) == 2352  # 1452 × 1.62
    assert get_target("openai:gpt-4.1-nano").tokens(1024, 1024) == round(1024 * 2.46)
    assert get_target("openai:o4-mini").tokens(1024, 1024) == round(1024 * 1.72)
    # The cap holds for extreme shapes.
    for size in ((8000, 8000), (10000, 300), (300, 10000), (1025, 1537)):
        assert mini.rule.patches(*size) <= 1536


def test_anthropic_worked_examples():
    claude = get_target("anthropic:claude")
    assert claude.tokens(1092, 1092) == 1590
    assert claude.tokens(1000, 1000) == 1334
    assert claude.tokens(200, 200) == 54
    assert claude.seen_size(4000, 1000) == (1568, 392)  # long edge ≤ 1568
    big = claude.tokens(5000, 5000)
    assert 1590 <= big <= 1600  # capped near ~1,600 tokens


def test_gemini_tiles():
    gem = get_target("gemini")
    assert gem.tokens(384, 384) == 258
    assert gem.tokens(100, 300) == 258
    assert gem.tokens(1536, 1536) == 4 * 258  # 2×2 tiles of 768
    assert gem.tokens(2304, 1536) == 6 * 258
    # Vertex rule: tile side = min side / 1.5 (≥ 256): 768² → 512 tiles → 2×2.
    assert gem.tokens(768, 768) == 4 * 258
    assert gem.tokens(1000, 400) == 258 * 4 * 2  # unit 266


def test_qwen_smart_resize():
    qwen = get_target("qwen2.5-vl")
    assert qwen.seen_size(1024, 1024) == (1036, 1036)  # round(1024/28) = 37
    assert qwen.tokens(1024, 1024) == 37 * 37 + 2
    assert qwen.seen_size(1036, 1008) == (1036, 1008)
    assert qwen.seen_size(10, 10) == (56, 56)  # scaled up to min_pixels
    w, h = qwen.seen_size(10000, 10000)
    assert w % 28 == h % 28 == 0 and w * h <= 16384 * 28 * 28
    with pytest.raises(InputError, match="aspect"):
        qwen.tokens(10000, 10)


@pytest.mark.parametrize(
    "name", ["openai:gpt-4o", "openai:gpt-4.1-mini", "anthropic:claude", "qwen2.5-vl", "deepseek-ocr:gundam"]
)
def test_seen_size_is_a_fixed_point(name):
    target = get_target(name)
    for size in ((1800, 2400), (1024, 768), (3000, 900), (640, 700)):
        seen = target.seen_size(*size)
        assert target.seen_size(*seen) == seen
        assert target.tokens(*seen) == target.tokens(*size)


@pytest.mark.parametrize("bad", [(0, 10), (10, -1), (10.5, 10), ("10", 10)])
def test_bad_sizes_raise_input_error(bad):
    with pytest.raises(InputError) as err:
        get_target("deepseek-ocr:base").tokens(*bad)
    assert str(bad[0]) in str(err.value)
