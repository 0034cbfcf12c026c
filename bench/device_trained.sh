#!/usr/bin/env bash
# One device call (H200, inside the 10-minute limit) with the trained default model (data/models):
#   1. the GPU tests (tests/test_gpu_device.py, tests/test_api_gpu.py)
#   2. FP16 vs FP32 AP of the default model on the 300 held-apart validation frames (make-sample --seed 1000003),
#      torch GPU path, with the project's `eval --data`; result files come back as evals.tar.gz
#   3. bench/graph_bench.py with the trained model: FP16 / FP32 (TF32) / strict FP32, batch 8, a short memory soak,
#      in whatever time is left (it saves after every measurement)
# Carry: .whlt (numpy 2.3.5 + shapely cp312 wheels) and .devshared (../shared/{kitti,checkpoints}).
set -o pipefail
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whlt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor POINTPILLARS_TRT_CACHE=/tmp/ppcache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" ../shared && cp -r .devshared/* ../shared/
F='triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices\|TypedStorage\|storage()'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/tests.log"
echo "== tests" | tee -a "$OUT/tests.log"
timeout "${TESTS_S:-270}" python3 -m pytest -q -rs -s -p no:cacheprovider tests/test_gpu_device.py tests/test_api_gpu.py 2>&1 | grep -v "$F" | tee -a "$OUT/tests.log"
echo "== eval (after $(( $(date +%s) - T0 )) s)" | tee "$OUT/eval.log"
python3 -m pointpillars_trt make-sample --out /tmp/val --frames 300 --seed 1000003 2>&1 | tail -2 | tee -a "$OUT/eval.log"
for p in fp16 fp32; do
  s=$(date +%s)
  echo "python -m pointpillars_trt eval --data /tmp/val --device cuda --precision $p --out /tmp/evals/gpu_$p" | tee -a "$OUT/eval.log"
  timeout 150 python3 -m pointpillars_trt eval --data /tmp/val --device cuda --precision $p --out /tmp/evals/gpu_$p 2>&1 \
    | grep -v "$F" | grep -v "frame/s\|scan/s" | tail -45 | tee -a "$OUT/eval.log"
  echo "eval $p: $(( $(date +%s) - s )) s" | tee -a "$OUT/eval.log"
done
tar czf "$OUT/evals.tar.gz" -C /tmp evals
LEFT=$(( 585 - ($(date +%s) - T0) ))
echo "== bench ($LEFT s left)" | tee "$OUT/bench.log"
[ "$LEFT" -gt 30 ] && timeout "$LEFT" python3 bench/graph_bench.py ../shared/kitti/scans data/models/pointpillars_synthetic.pth \
  --iters 200 --precisions fp16 fp32 fp32-strict --variants graph+compile graph eager-openpcdet --batches 8 --soak 2000 \
  --out "$OUT/graph_bench_trained_h200" 2>&1 | grep -v "$F" | tee -a "$OUT/bench.log"
exit 0
