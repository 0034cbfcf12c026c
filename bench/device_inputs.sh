#!/usr/bin/env bash
# Device call (H100/H200, one call, about 6 minutes) for the intensity scale in the GPU voxelizer
# (stages/voxelize_cuda.py, _place_points: one float32 multiply per kept point, always applied, 1 by default):
#   1. the GPU pipeline tests (GPU features bit for bit against the CPU's on the shared scans) and the scale test on
#      NumPy and CUDA-tensor points (tests/test_input_mistakes.py, GPU part): all pass;
#   2. one scan FP16 by stage, uncompiled graph, and B = 32 throughput: voxelize about 0.04 ms a scan and the batch
#      rate as before (README: voxelize 0.042 ms, B = 32 4069 scans/s on an H200), since the kernel is bound by its
#      16-byte reads and writes, not by one multiply.
# Carry: .devshared (../shared/{kitti,checkpoints}, as bench/device_final.sh) where the machine has no ../shared.
set -o pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor POINTPILLARS_TRT_CACHE=/tmp/ppcache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -d ../shared/kitti ] || { mkdir -p ../shared && cp -r .devshared/* ../shared/; }
F='triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices\|TypedStorage\|storage()'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 300 python3 -m pytest -v -rs -p no:cacheprovider tests/test_gpu_device.py \
  "tests/test_input_mistakes.py::test_gpu_scale_gives_the_cpu_detections_from_host_and_device_points" 2>&1 \
  | grep -v "$F" | tee "$OUT/tests.log"
timeout 240 python3 bench/graph_bench.py ../shared/kitti/scans data/models/pointpillars_synthetic.pth --iters 300 \
  --precisions fp16 --variants graph --batches 32 --batch-variants default --out "$OUT/intensity_scale_fp16" 2>&1 \
  | grep -v "$F" | tee "$OUT/bench.log"
exit 0
