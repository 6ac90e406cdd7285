"""DeepEncoder: DeepSeek-OCR's vision encoder (SAM ViT-B → 16× compressor →
CLIP-L → projector), re-implemented to load the official checkpoint strictly.

Needs the ``encoder`` extra (torch, safetensors)::

    from optical_memory.encoder import DeepEncoder
    enc = DeepEncoder.from_pretrained("DeepSeek-OCR/", dtype=torch.bfloat16, device="cuda")
    tokens = enc.encode(pages, mode="base")   # tokens[i]: [273, 1280]
"""
from __future__ import annotations

from optical_memory.errors import DependencyMissingError

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise DependencyMissingError(
        "optical_memory.encoder needs PyTorch: pip install 'optical-memory[encoder]'"
    ) from exc

from optical_memory.encoder.allocator import tune_cpu_allocator
from optical_memory.encoder.common import ATTN_IMPLS, flash_attn_available
from optical_memory.encoder.config import ClipConfig, DeepEncoderConfig, SamConfig
from optical_memory.encoder.model import DeepEncoder, VisionTokens, build_deep_encoder
from optical_memory.encoder.preprocess import MODES, Mode, TokenLayout, token_layout

__all__ = [
    "ATTN_IMPLS",
    "MODES",
    "ClipConfig",
    "DeepEncoder",
    "DeepEncoderConfig",
    "Mode",
    "SamConfig",
    "TokenLayout",
    "VisionTokens",
    "build_deep_encoder",
    "flash_attn_available",
    "token_layout",
    "tune_cpu_allocator",
]
