"""Pieces shared by the SAM and CLIP parts: attention kernels and grid resizing.

Attention runs one of these ways, chosen per module by ``attn_impl``:

- ``"eager"``: the readable reference, ``softmax(q·kᵀ·scale + bias)·v`` with the
  softmax in fp32;
- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention``, the bias
  passed as ``attn_mask``;
- ``"fold"``: SAM's decomposed relative-position term folded into extra
  query/key channels (see :func:`folded_rel_pos_attention`), so SDPA runs with
  no mask and can use its flash kernels; bias-free attention as ``"sdpa"``;
- ``"fold-cudnn"``: the fold with v left at its own width and SDPA's cuDNN
  kernel tried first (on an H100 it runs the folded global shape 2.1–2.7×
  faster than flash; benchmarks/attention_kernels.py); elsewhere as ``"fold"``;
- ``"auto"`` (default): on CUDA, ``"fold"`` for SAM and flash-attn (when
  installed, fp16/bf16) or SDPA for CLIP; on CPU, ``"sdpa"``.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from optical_memory.errors import ConfigError

logger = logging.getLogger(__name__)

ATTN_IMPLS = ("auto", "sdpa", "fold", "fold-cudnn", "eager")


def check_attn_impl(impl: str) -> str:
    if impl not in ATTN_IMPLS:
        raise ConfigError(f"unknown attn_impl {impl!r} (known: {', '.join(ATTN_IMPLS)})")
    return impl


@functools.lru_cache(maxsize=1)
def _flash_attn_func() -> Callable | None:
    try:
        from flash_attn import flash_attn_func
    except Exception as exc:  # not installed, or a binary built for another torch
        logger.debug("flash-attn not used: %s", exc)
        return None
    return flash_attn_func


def flash_attn_available() -> bool:
    """True when the ``flash_attn`` package imports cleanly."""
    return _flash_attn_func() is not None


def eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Reference attention.

    q, k, v: [B, nh, N, hd]; bias: [B, nh, N, N] (added to the scaled scores) or None.
    Returns [B, nh, N, hd].
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    probs = scores.float().softmax(dim=-1).to(v.dtype)
    return probs @ v


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Scaled dot-product attention, scale ``hd**-0.5``.

    q, k, v: [B, nh, N, hd]; bias: [B, nh, N, N] or None. Returns [B, nh, N, hd].
    """
    if impl == "eager":
        return eager_attention(q, k, v, bias)
    if impl in ("fold", "fold-cudnn"):
        impl = "auto"
    if (
        impl == "auto"
        and bias is None
        and q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
    ):
        flash = _flash_attn_func()
        if flash is not None:  # flash-attn wants [B, N, nh, hd]
            out = flash(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            return out.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


_SCRATCH: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "optical_memory_encoder_scratch", default=None
)


@contextlib.contextmanager
def scratch_buffers() -> Iterator[None]:
    """Within this block, :func:`scratch` hands out one reused buffer per
    (dtype, device) instead of a fresh tensor per call; freed on exit.

    Why: on CPU every fresh tensor over glibc's mmap threshold (32 MB at most)
    is new memory from the kernel, and its first touch page-faults. The
    relative-position masks are the largest such tensors (a 1024-row chunk of
    a global block's mask is 201 MB in fp32, built 16 times per base page).
    Building them into one reused buffer cut a base page's forward from 10.5
    to 8.3 s on 2 cores (benchmarks/encoder_cpu_memory.py). Callers use a
    buffer only for a value that is dead before the next ``scratch`` call.
    """
    token = _SCRATCH.set({})
    try:
        yield
    finally:
        _SCRATCH.reset(token)


def scratch(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
    """A contiguous tensor of ``shape`` (``like``'s dtype and device) viewing the
    reused buffer, or None outside :func:`scratch_buffers`. Its contents are
    garbage, and it is overwritten by the next call for the same dtype/device.
    Always None while torch.compile traces (it cannot trace a ContextVar, and
    plans the graph's memory itself)."""
    if torch.compiler.is_compiling():
        return None
    pool = _SCRATCH.get()
    if pool is None:
        return None
    numel = math.prod(shape)
    key = (like.dtype, like.device)
    buf = pool.get(key)
    if buf is None or buf.numel() < numel:
        buf = pool[key] = torch.empty(numel, dtype=like.dtype, device=like.device)
    return buf[:numel].view(shape)


def resize_grid(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a position-embedding grid as the release does.

    grid: [1, C, h, w] → [1, C, H, W]; bicubic, antialias, align_corners=False,
    computed in fp32 and cast back; returned unchanged at the native size.
    """
    if tuple(grid.shape[-2:]) == tuple(size):
        return grid
    resized = F.interpolate(
        grid.float(), size=size, mode="bicubic", antialias=True, align_corners=False
    )
    return resized.to(grid.dtype)


def folded_rel_pos_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    rel_h: torch.Tensor, rel_w: torch.Tensor, *, cudnn: bool = False,
) -> torch.Tensor:
    """Attention with a decomposed relative-position term, without a mask.

    q, k, v: [B, nh, N, hd] over a kh×kw key grid (N = kh·kw, row-major);
    rel_h: [B, nh, N, kh], rel_w: [B, nh, N, kw] (the two factors of the term).
    Returns [B, nh, N, hd], equal to ``softmax(q·kᵀ·s + rel_h[.., m] + rel_w[.., n])·v``
    for key (m, n), s = hd**-0.5.

    The term is a dot product in disguise: with q' = [q·s, rel_h, rel_w] and
    k' = [k, onehot(m), onehot(n)], q'·k' = q·k·s + rel_h[m] + rel_w[n]. So the
    kernel sees plain attention with head dim hd + kh + kw (padded to a multiple
    of 8; v is zero-padded to the same width, which flash kernels require) and
    no [N, N] mask is ever built. Same idea as folding a bias into the inputs.
    (A global block's 64×64 grid makes that 192 channels. Cutting the grid into
    2×2 sub-grids of 128-channel folds merged by log-sum-exp was measured
    slower on an H100: 237 vs 260 pages/s compiled, see benchmarks/RESULTS.md.)

    ``cudnn=True`` (CUDA fp16/bf16 only): v stays hd wide and SDPA tries its
    cuDNN kernel first (then memory-efficient, then math; flash cannot take
    a narrower v).
    """
    B, nh, N, hd = q.shape
    kh, kw = rel_h.shape[-1], rel_w.shape[-1]
    if kh * kw != k.shape[2]:
        raise ConfigError(f"key grid {kh}x{kw} does not match {k.shape[2]} keys")
    width = hd + kh + kw
    pad = (-width) % 8
    idx = torch.arange(kh * kw, device=k.device)
    onehot = torch.cat(
        [F.one_hot(idx // kw, kh), F.one_hot(idx % kw, kw),
         idx.new_zeros(kh * kw, pad)], dim=-1,
    ).to(k.dtype)  # [N_k, kh + kw + pad]
    q2 = torch.cat([q * hd ** -0.5, rel_h.to(q.dtype), rel_w.to(q.dtype),
                    q.new_zeros(B, nh, N, pad)], dim=-1)
    k2 = torch.cat([k, onehot.expand(B, nh, -1, -1)], dim=-1)
    if cudnn and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backends = [SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
        with sdpa_kernel(backends, set_priority=True):
            return F.scaled_dot_product_attention(q2, k2, v, scale=1.0)
    v2 = F.pad(v, (0, width + pad - hd))
    return F.scaled_dot_product_attention(q2, k2, v2, scale=1.0)[..., :hd]

