#!/usr/bin/env bash
# The device check: ONE prepared script for a lent GPU machine (its own torch, no package index, 15 minutes of
# device time in all, 10 a command). From the repository root:
#
#     bash benchmarks/device_check.sh                       # on the GPU machine; everything goes under $OUT
#     DEVICE_CHECK_TINY=1 bash benchmarks/device_check.sh   # anywhere, on the CPU with tiny sizes: proves the script
#
# Steps, each under its own `timeout` (the whole stays under 9 minutes: 20 + 15 + 240 + 240 s, 5 s grace each):
#   1. env:      the GPUs (nvidia-smi -L), torch and its CUDA, the GPUs torch sees;
#   2. import:   optai_tui and its dependencies import (else one line says what is missing, and the check stops);
#   3. single:   benchmarks/gpu_check.py on one GPU (ResNet-18 on CIFAR-shaped data: eager and compiled trainer,
#                the reference loop, host syncs; --skip-cli: doctor, the default preset and profile need no GPU time);
#   4. scaling:  with 2+ GPUs visible, benchmarks/gpu_check.py --scaling all (ResNet-18 at 224 px on 1, 2, 4, ... GPUs
#                through optai-tui train --set train.gpus=N: torchrun + NCCL); else the line saying it is skipped.
# Written under $OUT: <step>.txt (each step's whole output), device_check.log (the steps and exit codes) and
# summary.txt (the result blocks). The exit status is 0 when every step that ran succeeded.
# Knobs: PYTHON (default: .venv/bin/python when present, else python3); DEVICE_CHECK_TINY=1 (CPU, tiny sizes);
# a .device-site/ folder (carried to the machine) is put on PYTHONPATH for dependencies its python lacks.
set -u
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-$(mktemp -d /tmp/device-check.XXXXXX)}
mkdir -p "$OUT" || exit 2
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# a machine whose python has torch but not optai-tui's other dependencies: carry them in .device-site/
# (e.g. pip install --target .device-site rich pydantic pyyaml textual textual-plotext plotext optuna, for its python)
SITE=""
[ -d .device-site ] && SITE="$PWD/.device-site:"
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:-}" PYTHONUNBUFFERED=1
TINY=${DEVICE_CHECK_TINY:-0}
failed=0

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/device_check.log"; }

# step NAME SECONDS CMD...: run CMD under timeout, its output in $OUT/NAME.txt; its tail shown; its status returned
step() {
    local name=$1 limit=$2 rc
    shift 2
    log "step $name (at most ${limit} s): $*"
    timeout -k 5 "$limit" "$@" >"$OUT/$name.txt" 2>&1
    rc=$?
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && log "step $name: stopped after ${limit} s"
    log "step $name: exit $rc"
    tail -n 25 "$OUT/$name.txt"
    [ "$rc" -eq 0 ] || failed=1
    return "$rc"
}

log "device check: $(hostname), $PYTHON, out $OUT$([ "$TINY" = 1 ] && echo ', TINY (CPU, tiny sizes)')"
step env 20 bash -c "(nvidia-smi -L || echo 'no nvidia-smi'); $PYTHON -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"GPUs\", torch.cuda.device_count())'"
if ! step import 15 "$PYTHON" -c "import optai_tui.cli, optai_tui.runs.launch; print('optai_tui imports')"; then
    log "optai_tui does not import with $PYTHON ($(grep -m1 -E 'Error' "$OUT/import.txt")): stopped"
    exit 1
fi

if [ "$TINY" = 1 ]; then
    DEVICE=cpu
    GPUS=2  # two gloo processes stand for two GPUs
    SINGLE=(--device cpu --images 512 --epochs 2 --width 0.125 --batch-size 64 --compile off --skip-cli)
    SCALING=(--device cpu --scaling 1,2 --image-size 32 --scaling-images 256 --per-gpu-batch 32 --scaling-epochs 3 --run-timeout 120)
else
    DEVICE=cuda
    GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
    SINGLE=(--device cuda --images 25000 --epochs 3 --skip-cli)
    SCALING=(--device cuda --scaling all --run-timeout 110)
fi

step single 240 "$PYTHON" benchmarks/gpu_check.py "${SINGLE[@]}"
if [ "${GPUS:-0}" -ge 2 ]; then
    step scaling 240 "$PYTHON" benchmarks/gpu_check.py "${SCALING[@]}"
else
    log "scaling: needs 2+ GPUs; ${GPUS:-0} visible: skipped"
fi

{
    echo "== device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $DEVICE =="
    cat "$OUT/env.txt"
    for name in single scaling; do
        [ -f "$OUT/$name.txt" ] || continue
        echo
        sed -n '/^== optai-tui/,$p' "$OUT/$name.txt" | grep . || { echo "[$name: no result block]"; tail -n 5 "$OUT/$name.txt"; }
    done
} >"$OUT/summary.txt"
log "summary in $OUT/summary.txt"
cat "$OUT/summary.txt"
exit "$failed"
