#!/usr/bin/env bash
# One device call (one GPU, about 6 minutes with a fresh Inductor cache): a folder of 7481 KITTI-size scans (hard links
# of the 10 shared scans) through `infer DIR --out` end to end, beside the GPU alone (`bench --batch 32`), FP16, the
# default model, batches of 32:
#   1. bench --batch 32: the GPU alone (compiles and caches the RPN for B = 1 and 32, which the runs below load)
#   2. infer --out (JSON) with --compile now / auto (the default) / off: the summary line gives scans/s end to end and
#      after the first batch; then the same command again (everything skipped: what a resume costs)
#   3. infer --out --calib (JSON + KITTI txt with the calib projection)
#   4. cold disk: 7481 distinct copies evicted from the page cache (posix_fadvise DONTNEED), infer --out again
#   5. bench/folder_host.py: the host's costs per scan (reading on the reader threads, formatting, writing whole)
# Run:  bash bench/device_folder_run.sh   (carrying .whlt and .devshared, as bench/device_final.sh; $OUT gets the log)
set -o pipefail
if ls .whlt/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whlt/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor POINTPILLARS_TRT_CACHE=/tmp/ppcache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" ../shared && { [ -d .devshared ] && cp -r .devshared/* ../shared/ || true; }
F='triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices\|TypedStorage\|storage()'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nproc | sed 's/^/host cores: /' | tee -a "$OUT/gpu.txt"
S=/tmp/f7481; C=../shared/kitti/training/calib/000134.txt
python3 bench/link_scans.py ../shared/kitti/scans $S --n 7481
run() {  # name, then infer's arguments: whole-process wall time beside infer's own summary
  local name=$1; shift; local s=$(date +%s%N)
  timeout 300 python3 -m pointpillars_trt infer "$@" --device cuda --precision fp16 --batch 32 2>&1 | grep -v "$F" \
    | grep -v "^E120[0-9]" | grep -v "^warning: .*dropped" | tail -6
  echo "$name: $(( ($(date +%s%N) - s) / 1000000 )) ms whole process"; echo
}
{
echo "== 1. the GPU alone: bench --batch 32 (FP16, compiled)"
timeout 400 python3 -m pointpillars_trt bench ../shared/kitti/scans --device cuda --precision fp16 --batch 32 --iters 300 \
  2>&1 | grep -v "$F" | grep -v "^E120[0-9]" | tail -25
echo "== 2. infer $S --out (JSON), B = 32"
run "compile now" $S --out /tmp/r_now --compile now
run "rerun, all skipped" $S --out /tmp/r_now --compile now
run "compile auto" $S --out /tmp/r_auto
run "compile off" $S --out /tmp/r_off --compile off
echo "== 3. JSON + KITTI txt (--calib)"
run "calib, compile now" $S --out /tmp/r_calib --calib $C --compile now
echo "== 4. cold disk: 7481 distinct files, evicted from the page cache"
python3 - <<'EOF'
import os, shutil, glob
os.makedirs("/tmp/cold7481", exist_ok=True)
for p in sorted(glob.glob("/tmp/f7481/*.bin")):
    shutil.copyfile(p, "/tmp/cold7481/" + os.path.basename(p))
os.sync()
for p in glob.glob("/tmp/cold7481/*.bin"):
    fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
print("copied and evicted", len(os.listdir("/tmp/cold7481")), "files")
EOF
run "cold disk, compile now" /tmp/cold7481 --out /tmp/r_cold --compile now
echo "== 5. host costs per scan (bench/folder_host.py)"
timeout 200 python3 bench/folder_host.py ../shared/kitti/scans --n 7481 --calib $C 2>&1 | grep -v "$F" | grep -v "^backend" | tail -9
} 2>&1 | tee "$OUT/folder_run.log"
exit 0
