#!/usr/bin/env bash
# One device call: GPU agreement tests + per-stage benchmark (torch backend, FP32 vs FP16) after a change to the
# torch runner. Carry: .whlt (numpy 2.3.5 + shapely cp312 wheels) and .devshared (copy of ../shared).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whlt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" ../shared && cp -r .devshared/* ../shared/
CK=../shared/checkpoints/pointpillar_kitti_random_seed0.pth
timeout 300 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu_device.py 2>&1 | tee "$OUT/gpu_tests.log"
timeout 240 python3 -m pointpillars_trt bench ../shared/kitti/scans --checkpoint $CK --backend torch --device cuda \
  --precisions fp32 fp16 --iters 300 --warmup 20 --out "$OUT/bench_torch" 2>&1 | tee "$OUT/bench.log"
