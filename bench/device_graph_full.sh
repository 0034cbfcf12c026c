#!/usr/bin/env bash
# Device run for issue 11, part A: GPU tests (graph vs CPU, graph vs launches, mixed sizes, batches, compiled FP16,
# DLPack), kernel-by-kernel profile, then the variants benchmark FP16 / FP32 (TF32) / strict FP32.
# Carry: .whlt (numpy 2.3.5 + shapely cp312 wheels) and .devshared (copy of ../shared/{kitti,checkpoints}).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whlt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" ../shared && cp -r .devshared/* ../shared/
CK=../shared/checkpoints/pointpillar_kitti_random_seed0.pth
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/tests.log"
timeout 260 python3 -m pytest -q -rs -p no:cacheprovider ${TESTS:-$(ls tests/test_gpu_device.py tests/test_gpu_sim.py tests/test_api_gpu.py 2>/dev/null)} 2>&1 | grep -v "triton_\|AUTOTUNE\|strides:\|dtypes:" | tee -a "$OUT/tests.log"
timeout ${T_BENCH:-240} python3 bench/graph_bench.py ../shared/kitti/scans $CK --iters ${ITERS:-300} ${BENCH_ARGS:---batches} --out "$OUT/graph_bench" 2>&1 | grep -v "triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices" | tee "$OUT/bench.log"
exit 0
