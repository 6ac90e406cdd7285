"""The reader as an int8 ONNX model for onnxruntime (the fast inference path).

    python -m optical_memory.reader.quantize [--weights optical_memory/reader/weights]
                                             [--batches 24] [--seed 4242]

Reads the exported float weights (``reader.npz`` + ``reader.json``) and
writes ``reader.int8.onnx`` beside them, recording it (file, SHA-256,
calibration) under ``"onnx"`` in ``reader.json``. Needs the ``onnx``
package (the ``reader-train`` extra); running the model needs only
onnxruntime.

The graph, built op by op (no torch):

- the first 3×3 convolution (one input channel: nine multiply-adds per
  output, too thin for an int8 kernel), its ReLU and its (2, 3) max-pool stay
  float32;
- every later convolution is a ``QLinearConv`` (uint8 activations, int8
  weights per output channel, int32 bias): ReLU is folded in, since every
  activation of this network is non-negative (zero point 0, the scale from
  the largest value seen in calibration);
- the residual adds are ``QLinearAdd``;
- the class head is ``MatMulIntegerToFloat``: int8 product, float32 logits
  (quantizing the logits themselves to 256 levels costs read-back).

Calibration: the largest activation of each layer over ``--batches`` batches
of training lines (the training data's generator, another seed; no held-out
text), every width and tier the training draws.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optical_memory.reader.infer import NumpyReader, _conv1d, _conv2d, _pool

logger = logging.getLogger("optical_memory.reader.quantize")

ONNX_FILE = "reader.int8.onnx"
#: The quantized layers, in order, and the activation each one outputs.
LAYERS_1D = ("proj", "t0", "t1", "t2")


def activation_ranges(reader: NumpyReader, batches: Sequence[np.ndarray]) -> dict[str, float]:
    """Largest value of each quantized tensor over ``batches`` ([N, H, W] ink)."""
    top: dict[str, float] = {}

    def seen(name: str, a: np.ndarray) -> None:
        top[name] = max(top.get(name, 0.0), float(a.max()))

    for x in batches:
        h = x[None].astype(np.float32, copy=False)
        h = _pool(_conv2d(h, *reader.k2["b1"]), reader.pool_w)
        seen("b1", h)
        h = _conv2d(h, *reader.k2["b2"])
        seen("b2", h)
        h = _conv2d(_pool(h, 1), *reader.k2["b3"])
        seen("b3", h)
        h = _pool(h, 1)
        c, n, rows, t = h.shape
        h = h.transpose(0, 2, 1, 3).reshape(c * rows, n, t)
        h = _conv1d(h, *reader.k1[0], dilation=1)
        seen("proj", h)
        for i, ((w, b), d) in enumerate(zip(reader.k1[1:], reader.dilations)):
            y = _conv1d(h, w, b, dilation=d)
            seen(f"t{i}", y)
            h = h + y
            seen(f"t{i}.sum", h)
    return top


def calibration_batches(reader: NumpyReader, n: int, seed: int, size: int = 32
                        ) -> list[np.ndarray]:
    """``n`` batches of training lines ([N, H, W] ink, float32), crops
    stretched as inference stretches them."""
    from PIL import Image

    from optical_memory.reader.train import make_batch

    out = []
    for step in range(n):
        samples, _ = make_batch(seed, step, reader.codec, size, reader.pool_w)
        images = []
        for s in samples:  # inference widens crops by the recipe's stretch
            h, w = s.image.shape
            wide = Image.fromarray(s.image).resize(
                (max(3, round(w * reader.stretch)), h), Image.Resampling.BILINEAR)
            images.append(np.asarray(wide, dtype=np.uint8))
        width = max(im.shape[1] for im in images)
        width += (-width) % reader.pool_w
        x = np.zeros((len(images), reader.height, width), dtype=np.float32)
        for j, im in enumerate(images):
            x[j, :, :im.shape[1]] = (255.0 - im.astype(np.float32)) / 255.0
        out.append(x)
    return out


def build_graph(reader: NumpyReader, ranges: dict[str, float]) -> Any:
    """The int8 ONNX model (an ``onnx.ModelProto``)."""
    from onnx import TensorProto, helper, numpy_helper

    w = reader.w
    nodes: list[Any] = []
    inits: list[Any] = []

    names: set[str] = set()

    def const(name: str, arr: Any) -> str:
        if name not in names:  # a tensor's scale is named once, used by its reader too
            names.add(name)
            inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def scale_of(name: str) -> float:
        return max(ranges[name], 1e-6) / 255.0

    def qconv(name: str, x: str, x_scale: float, out: str, y_scale: float,
              **attrs: Any) -> str:
        wt = w[f"{name}.w"].astype(np.float64)
        ws = np.maximum(np.abs(wt).reshape(wt.shape[0], -1).max(axis=1), 1e-12) / 127.0
        wq = np.clip(np.round(wt / ws.reshape(-1, *[1] * (wt.ndim - 1))), -127, 127)
        bq = np.round(w[f"{name}.b"] / (x_scale * ws))
        nodes.append(helper.make_node("QLinearConv", [
            x, const(f"{x}.s", np.float32(x_scale)), const(f"{x}.z", np.uint8(0)),
            const(f"{name}.wq", wq.astype(np.int8)), const(f"{name}.ws", ws.astype(np.float32)),
            const(f"{name}.wz", np.zeros(wt.shape[0], np.int8)),
            const(f"{out}.s", np.float32(y_scale)), const(f"{out}.z", np.uint8(0)),
            const(f"{name}.bq", bq.astype(np.int32))], [out], name=name, **attrs))
        return out

    # first block in float32: conv + ReLU + max-pool, then quantize
    const("b1.w", w["b1.w"])
    const("b1.b", w["b1.b"])
    nodes += [
        helper.make_node("Conv", ["x", "b1.w", "b1.b"], ["b1c"], name="b1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b1c"], ["b1r"], name="b1relu"),
        helper.make_node("MaxPool", ["b1r"], ["b1p"], name="b1pool",
                         kernel_shape=[2, reader.pool_w], strides=[2, reader.pool_w]),
    ]
    s = scale_of("b1")
    nodes.append(helper.make_node("QuantizeLinear", ["b1p", const("b1p.s", np.float32(s)),
                                                     const("b1p.z", np.uint8(0))], ["q1"]))
    x, xs = "q1", s
    for name in ("b2", "b3"):
        y = qconv(name, x, xs, f"{name}q", scale_of(name), kernel_shape=[3, 3],
                  pads=[1, 1, 1, 1])
        nodes.append(helper.make_node("MaxPool", [y], [f"{name}p"], kernel_shape=[2, 1],
                                      strides=[2, 1]))
        x, xs = f"{name}p", scale_of(name)
    rows_c = int(w["proj.w"].shape[1])
    nodes.append(helper.make_node("Reshape", [x, const("flat.shape",
                                                       np.array([0, rows_c, -1], np.int64))],
                                  ["flat"]))
    x = qconv("proj", "flat", xs, "h0", scale_of("proj"), kernel_shape=[3], pads=[1, 1])
    xs = scale_of("proj")
    for i, d in enumerate(reader.dilations):
        y = qconv(f"t{i}", x, xs, f"t{i}q", scale_of(f"t{i}"), kernel_shape=[3],
                  pads=[d, d], dilations=[d])
        out, os_ = f"h{i + 1}", scale_of(f"t{i}.sum")
        nodes.append(helper.make_node("QLinearAdd", [
            x, f"{x}.s", f"{x}.z", y, f"{y}.s", f"{y}.z",
            const(f"{out}.s", np.float32(os_)), const(f"{out}.z", np.uint8(0))], [out],
            domain="com.microsoft", name=f"t{i}add"))
        x, xs = out, os_
    # head: [N, C, T] -> [N, T, C] @ [C, K] in int8, float32 logits
    hw = w["head.w"][:, :, 0].astype(np.float64)  # [K, C]
    hs = np.maximum(np.abs(hw).max(axis=1), 1e-12) / 127.0
    hq = np.clip(np.round(hw / hs[:, None]), -127, 127).astype(np.int8)
    nodes += [
        helper.make_node("Transpose", [x], ["feat"], perm=[0, 2, 1]),
        helper.make_node("MatMulIntegerToFloat", [
            "feat", const("head.wq", np.ascontiguousarray(hq.T)), f"{x}.s",
            const("head.ws", hs.astype(np.float32)), f"{x}.z",
            const("head.wz", np.zeros(hw.shape[0], np.int8)),
            const("head.b", w["head.b"].astype(np.float32))], ["logits"],
            domain="com.microsoft", name="head"),
    ]
    graph = helper.make_graph(
        nodes, "optical_memory_reader_int8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, reader.height, "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["N", "T", reader.codec.num_classes])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="optical_memory.reader.quantize")
    model.ir_version = 8
    return model


def export_onnx(weights: Path | None = None, *, batches: int = 24, seed: int = 4242) -> Path:
    """Build, calibrate and write ``reader.int8.onnx`` next to the recipe in
    ``weights`` (a folder; None: the package's), and record it in the recipe."""
    import onnx

    recipe = (weights / "reader.json") if weights is not None else None
    reader = NumpyReader(recipe, engine="numpy")
    data = calibration_batches(reader, batches, seed)
    ranges = activation_ranges(reader, data)
    model = build_graph(reader, ranges)
    onnx.checker.check_model(model)
    dest = reader.path.parent / ONNX_FILE
    blob = model.SerializeToString()
    dest.write_bytes(blob)
    rec = json.loads(reader.path.read_text(encoding="utf-8"))
    rec["onnx"] = {
        "file": ONNX_FILE,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "weights_sha256": hashlib.sha256((reader.path.parent / rec["weights"]).read_bytes())
        .hexdigest(),
        "quantization": "int8: uint8 activations, int8 per-channel weights; first conv "
                        "float32; float32 logits",
        "calibration": {"by": "python -m optical_memory.reader.quantize", "seed": seed,
                        "batches": batches, "lines": int(sum(len(b) for b in data)),
                        "max": {k: round(v, 4) for k, v in ranges.items()}},
    }
    reader.path.write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m optical_memory.reader.quantize",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None,
                   help="folder with reader.json and reader.npz (default: the package's)")
    p.add_argument("--batches", type=int, default=24, help="calibration batches of 32 lines")
    p.add_argument("--seed", type=int, default=4242)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logger.info("%s", export_onnx(args.weights, batches=args.batches, seed=args.seed))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
