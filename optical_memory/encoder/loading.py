"""Old path of checkpoint loading, kept importable for one release: use
:mod:`optical_memory.encoder.checkpoint` (and ``DeepEncoder.from_pretrained``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from optical_memory.encoder.checkpoint import *  # noqa: F403
from optical_memory.encoder.checkpoint import __all__ as _checkpoint_all
from optical_memory.encoder.config import DeepEncoderConfig


def load_deep_encoder(path: str | Path, *, config: DeepEncoderConfig, dtype: Any = None,
                      device: Any = "cpu", attn_impl: str = "auto") -> Any:
    """``DeepEncoder.from_pretrained(path, config=config, ...)``."""
    from optical_memory.encoder.model import DeepEncoder

    return DeepEncoder.from_pretrained(path, config=config, dtype=dtype, device=device,
                                       attn_impl=attn_impl)


__all__ = [*_checkpoint_all, "load_deep_encoder"]
