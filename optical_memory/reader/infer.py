"""The reader at inference, without torch: two engines over the same weights.

:class:`NumpyReader` loads the exported weights (``weights/reader.npz`` and
its recipe ``weights/reader.json``, shipped in the package) and reads a batch
of line crops with one of

- ``"onnx"``: the int8 model ``weights/reader.int8.onnx`` (made from the same
  weights by :mod:`optical_memory.reader.quantize`) in onnxruntime, the fast
  path (about 7× less CPU per page than the numpy engine on this project's
  CPU, read-back within 0.0001 of it: ``benchmarks/results/reader.md``);
- ``"numpy"``: the float32 model in numpy: every layer one matrix product over
  the whole batch (3×3 convolutions as im2col, dilated 1-D convolutions as
  three stacked shifted copies) in the BLAS numpy links against. No
  dependency beyond numpy.

``engine="auto"`` (the default) takes ``"onnx"`` when onnxruntime is
installed (a dependency of the package) and the recipe lists an ONNX file made
from these weights, else ``"numpy"``. Lines are read in batches of similar
width (sorted) to waste little on padding.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from optical_memory.errors import ConfigError
from optical_memory.reader.charset import BLANK, Codec

WEIGHTS_DIR = "weights"
RECIPE_FILE = "reader.json"
ENGINES = ("auto", "onnx", "numpy")

logger = logging.getLogger("optical_memory.reader")


def default_weights() -> Path:
    """The recipe file of the weights shipped in the package."""
    return Path(str(resources.files("optical_memory.reader") / WEIGHTS_DIR / RECIPE_FILE))


@dataclass(frozen=True)
class LineRead:
    """One line read: text, confidence (mean over its characters of the
    winning class's probability; 1.0 for an empty line), unknown glyphs."""

    text: str
    confidence: float
    unknown: int


def _conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3×3 'same' convolution + bias + ReLU, planar layout [C, N, H, W];
    ``w`` is [Co, 9 * Ci] (columns in (dy, dx, ci) order)."""
    c, n, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, dy:dy + h, dx:dx + wd] for dy in range(3) for dx in range(3)])
    out = w @ cols.reshape(9 * c, -1)
    out += b[:, None]
    np.maximum(out, 0, out=out)
    return out.reshape(-1, n, h, wd)


def _conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int) -> np.ndarray:
    """Kernel-3 'same' dilated convolution + bias + ReLU over frames, planar
    [C, N, T]; ``w`` is [Co, 3 * Ci]."""
    c, n, t = x.shape
    d = dilation
    xp = np.pad(x, ((0, 0), (0, 0), (d, d)))
    cols = np.concatenate([xp[:, :, 0:t], xp[:, :, d:d + t], xp[:, :, 2 * d:2 * d + t]])
    out = w @ cols.reshape(3 * c, -1)
    out += b[:, None]
    np.maximum(out, 0, out=out)
    return out.reshape(-1, n, t)


def _pool(x: np.ndarray, pw: int) -> np.ndarray:
    """Max-pool (2, pw) of [C, N, H, W] (H even, W a multiple of pw)."""
    m = np.maximum(x[:, :, 0::2], x[:, :, 1::2])
    if pw == 1:
        return m
    out = m[..., 0::pw]
    for k in range(1, pw):
        out = np.maximum(out, m[..., k::pw])
    return out


#: How much lower (in logits) a look-alike letter of the word's script may
#: score and still replace a letter of another script (see ``_one_script``).
SCRIPT_MARGIN = 3.0


def _script(token: str) -> int:
    """1 Latin, 2 Greek, 3 Cyrillic letter; 0 anything else."""
    if len(token) != 1 or not token.isalpha():
        return 0
    o = ord(token)
    if o < 0x250:
        return 1
    if 0x370 <= o < 0x400:
        return 2
    if 0x400 <= o < 0x530:
        return 3
    return 0


class NumpyReader:
    """The exported line reader. ``recipe``: path of ``reader.json`` (None:
    the weights shipped in the package). ``engine``: "auto", "onnx" or
    "numpy" (see the module doc); ``threads``: onnxruntime's intra-op threads
    (0: one per core)."""

    def __init__(self, recipe: str | Path | None = None, engine: str = "auto",
                 threads: int = 0) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"reader engine must be one of {ENGINES} (got {engine!r})")
        path = Path(recipe) if recipe is not None else default_weights()
        if not path.is_file():
            raise ConfigError(f"reader weights recipe not found: {str(path)!r}")
        try:
            self.recipe: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            arrays = np.load(path.parent / self.recipe["weights"])
            self.w = {k: arrays[k] for k in arrays.files}
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot load reader weights from {str(path)!r}: {exc}") from exc
        self.path = path
        arch = self.recipe["arch"]
        self.height = int(self.recipe["input_height"])
        #: crops are scaled this much wider than tall-proportional (a property
        #: of the weights: see "inference" in the recipe)
        self.stretch = float(self.recipe.get("inference", {}).get("stretch", 1.0))
        self.pool_w = int(arch["pool_w"])
        self.dilations = [int(d) for d in arch["dilations"]]
        self.codec = Codec(self.recipe["charset"], int(self.recipe["max_space_run"]))
        if self.codec.num_classes != int(self.recipe["num_classes"]):
            raise ConfigError(f"{path}: charset does not match the class count")
        # reshape to the matmul layouts once
        self.k2 = {}
        for name in ("b1", "b2", "b3"):
            w = self.w[f"{name}.w"]  # [Co, Ci, 3, 3]
            self.k2[name] = (np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)),
                             self.w[f"{name}.b"])
        self.k1 = []
        for name in ["proj"] + [f"t{i}" for i in range(len(self.dilations))]:
            w = self.w[f"{name}.w"]  # [Co, Ci, 3]
            self.k1.append((np.ascontiguousarray(w.transpose(0, 2, 1).reshape(w.shape[0], -1)),
                            self.w[f"{name}.b"]))
        self._script = np.zeros(self.codec.num_classes, dtype=np.int64)
        for cid in range(self.codec.num_classes):
            self._script[cid] = _script(self.codec.token(cid))
        self._script_classes = {s: np.nonzero(self._script == s)[0] for s in (1, 2, 3)}
        self._space_ids = frozenset(cid for cid in range(1, self.codec.num_classes)
                                    if self.codec.token(cid).strip() == ""
                                    and self.codec.token(cid))
        from optical_memory.reader.context import CONTEXT_FILE, load_prior

        #: look-alikes (I/l, O/0) told apart by their neighbours (None: off)
        self.context = load_prior(path.parent / CONTEXT_FILE)
        self._partner: dict[int, int] = {}
        for a, b in (("I", "l"), ("O", "0")):
            ia, ib = self.codec.encode(a), self.codec.encode(b)
            if len(ia) == len(ib) == 1:
                self._partner[ia[0]], self._partner[ib[0]] = ib[0], ia[0]
        hw = self.w["head.w"]  # [K, C, 1]
        self.head = (np.ascontiguousarray(hw[:, :, 0]), self.w["head.b"])
        self._session: Any = None
        self.engine = "numpy"
        if engine != "numpy":
            why = self._open_onnx(threads)
            if why is not None:
                if engine == "onnx":
                    raise ConfigError(f"reader engine 'onnx' unavailable: {why}")
                logger.debug("reader engine numpy: %s", why)

    def _open_onnx(self, threads: int) -> str | None:
        """Open the recipe's int8 ONNX model; the reason when it cannot be used."""
        spec = self.recipe.get("onnx")
        if not spec:
            return "the recipe lists no ONNX model"
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (a dependency: pip install onnxruntime)"
        onnx_path = self.path.parent / spec["file"]
        npz = self.path.parent / self.recipe["weights"]
        try:
            blob = onnx_path.read_bytes()
            if hashlib.sha256(npz.read_bytes()).hexdigest() != spec.get("weights_sha256"):
                return f"{onnx_path.name} was made from other weights than {npz.name}"
            if hashlib.sha256(blob).hexdigest() != spec.get("sha256"):
                return f"{onnx_path.name} does not match its recorded SHA-256"
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = max(0, int(threads))
            opts.log_severity_level = 3
            # no busy-waiting between ops: the cores are shared with the caller
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # onnxruntime would move the first QuantizeLinear above the
            # float max-pool, which then runs on uint8 in a slow layout (+60 %)
            self._session = ort.InferenceSession(
                blob, opts, providers=["CPUExecutionProvider"],
                disabled_optimizers=["QDQPropagationTransformer"])
        except Exception as exc:  # any load failure: the caller falls back to numpy
            return f"cannot load {onnx_path.name}: {exc}"
        self.engine = "onnx"
        return None

    @property
    def parameters(self) -> int:
        return int(sum(v.size for v in self.w.values()))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """[N, H, W] ink (0..1, W a multiple of pool_w) → logits [N, T, classes]."""
        if self._session is not None:
            out: np.ndarray = self._session.run(
                None, {"x": x[:, None].astype(np.float32, copy=False)})[0]
            return out
        return self.logits_numpy(x)

    def logits_numpy(self, x: np.ndarray) -> np.ndarray:
        """:meth:`logits` by the float32 numpy engine, whatever the engine."""
        h = x[None].astype(np.float32, copy=False)
        h = _pool(_conv2d(h, *self.k2["b1"]), self.pool_w)
        h = _pool(_conv2d(h, *self.k2["b2"]), 1)
        h = _pool(_conv2d(h, *self.k2["b3"]), 1)
        c, n, rows, t = h.shape
        # torch flattens [N, C, rows, T] to channel c * rows + r
        h = h.transpose(0, 2, 1, 3).reshape(c * rows, n, t)
        h = _conv1d(h, *self.k1[0], dilation=1)
        for (w, b), d in zip(self.k1[1:], self.dilations):
            h += _conv1d(h, w, b, dilation=d)
        hw, hb = self.head
        out = hw @ h.reshape(h.shape[0], -1)
        out += hb[:, None]
        return out.reshape(-1, n, t).transpose(1, 2, 0)

    def read(self, crops: Sequence[np.ndarray], batch: int = 16, *,
             line_spacing: float | None = None, mark_unknown: bool = True) -> list[LineRead]:
        """Read line crops (uint8 [height, W_i], white = 255), batched by width.

        mark_unknown: replace guesses over glyphs outside the character set
            by U+FFFD (:mod:`optical_memory.reader.unknown`), which needs the
            pages' ``line_spacing`` (None: the memory's default).
        """
        from optical_memory.reader import unknown as unk

        em = unk.em_frames(self.height, self.stretch, self.pool_w,
                           line_spacing or unk.DEFAULT_LINE_SPACING) if mark_unknown else 0.0
        out: list[LineRead | None] = [None] * len(crops)
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1])
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            widths = [crops[i].shape[1] for i in idx]
            w = max(widths)
            w += (-w) % self.pool_w
            x = np.zeros((len(idx), self.height, w), dtype=np.float32)  # paper: no ink
            for j, i in enumerate(idx):
                x[j, :, :widths[j]] = (255.0 - crops[i].astype(np.float32)) * (1.0 / 255.0)
            logits = self.logits(x)
            best = logits.argmax(axis=2)
            # a frame is inked when its pool_w columns hold ink in the crop's core rows
            a, b = self.height // 5, self.height - self.height // 5
            core = x[:, a:b, :w].max(axis=1).reshape(len(idx), -1, self.pool_w).max(axis=2)
            inked = core >= unk.INK_LEVEL
            for j, i in enumerate(idx):
                t = widths[j] // self.pool_w
                out[i] = self._decode(logits[j, :t], best[j, :t],
                                      inked[j, :t] if mark_unknown else None, em)
        return [r for r in out if r is not None]

    def _one_script(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Latin, Greek and Cyrillic share look-alike capitals and vowels
        ("A" "Α" "А"). A letter read in another script than the rest of its
        word (or, alone, of its line) becomes that script's best letter at the
        same frame when the model scored it nearly as high (within
        :data:`SCRIPT_MARGIN` logits): a look-alike, not a different glyph."""
        scripts = self._script[ids]
        letters = scripts > 0
        if not letters.any() or (scripts[letters] == scripts[letters][0]).all():
            return ids
        line_major = int(np.bincount(scripts[letters], minlength=4)[1:].argmax()) + 1
        out = ids.copy()
        i, n = 0, len(ids)
        while i < n:
            if not letters[i]:
                i += 1
                continue
            j = i
            while j < n and letters[j]:
                j += 1
            counts = np.bincount(scripts[i:j], minlength=4)
            major = line_major if j - i == 1 else int(counts[1:].argmax()) + 1
            for k in range(i, j):
                if scripts[k] != major:
                    cls = self._script_classes[major]
                    alt = int(cls[int(rows[k, cls].argmax())])
                    if rows[k, ids[k]] - rows[k, alt] < SCRIPT_MARGIN:
                        out[k] = alt
            i = j
        return out

    def _look_alikes(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """I/l and O/0 decided by their neighbours where the glyph leaves them
        close (:mod:`optical_memory.reader.context`)."""
        assert self.context is not None
        margins: list[float | None] = []
        found = False
        for k, cid in enumerate(ids.tolist()):
            alt = self._partner.get(cid)
            if alt is None:
                margins.append(None)
            else:
                found = True
                margins.append(float(rows[k, cid] - rows[k, alt]))
        if not found:
            return ids
        tokens = [self.codec.token(int(c)) for c in ids]
        resolved = self.context.resolve(tokens, margins)
        out = ids.copy()
        for k, (a, b) in enumerate(zip(tokens, resolved)):
            if a != b:
                out[k] = self._partner[int(ids[k])]
        return out

    def _decode(self, logits: np.ndarray, best: np.ndarray | None = None,
                inked: np.ndarray | None = None, em: float = 0.0) -> LineRead:
        """Best-path CTC of one line's logits [T, classes]; with ``inked``
        ([T] bool) and ``em`` (frames), guesses over unknown glyphs are
        marked (:func:`optical_memory.reader.unknown.mark_unknown`)."""
        if best is None:
            best = logits.argmax(axis=1)
        keep = (best != BLANK) & np.concatenate([[True], best[1:] != best[:-1]])
        ids = best[keep]
        if ids.size == 0:
            return LineRead("", 1.0, 0)
        rows = logits[keep]
        ids = self._one_script(ids, rows)
        if self.context is not None and self.context.margin > 0:  # margin 0: off
            ids = self._look_alikes(ids, rows)
        top = rows.max(axis=1, keepdims=True)
        expo = np.exp(rows - top)
        total = expo.sum(axis=1)
        prob = 1.0 / total
        if inked is not None and em > 0:
            from optical_memory.reader import unknown as unk

            uid = self.codec.unknown_id
            ids = unk.mark_unknown(
                ids, np.nonzero(keep)[0], prob, expo[:, uid] / total, inked, em,
                unk.advances(self.codec.charset, self.codec.max_space_run), uid,
                self._space_ids)
        unknown = int((ids == self.codec.unknown_id).sum())
        return LineRead(self.codec.decode(ids.tolist()), float(prob.mean()), unknown)


__all__ = ["LineRead", "NumpyReader", "default_weights"]
