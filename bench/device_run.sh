#!/usr/bin/env bash
# One device call: GPU agreement tests, FP32/FP16 per-stage benchmark (torch backend), 2000-scan memory soak,
# and (when present) the TensorRT lean-runtime tests. Outputs go to $OUT (see bench/results/ for saved copies).
# Run from the repo root on the GPU machine, carrying the numpy 2.3.5 wheel (WHL=dir, default .whl) and ../shared
# (copied from a carried folder when the checkout has none beside it).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${WHL:-.whl}"/numpy-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import numpy, numba, numba_cuda, torch; print('numpy', numpy.__version__, 'numba', numba.__version__, 'numba-cuda', numba_cuda.__version__, 'torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
CK=../shared/checkpoints/pointpillar_kitti_random_seed0.pth
[ -f "$CK" ] || CK=shared/checkpoints/pointpillar_kitti_random_seed0.pth
SC=../shared/kitti/scans; [ -d "$SC" ] || SC=shared/kitti/scans
echo "== pytest tests/test_gpu_device.py" | tee "$OUT/device_tests.log"
timeout 300 python3 -m pytest -v -s tests/test_gpu_device.py 2>&1 | tee -a "$OUT/device_tests.log"
echo "== bench" | tee "$OUT/bench.log"
timeout 200 python3 -m pointpillars_trt.cli.bench "$SC" --checkpoint "$CK" --backend torch --device cuda \
  --precisions fp32 fp16 --iters 300 --warmup 20 --out "$OUT/bench_torch" 2>&1 | tee -a "$OUT/bench.log"
timeout 200 python3 -m pointpillars_trt.cli.bench "$SC" --checkpoint "$CK" --backend torch --device cuda \
  --precisions fp16 --soak 2000 --out "$OUT/soak_torch" 2>&1 | tee -a "$OUT/bench.log"
if [ -f bench/device_trt_lean.sh ] && ls "${WHL:-.whl}"/tensorrt_lean* >/dev/null 2>&1; then
  echo "== bench/device_trt_lean.sh" | tee "$OUT/trt_lean.log"
  timeout 120 bash bench/device_trt_lean.sh 2>&1 | tee -a "$OUT/trt_lean.log"
fi
