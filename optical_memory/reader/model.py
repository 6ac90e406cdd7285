"""The reader's network, in torch (training only; inference is numpy, see
:mod:`optical_memory.reader.infer`).

A line image [N, 1, 16, W] (ink = 1, paper = 0) goes through

- three 3×3 conv + batch-norm + ReLU blocks, max-pooled (2, pool_w), (2, 1),
  (2, 1): 16 → 2 rows, one frame per ``pool_w`` input columns. The shipped
  weights use 2 (~3 frames per character at 11 px; CTC needs at least one
  frame per character and a blank between two equal ones, which 3 px frames
  could not give doubled narrow letters such as "ll");
- the two remaining rows flattened into channels, then a 1-D conv stack over
  the frames (kernel 3, dilations 1, 2, 4; residual): each frame sees about
  ±9 frames (~3 characters at 2 px frames) of context;
- a 1×1 conv to the classes, trained with CTC.

No recurrence: every layer is a batched matrix product, which keeps CPU
inference fast (numpy, no torch). Batch norm is folded into the convolutions
when the weights are exported.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Default widths: (2-D channels c1, c2, c3), 1-D channels, dilations.
DEFAULT_ARCH: dict[str, Any] = {"c1": 16, "c2": 32, "c3": 64, "hidden": 128,
                                "dilations": [1, 2, 4], "pool_w": 3, "height": 16}


class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, dims: int, dilation: int = 1) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        self.conv = conv(cin, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn = bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class LineReader(nn.Module):
    def __init__(self, num_classes: int, arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        a = dict(DEFAULT_ARCH, **(arch or {}))
        self.arch = a
        self.pool_w = int(a["pool_w"])
        self.b1 = ConvBN(1, a["c1"], 2)
        self.b2 = ConvBN(a["c1"], a["c2"], 2)
        self.b3 = ConvBN(a["c2"], a["c3"], 2)
        rows = int(a["height"]) // 8
        self.proj = ConvBN(a["c3"] * rows, a["hidden"], 1)
        self.temporal = nn.ModuleList(ConvBN(a["hidden"], a["hidden"], 1, d)
                                      for d in a["dilations"])
        self.head = nn.Conv1d(a["hidden"], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] (W a multiple of pool_w) → logits [N, classes, W // pool_w]."""
        x = nn.functional.max_pool2d(self.b1(x), (2, self.pool_w))
        x = nn.functional.max_pool2d(self.b2(x), (2, 1))
        x = nn.functional.max_pool2d(self.b3(x), (2, 1))
        n, c, h, t = x.shape
        x = self.proj(x.reshape(n, c * h, t))
        for layer in self.temporal:
            x = x + layer(x)
        return self.head(x)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fold(block: ConvBN) -> tuple[torch.Tensor, torch.Tensor]:
    bn = block.bn
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = block.conv.weight * scale.reshape(-1, *([1] * (block.conv.weight.dim() - 1)))
    b = bn.bias - bn.running_mean * scale
    return w.detach(), b.detach()


def export_arrays(model: LineReader) -> dict[str, Any]:
    """Weights with batch norm folded in, as float32 numpy arrays (the
    layout :class:`optical_memory.reader.infer.NumpyReader` reads)."""
    model.eval()
    out: dict[str, Any] = {}
    for name in ("b1", "b2", "b3", "proj"):
        w, b = _fold(getattr(model, name))
        out[f"{name}.w"], out[f"{name}.b"] = w.numpy(), b.numpy()
    for i, layer in enumerate(model.temporal):
        assert isinstance(layer, ConvBN)
        w, b = _fold(layer)
        out[f"t{i}.w"], out[f"t{i}.b"] = w.numpy(), b.numpy()
    out["head.w"] = model.head.weight.detach().numpy()
    assert model.head.bias is not None
    out["head.b"] = model.head.bias.detach().numpy()
    return {k: v.astype("float32") for k, v in out.items()}


__all__ = ["DEFAULT_ARCH", "LineReader", "count_params", "export_arrays"]
