#!/usr/bin/env bash
# The GPU machine's checks and measurements, one part each; several parts run in one call, in order:
#   PART="tests single-scan" COMMIT=<hash> bash bench/device.sh
# with the device tool (docs/architecture.md, "GPU checks"): run(command="COMMIT=<hash> PART=<parts> bash
# bench/device.sh", carry=[...]), each call inside its 10 minutes. <hash>: what `git rev-parse --short HEAD` prints
# here (the copy on the GPU machine has no git history; the records name it).
#
#   tests        the GPU test files: cold start, pipeline against CPU, graphs, batches, API, background compile
#   single-scan  one scan at a time, FP16 and FP32: the default against OpenPCDet-style eager, strict FP32,
#                points already on the GPU (bench --compare)
#   throughput   batches of 32, FP16: two batches' graphs side by side against one device slot
#   startup      the README's first command in a new process: cold (empty caches) and warm, phase by phase
#   soak         10,000 scans of mixed sizes through one FP16 detector: device memory, graphs' memory
#   train        train the default model (schedule of data/models/MODEL_CARD.md), resumable: RESUME=CKPT
#   finetune     fine-tunes of the default model for real-frame Car AP (FT_VARIANTS), each evaluated on real and
#                held-apart generated frames; their FP16 checkpoints come back
#   model        the default model from nothing in its three steps (train, two fine-tunes); run again to resume
#   crossval     a fine-tune recipe scored by 3-fold cross-validation on the real frames, then trained on all 11
#   eval         FP16 against FP32 AP of the default model on 300 held-apart frames, and their agreement
#   trt-lean     TensorRT's lean runtime (its two wheels in $WHL): runtime creation, refusals (runner tests)
#   folder       `infer DIR --out` over 7481 scans end to end against the GPU alone, resumes, cold disk, host ceiling
#   ray          `infer DIR --out` in one process against `--ray` (a local Ray cluster), and whether they agree
#
# Each part writes its record into $OUT: <date>_<device>_<part>.md + .json (bench, tools.py) or .log, each naming its
# command, commit, device and date (bench/results/README.md). Back here: `python bench/tools.py keep FILES`.
# Carry: a call carries 64 MiB at most, the working tree 12 of them, so name the wheels and the shared data the parts
# need rather than whole folders where those are larger. Wheels: every .whl in $WHL that came is installed first;
# numpy 2.3.5 (15.8 MiB; numba-cuda cannot compile with the image's numpy) and shapely cp312 (3.0 MiB) come from the
# device tool's README, "Notes", Ray's from `python bench/tools.py ray-wheels`. Shared data: .devshared, a copy of
# ../shared/{kitti,checkpoints} (8 + 19 MiB), which does not travel itself; .devshared/kitti alone does for every part
# but tests (the checkpoint). The usual carry: [".whl/numpy-2.3.5-....whl", ".whl/shapely-2.1.2-....whl", ".devshared"].
# A new part is a function part_<name> (dashes become underscores); $S, $OUT, $COMMIT, the functions bench and record
# are there for it, and upto for a part that must end in time.
set -o pipefail
cd "$(dirname "$0")/.."
WHL=${WHL:-.whl}
ls "$WHL"/*.whl >/dev/null 2>&1 && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site "$WHL"/*.whl || exit 1; }
if [ -d .devshared ]; then  # what came this call, over what an earlier call left
  mkdir -p ../shared && cp -r .devshared/. ../shared/ || exit 1
fi
[ -d ../shared/kitti/scans ] || { echo "no ../shared/kitti/scans: carry .devshared/kitti (see Carry above)"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export POINTPILLARS_TRT_CACHE=/tmp/ppcache TORCHINDUCTOR_CACHE_DIR=/tmp/ppcache/inductor  # shared by the parts
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
S=../shared/kitti/scans
QUIET='triton_\|AUTOTUNE\|strides:\|dtypes:\|SingleProcess\|Autotune Choices\|num_choices\|TypedStorage\|storage()'
QUIET+='\|^E120[0-9]'
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
upto() {  # upto END CAP: seconds the next step may take: CAP, or less where the part must end at END ($SECONDS)
  local left=$(( $1 - SECONDS )); (( left > $2 )) && left=$2; echo $(( left > 1 ? left : 1 ))
}

part_tests() {  # each file on its own clock, so that one slow file cannot starve the others; TESTS="FILE[::TEST] ..."
  # runs those instead (one clock of 300 s)
  if [ -n "$TESTS" ]; then
    timeout 300 python3 -m pytest -v -rs -p no:cacheprovider $TESTS 2>&1 | record tests; return
  fi
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
train_recipe() {  # train_recipe CKPT CAP OPTS...: step 1 of the model card (FRAMES x EPOCHS, default 5000 x 10) into
  # CKPT, the whole process cut at CAP seconds and the training stopped cleanly at TIME_LIMIT (440)
  local ck=$1 cap=$2; shift 2
  timeout "$cap" python3 -m pointpillars_trt train --out "$ck" --frames "${FRAMES:-5000}" --epochs "${EPOCHS:-10}" \
    --batch-size 8 --seed 0 --workers 15 --device "${FT_DEVICE:-cuda}" --save-every 500 --time-limit "${TIME_LIMIT:-440}" \
    --cache-dir /tmp/frames_cache --log "$OUT/$(date -u +%F)_${TAG}_train.jsonl" --val-frames "${VAL:-300}" \
    --real ../shared/kitti --real-split data/splits/kitti_train.txt --real-fraction 0.2 --db-frames 400 "$@" 2>&1
}
finished() {  # finished CKPT LOG: LOG says train wrote CKPT at its schedule's last iteration (not cut by a limit)
  grep -q "^wrote $1: iteration \([0-9]*\) of \1," "$2"
}
part_train() {  # the default model's recipe (data/models/MODEL_CARD.md), resumable: RESUME=CKPT on the same machine
  local ckpt=/tmp/train/model.pth; mkdir -p /tmp/train
  [ -n "${RESUME:-}" ] && cp "$RESUME" "$ckpt"
  { echo "python3 -m pointpillars_trt train --out $ckpt --frames 5000 --epochs 10 --batch-size 8 --seed 0 --real ../shared/kitti --real-split data/splits/kitti_train.txt ..."
    train_recipe "$ckpt" "${TRAIN_TIMEOUT:-540}" ${RESUME:+--resume "$ckpt"}
    cat "$ckpt".val_table.txt 2>/dev/null; } | record train
  # the checkpoint with its optimizer state is over the 16 MiB a returned file may have: its weights come back as
  # shards, joined here with `python bench/tools.py weights join model.pth weights_0.pth weights_1.pth`
  python3 bench/tools.py weights split "$ckpt" "$OUT" 2
}
part_model() {  # the default model from nothing as one command that resumes (data/models/MODEL_CARD.md, Reproduce):
  # step 1 trains (part train's schedule), step 2 fine-tunes it with taller car boxes (`top`), step 3 fine-tunes that
  # on all 11 real frames (`top-all`), each from the FP16 file of the step before, as the shipped model was made. Run
  # it again until $OUT holds pointpillars_synthetic.pth: on the same warm machine a cut training resumes (/tmp/model);
  # on a new one, carry MODEL_DIR (default .model) with the step files the last call returned (step1.pth, step2.pth)
  # and the finished steps are skipped. FRAMES, EPOCHS, VAL, FT_FRAMES, FT_EPOCHS, FT_VAL shrink it for a quick check.
  local d=/tmp/model ck=/tmp/model/train.pth resume=; mkdir -p $d /tmp/ft
  [ -d "${MODEL_DIR:-.model}" ] && cp -n "${MODEL_DIR:-.model}"/step[12].pth $d/ 2>/dev/null
  [ -f $ck ] && resume="--resume $ck"
  FT_END=$(( SECONDS + ${MODEL_SECONDS:-570} ))  # the fine-tunes' end too: one cut by it is redone next time
  { if [ -f $d/step1.pth ]; then echo "== step 1: done ($d/step1.pth)"; else
      echo "== step 1: python3 -m pointpillars_trt train --out $ck --frames ${FRAMES:-5000} --epochs ${EPOCHS:-10} --batch-size 8 --seed 0 --real ../shared/kitti --real-split data/splits/kitti_train.txt $resume (recipe's other options)"
      train_recipe $ck "$(upto "$FT_END" 540)" $resume | grep -v "$QUIET" | tee $d/step1.log
      if finished $ck $d/step1.log; then
        python3 bench/tools.py weights fp16 $ck $d/step1.pth && cp $d/step1.pth "$OUT/"
      else echo "== step 1 stopped before its last iteration: run the part again on this machine to resume it"; fi
    fi
    if [ -f $d/step1.pth ] && [ ! -f $d/step2.pth ]; then
      FT_BASE=$d/step1.pth ft_train top data/splits/kitti_train.txt "${FT_VAL:-300}" \
        "$OUT/$(date -u +%F)_${TAG}_ft-top.jsonl" --synthetic-car-top 0.04 \
        && python3 bench/tools.py weights fp16 /tmp/ft/top.pth $d/step2.pth && cp $d/step2.pth "$OUT/"
    elif [ -f $d/step2.pth ]; then echo "== step 2: done ($d/step2.pth)"; fi
    if [ -f $d/step2.pth ]; then
      FT_BASE=$d/step2.pth ft_train top-all data/splits/kitti_all.txt "${FT_VAL:-300}" \
        "$OUT/$(date -u +%F)_${TAG}_ft-top-all.jsonl" --synthetic-car-top 0.04 \
        && python3 bench/tools.py weights fp16 /tmp/ft/top-all.pth "$OUT/pointpillars_synthetic.pth" \
        && echo "== the default model: $OUT/pointpillars_synthetic.pth (into data/models/ to use it)"
    fi; } 2>&1 | record model
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
FT_VARIANTS_ALL="plain top top-real plain-all top-all top-all-r40"
ft_options() {  # ft_options VARIANT: its train options beside the recipe's (data/models/MODEL_CARD.md)
  case $1 in
    plain) echo "";;  # the recipe's data: what fine-tuning alone does
    top) echo "--synthetic-car-top 0.04";;  # generated cars' label boxes 4 cm taller (training/labels.py)
    top-real) echo "--synthetic-car-top 0.04 --real-paste-share 0.5";;  # and half the pasted objects real
    plain-all) echo "";;  # the recipe's data: with crossval, what the real frames do without taller boxes
    top-all) echo "--synthetic-car-top 0.04";;  # top's data; crossval gives it its folds' real frames
    top-all-r40) echo "--synthetic-car-top 0.04 --real-fraction 0.4";;  # and twice the share of real items
    *) return 1;;
  esac
}
real_ap() {  # real_ap NAME CKPT: Car/Pedestrian/Cyclist AP R40 (strict) on the real eval split, on the CPU as the
  # model card measures it
  echo "== $1 on the real eval split: python -m pointpillars_trt eval --data ../shared/kitti --split data/splits/kitti_eval.txt --checkpoint $2 --device cpu"
  timeout 120 python3 -m pointpillars_trt eval --data ../shared/kitti --split data/splits/kitti_eval.txt \
    --checkpoint "$2" --device cpu --precision fp32 --out "/tmp/ft/real_$1" 2>&1 | grep -v "$QUIET" \
    | grep -A4 "AP_R40@0.70, 0.70, 0.70:\|AP_R40@0.50, 0.50, 0.50:\|trained this model" | grep -v "^--\|bbox\|aos"
}
ft_train() {  # ft_train NAME SPLIT VAL LOG OPTS...: the default model fine-tuned (the model card's recipe) into
  # /tmp/ft/NAME.pth on the real frames of SPLIT, validated on VAL held-apart generated frames, losses into LOG
  local name=$1 split=$2 val=$3 log=$4; shift 4
  echo "== $name: python3 -m pointpillars_trt train --init $FT_BASE --lr ${FT_LR:-0.001} --frames ${FT_FRAMES:-2400} --epochs ${FT_EPOCHS:-4} --real-split $split $* (recipe's other options)"
  timeout "$(upto "$FT_END" 300)" python3 -m pointpillars_trt train --out "/tmp/ft/$name.pth" --init "$FT_BASE" \
    --lr "${FT_LR:-0.001}" --frames "${FT_FRAMES:-2400}" --epochs "${FT_EPOCHS:-4}" --batch-size 8 --seed 0 \
    --workers "${FT_WORKERS:-15}" --device "${FT_DEVICE:-cuda}" --save-every 500 --time-limit "${FT_TIME:-170}" \
    --cache-dir /tmp/frames_cache --log "$log" --val-frames "$val" \
    --real ../shared/kitti --real-split "$split" --real-fraction 0.2 --db-frames 400 \
    "$@" 2>&1 | grep -v "$QUIET" | tee "/tmp/ft/$name.log"
  finished "/tmp/ft/$name.pth" "/tmp/ft/$name.log" || { echo "$name: no finished checkpoint (cut by the part's time)"; return 1; }
}
FT_BASE=${FT_BASE:-data/models/pointpillars_synthetic.pth}  # the model fine-tuned (crossval of the shipped model: its own base)
part_finetune() {  # fine-tunes of the default model for real-frame Car AP, ends within FT_SECONDS (default 540).
  # FT_VARIANTS (default "top top-real"; of: $FT_VARIANTS_ALL, see ft_options), each from the default model's
  # weights (--init) with a one-cycle max LR of FT_LR (0.001) over FT_EPOCHS x FT_FRAMES / 8 iterations (4 x 2400 / 8
  # = 1200; the first epoch generates its frames, the next variant reuses them), the recipe's real frames and
  # gt_sampling. Each: training with its validation on FT_VAL (300) held-apart generated frames, then AP on the real
  # eval split (the default model's first). Carry: the numpy and shapely wheels, .devshared. Back (8 files at most):
  # the record, each variant's losses (ft-<v>.jsonl: a record name, which `bench/tools.py keep` takes) and its
  # checkpoint in the default model's FP16 storage (ft_<v>.pth).
  FT_END=$(( SECONDS + ${FT_SECONDS:-540} )); local v opts
  rm -rf /tmp/ft; mkdir -p /tmp/ft
  { real_ap default $FT_BASE
    for v in ${FT_VARIANTS:-top top-real}; do
      opts=$(ft_options "$v") || { echo "no variant '$v' (of: $FT_VARIANTS_ALL)"; continue; }
      ft_train "$v" data/splits/kitti_train.txt "${FT_VAL:-300}" "$OUT/$(date -u +%F)_${TAG}_ft-$v.jsonl" $opts || continue
      python3 bench/tools.py weights fp16 "/tmp/ft/$v.pth" "$OUT/ft_$v.pth"
      real_ap "$v" "$OUT/ft_$v.pth"
    done
    ft_summary default ${FT_VARIANTS:-top top-real}; } 2>&1 | record finetune
}
part_crossval() {  # a fine-tune recipe scored on real frames by 3-fold cross-validation, then trained on all 11 real
  # frames; ends within FT_SECONDS (default 560). CV_VARIANT (default top-all; see ft_options): fold k fine-tunes the
  # default model on data/splits/kitti_cv<k>_train.txt (the two training frames and six of the nine eval frames) and
  # writes KITTI results for kitti_cv<k>_eval.txt (the other three); the 9 frames' results, each from a model that
  # never trained on its frame, are evaluated together. Then (CV_FINAL, default 1) the same fine-tune on
  # kitti_all.txt, with its validation on FT_VAL (300) generated frames. Carry: the numpy and shapely wheels,
  # .devshared/kitti. Back: the record, the pooled result files (cv-<v>-results.tar), the final model's losses
  # (ft-<v>.jsonl) and its FP16 checkpoint (ft_<v>.pth).
  FT_END=$(( SECONDS + ${FT_SECONDS:-560} )); local v=${CV_VARIANT:-top-all} opts k pool=/tmp/ft/pooled
  opts=$(ft_options "$v") || { echo "no variant '$v' (of: $FT_VARIANTS_ALL)"; return 1; }
  rm -rf /tmp/ft; mkdir -p $pool
  { for k in 0 1 2; do
      ft_train "$v-cv$k" "data/splits/kitti_cv${k}_train.txt" 0 "/tmp/ft/$v-cv$k.jsonl" $opts || continue
      echo "== fold $k: python -m pointpillars_trt eval --data ../shared/kitti --split data/splits/kitti_cv${k}_eval.txt --checkpoint /tmp/ft/$v-cv$k.pth --device cpu"
      timeout 120 python3 -m pointpillars_trt eval --data ../shared/kitti --split "data/splits/kitti_cv${k}_eval.txt" \
        --checkpoint "/tmp/ft/$v-cv$k.pth" --device cpu --precision fp32 --out "/tmp/ft/eval_cv$k" 2>&1 \
        | grep -v "$QUIET" | grep -A3 "Car AP_R40@0.70, 0.70, 0.70:\|trained this model" | grep -v "^--\|bbox\|aos"
      cp /tmp/ft/eval_cv$k/results/*.txt $pool/
    done
    echo "== $v, 3 folds pooled: python -m pointpillars_trt eval --results POOLED --labels ../shared/kitti/training/label_2 --ids data/splits/kitti_eval.txt"
    python3 -m pointpillars_trt eval --results $pool --labels ../shared/kitti/training/label_2 \
      --ids data/splits/kitti_eval.txt --out /tmp/ft/eval_pooled 2>&1 \
      | grep -A4 "AP_R40@0.70, 0.70, 0.70:\|AP_R40@0.50, 0.50, 0.50:" | grep -v "^--\|bbox\|aos"
    tar -cf "$OUT/cv-$v-results.tar" -C $pool .
    if [ "${CV_FINAL:-1}" = 1 ] && ft_train "$v" data/splits/kitti_all.txt "${FT_VAL:-300}" \
        "$OUT/$(date -u +%F)_${TAG}_ft-$v.jsonl" $opts; then
      python3 bench/tools.py weights fp16 "/tmp/ft/$v.pth" "$OUT/ft_$v.pth"
    fi; } 2>&1 | record crossval
}
ft_summary() {  # ft_summary NAME...: one line each: real-frame Car AP R40 moderate and the generated validation's
  echo "== summary: real = Car AP R40 moderate BEV / 3D on data/splits/kitti_eval.txt (at most 17.50: 8 cars);"
  echo "   generated = 3D AP R40 moderate on the held-apart frames (default model: 99.62 / 87.07 / 99.58, train log)"
  local n t
  for n in "$@"; do
    t=/tmp/ft/real_$n/table.txt
    [ -f "$t" ] || { echo "$n: no real-frame evaluation"; continue; }
    printf '%-9s real Car BEV %s / 3D %s; %s\n' "$n" \
      "$(grep -A3 'Car AP_R40@0.70, 0.70, 0.70:' "$t" | awk -F'[:,]' '/^bev/ {print $3}')" \
      "$(grep -A3 'Car AP_R40@0.70, 0.70, 0.70:' "$t" | awk -F'[:,]' '/^3d/ {print $3}')" \
      "$(grep -h '^validation' "/tmp/ft/$n.log" 2>/dev/null | sed 's/.*moderate: /generated /' || true)"
  done
}
part_trt_lean() {  # the wheels: tensorrt_lean_cu13_libs and _bindings 11.4.0.106 (engines/README.md)
  { python3 -c 'import tensorrt_lean_bindings as t; print("tensorrt_lean_bindings", t.__version__)'
    timeout 300 python3 -m pytest -v -rs -p no:cacheprovider tests/test_tensorrt_runner.py; } 2>&1 | record trt-lean
}

timed_infer() {  # timed_infer END CAP NAME ARGS...: `infer ARGS` at FP16 in batches of 32 on the GPU, cut at
  # (upto END CAP); its summary, then its whole process's wall time
  local cap; cap=$(upto "$1" "$2"); local name=$3 t=$(date +%s%N) rc; shift 3
  timeout "$cap" python3 -m pointpillars_trt infer "$@" --device cuda --precision fp16 --batch 32 2>&1 \
    | grep -v "$QUIET" | grep -v "^warning: .*dropped" | grep -iv "token" | tail -8; rc=${PIPESTATUS[0]}
  echo "$name: $(( ($(date +%s%N) - t) / 1000000 )) ms whole process (exit $rc)"; echo
}
part_folder() {  # ends within FOLDER_SECONDS (default 330; upto cuts a step that would run past, so the steps
  # come in the order they matter); carry: the numpy and shapely wheels (.whl-gpu/*.whl, named) and .devshared/kitti
  # (scans + training/calib/000000.txt; 35.8 MiB with the tree). A folder of 7481 KITTI-size scans (links of the 10
  # shared ones), FP16, the default model, batches of 32: 1. the GPU alone (bench --batch 32; it tunes the RPN for
  # B = 1 and 32 into the cache the runs load) 2. `infer --out` (JSON) with --compile now: reader and writer processes
  # (the default, `auto`), then again (all skipped: what a resume costs), then with reader threads 3. the host's
  # ceiling: the same loop with the network's results replayed (tools.py folder-loop), reader processes, then threads
  # 4. JSON + KITTI txt (--calib) 5. cold disk: 7481 distinct copies evicted from the page cache 6. the way before
  # reader and writer processes (threads under the GIL, a line per scan: --readers threads --writers threads -v)
  local end=$(( SECONDS + ${FOLDER_SECONDS:-330} )) f=/tmp/f7481 c=../shared/kitti/training/calib/000000.txt
  local o=/tmp/folder_part
  rm -rf $o; mkdir -p $o  # an earlier call's results would be skipped
  { nproc | sed 's/^/host cores: /'; python3 bench/tools.py link-scans $S $f --n 7481
    [ -f $c ] || echo "no $c: carry .devshared/kitti (part_folder)"
    echo "== 1. the GPU alone: bench --batch 32 (FP16, compiled)"
    timeout "$(upto $end 150)" python3 -m pointpillars_trt bench $S --device cuda --precision fp16 --batch 32 \
      --iters 300 2>&1 | grep -v "$QUIET" | grep "scans/s\|compiled in"
    echo "== 2. infer $f --out (JSON), B = 32, --compile now"
    timed_infer $end 45 "reader and writer processes (default)" $f --out $o/now --compile now
    timed_infer $end 20 "rerun, all skipped" $f --out $o/now --compile now
    timed_infer $end 45 "reader threads, writer processes" $f --out $o/rthreads --compile now --readers threads
    same $o/now $o/rthreads
    echo "== 3. the host's ceiling (no GPU): python bench/tools.py folder-loop $S --n 7481 --readers R"
    for r in processes threads; do
      timeout "$(upto $end 60)" python3 bench/tools.py folder-loop $S --n 7481 --readers $r --repeat 2 2>&1 \
        | grep -v "$QUIET" | grep -v "^backend" | tail -3
    done
    echo "== 4. JSON + KITTI txt (--calib $c)"
    timed_infer $end 45 "calib, compile now" $f --out $o/calib --calib $c --compile now
    echo "== 5. cold disk: 7481 distinct files, evicted from the page cache"
    timeout "$(upto $end 40)" python3 -c '
import glob, os, shutil, sys
src, dst = sys.argv[1:]
os.makedirs(dst)
for p in sorted(glob.glob(f"{src}/*.bin")):
    shutil.copyfile(p, f"{dst}/{os.path.basename(p)}")
os.sync()
for p in glob.glob(f"{dst}/*.bin"):
    fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
print("copied and evicted", len(os.listdir(dst)), "files")' $f $o/cold_scans
    timed_infer $end 45 "cold disk, compile now" $o/cold_scans --out $o/cold --compile now
    echo "== 6. the way before: reader and writer threads, a line per scan"
    timed_infer $end 45 "reader and writer threads, -v" $f --out $o/threads --compile now --readers threads \
      --writers threads -v; } 2>&1 | record folder
}
same() {  # same A B: how many of A's result files B holds byte for byte
  python3 -c 'import filecmp, os, sys; a, b = sys.argv[1:]; n = sorted(os.listdir(a))
same = sum(filecmp.cmp(f"{a}/{x}", f"{b}/{x}", shallow=False) for x in n if os.path.exists(f"{b}/{x}"))
print(f"{a} vs {b}: {len(n)} and {len(os.listdir(b))} files, {same} byte-identical (one GPU process each)")' "$1" "$2"
}
part_ray() {  # ends within 4 min (upto cuts a step that would run past); carry (60.6 MiB with the tree): the
  # numpy wheel (15.8 MiB), the 5 of `python bench/tools.py ray-wheels` (Ray 2.60 without Java, LZMA, 29.3 MiB;
  # jsonschema, jsonschema_specifications, referencing, rpds_py: 0.5 MiB) and .devshared/kitti/scans (2.9 MiB), each
  # named: 7 paths (the whole .whl or .devshared is over the 64 MiB). `infer DIR --out` on 7481 KITTI-size scans (links
  # of the 10 shared ones), FP16, batches of 32, --compile now, in one process against --ray (reading tasks, one GPU
  # detector actor, writing tasks); the first run tunes the RPN for B = 32, the others (Ray's actor too) load it.
  # Then whether the runs wrote the same files.
  local end=$(( SECONDS + 240 )) f=/tmp/f7481 o=/tmp/ray_part
  rm -rf $o; mkdir -p $o  # an earlier call's results would be skipped
  { nproc | sed 's/^/host cores: /'
    python3 -c "import ray; print('ray', ray.__version__)" || { echo "no Ray: carry its wheels (part_ray)"; exit 1; }
    python3 bench/tools.py link-scans $S $f --n 7481
    echo "== one process (first: tunes the RPN for B = 32 if this cache never did)"
    timed_infer $end 120 "warm-up run" $f --out $o/warm --compile now
    echo "== one process"
    timed_infer $end 45 "single process" $f --out $o/single --compile now
    echo "== Ray: a local cluster, one GPU actor"
    timed_infer $end 90 "ray" $f --out $o/ray --compile now --ray
    echo "== one process again"
    timed_infer $end 45 "single process, again" $f --out $o/single2 --compile now
    echo "== the same files? (byte for byte; two GPU processes may differ where cuDNN picks other algorithms)"
    python3 -c '
import filecmp, os, sys
o = sys.argv[1]
for a, b in ((f"{o}/single", f"{o}/ray"), (f"{o}/single", f"{o}/single2")):
    names = sorted(os.listdir(a))
    same = sum(filecmp.cmp(f"{a}/{n}", f"{b}/{n}", shallow=False) for n in names if os.path.exists(f"{b}/{n}"))
    print(f"{a} vs {b}: {len(names)} and {len(os.listdir(b))} files, {same} byte-identical")' $o; } 2>&1 | record ray
}

PARTS="tests single-scan throughput startup soak train model finetune crossval eval trt-lean folder ray"
echo "$GPU; commit $COMMIT; parts: ${PART:?PART=<one or more of: $PARTS>}"
for part in $PART; do
  fn="part_${part//-/_}"
  declare -F "$fn" >/dev/null || { echo "no part '$part' in bench/device.sh"; exit 2; }
  echo "== $part ($(date -u +%T))"; "$fn"
done
ls -la "$OUT"
