#!/usr/bin/env bash
# The GPU checks for the DeepEncoder's H100 target (>= 300 base pages/s, bf16,
# encoder only), as one script that fits one 10-minute device call (step limits
# add up to 580 s; run it with timeout_s 600).
#
#   bash benchmarks/device_check.sh [OUT_DIR]      (default: $OUT, else /tmp/device_check)
#
# Needs torch with CUDA and this repo on PYTHONPATH (no skia, no extras).
# Writes, in OUT_DIR:
#   kernels.md     SDPA backends on the folded shapes, eager and compiled (attention_kernels.py)
#   profile.md     which kernels the compiled fold-cudnn forward calls (is it cuDNN?)
#   speed.md       pages/s, fold vs fold-cudnn, torch.compile, base, batch 64
#   agreement.md   the bf16 paths against the fp32 eager forward
# Copy them to benchmarks/results/ (suffix _h100 / _h200) and run collect.py.
# SMOKE=1 runs the same commands on the CPU with the tiny config, uncompiled
# (tests/test_benchmarks.py does, so a typo cannot waste a device window).
# Exit status: the number of steps that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-/tmp/device_check}}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
FAILED=0

step() {  # step SECONDS NAME CMD...: time-limited; a failed step does not stop the rest
    local limit=$1 name=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local t0=$SECONDS rc=0
    timeout "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1 || rc=$?
    echo "   rc=$rc in $((SECONDS - t0))s"
    tail -n 30 "$OUT_DIR/$name.log"
    [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
}

if [ "${SMOKE:-0}" = 1 ]; then
    DEV=(--device cpu --tiny); BATCH=2; MODE=tiny; DTYPE=fp32; COMPILE=()
else
    nvidia-smi -L || true
    DEV=(--device cuda); BATCH=64; MODE=base; DTYPE=bf16; COMPILE=(--compile)
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"

if [ "${SMOKE:-0}" != 1 ]; then  # CUDA only: SDPA backends by name
    step 120 kernels "$PY" benchmarks/attention_kernels.py --batch 64 --iters 5 --out "$OUT_DIR/kernels.md"
fi
step 150 profile "$PY" benchmarks/encoder_profile.py "${DEV[@]}" --batch "$BATCH" --mode "$MODE" \
    --attn fold-cudnn "${COMPILE[@]}" --iters 3 --top 20 --out "$OUT_DIR/profile.md"
step 220 speed "$PY" benchmarks/encoder_speed.py "${DEV[@]}" --batch "$BATCH" --modes "$MODE" \
    --attn fold,fold-cudnn --iters 5 "${COMPILE[@]}" --out "$OUT_DIR/speed.md"
step 90 agreement "$PY" benchmarks/encoder_agreement.py "${DEV[@]}" --batch 2 --mode "$MODE" \
    --dtype "$DTYPE" --attn sdpa,fold,fold-cudnn --out "$OUT_DIR/agreement.md"
exit "$FAILED"
