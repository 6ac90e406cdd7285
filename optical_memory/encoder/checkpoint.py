"""Checkpoint reading: strict loading of the encoder tensors from a DeepSeek-OCR safetensors
checkpoint.

Only keys under the encoder prefixes are read (the ~3 B language-model tensors
are never touched); every key and shape is checked against the model before
any data is read; tensors go straight to the target device and dtype and are
assigned into a model built on the meta device, so nothing is allocated twice.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from optical_memory.errors import CheckpointError, DependencyMissingError

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "model."
ENCODER_PREFIXES = ("sam_model.", "vision_model.", "projector.")
ENCODER_KEYS = ("image_newline", "view_seperator")
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# A persistent buffer in the release's code (arange(257)), absent from the
# published checkpoint; checkpoints re-saved through transformers may hold it.
IGNORED_KEYS = frozenset({"vision_model.embeddings.position_ids"})
_SHOWN = 5


def _safe_open():
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise DependencyMissingError(
            "loading a DeepEncoder checkpoint needs safetensors: "
            "pip install 'optical-memory[encoder]'"
        ) from exc
    return safe_open


def encoder_key(checkpoint_key: str) -> str | None:
    """``model.sam_model.x`` → ``sam_model.x``; None for non-encoder keys."""
    if not checkpoint_key.startswith(CHECKPOINT_PREFIX):
        return None
    key = checkpoint_key[len(CHECKPOINT_PREFIX) :]
    if key.startswith(ENCODER_PREFIXES) or key in ENCODER_KEYS:
        return key
    return None


def checkpoint_files(path: str | Path) -> dict[Path, list[str]]:
    """Files of a checkpoint → the encoder keys (checkpoint spelling) each holds.

    Reads the shard index when there is one, else the files' headers.
    """
    path = Path(path)
    if path.is_file():
        files = [path]
    elif (path / INDEX_FILE).is_file():
        weight_map = json.loads((path / INDEX_FILE).read_text())["weight_map"]
        by_file: dict[Path, list[str]] = {}
        for key, name in weight_map.items():
            if encoder_key(key) is not None:
                by_file.setdefault(path / name, []).append(key)
        missing = [str(f) for f in by_file if not f.is_file()]
        if missing:
            raise CheckpointError(f"{path / INDEX_FILE} names missing shards: {', '.join(missing)}")
        return by_file
    elif (path / SINGLE_FILE).is_file():
        files = [path / SINGLE_FILE]
    elif path.is_dir() and sorted(path.glob("*.safetensors")):
        files = sorted(path.glob("*.safetensors"))
    else:
        raise CheckpointError(
            f"no safetensors checkpoint at {path} (expected a .safetensors file, or a "
            f"directory with {SINGLE_FILE} or {INDEX_FILE})"
        )
    safe_open = _safe_open()
    out = {}
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            # safe_open handles have keys() but are not iterable
            out[f] = [k for k in handle.keys() if encoder_key(k) is not None]  # noqa: SIM118
    return out


def _fmt(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f", … ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def check_keys(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: str
) -> None:
    """Raise CheckpointError unless ``found`` has exactly ``expected``'s keys and shapes.

    Keys are encoder keys (no ``model.`` prefix); messages use the checkpoint's.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected) - IGNORED_KEYS)
    misshaped = sorted(k for k in set(expected) & set(found)
                       if tuple(expected[k]) != tuple(found[k]))
    if not (missing or unexpected or misshaped):
        return
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} missing: " + _fmt([CHECKPOINT_PREFIX + k for k in missing]))
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected: " + _fmt([CHECKPOINT_PREFIX + k for k in unexpected])
        )
    if misshaped:
        problems.append(
            f"{len(misshaped)} mis-shaped: "
            + _fmt(
                [
                    f"{CHECKPOINT_PREFIX}{k} "
                    f"(checkpoint {list(found[k])}, model {list(expected[k])})"
                    for k in misshaped
                ]
            )
        )
    raise CheckpointError(f"checkpoint {source} does not fit the encoder: " + "; ".join(problems))


def assign_checkpoint(
    model: torch.nn.Module,
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """Assign a checkpoint's encoder tensors to ``model`` (built on the meta
    device, so nothing was allocated) and return it in eval mode.

    Two passes: the safetensors headers first (every key and shape checked
    against the model, so a bad checkpoint fails before any tensor is read),
    then the tensors, straight to ``device`` and ``dtype``. This module never
    imports the model: ``DeepEncoder.from_pretrained`` builds it and calls here.
    """
    safe_open = _safe_open()
    device = torch.device(device)
    files = checkpoint_files(path)

    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    # Pass 1: shapes only (headers), so a bad checkpoint fails before any read.
    found: dict[str, tuple[int, ...]] = {}
    where: dict[str, tuple[Path, str]] = {}
    for f, keys in files.items():
        with safe_open(str(f), framework="pt") as handle:
            for ckpt_key in keys:
                key = encoder_key(ckpt_key)
                assert key is not None  # checkpoint_files lists encoder keys only
                if key in found:
                    raise CheckpointError(
                        f"tensor {ckpt_key} appears twice ({where[key][0]} and {f})")
                found[key] = tuple(handle.get_slice(ckpt_key).get_shape())
                where[key] = (f, ckpt_key)
    check_keys(expected, found, str(path))

    # Pass 2: tensors, straight to the target device and dtype.
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    open_on = "cpu" if device.type == "meta" else str(device)
    state: dict[str, torch.Tensor] = {}
    for f in files:
        with safe_open(str(f), framework="pt", device=open_on) as handle:
            for key, (src, ckpt_key) in where.items():
                if src != f or key in IGNORED_KEYS:
                    continue
                tensor = handle.get_tensor(ckpt_key)
                if dtype is None:
                    dtype = tensor.dtype  # the checkpoint's (bf16 for the release)
                state[key] = tensor.to(dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    model.eval().requires_grad_(False)
    logger.info(
        "loaded %d encoder tensors from %s (%s, %s)", len(state), path, device, dtype
    )
    return model


__all__ = [
    "CHECKPOINT_PREFIX",
    "ENCODER_KEYS",
    "ENCODER_PREFIXES",
    "IGNORED_KEYS",
    "INDEX_FILE",
    "SINGLE_FILE",
    "assign_checkpoint",
    "check_keys",
    "checkpoint_files",
    "encoder_key",
]
