"""SAM ViT-B backbone (``sam_model``): windowed/global attention with decomposed
relative positions, the neck, and the 16× token compressor (``net_2``, ``net_3``).

Tokens stay in ``B, H, W, C`` through the blocks and are permuted once, at the neck.
Adapted from segment-anything's image encoder
(https://github.com/facebookresearch/segment-anything/blob/main/segment_anything/modeling/image_encoder.py),
itself after ViTDet and MViTv2; the compressor follows the DeepSeek-OCR release.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from optical_memory.encoder.common import (
    attention,
    check_attn_impl,
    folded_rel_pos_attention,
    resize_grid,
    scratch,
    scratch_buffers,
)
from optical_memory.encoder.config import SamConfig

# --------------------------------------------------------------------------- #
# Pure functions: windows and decomposed relative positions
# --------------------------------------------------------------------------- #


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut tokens into non-overlapping windows, zero-padding the bottom/right edge.

    x: [B, H, W, C] → (windows [B·nW, ws, ws, C], (Hp, Wp) the padded size).
    """
    B, H, W, C = x.shape
    pad_h = (window_size - H % window_size) % window_size
    pad_w = (window_size - W % window_size) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // window_size, window_size, Wp // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, C)
    return windows, (Hp, Wp)


def window_unpartition(
    windows: torch.Tensor, window_size: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`, dropping the padding.

    windows: [B·nW, ws, ws, C] → [B, H, W, C].
    """
    (Hp, Wp), (H, W) = pad_hw, hw
    B = windows.shape[0] // ((Hp // window_size) * (Wp // window_size))
    x = windows.view(B, Hp // window_size, Wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, -1)
    return x[:, :H, :W, :].contiguous() if (Hp, Wp) != (H, W) else x


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position embeddings for every (query, key) pair along one axis.

    rel_pos: [L, C], made for L = 2·size − 1; linearly resized (in fp32) when the
    axis has another length. Returns [q_size, k_size, C] where entry (i, j) is the
    embedding of offset i − j (coordinates rescaled when q_size ≠ k_size).
    """
    max_rel_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel_dist:
        resized = F.interpolate(
            rel_pos.float().t().unsqueeze(0), size=max_rel_dist, mode="linear"
        )
        rel_pos = resized[0].t().to(rel_pos.dtype)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    offsets = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[offsets.long()]


def decomposed_rel_pos(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two factors of the decomposed relative-position term (MViTv2).

    q: [B, qh·qw, C] (unscaled queries); rel_pos_h: [Lh, C]; rel_pos_w: [Lw, C].
    Returns rel_h [B, qh·qw, kh] and rel_w [B, qh·qw, kw], with
    rel_h[b, (i, j), m] = q·Rh[i, m] and rel_w[b, (i, j), n] = q·Rw[j, n].
    """
    (q_h, q_w), (k_h, k_w) = q_size, k_size
    Rh = get_rel_pos(q_h, k_h, rel_pos_h)  # [qh, kh, C]
    Rw = get_rel_pos(q_w, k_w, rel_pos_w)  # [qw, kw, C]
    B, _, C = q.shape
    r_q = q.reshape(B, q_h, q_w, C)
    # contiguous, so that broadcast sums of the two come out contiguous
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, Rh).reshape(B, q_h * q_w, k_h).contiguous()
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, Rw).reshape(B, q_h * q_w, k_w).contiguous()
    return rel_h, rel_w


def expand_rel_pos(
    rel_h: torch.Tensor, rel_w: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """rel_h [..., Nq, kh], rel_w [..., Nq, kw] → bias [..., Nq, kh·kw] (key (m, n) → m·kw + n).

    ``out``: a contiguous [..., Nq, kh, kw] tensor to write into (no autograd).
    """
    if out is None:
        return (rel_h[..., :, None] + rel_w[..., None, :]).flatten(-2)
    torch.add(rel_h[..., :, None], rel_w[..., None, :], out=out)
    return out.flatten(-2)


def rel_pos_bias(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> torch.Tensor:
    """The decomposed relative-position term of the attention scores.

    q: [B, qh·qw, C] → [B, qh·qw, kh·kw]: bias[b, (i, j), (m, n)] = q·Rh[i, m] + q·Rw[j, n].
    """
    return expand_rel_pos(*decomposed_rel_pos(q, rel_pos_h, rel_pos_w, q_size, k_size))


def add_decomposed_rel_pos(
    attn: torch.Tensor,
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> torch.Tensor:
    """attn [B, qh·qw, kh·kw] + :func:`rel_pos_bias` (SAM's original signature)."""
    return attn + rel_pos_bias(q, rel_pos_h, rel_pos_w, q_size, k_size)


def resize_abs_pos(pos_embed: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """pos_embed [1, g, g, C] → [1, H, W, C] for size (H, W) (bicubic, antialias)."""
    grid = resize_grid(pos_embed.permute(0, 3, 1, 2), size)
    return grid.permute(0, 2, 3, 1)


# --------------------------------------------------------------------------- #
# Modules (leaf first)
# --------------------------------------------------------------------------- #


class PatchEmbed(nn.Module):
    """[B, 3, S, S] → [B, S/p, S/p, C] by a stride-p conv (``patch_embed.proj``)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of [B, C, H, W] (as in ConvNeXt / detectron2)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """[..., C] → [..., C]: lin1 → GELU (exact) → lin2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class SamAttention(nn.Module):
    """Multi-head attention over a [B, H, W, C] token grid with decomposed
    relative positions; ``rel_pos_h/w`` are [2·size − 1, hd] for ``input_size``.

    The fast paths feed the relative-position term to the kernel as an additive
    mask built ``query_chunk`` query rows at a time, so a global block never holds
    the whole [B, nh, N, N] mask (805 MB per 1024 px page in fp32).
    """

    query_chunk = 1024

    def __init__(
        self, dim: int, num_heads: int, input_size: tuple[int, int], attn_impl: str = "auto"
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
        self.attn_impl = check_attn_impl(attn_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        nh, N = self.num_heads, H * W
        qkv = self.qkv(x).reshape(B, N, 3, nh, C // nh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, nh, N, hd]
        rel_h, rel_w = decomposed_rel_pos(
            q.reshape(B * nh, N, -1), self.rel_pos_h, self.rel_pos_w, (H, W), (H, W)
        )
        rel_h, rel_w = rel_h.view(B, nh, N, H), rel_w.view(B, nh, N, W)
        impl = self.attn_impl
        if impl == "auto":
            impl = "fold" if x.is_cuda else "sdpa"
        if impl in ("fold", "fold-cudnn"):
            x = folded_rel_pos_attention(q, k, v, rel_h, rel_w, cudnn=impl == "fold-cudnn")
        else:
            rows = N if impl == "eager" else min(N, self.query_chunk)
            chunks = []
            for s in range(0, N, rows):
                e = min(s + rows, N)
                mask = expand_rel_pos(
                    rel_h[:, :, s:e], rel_w[:, :, s:e], out=scratch((B, nh, e - s, H, W), q)
                )
                chunks.append(attention(q[:, :, s:e], k, v, mask, impl))
            x = chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=2)  # [B, nh, N, hd]
        x = x.transpose(1, 2).reshape(B, H, W, C)
        return self.proj(x)


class SamBlock(nn.Module):
    """Pre-LN transformer block; windowed attention when ``window_size`` > 0."""

    def __init__(self, cfg: SamConfig, window_size: int, attn_impl: str = "auto") -> None:
        super().__init__()
        grid = cfg.pos_grid
        attn_size = (window_size, window_size) if window_size else (grid, grid)
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.attn = SamAttention(cfg.embed_dim, cfg.num_heads, attn_size, attn_impl)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.mlp = MLPBlock(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, H, W, C] → [B, H, W, C]."""
        shortcut = x
        x = self.norm1(x)
        if self.window_size:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
            x = self.attn(x)
            x = window_unpartition(x, self.window_size, pad_hw, (H, W))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class SamEncoder(nn.Module):
    """``sam_model``: [B, 3, S, S] → [B, 1024, S/64, S/64].

    patch embed (S/16 grid) + resized abs. positions → 12 blocks → neck
    (1×1 conv, LN2d, 3×3 conv, LN2d; 256 ch) → net_2 (s2, 512) → net_3 (s2, 1024).

    ``reuse_mask_buffer``: on CPU without autograd, build every block's
    relative-position masks into one reused buffer (see ``scratch_buffers``).
    """

    reuse_mask_buffer = True

    def __init__(self, cfg: SamConfig, attn_impl: str = "auto") -> None:
        super().__init__()
        C, g = cfg.embed_dim, cfg.pos_grid
        self.patch_embed = PatchEmbed(cfg.patch_size, 3, C)
        self.pos_embed = nn.Parameter(torch.zeros(1, g, g, C))
        self.blocks = nn.ModuleList(
            SamBlock(cfg, 0 if i in cfg.global_attn_indexes else cfg.window_size, attn_impl)
            for i in range(cfg.depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(C, cfg.neck_dim, kernel_size=1, bias=False),
            LayerNorm2d(cfg.neck_dim, eps=cfg.layer_norm_eps),
            nn.Conv2d(cfg.neck_dim, cfg.neck_dim, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(cfg.neck_dim, eps=cfg.layer_norm_eps),
        )
        mid, out = cfg.compressor_dims
        self.net_2 = nn.Conv2d(cfg.neck_dim, mid, kernel_size=3, stride=2, padding=1, bias=False)
        self.net_3 = nn.Conv2d(mid, out, kernel_size=3, stride=2, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # [B, h, w, C]
        x = x + resize_abs_pos(self.pos_embed, (x.shape[1], x.shape[2]))
        # reuse one mask buffer across blocks on CPU (see scratch_buffers); not
        # under autograd (out= tensors have none) or a compiler (which plans memory)
        reuse = self.reuse_mask_buffer and not (
            x.device.type != "cpu" or torch.is_grad_enabled() or torch.compiler.is_compiling()
        )
        with scratch_buffers() if reuse else contextlib.nullcontext():
            for block in self.blocks:
                x = block(x)
        x = self.neck(x.permute(0, 3, 1, 2))  # [B, 256, h, w]
        return self.net_3(self.net_2(x))  # [B, 1024, h/4, w/4]
