#!/usr/bin/env bash
# The GPU machine's checks and measurements, one part each; several parts run in one call, in order:
#   PART="tests single-scan" COMMIT=<hash> bash bench/device.sh
# with the device tool (docs/architecture.md, "GPU checks"): run(command="COMMIT=<hash> PART=<parts> bash
# bench/device.sh", carry=[".whl", ".devshared"]), each call inside its 10 minutes. <hash>: what
# `git rev-parse --short HEAD` prints here (the copy on the GPU machine has no git history; the records name it).
#
#   tests        the GPU test files: cold start, pipeline against CPU, graphs, batches, API, background compile
#   single-scan  one scan at a time, FP16 and FP32: the default against OpenPCDet-style eager, strict FP32,
#                points already on the GPU (bench --compare)
#   throughput   batches of 32, FP16: two batches' graphs side by side against one device slot
#   startup      the README's first command in a new process: cold (empty caches) and warm, phase by phase
#   soak         10,000 scans of mixed sizes through one FP16 detector: device memory, graphs' memory
#   train        train the default model (schedule of data/models/MODEL_CARD.md), resumable: RESUME=CKPT
#   eval         FP16 against FP32 AP of the default model on 300 held-apart frames, and their agreement
#   trt-lean     TensorRT's lean runtime (its two wheels in $WHL): runtime creation, refusals (runner tests)
#
# Each part writes its record into $OUT: <date>_<device>_<part>.md + .json (bench, tools.py) or .log, each naming its
# command, commit, device and date (bench/results/README.md). Back here: `python bench/tools.py keep FILES`.
# Carry .whl: numpy 2.3.5 + shapely cp312 wheels (numba-cuda cannot compile with the image's numpy; see the device
# tool's README, "Notes", for the download line), and .devshared: a copy of ../shared/{kitti,checkpoints}, which
# does not travel. A new part is a function part_<name> (dashes become underscores); $S, $OUT, $COMMIT, the
# functions bench and record are there for it.
set -o pipefail
cd "$(dirname "$0")/.."
WHL=${WHL:-.whl}
ls "$WHL"/*.whl >/dev/null 2>&1 && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site "$WHL"/*.whl || exit 1; }
[ -d ../shared/kitti ] || { mkdir -p ../shared && cp -r .devshared/* ../shared/; } || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export POINTPILLARS_TRT_CACHE=/tmp/ppcache TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor  # shared by the parts
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
S=../shared/kitti/scans
QUIET='triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices\|TypedStorage\|^E120[0-9]'
GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
TAG=$(python3 -c "from pointpillars_trt.pipelines.bench_records import device_tag; print(device_tag('${GPU%%,*}'))")

bench() {  # bench SECONDS ARGS...: the bench command on the GPU, its record into $OUT
  local limit=$1; shift
  timeout "$limit" python3 -m pointpillars_trt bench $S --device cuda --commit "$COMMIT" --out "$OUT" "$@" 2>&1 \
    | grep -v "$QUIET"
}
record() {  # record WHAT: stdin into $OUT/<date>_<device>_WHAT.log, after the record's header
  local f="$OUT/$(date -u +%F)_${TAG}_$1.log"
  { printf '# %s, %s, %s\n\n- command: `PART=%s bash bench/device.sh`\n- commit: %s\n- device: %s (driver %s)\n' \
      "$1" "${GPU%%,*}" "$(date -u +%F)" "$1" "$COMMIT" "${GPU%%,*}" "${GPU##*, }"
    printf -- '- date: %s\n\n```\n' "$(date -u +%F)"; grep -v "$QUIET"; echo '```'; } > "$f"
  tail -25 "$f"
}

part_tests() {  # each file on its own clock, so that one slow file cannot starve the others
  { timeout 150 python3 -m pytest -v -rs -p no:cacheprovider tests/test_cold_start.py
    timeout 210 python3 -m pytest -v -rs -p no:cacheprovider tests/test_gpu_device.py tests/test_input_mistakes.py
    timeout 180 python3 -m pytest -v -rs -p no:cacheprovider tests/test_api_gpu.py
    timeout 180 python3 -m pytest -v -rs -p no:cacheprovider tests/test_background_compile.py; } 2>&1 | record tests
}
part_single_scan() {
  bench 570 --precisions fp16 fp32 --compare eager tf32 cuda-input --iters 400
}
part_throughput() {
  bench 400 --precision fp16 --batch 32 --compare two-slots --iters 640
}
part_soak() {
  bench 400 --precision fp16 --soak 10000
}
part_startup() {  # the README's first command in new processes: cold (every cache of the tool, Numba, Inductor and
  # Triton empty; Python's bytecode as the machine has it, written where missing), then warm, phase by phase; then a
  # second cold start, whose Python bytecode the first one wrote, as a pip install writes it
  local scan=data/sample/training/velodyne/000000.bin
  timeout 300 python3 -m pointpillars_trt bench $scan --startup 2 --commit "$COMMIT" --out "$OUT" 2>&1 | grep -v "$QUIET"
  mkdir -p "$OUT/bytecode-cached"
  timeout 200 python3 -m pointpillars_trt bench $scan --startup 1 --commit "$COMMIT" --out "$OUT/bytecode-cached" 2>&1 \
    | grep -v "$QUIET"
}
part_train() {  # the default model's recipe (data/models/MODEL_CARD.md), resumable: RESUME=CKPT on the same machine
  local ckpt=/tmp/train/model.pth; mkdir -p /tmp/train
  [ -n "${RESUME:-}" ] && cp "$RESUME" "$ckpt"
  { echo "python3 -m pointpillars_trt train --out $ckpt --frames 5000 --epochs 10 --batch-size 8 --seed 0 --real ../shared/kitti --real-split data/splits/kitti_train.txt ..."
    timeout "${TRAIN_TIMEOUT:-540}" python3 -m pointpillars_trt train --out "$ckpt" --frames "${FRAMES:-5000}" --epochs "${EPOCHS:-10}" \
      --batch-size 8 --seed 0 --workers 15 --device cuda --save-every 500 --time-limit "${TIME_LIMIT:-440}" \
      --cache-dir /tmp/frames_cache --log "$OUT/$(date -u +%F)_${TAG}_train.jsonl" --val-frames 300 \
      --real ../shared/kitti --real-split data/splits/kitti_train.txt --real-fraction 0.2 --db-frames 400 \
      ${RESUME:+--resume "$ckpt"} 2>&1
    cat "$ckpt".val_table.txt 2>/dev/null; } | record train
  # the checkpoint with its optimizer state is over the 16 MiB a returned file may have: its weights come back as
  # shards, joined here with `python bench/tools.py weights join model.pth weights_0.pth weights_1.pth`
  python3 bench/tools.py weights split "$ckpt" "$OUT" 2
}
part_eval() {  # --no-compile: a new machine's Inductor tuning would not fit the call beside two evaluations
  { python3 -m pointpillars_trt make-sample --out /tmp/val --frames 300 --seed 1000003 | tail -1
    for p in fp16 fp32; do
      echo "python -m pointpillars_trt eval --data /tmp/val --device cuda --precision $p --no-compile --out /tmp/evals/$p"
      timeout 200 python3 -m pointpillars_trt eval --data /tmp/val --device cuda --precision $p --no-compile \
        --out /tmp/evals/$p | grep -v "frame/s\|scan/s" | tail -45
    done
    echo "python bench/tools.py agree /tmp/evals/fp16 /tmp/evals/fp32"
    python3 bench/tools.py agree /tmp/evals/fp16 /tmp/evals/fp32; } 2>&1 | record eval
}
part_trt_lean() {  # the wheels: tensorrt_lean_cu13_libs and _bindings 11.4.0.106 (engines/README.md)
  { python3 -c 'import tensorrt_lean_bindings as t; print("tensorrt_lean_bindings", t.__version__)'
    timeout 300 python3 -m pytest -v -rs -p no:cacheprovider tests/test_tensorrt_runner.py; } 2>&1 | record trt-lean
}

echo "$GPU; commit $COMMIT; parts: ${PART:?PART=<one or more of: tests single-scan throughput startup soak train eval trt-lean>}"
for part in $PART; do
  fn="part_${part//-/_}"
  declare -F "$fn" >/dev/null || { echo "no part '$part' in bench/device.sh"; exit 2; }
  echo "== $part ($(date -u +%T))"; "$fn"
done
ls -la "$OUT"
