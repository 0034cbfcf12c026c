#!/usr/bin/env bash
# FP16 vs FP32 AP of the default (trained) model on the 300 held-apart validation frames, torch GPU path, with the
# project's `eval --data` (--no-compile: a fresh machine's Inductor tuning would not fit the call). Carry: .whlt.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whlt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 POINTPILLARS_TRT_CACHE=/tmp/ppcache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pointpillars_trt make-sample --out /tmp/val --frames 300 --seed 1000003 2>&1 | tail -1 | tee "$OUT/eval.log"
for p in fp16 fp32; do
  s=$(date +%s)
  echo "python -m pointpillars_trt eval --data /tmp/val --device cuda --precision $p --no-compile --out /tmp/evals/gpu_$p" | tee -a "$OUT/eval.log"
  timeout 70 python3 -m pointpillars_trt eval --data /tmp/val --device cuda --precision $p --no-compile --out /tmp/evals/gpu_$p 2>&1 \
    | grep -v "frame/s\|scan/s" | tail -45 | tee -a "$OUT/eval.log"
  echo "eval $p: $(( $(date +%s) - s )) s" | tee -a "$OUT/eval.log"
done
tar czf "$OUT/evals.tar.gz" -C /tmp evals
