#!/usr/bin/env bash
# One-command GPU check (a few minutes): build the CUDA kernels, run the CUDA tests, run the CUDA bench
# (cuDNN fp32 vs lutgen's shared-memory LUT kernel vs a naive global-memory kernel, ResNet-18/VGG-16
# layer shapes, both kernels verified against the reference).
#
#   scripts/gpu_check.sh [OUT_DIR]
#
# Runs from a checkout with any Python whose torch sees a GPU (the project's .venv when its torch has CUDA,
# else python3); the checkout is imported as `approxlut` through a link in a temporary folder, so nothing
# needs installing. Without a GPU it compile-checks the kernels with nvcc, runs the CUDA tests (they skip)
# and says so. Writes gpu_check.log, cuda_tests.log and cuda_bench.json to OUT_DIR (default: a temp folder).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1

has_cuda() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }
python=""
for candidate in "${PYTHON:-}" "$repo/.venv/bin/python" python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null && has_cuda "$candidate"; then
        python="$candidate"
        break
    fi
done
gpu=1
if [ -z "$python" ]; then
    gpu=0
    python="${PYTHON:-$repo/.venv/bin/python}"
    command -v "$python" >/dev/null || python=python3
fi

# The repository root is the package `approxlut`: import it through a link.
site="$(mktemp -d)"
ln -s "$repo" "$site/approxlut"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export LUTGEN_CACHE="${LUTGEN_CACHE:-$site/cache}"
export LUTGEN_LIBRARY="${LUTGEN_LIBRARY:-$site/library}"
start=$SECONDS

echo "== machine"
command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "nvidia-smi: not found"
"$python" -c 'import torch; print("python", torch.__file__.rsplit("/torch/", 1)[0], "| torch", torch.__version__,
    "| CUDA", torch.version.cuda, "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'

echo "== build (nvcc compile check of the kernels alone, then the torch extension)"
"$python" - <<'EOF'
import sys, tempfile
from pathlib import Path

from approxlut.native import cuda

if cuda.nvcc() is None:
    print("nvcc not found: compile check skipped")
else:
    with tempfile.TemporaryDirectory() as tmp:
        result = cuda.compile_check(Path(tmp) / "lut_gemm.o")
    print("nvcc compile check:", "ok" if result.returncode == 0 else "FAILED\n" + result.stderr)
    if result.returncode:
        sys.exit(1)
import torch

if torch.cuda.is_available():
    cuda.load()
    print("torch extension: built and loaded")
EOF

echo "== CUDA tests"
(cd "$repo" && "$python" -m pytest -q -p no:cacheprovider tests/native/test_cuda.py) | tee "$out/cuda_tests.log"

if [ "$gpu" = 0 ]; then
    echo "== CUDA bench: skipped"
    echo "gpu_check: NO GPU FOUND (no Python here has a torch that sees one): nvcc compile check and the"
    echo "  skipping CUDA tests only, nothing measured; $((SECONDS - start)) s; logs in $out"
    exit 0
fi

echo "== CUDA bench (cuDNN fp32 vs shared-memory LUT kernel vs naive kernel; LUT-GEMM without im2col)"
"$python" - "$out/cuda_bench.json" <<'EOF'
import json, sys

import torch
from rich.console import Console

from approxlut.native import PreparedLut
from approxlut.native.bench import bench_lut, render, run_cuda_bench
from approxlut.schema import document

results = run_cuda_bench(PreparedLut.from_lut(bench_lut("approx")), repeat=10, progress=lambda n: print(n, flush=True))
with open(sys.argv[1], "w") as f:
    json.dump(document("bench", {"results": [r.as_dict() for r in results], "tables": [], "summary": [], "skipped": []}), f, indent=1)
for part in render(results, threads=torch.get_num_threads(), wide=True):
    Console(width=250).print(part)
failed = [r.case for r in results if not r.verified]
if failed:
    sys.exit(f"gpu_check: results differ from the reference in: {', '.join(failed)}")
EOF
echo "gpu_check: done in $((SECONDS - start)) s; logs in $out"
