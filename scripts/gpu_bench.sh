#!/usr/bin/env bash
# The GPU benchmark run on a lent machine that has PyTorch but no network (see
# docs/PERFORMANCE.md, "GPU run").
#
#   bash scripts/gpu_bench.sh pack            # here: wheels + the reference photo into .gpu/
#   bash scripts/gpu_bench.sh run MODE...     # there: install .gpu/wheels, run bench.py MODE --full
#   ONLY=edit,switches bash scripts/gpu_bench.sh run sample   # only those parts (bench.py --only)
#
# `pack` needs pip and the network. The GPU machine's Python (3.12, with torch, transformers,
# peft, opencv, scipy, psutil) lacks only diffusers and segment-anything, so only those travel;
# both are pure Python. `run` writes each mode's log to $OUT (or ./gpu-logs) as it goes, so a
# run stopped at the time limit still returns what it measured; `profile` adds its traces.
set -uo pipefail
cd "$(dirname "$0")/.."

pack() {
    local py=${PYTHON:-.venv/bin/python}
    mkdir -p .gpu/wheels .gpu/reference
    local exclude
    exclude=$(git rev-parse --git-path info/exclude) && mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
    local diffusers
    diffusers=$("$py" -c 'import diffusers; print(diffusers.__version__)') || exit 1
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 -d .gpu/wheels \
        "diffusers==$diffusers" "segment-anything==1.0" || exit 1
    local photo=../shared/reference/dedit-example1/image.png
    if [ -f "$photo" ]; then cp "$photo" .gpu/reference/; fi
    du -sh .gpu
    echo "carry .gpu in the device call"
}

run() {
    [ $# -gt 0 ] || { echo "usage: $0 run MODE..." >&2; exit 2; }
    local out=${OUT:-gpu-logs}
    mkdir -p "$out"
    if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .gpu/wheels/*.whl || exit 1
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    if [ -f .gpu/reference/image.png ]; then export DEDIT_REFERENCE_DIR=$PWD/.gpu/reference; fi
    # profile's Chrome traces come back with the logs (3 files; $OUT returns at most 8)
    export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DEDIT_TRACE_DIR=$out
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/machine.txt"
    python3 -c 'import sys, torch, diffusers, transformers, peft
print(sys.version.split()[0], "torch", torch.__version__, "diffusers", diffusers.__version__,
      "transformers", transformers.__version__, "peft", peft.__version__)' | tee -a "$out/machine.txt"
    # what Settings > Model says on this machine: the editor's own reading of the GPU
    python3 -c 'from dedit_app.placement import describe_placement as d
for low in ("auto", "off"): print("placement:", d("auto", "auto", low))' | tee -a "$out/machine.txt"
    local status=0 only=()
    if [ -n "${ONLY:-}" ]; then only=(--only "$ONLY"); fi
    for mode in "$@"; do
        echo "== python3 scripts/bench.py $mode --full ${only[*]}" | tee "$out/$mode.log"
        python3 scripts/bench.py "$mode" --full "${only[@]}" 2>&1 | tee -a "$out/$mode.log" || status=1
    done
    return $status
}

case "${1:-}" in
    pack) pack ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 pack | run MODE..." >&2; exit 2 ;;
esac
