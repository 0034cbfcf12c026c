#!/usr/bin/env bash
# One device call: the whole test suite on the GPU machine (GPU tests run there, not skipped), then the CLI
# end to end on the GPU (backend auto -> torch), the CPU path, the errors a GPU user meets, then the torch
# benchmark (FP32 vs FP16) and 2000-scan memory soaks.
# Carry: .whlt (numpy 2.3.5 + shapely cp312 wheels) and .devshared (copy of ../shared/{kitti,checkpoints}).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whlt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" ../shared && cp -r .devshared/* ../shared/
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/full.log"
CK=../shared/checkpoints/pointpillar_kitti_random_seed0.pth
echo "== pytest (whole suite)" | tee -a "$OUT/full.log"
timeout 420 python3 -m pytest -q -rs -p no:cacheprovider 2>&1 | tee -a "$OUT/full.log"
echo "== infer, --device cuda (auto backend)" | tee -a "$OUT/full.log"
python3 -m pointpillars_trt infer ../shared/kitti/scans --checkpoint $CK --device cuda --show 3 --out /tmp/r_gpu 2>&1 | tee -a "$OUT/full.log"
echo "== infer fp16 torch" | tee -a "$OUT/full.log"
python3 -m pointpillars_trt infer ../shared/kitti/training/velodyne/000134.bin --checkpoint $CK --backend torch --precision fp16 --show 3 2>&1 | tee -a "$OUT/full.log"
echo "== infer --backend tensorrt without TensorRT (expect one-line error)" | tee -a "$OUT/full.log"
python3 -m pointpillars_trt infer ../shared/kitti/scans/000000.bin --checkpoint $CK --backend tensorrt 2>&1 | tee -a "$OUT/full.log"; echo "exit $?" | tee -a "$OUT/full.log"
echo "== same results CPU vs GPU json (first scan)" | tee -a "$OUT/full.log"
python3 -m pointpillars_trt infer ../shared/kitti/scans/000000.bin --checkpoint $CK --device cpu --out /tmp/r_cpu 2>&1 | tail -1 | tee -a "$OUT/full.log"
python3 - <<'PY' 2>&1 | tee -a "$OUT/full.log"
import json
a = json.load(open("/tmp/r_gpu/000000.json"))["detections"]; b = json.load(open("/tmp/r_cpu/000000.json"))["detections"]
d = max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in ("x", "y", "z", "dx", "dy", "dz", "yaw"))
print(f"gpu {len(a)} cpu {len(b)} detections; max |box diff| in written JSON {d:.2e}")
PY
echo "== bench (torch, FP32 vs FP16) and 2000-scan memory soaks" | tee -a "$OUT/full.log"
python3 -m pointpillars_trt bench ../shared/kitti/scans --checkpoint $CK --backend torch --device cuda \
  --precisions fp32 fp16 --iters 300 --warmup 20 --out "$OUT/bench_torch" 2>&1 | tee -a "$OUT/full.log"
for p in fp16 fp32; do
  python3 -m pointpillars_trt bench ../shared/kitti/scans --checkpoint $CK --backend torch --device cuda \
    --precisions $p --soak 2000 --out "$OUT/soak_torch_$p" 2>&1 | tail -1 | tee -a "$OUT/full.log"
done
