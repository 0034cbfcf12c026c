#!/usr/bin/env bash
# One device call: first detection of a fresh process (cold, then warm caches) phase by phase, then every kernel of
# a batch of 32 / 8 / 1 (concurrent and serial) with per-stage event medians. Carry: .whlt and .devshared.
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whlt/*.whl; mkdir -p ../shared && cp -r .devshared/* ../shared/
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1; M=data/models/pointpillars_synthetic.pth; S=../shared/kitti/scans
F='triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices\|TypedStorage\|storage()\|Warning\|warn'
mkdir -p $OUT
( export TORCHINDUCTOR_CACHE_DIR=/tmp/cold/inductor POINTPILLARS_TRT_CACHE=/tmp/cold NUMBA_CACHE_DIR=/tmp/cold/numba
  for run in cold warm; do s=$(date +%s%N); echo "== $run"
    timeout 150 python3 bench/startup.py $S/000000.bin 2>&1 | grep -v "$F" | tail -12
    echo "$run process: $(( ($(date +%s%N) - s) / 1000000 )) ms whole process"; done
  ls /tmp/cold/numba | head -3; du -sh /tmp/cold/* ) 2>&1 | tee $OUT/startup.log
for o in "--batch 32" "--batch 32 --serial" "--batch 8" ""; do timeout 80 python3 bench/kernel_profile.py $S $M $o --reps 30 2>&1 | grep -v "$F" | head -30; done | tee $OUT/kprof.log
