"""DeepEncoder: token geometry, attention pieces, full-size key manifest, loading."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from optical_memory.encoder import (  # noqa: E402
    DeepEncoder,
    DeepEncoderConfig,
    SamConfig,
    build_deep_encoder,
    sam as sam_module,
    token_layout,
)
from optical_memory.encoder.allocator import tune_cpu_allocator  # noqa: E402
from optical_memory.encoder.clip import resize_clip_pos  # noqa: E402
from optical_memory.encoder.common import (  # noqa: E402
    attention,
    eager_attention,
    folded_rel_pos_attention,
    scratch,
    scratch_buffers,
)
from optical_memory.encoder.preprocess import (  # noqa: E402
    PAD_COLOR,
    candidate_grids,
    choose_grid,
    prepare,
)
from optical_memory.encoder.sam import (  # noqa: E402
    add_decomposed_rel_pos,
    expand_rel_pos,
    get_rel_pos,
    resize_abs_pos,
    window_partition,
    window_unpartition,
)
from optical_memory.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    InputError,
    UnknownTargetError,
)
from optical_memory.types import Page  # noqa: E402

MANIFEST = Path(__file__).parent / "data" / "deepencoder_manifest.json"
A4 = (1240, 1754)  # portrait A4 at 150 dpi, (width, height)


@pytest.fixture(scope="module")
def tiny():
    return DeepEncoder.from_config(DeepEncoderConfig.tiny(), seed=0)


def _page(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width), dtype=np.uint8)


# --------------------------------------------------------------- packaging


def test_import_optical_memory_does_not_import_torch():
    code = "import sys, optical_memory; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_encoder_without_torch_names_the_extra():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from optical_memory.errors import DependencyMissingError\n"
        "try:\n    import optical_memory.encoder\n"
        "except DependencyMissingError as e:\n    print(e); sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pip install 'optical-memory[encoder]'" in out.stdout


# ---------------------------------------------------------- token geometry


@pytest.mark.parametrize(
    "mode, tokens, vision", [("tiny", 73, 64), ("small", 111, 100), ("base", 273, 256), ("large", 421, 400)]
)
def test_layout_counts_per_mode(mode, tokens, vision):
    layout = token_layout(*A4, mode)
    assert (layout.num_tokens, layout.num_vision_tokens, layout.num_tiles) == (tokens, vision, 0)


def test_gundam_portrait_a4_is_2x3_tiles_903_tokens():
    layout = token_layout(*A4, "gundam")
    assert layout.tiles == (2, 3) and layout.tile_grid == 10
    assert layout.num_tokens == 903
    n, rows = layout.num_tiles, layout.tiles[1]
    assert layout.num_tokens == 273 + 100 * n + 10 * rows
    assert layout.num_vision_tokens == 256 + 100 * n


@pytest.mark.parametrize(
    "size, grid",
    [((600, 640), None), ((1280, 640), (2, 1)), ((640, 1280), (1, 2)), ((3000, 1000), (3, 1)),
     ((1920, 1920), (3, 3)), ((1000, 1000), (2, 2))],
)
def test_gundam_grid_choice(size, grid):
    assert choose_grid(*size, "gundam") == grid


def test_gundam_candidates_and_cap():
    grids = candidate_grids(2, 9)
    assert all(2 <= c * r <= 9 for c, r in grids) and (3, 3) in grids and (1, 9) in grids
    assert [c * r for c, r in grids] == sorted(c * r for c, r in grids)
    assert max(c * r for c, r in candidate_grids(2, 6)) == 6


def test_valid_tokens_for_padded_modes():
    assert token_layout(*A4, "base").num_valid_tokens == int(np.ceil(256 * 1240 / 1754))
    assert token_layout(*A4, "tiny").num_valid_tokens is None


def test_unknown_mode():
    with pytest.raises(UnknownTargetError, match="known: tiny, small, base, large, gundam"):
        token_layout(100, 100, "huge")


@pytest.mark.parametrize("mode, n", [("tiny", 73), ("small", 111), ("base", 273)])
def test_tiny_encoder_token_counts(tiny, mode, n):
    out = tiny.encode(_page(*A4), mode)
    assert out[0].shape == (n, 48) and out.layouts[0].num_tokens == n


@pytest.mark.parametrize("mode, n", [("large", 421), ("gundam", 903)])
def test_tiny_encoder_token_counts_big_views(tiny, mode, n):
    out = tiny.encode(_page(*A4), mode)
    assert out[0].shape == (n, 48)


def test_layout_places_newlines_and_separator(tiny):
    out = tiny.encode(_page(700, 1400), "gundam")  # 1×2 tiles → 20×10 mosaic
    layout, emb = out.layouts[0], out[0]
    assert layout.tiles == (1, 2)
    rows, cols = layout.mosaic_shape
    newline, sep = tiny.image_newline, tiny.view_seperator
    mosaic = emb[: rows * (cols + 1)].view(rows, cols + 1, -1)
    assert torch.equal(mosaic[:, -1], newline.expand(rows, -1))
    g = layout.global_grid
    glob = emb[rows * (cols + 1) : -1].view(g, g + 1, -1)
    assert torch.equal(glob[:, -1], newline.expand(g, -1))
    assert torch.equal(emb[-1], sep)
    # the global rows are the forward pass of the padded global view
    prepared = prepare(_page(700, 1400), "gundam")
    direct = tiny(torch.from_numpy(prepared.global_view[None]))[0]
    torch.testing.assert_close(glob[:, :-1].reshape(g * g, -1), direct)
    # tile (row 1, col 0) lands in mosaic rows q..2q
    q = layout.tile_grid
    tile1 = tiny(torch.from_numpy(prepared.tiles[1:2]))[0].view(q, q, -1)
    torch.testing.assert_close(mosaic[q : 2 * q, :q], tile1)


def test_batch_equals_one_by_one(tiny):
    pages = [_page(*A4, seed=1), _page(500, 300, seed=2), _page(800, 800, seed=3)]
    batched = tiny.encode(pages, "small", batch_size=2)
    for page, emb in zip(pages, batched):
        torch.testing.assert_close(emb, tiny.encode(page, "small")[0], atol=1e-5, rtol=1e-5)
    gundam = tiny.encode(pages, "gundam", batch_size=4)
    assert gundam.num_tokens == [903, 273, 273 + 400 + 20]  # 800² → 2×2 tiles


@pytest.mark.slow
def test_compiled_encoder_pads_the_last_batch():
    # nn.Module.compile(): every forward gets the compiled batch shape (3 pages,
    # batch 2 → the second batch is padded to 2 and cut back), same tokens
    enc = DeepEncoder.from_config(DeepEncoderConfig.tiny(), seed=5)
    pages = [_page(300, 300, seed=s) for s in (1, 2, 3)]
    eager = enc.encode(pages, "tiny", batch_size=2)
    shapes = []
    hook = enc.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    try:
        enc.compile(dynamic=False)
        compiled = enc.encode(pages, "tiny", batch_size=2)
    finally:
        hook.remove()
    assert [s[0] for s in shapes] == [2, 2]
    assert len(compiled) == 3
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_compiled_cpu_sdpa_forward_has_no_graph_break():
    # the CPU mask path (scratch buffer, chunked masks) traces as one graph
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    enc = DeepEncoder.from_config(DeepEncoderConfig.tiny(), seed=6, attn_impl="sdpa")
    x = torch.randn(1, 3, 640, 640)
    with torch.inference_mode():
        eager = enc(x)
        compiled = torch.compile(enc, dynamic=False)(x)
    assert dict(counters["graph_break"]) == {}
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------ preprocessing


def test_preprocess_inputs_and_normalisation():
    gray = _page(300, 200)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    page = Page(pixels=gray, text="", spans=(), font_size=10.0)
    views = [prepare(x, "base").global_view for x in (gray, rgb, Image.fromarray(gray), page)]
    for v in views[1:]:
        np.testing.assert_array_equal(v, views[0])
    v = views[0]
    assert v.shape == (3, 1024, 1024) and v.dtype == np.float32
    pad = (PAD_COLOR[0] / 255 - 0.5) / 0.5
    np.testing.assert_allclose(v[:, 0, 0], pad, atol=1e-7)  # letterbox band (top)
    assert v.min() >= -1.0 and v.max() <= 1.0


def test_stretch_modes_fill_the_view():
    white = np.full((300, 1000), 255, np.uint8)
    assert np.all(prepare(white, "small").global_view == 1.0)  # stretched: no pad band
    base = prepare(white, "base").global_view
    assert base[0, 0, 0] < 0 and base[0, 512, 512] == 1.0  # letterboxed


def test_bad_pages():
    with pytest.raises(InputError, match="uint8"):
        prepare(np.zeros((10, 10), np.float32), "base")
    with pytest.raises(InputError, match="Page, a uint8 numpy array or a PIL image"):
        prepare("page.png", "base")


# ------------------------------------------------ windows and rel positions


@pytest.mark.parametrize("hw", [(14, 14), (20, 33), (5, 3)])
def test_window_partition_roundtrip(hw):
    x = torch.randn(2, *hw, 6)
    windows, pad_hw = window_partition(x, 7)
    assert windows.shape[1:] == (7, 7, 6)
    assert pad_hw == (-(-hw[0] // 7) * 7, -(-hw[1] // 7) * 7)
    assert windows.shape[0] == 2 * (pad_hw[0] // 7) * (pad_hw[1] // 7)
    torch.testing.assert_close(window_unpartition(windows, 7, pad_hw, hw), x, rtol=0, atol=0)
    # window (b=1, i=0, j=1) holds rows 0..6, cols 7..13 (zero beyond the edge)
    nw = pad_hw[1] // 7
    ref = F.pad(x, (0, 0, 0, pad_hw[1] - hw[1], 0, pad_hw[0] - hw[0]))[1, :7, 7:14]
    if nw > 1:
        torch.testing.assert_close(windows[(pad_hw[0] // 7) * nw + 1], ref, rtol=0, atol=0)


def _loop_rel_pos(q_size, k_size, rel_pos):
    """Straightforward reference: resize by hand-rolled linear interpolation, then gather."""
    L = 2 * max(q_size, k_size) - 1
    table = rel_pos
    if rel_pos.shape[0] != L:  # align_corners=False linear, as F.interpolate(mode="linear")
        n = rel_pos.shape[0]
        table = torch.empty(L, rel_pos.shape[1])
        for i in range(L):
            src = max((i + 0.5) * n / L - 0.5, 0.0)
            lo = min(int(np.floor(src)), n - 1)
            hi = min(lo + 1, n - 1)
            w = src - lo
            table[i] = (1 - w) * rel_pos[lo] + w * rel_pos[hi]
    out = torch.empty(q_size, k_size, rel_pos.shape[1])
    sq, sk = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
    for i in range(q_size):
        for j in range(k_size):
            out[i, j] = table[int(i * sq - j * sk + (k_size - 1) * sk)]
    return out


@pytest.mark.parametrize("q_size, k_size, length", [(7, 7, 13), (8, 8, 27), (32, 32, 127), (4, 8, 15)])
def test_get_rel_pos_matches_loop(q_size, k_size, length):
    rel_pos = torch.randn(length, 5)
    torch.testing.assert_close(
        get_rel_pos(q_size, k_size, rel_pos), _loop_rel_pos(q_size, k_size, rel_pos), atol=1e-4, rtol=1e-4
    )


def test_add_decomposed_rel_pos_matches_loop():
    B, (qh, qw), C = 2, (3, 4), 5
    q = torch.randn(B, qh * qw, C)
    rh, rw = torch.randn(2 * qh - 1, C), torch.randn(2 * qw - 1, C)
    attn = torch.randn(B, qh * qw, qh * qw)
    got = add_decomposed_rel_pos(attn, q, rh, rw, (qh, qw), (qh, qw))
    ref = attn.clone()
    for b in range(B):
        for i in range(qh):
            for j in range(qw):
                for m in range(qh):
                    for n in range(qw):
                        qv = q[b, i * qw + j]
                        ref[b, i * qw + j, m * qw + n] += qv @ rh[i - m + qh - 1] + qv @ rw[j - n + qw - 1]
    torch.testing.assert_close(got, ref)


# ----------------------------------------------------- position embeddings


def test_abs_pos_identity_at_native_size_and_bicubic_otherwise():
    pos = torch.randn(1, 64, 64, 8)
    native = resize_abs_pos(pos, (64, 64))
    assert torch.equal(native, pos) and native.data_ptr() == pos.data_ptr()
    for side in (32, 40, 80):  # tiny / small / large
        ref = F.interpolate(pos.permute(0, 3, 1, 2), size=(side, side), mode="bicubic",
                            antialias=True, align_corners=False).permute(0, 2, 3, 1)
        torch.testing.assert_close(resize_abs_pos(pos, (side, side)), ref)
    # bf16 tables are resized in fp32
    half = resize_abs_pos(pos.bfloat16(), (40, 40))
    assert half.dtype == torch.bfloat16


def test_clip_pos_keeps_class_and_resizes_grid():
    table = torch.randn(257, 8)
    assert torch.equal(resize_clip_pos(table, (16, 16)), table)
    got = resize_clip_pos(table, (10, 10))
    assert got.shape == (101, 8) and torch.equal(got[0], table[0])
    grid = table[1:].reshape(1, 16, 16, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(10, 10), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(got[1:], ref[0].flatten(1).t())


# ------------------------------------------------------- attention paths


def test_sdpa_equals_eager_kernel():
    q, k, v = (torch.randn(2, 3, 50, 16) for _ in range(3))
    bias = torch.randn(2, 3, 50, 50)
    torch.testing.assert_close(attention(q, k, v, bias, "sdpa"), eager_attention(q, k, v, bias),
                               atol=1e-5, rtol=1e-5)


def test_sdpa_model_equals_eager_model(tiny):
    # 40×40 grid: padded 14-windows, and global blocks (1600 queries) chunked by 1024
    x = torch.randn(2, 3, 640, 640)
    try:
        fast = tiny.set_attn_impl("sdpa")(x)
        ref = tiny.set_attn_impl("eager")(x)
    finally:
        tiny.set_attn_impl("auto")
    assert fast.shape == (2, 100, 48)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)


def test_folded_rel_pos_equals_bias_kernel():
    # the folded form is exactly softmax(q·kᵀ·s + rel_h[m] + rel_w[n])·v
    B, nh, kh, kw, hd = 2, 3, 5, 7, 16
    q, k, v = (torch.randn(B, nh, kh * kw, hd, dtype=torch.float64) for _ in range(3))
    rel_h = torch.randn(B, nh, kh * kw, kh, dtype=torch.float64)
    rel_w = torch.randn(B, nh, kh * kw, kw, dtype=torch.float64)
    bias = expand_rel_pos(rel_h, rel_w)
    ref = eager_attention(q, k, v, bias)
    # (eager takes its softmax in fp32, hence the fp32-sized tolerance)
    torch.testing.assert_close(folded_rel_pos_attention(q, k, v, rel_h, rel_w), ref,
                               atol=1e-6, rtol=1e-6)
    # a wrong grid is refused, not silently mis-indexed
    with pytest.raises(ConfigError, match="key grid"):
        folded_rel_pos_attention(q, k, v, rel_h[..., :4], rel_w)


@pytest.mark.parametrize("impl", ["fold", "fold-cudnn"])  # fold-cudnn is the fold off CUDA
def test_fold_model_equals_eager_model(tiny, impl):
    # windowed blocks (padded 14-windows) and global blocks, whole model
    x = torch.randn(1, 3, 640, 640)
    try:
        fold = tiny.set_attn_impl(impl)(x)
        ref = tiny.set_attn_impl("eager")(x)
    finally:
        tiny.set_attn_impl("auto")
    torch.testing.assert_close(fold, ref, atol=1e-5, rtol=1e-4)


def test_scratch_reuses_one_buffer_per_dtype_only_inside_the_block():
    like = torch.empty(0)
    assert scratch((2, 3), like) is None
    with scratch_buffers():
        a = scratch((4, 5), like)
        b = scratch((2, 3), like)  # smaller: a view of the same storage
        assert a.shape == (4, 5) and b.shape == (2, 3) and b.is_contiguous()
        assert b.data_ptr() == a.data_ptr()
        c = scratch((10, 10), like)  # larger: the buffer grows
        assert c.numel() == 100 and scratch((3,), like).data_ptr() == c.data_ptr()
        d = scratch((3,), torch.empty(0, dtype=torch.float64))
        assert d.dtype == torch.float64 and d.data_ptr() != c.data_ptr()
    assert scratch((2, 3), like) is None


def test_mask_buffer_reuse_in_inference_changes_nothing(tiny, monkeypatch):
    # 40×40 grid: padded 14-windows, global blocks chunked 1024 + 576 rows;
    # without grad every mask is built into the one reused buffer
    calls: list[tuple[bool, int]] = []
    real = sam_module.scratch

    def spy(shape, like):
        buf = real(shape, like)
        calls.append((buf is not None, buf.data_ptr() if buf is not None else 0))
        return buf

    monkeypatch.setattr(sam_module, "scratch", spy)
    x = torch.randn(1, 3, 640, 640)
    try:
        tiny.set_attn_impl("sdpa")
        with_grad = tiny(x)
        assert calls and not any(used for used, _ in calls)  # autograd: fresh masks
        calls.clear()
        with torch.inference_mode():
            reused = tiny(x)
    finally:
        tiny.set_attn_impl("auto")
    assert calls and all(used for used, _ in calls)
    assert len({ptr for _, ptr in calls}) <= 2  # the buffer grew at most once
    torch.testing.assert_close(reused, with_grad.detach(), atol=1e-6, rtol=1e-6)


def test_tune_cpu_allocator_checks_its_argument():
    for bad in (0, -1, 2**31, 1.5, True, "1GB"):
        with pytest.raises(ConfigError):
            tune_cpu_allocator(bad)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_cpu_allocator_serves_large_tensors_from_the_heap():
    """What the setting controls, checked in a child process (it is
    process-wide and lasting): a 50 MB tensor comes from mmap by default and
    from glibc's heap once tuned, and freeing it leaves the heap its size (no
    trim). Whether the next large block reuses those pages depends on heap
    fragmentation, so the fault counts are measured by
    benchmarks/encoder_cpu_memory.py, not asserted here (a fault-count
    assertion failed about one run in three on this machine)."""
    code = (
        "import torch\n"
        "from optical_memory.encoder import tune_cpu_allocator\n"
        "def heap():\n"
        "    for line in open('/proc/self/maps'):\n"
        "        if line.rstrip().endswith('[heap]'):\n"
        "            return tuple(int(x, 16) for x in line.split()[0].split('-'))\n"
        "    return (0, 0)\n"
        "def in_heap(t):\n"
        "    lo, hi = heap()\n"
        "    return lo <= t.data_ptr() < hi\n"
        "t = torch.empty(12_500_000); t.fill_(1.0); before = in_heap(t); del t\n"
        "ok = tune_cpu_allocator(1 << 27)\n"
        "t = torch.empty(12_500_000); t.fill_(1.0); after = in_heap(t)\n"
        "size = heap(); del t; kept = heap() == size\n"
        "print(ok, before, after, kept)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ok, before, after, kept = out.stdout.split()
    if ok != "True":
        pytest.skip("C library is not glibc")
    assert (before, after, kept) == ("False", "True", "True")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_paths_agree():
    enc = DeepEncoder.from_config(DeepEncoderConfig.tiny(), device="cuda", dtype=torch.bfloat16)
    x = torch.randn(2, 3, 1024, 1024, device="cuda", dtype=torch.bfloat16)
    ref = enc.set_attn_impl("eager")(x).float()
    for impl in ("auto", "fold", "fold-cudnn", "sdpa"):  # auto: flash-attn for CLIP when installed
        got = enc.set_attn_impl(impl)(x).float()
        torch.testing.assert_close(got, ref, atol=5e-2, rtol=5e-2, msg=lambda m, impl=impl: f"{impl}: {m}")
    enc.set_attn_impl("auto")


# --------------------------------------------------------------- configs


def test_config_errors_say_the_values():
    with pytest.raises(ConfigError, match=r"got 770 and 12"):
        DeepEncoderConfig(sam=SamConfig(embed_dim=770))
    with pytest.raises(ConfigError, match=r"got 512 and 1024"):
        DeepEncoderConfig(sam=SamConfig(compressor_dims=(256, 512)))
    with pytest.raises(ConfigError, match="attn_impl"):
        DeepEncoder.from_config(DeepEncoderConfig.tiny()).set_attn_impl("flash3")


def test_from_config_is_seeded():
    a = DeepEncoder.from_config(DeepEncoderConfig.tiny(), seed=3).state_dict()
    b = DeepEncoder.from_config(DeepEncoderConfig.tiny(), seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------ full-size manifest


def test_full_size_model_matches_checkpoint_manifest():
    manifest = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        model = build_deep_encoder(DeepEncoderConfig())
    got = {"model." + k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == manifest["tensors"]
    assert len(got) == manifest["num_tensors"] == 476
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert not list(model.buffers())
    rel = {i: manifest["tensors"][f"model.sam_model.blocks.{i}.attn.rel_pos_h"] for i in range(12)}
    assert {i for i, s in rel.items() if s == [127, 64]} == {2, 5, 8, 11}


# ------------------------------------------------------------- checkpoints


def _write_checkpoint(model: DeepEncoder, path: Path, *, dtype=torch.bfloat16, extra=None) -> dict:
    tensors = {"model." + k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
    tensors["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(4, 4, dtype=dtype)
    tensors["model.embed_tokens.weight"] = torch.zeros(8, 4, dtype=dtype)
    tensors["lm_head.weight"] = torch.zeros(8, 4, dtype=dtype)
    tensors.update(extra or {})
    save_file(tensors, str(path), metadata={"format": "pt"})
    return tensors


def test_synthetic_checkpoint_loads_strictly_and_reproduces(tiny, tmp_path):
    ckpt = tmp_path / "model.safetensors"
    _write_checkpoint(tiny, ckpt, dtype=torch.float32)
    loaded = DeepEncoder.from_pretrained(tmp_path, config=DeepEncoderConfig.tiny())
    assert loaded.dtype == torch.float32 and not loaded.training
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    x = torch.randn(1, 3, 512, 512)
    torch.testing.assert_close(loaded(x), tiny(x), rtol=0, atol=0)
    # a file path works too, and the dtype defaults to the checkpoint's
    _write_checkpoint(tiny, ckpt)  # bf16, like the release
    bf16 = DeepEncoder.from_pretrained(ckpt, config=DeepEncoderConfig.tiny())
    assert bf16.dtype == torch.bfloat16
    as32 = DeepEncoder.from_pretrained(ckpt, config=DeepEncoderConfig.tiny(), dtype=torch.float32)
    assert {p.dtype for p in as32.parameters()} == {torch.float32}
    assert bf16.encode(_page(400, 500), "tiny")[0].dtype == torch.bfloat16


def test_sharded_checkpoint_with_index(tiny, tmp_path):
    sd = {"model." + k: v.contiguous() for k, v in tiny.state_dict().items()}
    keys = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2 :]}
    shards["model-00002-of-00002.safetensors"].append("lm_head.weight")
    sd["lm_head.weight"] = torch.zeros(8, 4)
    weight_map = {}
    for name, ks in shards.items():
        save_file({k: sd[k] for k in ks}, str(tmp_path / name))
        weight_map.update({k: name for k in ks})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = DeepEncoder.from_pretrained(tmp_path, config=DeepEncoderConfig.tiny())
    x = torch.randn(1, 3, 512, 512)
    torch.testing.assert_close(loaded(x), tiny(x), rtol=0, atol=0)


def test_wrong_shape_names_key_and_both_shapes(tiny, tmp_path):
    bad = {"model.sam_model.pos_embed": torch.zeros(1, 32, 32, 32, dtype=torch.bfloat16)}
    _write_checkpoint(tiny, tmp_path / "model.safetensors", extra=bad)
    with pytest.raises(CheckpointError) as err:
        DeepEncoder.from_pretrained(tmp_path, config=DeepEncoderConfig.tiny())
    msg = str(err.value)
    assert "model.sam_model.pos_embed" in msg and "[1, 32, 32, 32]" in msg and "[1, 64, 64, 32]" in msg
    assert "1 mis-shaped" in msg


def test_missing_and_unexpected_keys_are_named(tiny, tmp_path):
    path = tmp_path / "ckpt.safetensors"
    tensors = _write_checkpoint(tiny, path, extra={"model.vision_model.extra.weight": torch.zeros(2)})
    del tensors["model.projector.layers.bias"]
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError) as err:
        DeepEncoder.from_pretrained(path, config=DeepEncoderConfig.tiny())
    msg = str(err.value)
    assert "1 missing: model.projector.layers.bias" in msg
    assert "1 unexpected: model.vision_model.extra.weight" in msg


def test_full_size_checkpoint_against_tiny_model_is_rejected(tmp_path):
    manifest = json.loads(MANIFEST.read_text())["tensors"]
    # a header-only check: tiny tensors under the full-size names would not fit
    tensors = {k: torch.zeros(1) for k in list(manifest)[:3]}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing: .*\(\d+ more\)"):
        DeepEncoder.from_pretrained(tmp_path, config=DeepEncoderConfig.tiny())


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no safetensors checkpoint"):
        DeepEncoder.from_pretrained(tmp_path)


# ------------------------------------------------------------- benchmark


@pytest.mark.slow
def test_speed_benchmark_quick_run(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "encoder_speed.py"
    out = tmp_path / "speed.md"
    run = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "| tiny | 73 | sdpa | 1 |" in out.read_text()


def test_device_check_script_smoke(tmp_path):
    # the GPU check script's commands, on the CPU with the tiny config
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.sh"
    env = {**os.environ, "SMOKE": "1", "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(script), str(tmp_path)], capture_output=True, text=True,
                         timeout=600, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    speed = (tmp_path / "speed.md").read_text()
    assert "| tiny | 73 | fold | 2 |" in speed and "| tiny | 73 | fold-cudnn | 2 |" in speed
    assert "| fold-cudnn |" in (tmp_path / "agreement.md").read_text()
    assert "| kernel / op |" in (tmp_path / "profile.md").read_text()
