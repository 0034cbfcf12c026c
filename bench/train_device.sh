#!/usr/bin/env bash
# Train the default model on one H200 (Python 3.12, torch 2.11 cu130, no network), resumable across device calls.
#
#   first call:  bash bench/train_device.sh
#   next calls:  RESUME=path/to/pointpillars_synthetic.pth bash bench/train_device.sh
#                (copy the checkpoint that came back in $OUT into the working tree first, e.g. runs/, and carry it)
#
# Run from the repo root on the GPU machine, carrying the numpy 2.3.5 wheel (WHL=dir, default .whl) as
# bench/device_run.sh does. Writes to $OUT: the checkpoint (also every 250 iterations), train_log.jsonl (losses every
# 20 iterations), train_stdout.log, gpu.txt, and, once the schedule is complete, the AP on 300 held-apart validation
# frames (pointpillars_synthetic.pth.val_table.txt / .val_eval.json).
#
# Schedule: 5000 generated frames x 8 epochs, batch 8 = 5000 iterations (40k frame passes), OpenPCDet's one-cycle
# AdamW (lr 0.003). Estimate, NOT measured on a GPU: data loading is the bound. One frame costs ~110 ms of one CPU core
# here (ray-cast 76 ms + augment/voxelize/assign 35 ms); with 15 workers that is ~130 frames/s in epoch 1 and, with the
# frame cache (--cache-dir, no ray casting), ~300 frames/s after it; the networks' forward+backward should take ~3-5 ms per
# frame on an H200 (TF32). So ~150-250 frames/s: 60k frame passes in ~4-7 minutes. --time-limit 480 stops, saves and
# leaves the rest to a RESUME call if it is slower.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${WHL:-.whlt}"/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
df -h /dev/shm /tmp | tee -a "$OUT/gpu.txt"  # DataLoader workers pass batches through /dev/shm
python3 -c "import numpy, numba, torch; print('numpy', numpy.__version__, 'numba', numba.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
# The checkpoint with its optimizer state (~58 MB) is over the device tool's 16 MiB per returned file: it stays on the
# machine, and the model weights come back as FP32 shards ($OUT/weights_*.pth, joined here by `python bench/weight_shards.py join`).
CKPT=/tmp/train/pointpillars_synthetic.pth; mkdir -p /tmp/train
ARGS=(--out "$CKPT" --frames "${FRAMES:-5000}" --epochs "${EPOCHS:-8}" --batch-size 8 --seed 0 --workers 15 --device cuda
      --save-every 250 --time-limit "${TIME_LIMIT:-470}" --cache-dir /tmp/frames_cache --log "$OUT/train_log.jsonl"
      --val-frames 300)
if [ -n "${RESUME:-}" ]; then
  cp "$RESUME" "$CKPT"
  ARGS+=(--resume "$CKPT")
fi
echo "python3 -m pointpillars_trt train ${ARGS[*]}" | tee "$OUT/train_stdout.log"
timeout 590 python3 -m pointpillars_trt train "${ARGS[@]}" 2>&1 | tee -a "$OUT/train_stdout.log"
cp "$CKPT".val_* "$OUT"/ 2>/dev/null || true
python3 bench/weight_shards.py split "$CKPT" "$OUT" 2
