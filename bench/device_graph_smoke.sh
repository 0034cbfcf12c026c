#!/usr/bin/env bash
# Device smoke test of the graph pipeline: simulator + GPU tests, then a first timing of graph vs launch-by-launch.
# Carry: .whlt (numpy 2.3.5 + shapely cp312 wheels) and .devshared (copy of ../shared/{kitti,checkpoints}).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whlt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" ../shared && cp -r .devshared/* ../shared/
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/smoke.log"
timeout ${T_TESTS:-300} python3 -m pytest -x -q -rs -p no:cacheprovider ${TESTS:-tests/test_gpu_device.py} 2>&1 | tee -a "$OUT/smoke.log"
[ -n "$BENCH" ] && timeout ${T_BENCH:-200} python3 $BENCH 2>&1 | tee -a "$OUT/smoke.log"
exit 0
