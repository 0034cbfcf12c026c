#!/usr/bin/env bash
# One device call (one GPU, about 4 minutes): `infer DIR --out` against `infer DIR --out --ray` (a local Ray cluster
# on the same machine: reading tasks, one GPU detector actor, writing tasks) on 7481 KITTI-size scans (hard links of
# the 10 shared scans), FP16, batches of 32, the default model, the RPN compiled (`--compile now`; the first run tunes
# it into the Inductor cache, the others load it). Then whether the two runs wrote the same files.
# Carry .whl (python bench/ray_wheels.py: Ray 2.60 without Java and its missing dependencies, 40.6 MiB) and a
# .devshared holding kitti/scans and kitti/training/calib (3 MB); .whlt too if the device needs its numpy.
# Run:  bash bench/device_ray_run.sh   ($OUT gets ray_run.log)
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  $(ls .whlt/*.whl 2>/dev/null) || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor POINTPILLARS_TRT_CACHE=/tmp/ppcache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" ../shared && { [ -d .devshared ] && cp -r .devshared/* ../shared/ || true; }
F='triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices\|TypedStorage\|storage()'
S=/tmp/f7481
python3 bench/link_scans.py ../shared/kitti/scans $S --n 7481
run() {  # name, then infer's arguments: whole-process wall time beside infer's own summary
  local name=$1; shift; local s=$(date +%s%N)
  timeout 400 python3 -m pointpillars_trt infer $S "$@" --device cuda --precision fp16 --batch 32 --compile now 2>&1 \
    | grep -v "$F" | grep -v "^E120[0-9]" | grep -iv "token" | tail -8
  echo "$name: $(( ($(date +%s%N) - s) / 1000000 )) ms whole process"; echo
}
{
nvidia-smi --query-gpu=name --format=csv,noheader; nproc | sed 's/^/host cores: /'
python3 -c "import ray; print('ray', ray.__version__)"
echo "== one process (first: tunes the RPN for B = 32 if this cache never did)"
run "warm-up run" --out /tmp/r_warm
echo "== one process"
run "single process" --out /tmp/r_single
echo "== Ray: a local cluster, one GPU actor"
run "ray" --out /tmp/r_ray --ray
echo "== one process again"
run "single process, again" --out /tmp/r_single2
echo "== the same files? (byte for byte; two GPU processes may differ where cuDNN picks other algorithms)"
python3 - <<'EOF'
import filecmp, os
for a, b in (("/tmp/r_single", "/tmp/r_ray"), ("/tmp/r_single", "/tmp/r_single2")):
    names = sorted(os.listdir(a))
    same = sum(filecmp.cmp(f"{a}/{n}", f"{b}/{n}", shallow=False) for n in names if os.path.exists(f"{b}/{n}"))
    print(f"{a} vs {b}: {len(names)} and {len(os.listdir(b))} files, {same} byte-identical")
EOF
} 2>&1 | tee "$OUT/ray_run.log"
exit 0
