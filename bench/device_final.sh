#!/usr/bin/env bash
# Device calls (H200) for issues 11 and 12, each well inside the 10-minute limit; run them back to back so the
# second finds the first's machine and Inductor cache warm:
#   PART=tests bash bench/device_final.sh   the GPU tests (API, then pipeline), then the first detection of a fresh
#                                           process with the default model (cold, then warm caches)
#   PART=bench bash bench/device_final.sh   variants benchmark (FP16 / FP32 / strict), batched throughput, device
#                                           input, 10,000-scan mixed-size memory soak, cache sizes, then the `bench`
#                                           command's --compare on the GPU
# Carry: .whlt (numpy 2.3.5 + shapely cp312 wheels) and .devshared (../shared/{kitti,checkpoints}).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whlt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor POINTPILLARS_TRT_CACHE=/tmp/ppcache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" ../shared && cp -r .devshared/* ../shared/
CK=../shared/checkpoints/pointpillar_kitti_random_seed0.pth
F='triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices\|TypedStorage\|storage()'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "${PART:-tests}" = tests ]; then
# the tests first (what the open issues wait for), each file on its own clock so one slow file cannot starve the other
echo "== tests" | tee "$OUT/tests.log"
timeout 200 python3 -m pytest -v -rs -s -p no:cacheprovider tests/test_api_gpu.py 2>&1 | grep -v "$F" | tee -a "$OUT/tests.log"
timeout 230 python3 -m pytest -v -rs -s -p no:cacheprovider tests/test_gpu_device.py 2>&1 | grep -v "$F" | tee -a "$OUT/tests.log"
echo "== startup, cold caches (fresh Numba + Inductor caches)" | tee "$OUT/startup.log"
( export TORCHINDUCTOR_CACHE_DIR=/tmp/cold/inductor POINTPILLARS_TRT_CACHE=/tmp/cold NUMBA_CACHE_DIR=/tmp/cold/numba
  for run in cold warm; do s=$(date +%s%N)
    timeout 120 python3 -m pointpillars_trt infer ../shared/kitti/scans/000000.bin --device cuda --precision fp16 --show 0 2>&1 | grep -v "$F" | tail -2
    echo "$run process: $(( ($(date +%s%N) - s) / 1000000 )) ms to the first detection, whole process"; done ) 2>&1 | tee -a "$OUT/startup.log"
fi
if [ "${PART:-tests}" = bench ]; then
echo "== bench" | tee "$OUT/bench.log"
timeout 400 python3 bench/graph_bench.py ../shared/kitti/scans data/models/pointpillars_synthetic.pth --iters 300 --precisions fp16 fp32 fp32-strict \
  --batches 4 8 16 --soak 10000 --out "$OUT/graph_bench_h200" 2>&1 | grep -v "$F" | tee -a "$OUT/bench.log"
du -sh /tmp/ppcache/inductor /tmp/cold 2>&1 | tee -a "$OUT/bench.log"
echo "== the bench command's own comparison (Inductor cache warm from above)" | tee -a "$OUT/bench.log"
timeout 90 python3 -m pointpillars_trt bench ../shared/kitti/scans --device cuda --precisions fp16 fp32 \
  --compare compile graph tf32 --iters 100 --out "$OUT/cli_bench_h200" 2>&1 | grep -v "$F" | tail -20 | tee -a "$OUT/bench.log"
fi
exit 0
