"""Frozen configs for the DeepEncoder (SAM ViT-B → 16× compressor → CLIP-L → projector).

Defaults are the released DeepSeek-OCR encoder (see ``docs/deepencoder.md``);
``DeepEncoderConfig.tiny()`` keeps the token geometry (patch 16, two stride-2
convs, the 64×64 SAM and 16×16 CLIP position grids) but shrinks every width and
depth, so tests run in milliseconds and still give 64/100/256/400 tokens per mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from optical_memory.errors import ConfigError

#: The compressor (``net_2``, ``net_3``) halves each side twice: 4× per side, 16× tokens.
COMPRESSOR_STRIDE = 4


@dataclass(frozen=True)
class SamConfig:
    """The SAM ViT-B backbone (``sam_model``) with its neck and compressor."""

    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    pretrain_image_size: int = 1024  # pos_embed is [1, 64, 64, C] for 1024 px
    neck_dim: int = 256
    compressor_dims: tuple[int, int] = (512, 1024)  # net_2, net_3 output channels
    layer_norm_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def pos_grid(self) -> int:
        return self.pretrain_image_size // self.patch_size

    @property
    def out_dim(self) -> int:
        return self.compressor_dims[-1]


@dataclass(frozen=True)
class ClipConfig:
    """The CLIP-L/14 transformer (``vision_model``), fed SAM's compressed map."""

    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    intermediate_size: int = 4096
    patch_size: int = 14  # only for the (unused) patch_embedding conv
    pretrain_image_size: int = 224  # 16×16 grid + class = 257 positions
    layer_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def pos_grid(self) -> int:
        return self.pretrain_image_size // self.patch_size

    @property
    def num_positions(self) -> int:
        return self.pos_grid**2 + 1


@dataclass(frozen=True)
class DeepEncoderConfig:
    """The whole encoder: ``sam`` → ``clip`` → projector to the LM width."""

    sam: SamConfig = field(default_factory=SamConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    projector_dim: int = 1280  # the language model's hidden size

    def __post_init__(self) -> None:
        sam, clip = self.sam, self.clip
        if sam.embed_dim % sam.num_heads:
            raise ConfigError(
                f"sam.embed_dim must be divisible by sam.num_heads "
                f"(got {sam.embed_dim} and {sam.num_heads})"
            )
        if clip.hidden_size % clip.num_heads:
            raise ConfigError(
                f"clip.hidden_size must be divisible by clip.num_heads "
                f"(got {clip.hidden_size} and {clip.num_heads})"
            )
        if sam.out_dim != clip.hidden_size:
            raise ConfigError(
                f"SAM's net_3 feeds CLIP: sam.compressor_dims[-1] must equal "
                f"clip.hidden_size (got {sam.out_dim} and {clip.hidden_size})"
            )
        bad = [i for i in sam.global_attn_indexes if not 0 <= i < sam.depth]
        if bad:
            raise ConfigError(
                f"sam.global_attn_indexes must lie in [0, {sam.depth}) (got {bad})"
            )
        if sam.pretrain_image_size % sam.patch_size:
            raise ConfigError(
                f"sam.pretrain_image_size must be a multiple of sam.patch_size "
                f"(got {sam.pretrain_image_size} and {sam.patch_size})"
            )

    @property
    def fused_dim(self) -> int:
        """Channels entering the projector: CLIP output then SAM net_3 output."""
        return self.clip.hidden_size + self.sam.out_dim

    @property
    def pixels_per_token(self) -> int:
        """Side in pixels of one output token (16 · 4 = 64 for the release)."""
        return self.sam.patch_size * COMPRESSOR_STRIDE

    @classmethod
    def tiny(cls) -> DeepEncoderConfig:
        """A few-thousand-parameter encoder with the release's token geometry."""
        return cls(
            sam=SamConfig(
                embed_dim=32,
                depth=4,
                num_heads=2,
                global_attn_indexes=(1, 3),
                neck_dim=16,
                compressor_dims=(32, 32),
            ),
            clip=ClipConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
            projector_dim=48,
        )
