"""CLIP-L/14 transformer (``vision_model``) fed SAM's compressed feature map.

Its own 14×14 ``patch_embedding`` conv is kept (the checkpoint holds it) but not
used: the tokens are SAM's ``net_3`` output. Class ladder as in transformers'
CLIP/SigLIP: Embeddings → Attention → MLP → Layer → Transformer → VisionModel.
The layer names are the DeepSeek-OCR release's (fused ``qkv_proj``, ``pre_layrnorm``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from optical_memory.encoder.common import attention, check_attn_impl, resize_grid
from optical_memory.encoder.config import ClipConfig


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def resize_clip_pos(position_embedding: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[1 + g², C] (class first, then a g×g grid) → [1 + H·W, C].

    The class position is kept; the grid is resized bicubically (antialias).
    """
    C = position_embedding.shape[-1]
    cls_pos, grid_pos = position_embedding[:1], position_embedding[1:]
    g = int(round(grid_pos.shape[0] ** 0.5))
    grid = grid_pos.reshape(1, g, g, C).permute(0, 3, 1, 2)
    grid = resize_grid(grid, size)  # [1, C, H, W]
    return torch.cat([cls_pos, grid.flatten(2)[0].t()], dim=0)


class ClipEmbeddings(nn.Module):
    """[B, C, h, w] feature map → [B, 1 + h·w, C] tokens with positions."""

    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        C = cfg.hidden_size
        self.class_embedding = nn.Parameter(torch.zeros(C))
        # Present in the checkpoint, unused: DeepEncoder feeds SAM features instead.
        self.patch_embedding = nn.Conv2d(
            3, C, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False
        )
        self.position_embedding = nn.Embedding(cfg.num_positions, C)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        B, C, h, w = features.shape
        tokens = features.flatten(2).transpose(1, 2)  # [B, h·w, C]
        cls = self.class_embedding.to(tokens.dtype).expand(B, 1, C)
        tokens = torch.cat([cls, tokens], dim=1)
        return tokens + resize_clip_pos(self.position_embedding.weight, (h, w))


class ClipAttention(nn.Module):
    """[B, N, C] → [B, N, C]; fused ``qkv_proj`` laid out as (3, heads, hd)."""

    def __init__(self, cfg: ClipConfig, attn_impl: str = "auto") -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv_proj = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.out_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.attn_impl = check_attn_impl(attn_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv_proj(x).view(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # [B, nh, N, hd]
        out = attention(q, k, v, None, self.attn_impl)
        return self.out_proj(out.transpose(1, 2).reshape(B, N, C))


class ClipMLP(nn.Module):
    """[..., C] → [..., C]: fc1 → quick_gelu → fc2."""

    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(quick_gelu(self.fc1(x)))


class ClipLayer(nn.Module):
    """Pre-LN block: x + attn(ln1(x)), then + mlp(ln2(·))."""

    def __init__(self, cfg: ClipConfig, attn_impl: str = "auto") -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.self_attn = ClipAttention(cfg, attn_impl)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = ClipMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipTransformer(nn.Module):
    def __init__(self, cfg: ClipConfig, attn_impl: str = "auto") -> None:
        super().__init__()
        self.layers = nn.ModuleList(ClipLayer(cfg, attn_impl) for _ in range(cfg.num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ClipVisionModel(nn.Module):
    """``vision_model``: SAM map [B, C, h, w] → [B, 1 + h·w, C] (class token first).

    embeddings → ``pre_layrnorm`` → transformer; no post-LN.
    """

    def __init__(self, cfg: ClipConfig, attn_impl: str = "auto") -> None:
        super().__init__()
        self.embeddings = ClipEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.transformer = ClipTransformer(cfg, attn_impl)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.pre_layrnorm(self.embeddings(features)))
