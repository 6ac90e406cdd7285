"""Pieces shared by the SAM and CLIP parts: attention kernels and grid resizing.

Attention runs one of three ways, chosen per module by ``attn_impl``:

- ``"eager"``: the readable reference, ``softmax(q·kᵀ·scale + bias)·v`` with the
  softmax in fp32;
- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention``, the bias
  passed as ``attn_mask``;
- ``"auto"`` (default): flash-attn for bias-free attention (the CLIP part) when
  the package is installed and the tensors are fp16/bf16 on CUDA, else SDPA.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from optical_memory.errors import ConfigError

logger = logging.getLogger(__name__)

ATTN_IMPLS = ("auto", "sdpa", "eager")


def check_attn_impl(impl: str) -> str:
    if impl not in ATTN_IMPLS:
        raise ConfigError(f"unknown attn_impl {impl!r} (known: {', '.join(ATTN_IMPLS)})")
    return impl


@functools.lru_cache(maxsize=1)
def _flash_attn_func() -> Optional[Callable]:
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
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor] = None
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
    bias: Optional[torch.Tensor] = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Scaled dot-product attention, scale ``hd**-0.5``.

    q, k, v: [B, nh, N, hd]; bias: [B, nh, N, N] or None. Returns [B, nh, N, hd].
    """
    if impl == "eager":
        return eager_attention(q, k, v, bias)
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
