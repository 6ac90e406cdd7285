"""Train the native reader on lines the renderer draws (needs torch).

    python -m optical_memory.reader.train --out runs/reader --minutes 30 --threads 2
    python -m optical_memory.reader.train --out runs/reader --resume --minutes 5
    python -m optical_memory.reader.train --out runs/reader2 --init runs/reader/checkpoint.pt \
        --arch '{"pool_w": 2}' --minutes 60
    python -m optical_memory.reader.train --out runs/reader --export optical_memory/reader/weights

Seeded and resumable: batch ``i`` is drawn from ``Random(seed, i)``, so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would.
A checkpoint (model, optimiser, step, seconds trained) is written every
``--checkpoint-every`` steps and at the end; the learning rate follows the
share of the budget spent (``max(step / steps, seconds / time limit)``): warm
up, then cosine down, so a time-limited run still ends annealed.

``--init`` starts a new run from another run's weights (fresh optimiser, step
0, its own seed and schedule); ``--arch`` may then change what leaves the
weights' shapes alone (``pool_w``: frames per column, the one change the
shipped reader was fine-tuned through). The run's state records the chain.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optical_memory.reader.charset import Codec
from optical_memory.reader.data import (
    LineSample,
    PageSpec,
    ctc_fits,
    license_text,
    page_samples,
    random_spec,
    recipe_hash,
)
from optical_memory.reader.lines import LINE_HEIGHT

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def batch_arrays(samples: Sequence[LineSample], pool_w: int = 3) -> tuple[np.ndarray, list[int]]:
    """Line images as one float32 [N, 1, H, W] batch (ink = 1, padded with
    paper on the right to a multiple of ``pool_w``) and each line's frame count."""
    widths = [s.image.shape[1] for s in samples]
    w = max(widths)
    w += (-w) % pool_w
    out = np.zeros((len(samples), 1, LINE_HEIGHT, w), dtype=np.float32)
    for i, s in enumerate(samples):
        out[i, 0, :, : s.image.shape[1]] = (255.0 - s.image.astype(np.float32)) / 255.0
    return out, [x // pool_w for x in widths]


def make_batch(seed: int, step: int, codec: Codec, size: int, pool_w: int = 3
               ) -> tuple[list[LineSample], list[list[int]]]:
    """Batch ``step`` of the run seeded ``seed``: lines of random pages of one width."""
    rng = random.Random(seed * 1_000_003 + step)
    width = rng.choice([384, 512, 640, 768, 1024])
    samples: list[LineSample] = []
    targets: list[list[int]] = []
    tries = 0
    while len(samples) < size and tries < 50:
        tries += 1
        spec = random_spec(rng, width)
        for s in page_samples(spec, rng, codec):
            ids = codec.encode(s.text)
            if ctc_fits(ids, s.image.shape[1] // pool_w):
                samples.append(s)
                targets.append(ids)
    order = rng.sample(range(len(samples)), min(size, len(samples)))
    return [samples[i] for i in order], [targets[i] for i in order]


def heldout_lines(codec: Codec, per_tier: int = 48, seed: int = 12345) -> dict[str, list]:
    """A small fixed held-out set (licence prose at the memory's default
    layout) per tier, scored while training."""
    rng = random.Random(seed)
    text = license_text() or "no licence texts on this machine"
    out: dict[str, list] = {}
    for scale in (1.0, 0.625, 0.5):
        lines: list[LineSample] = []
        while len(lines) < per_tier:
            spec = PageSpec(width=1024, height=240, font="condensed", font_size=11.0,
                            line_spacing=1.1, newline_mode="marker", hinting="normal",
                            kind="text", source="licenses", scale=scale)
            start = rng.randrange(0, max(1, len(text) - 5000))
            lines += page_samples(spec, rng, codec, jitter=False, text=text[start:start + 5000])
        out[str(scale)] = lines[:per_tier]
    return out


def score_lines(model: Any, lines: Sequence[LineSample], codec: Codec) -> float:
    """Mean read-back precision (whitespace-normalised) of ``lines``."""
    import torch

    from optical_memory.decode.metrics import precision

    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(lines), 32):
            chunk = lines[i:i + 32]
            x, frames = batch_arrays(chunk, model.pool_w)
            best = model(torch.from_numpy(x)).argmax(1).numpy()
            for s, b, t in zip(chunk, best, frames):
                total += precision(s.text, codec.decode(codec.ctc_collapse(b[:t])))
    model.train()
    return total / max(1, len(lines))


def lr_at(progress: float, peak: float, warmup: float = 0.03) -> float:
    if progress < warmup:
        return peak * (0.1 + 0.9 * progress / warmup)
    p = min(1.0, (progress - warmup) / (1 - warmup))
    return peak * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * p)))


def train(out: Path, *, seed: int = 0, steps: int = 100_000, minutes: float = 30.0,
          batch: int = 32, lr: float = 2e-3, threads: int = 2, checkpoint_every: int = 200,
          eval_every: int = 500, resume: bool = False, arch: dict[str, Any] | None = None,
          heldout_per_tier: int = 48, init: Path | None = None,
          log: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """Train (or resume) until ``steps`` or ``minutes`` of training time; returns the state."""
    import torch

    from optical_memory.reader.model import LineReader, count_params

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    codec = Codec()
    model = LineReader(codec.num_classes, arch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    state: dict[str, Any] = {"step": 0, "seconds": 0.0, "seed": seed, "history": [],
                             "steps": steps, "minutes": minutes, "batch": batch, "lr": lr,
                             "arch": model.arch, "recipe": recipe_hash(), "threads": threads}
    ckpt = out / CHECKPOINT
    if init is not None and not (resume and ckpt.is_file()):
        src = torch.load(init, weights_only=False)
        model.load_state_dict(src["model"])  # strict: the shapes must match
        prior = src["state"]
        state["init"] = {"from": str(init), "recipe": prior.get("recipe"),
                         "arch": prior.get("arch"), "steps": prior.get("step"),
                         "seconds": round(float(prior.get("seconds", 0.0)), 1),
                         "batch": prior.get("batch"), "seed": prior.get("seed"),
                         "history": prior.get("history", []), "init": prior.get("init")}
        log(f"initialised from {init} (step {prior.get('step')}, arch {prior.get('arch')})")
    if resume and ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        state.update(saved["state"])
        state["steps"], state["minutes"] = steps, minutes
        # the thread counts of every session (a run resumed on other cores keeps its batches)
        before = saved["state"].get("threads", [])
        state["threads"] = sorted({*(before if isinstance(before, list) else [before]), threads})
        if saved["state"]["seed"] != seed:
            raise SystemExit(f"checkpoint was trained with seed {saved['state']['seed']}")
        log(f"resumed at step {state['step']} ({state['seconds']:.0f} s trained)")
    log(f"reader: {count_params(model):,} parameters, {codec.num_classes} classes, "
        f"threads {threads}, recipe {state['recipe']}")
    heldout = heldout_lines(codec, heldout_per_tier)
    limit = minutes * 60.0

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
        tmp.replace(ckpt)

    model.train()
    t_last = time.perf_counter()
    window: list[float] = []
    while state["step"] < steps and state["seconds"] < limit:
        step = state["step"]
        progress = max(step / steps, state["seconds"] / limit)
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, lr)
        samples, targets = make_batch(seed, step, codec, batch, model.pool_w)
        x, frames = batch_arrays(samples, model.pool_w)
        logits = model(torch.from_numpy(x))
        logp = logits.log_softmax(1).permute(2, 0, 1)  # [T, N, C]
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
        loss = torch.nn.functional.ctc_loss(
            logp, flat, torch.tensor(frames), torch.tensor([len(t) for t in targets]),
            blank=0, zero_infinity=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        now = time.perf_counter()
        state["seconds"] += now - t_last
        t_last = now
        state["step"] = step + 1
        window.append(loss.item())
        if state["step"] % 50 == 0:
            log(f"step {state['step']:6d}  {state['seconds']:7.0f} s  loss "
                f"{np.mean(window):.4f}  lr {opt.param_groups[0]['lr']:.2e}")
            window.clear()
        done = state["step"] >= steps or state["seconds"] >= limit
        if state["step"] % eval_every == 0 or done:
            t0 = time.perf_counter()
            scores = {k: round(score_lines(model, v, codec), 4) for k, v in heldout.items()}
            state["history"].append({"step": state["step"], "seconds": round(state["seconds"]),
                                     "heldout": scores})
            log(f"held-out line read-back at step {state['step']}: {scores}")
            t_last += time.perf_counter() - t0  # evaluation time is not training time
        if state["step"] % checkpoint_every == 0 or done:
            save()
    save()
    return state


def export(out: Path, dest: Path, *, stretch: float = 1.0,
           extra: dict[str, Any] | None = None) -> Path:
    """Write the trained weights (numpy ``.npz``, batch norm folded) and the
    recipe (``reader.json``) into ``dest``. ``stretch``: how much wider than
    proportional inference scales line crops (chosen on held-out pages after
    training; 1.0 is what training saw)."""
    import torch

    from optical_memory.reader.charset import CHARSET, MAX_SPACE_RUN
    from optical_memory.reader.data import RECIPE
    from optical_memory.reader.model import LineReader, count_params, export_arrays

    saved = torch.load(out / CHECKPOINT, weights_only=False)
    state = saved["state"]
    codec = Codec()
    model = LineReader(codec.num_classes, state["arch"])
    model.load_state_dict(saved["model"])
    arrays = export_arrays(model)
    dest.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dest / "reader.npz", **arrays)
    recipe = {
        "format": 1,
        "weights": "reader.npz",
        "arch": state["arch"],
        "parameters": count_params(model),
        "charset": CHARSET,
        "max_space_run": MAX_SPACE_RUN,
        "num_classes": codec.num_classes,
        "input_height": LINE_HEIGHT,
        "training": {
            "steps": state["step"], "seconds": round(state["seconds"], 1),
            "batch_lines": state["batch"], "peak_lr": state["lr"], "seed": state["seed"],
            "threads": state.get("threads", 2), "history": state["history"],
            **({"init": state["init"]} if state.get("init") else {}),
        },
        "data_recipe": RECIPE,
        "data_recipe_hash": state["recipe"],
        "inference": {"stretch": stretch},
        **(extra or {}),
    }
    (dest / "reader.json").write_text(json.dumps(recipe, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m optical_memory.reader.train",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100_000, help="stop after this many steps")
    p.add_argument("--minutes", type=float, default=30.0, help="stop after this much training")
    p.add_argument("--batch", type=int, default=32, help="lines per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    p.add_argument("--init", type=Path, default=None,
                   help="start from this checkpoint's weights (fresh optimiser and schedule)")
    p.add_argument("--arch", type=json.loads, default=None, help='JSON, e.g. \'{"hidden": 96}\'')
    p.add_argument("--export", type=Path, default=None,
                   help="only export the checkpoint's weights and recipe into this folder")
    p.add_argument("--stretch", type=float, default=1.0,
                   help="with --export: inference crop stretch recorded in the recipe")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.export is not None:
        logger.info("%s", export(args.out, args.export, stretch=args.stretch))
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(args.out / "train.log", encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(to_file)
    log = logger.info
    train(args.out, seed=args.seed, steps=args.steps, minutes=args.minutes, batch=args.batch,
          lr=args.lr, threads=args.threads, checkpoint_every=args.checkpoint_every,
          eval_every=args.eval_every, resume=args.resume, arch=args.arch, init=args.init,
          log=log)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
