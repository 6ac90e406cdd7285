"""The composed DeepEncoder and its batch API.

``forward``: pixels [B, 3, S, S] → projected tokens [B, (S/64)², 1280]:
SAM (→ [B, 1024, S/64, S/64]) → CLIP on that map → concat [CLIP (drop class),
SAM] along channels (2048) → ``projector``. ``encode`` adds preprocessing,
batching by view size, and the newline / separator layout the LM expects.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn as nn

from optical_memory.encoder.clip import ClipAttention, ClipVisionModel
from optical_memory.encoder.common import check_attn_impl
from optical_memory.encoder.config import DeepEncoderConfig
from optical_memory.encoder.preprocess import Mode, PageLike, TokenLayout, get_mode, prepare
from optical_memory.encoder.sam import SamAttention, SamEncoder
from optical_memory.errors import InputError

logger = logging.getLogger(__name__)


class Projector(nn.Module):
    """``projector``: [..., 2048] → [..., 1280], one Linear (``layers``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass(frozen=True)
class VisionTokens:
    """Vision-token embeddings for a batch of pages, ready for the LM.

    embeddings[i]: [layouts[i].num_tokens, D] on the encoder's device and dtype,
    newlines and the view separator already in place.
    """

    mode: str
    embeddings: tuple[torch.Tensor, ...]
    layouts: tuple[TokenLayout, ...]

    def __len__(self) -> int:
        return len(self.embeddings)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.embeddings[i]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.embeddings)

    @property
    def num_tokens(self) -> list[int]:
        return [layout.num_tokens for layout in self.layouts]


def _with_newlines(grid: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
    """grid [h, w, D] → [h·(w+1), D], ``newline`` [D] after every row."""
    h, _, D = grid.shape
    return torch.cat([grid, newline.expand(h, 1, D)], dim=1).reshape(-1, D)


class DeepEncoder(nn.Module):
    """DeepSeek-OCR's vision encoder; submodule names equal the checkpoint's
    (without its ``model.`` prefix)."""

    def __init__(
        self,
        sam_model: SamEncoder,
        vision_model: ClipVisionModel,
        projector: Projector,
        config: DeepEncoderConfig,
    ) -> None:
        super().__init__()
        self.config = config
        self.sam_model = sam_model
        self.vision_model = vision_model
        self.projector = projector
        D = config.projector_dim
        self.image_newline = nn.Parameter(torch.zeros(D))
        self.view_seperator = nn.Parameter(torch.zeros(D))  # sic: the checkpoint's spelling

    # ------------------------------------------------------------------ build

    @classmethod
    def from_config(
        cls,
        config: DeepEncoderConfig | None = None,
        *,
        seed: int = 0,
        attn_impl: str = "auto",
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> DeepEncoder:
        """A randomly initialised encoder (seeded, deterministic), in eval mode."""
        model = build_deep_encoder(config or DeepEncoderConfig(), attn_impl=attn_impl)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model.apply(_reset_parameters)
            for name, p in model.named_parameters():
                if name.endswith(("pos_embed", "rel_pos_h", "rel_pos_w", "class_embedding")) or (
                    name.endswith("position_embedding.weight")
                    or name in ("image_newline", "view_seperator")
                ):
                    nn.init.normal_(p, std=0.02)
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        config: DeepEncoderConfig | None = None,
        dtype: torch.dtype | None = None,
        device: str | torch.device = "cpu",
        attn_impl: str = "auto",
    ) -> DeepEncoder:
        """Load the encoder tensors of a DeepSeek-OCR checkpoint (strict).

        path: a checkpoint directory (``model.safetensors``, or shards with
        ``model.safetensors.index.json``) or one ``.safetensors`` file. Tensors
        are read straight to ``device`` and ``dtype`` (default: the checkpoint's).
        Raises CheckpointError naming missing, unexpected or mis-shaped keys.
        """
        from optical_memory.encoder.checkpoint import assign_checkpoint

        with torch.device("meta"):
            model = build_deep_encoder(config or DeepEncoderConfig(), attn_impl=attn_impl)
        assign_checkpoint(model, path, dtype=dtype, device=device)
        return model

    def set_attn_impl(self, impl: str) -> DeepEncoder:
        """Switch every attention module to one of ``ATTN_IMPLS``
        (auto, sdpa, fold, fold-cudnn, eager)."""
        check_attn_impl(impl)
        for module in self.modules():
            if isinstance(module, (SamAttention, ClipAttention)):
                module.attn_impl = impl
        return self

    # ---------------------------------------------------------------- forward

    @property
    def device(self) -> torch.device:
        return self.image_newline.device

    @property
    def dtype(self) -> torch.dtype:
        return self.image_newline.dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, S, S] (normalised) → projected tokens [B, (S/64)², D]."""
        step = self.config.pixels_per_token
        if (pixels.ndim != 4 or pixels.shape[1] != 3
                or pixels.shape[-1] % step or pixels.shape[-2] % step):
            raise InputError(
                f"pixels must be [B, 3, S, S] with S a multiple of {step} "
                f"(got {tuple(pixels.shape)})"
            )
        sam = self.sam_model(pixels)  # [B, C, h, w]
        clip = self.vision_model(sam)  # [B, 1 + h·w, C]
        fused = torch.cat([clip[:, 1:], sam.flatten(2).transpose(1, 2)], dim=-1)
        return self.projector(fused)

    def _forward_views(self, views: np.ndarray, batch_size: int) -> torch.Tensor:
        """views float32 [M, 3, S, S] → [M, (S/64)², D], ``batch_size`` at a time.

        After ``encoder.compile()`` (``nn.Module.compile``: about 1.6× on an
        H100, benchmarks/RESULTS.md) a short last batch is padded with blank
        views to ``batch_size`` so every forward has the shape compiled for.
        """
        compiled = getattr(self, "_compiled_call_impl", None) is not None
        out = []
        for start in range(0, len(views), batch_size):
            chunk = torch.from_numpy(views[start : start + batch_size])
            n = len(chunk)
            if compiled and n < batch_size:
                chunk = torch.cat([chunk, chunk.new_zeros((batch_size - n, *chunk.shape[1:]))])
            out.append(self(chunk.to(device=self.device, dtype=self.dtype, non_blocking=True))[:n])
        return torch.cat(out)

    def layout_tokens(
        self, global_tokens: torch.Tensor, tile_tokens: torch.Tensor | None, layout: TokenLayout
    ) -> torch.Tensor:
        """Arrange one page's tokens for the LM.

        global_tokens [g², D]; tile_tokens [n, q², D] (row-major tiles) or None.
        Returns [layout.num_tokens, D]: tile mosaic rows + newlines, global rows
        + newlines, then ``view_seperator``.
        """
        D = global_tokens.shape[-1]
        g, q = layout.global_grid, layout.tile_grid
        newline = self.image_newline.to(global_tokens.dtype)
        parts = []
        if layout.num_tiles:
            assert tile_tokens is not None  # a layout with tiles comes with their tokens
            cols, rows = layout.tiles
            mosaic = tile_tokens.view(rows, cols, q, q, D).permute(0, 2, 1, 3, 4)
            parts.append(_with_newlines(mosaic.reshape(rows * q, cols * q, D), newline))
        parts.append(_with_newlines(global_tokens.view(g, g, D), newline))
        parts.append(self.view_seperator.to(global_tokens.dtype)[None])
        return torch.cat(parts)

    @torch.inference_mode()
    def encode(
        self,
        pages: PageLike | Sequence[PageLike],
        mode: str | Mode = "base",
        *,
        batch_size: int = 8,
    ) -> VisionTokens:
        """Pages (Page, uint8 arrays or PIL images) → VisionTokens in ``mode``.

        All global views go through the model together (``batch_size`` per
        forward), then all Gundam tiles; results come back on the encoder's
        device and dtype.
        """
        m = get_mode(mode)
        if not isinstance(pages, (list, tuple)):
            pages = [cast(PageLike, pages)]
        if batch_size < 1:
            raise InputError(f"batch_size must be ≥ 1 (got {batch_size})")
        prepared = [prepare(page, m) for page in pages]
        if not prepared:
            return VisionTokens(m.name, (), ())
        global_tokens = self._forward_views(np.stack([p.global_view for p in prepared]), batch_size)
        tile_counts = [len(p.tiles) for p in prepared]
        tile_tokens = None
        if sum(tile_counts):
            tiles = np.concatenate([p.tiles for p in prepared if len(p.tiles)])
            tile_tokens = self._forward_views(tiles, batch_size).split(
                [n for n in tile_counts if n]
            )
        embeddings, t = [], 0
        for i, p in enumerate(prepared):
            tiles_i = None
            if tile_counts[i]:
                assert tile_tokens is not None  # some page has tiles
                tiles_i, t = tile_tokens[t], t + 1
            embeddings.append(self.layout_tokens(global_tokens[i], tiles_i, p.layout))
        logger.debug("encoded %d pages in mode %s", len(prepared), m.name)
        return VisionTokens(m.name, tuple(embeddings), tuple(p.layout for p in prepared))


def build_deep_encoder(config: DeepEncoderConfig, *, attn_impl: str = "auto") -> DeepEncoder:
    """Build the parts and compose them (weights uninitialised: zeros / torch defaults).

    Under ``with torch.device("meta"):`` this allocates nothing, which is how
    checkpoints are loaded without an fp32 detour.
    """
    return DeepEncoder(
        sam_model=SamEncoder(config.sam, attn_impl),
        vision_model=ClipVisionModel(config.clip, attn_impl),
        projector=Projector(config.fused_dim, config.projector_dim),
        config=config,
    )


def _reset_parameters(module: nn.Module) -> None:
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
