"""Time the KITTI evaluation on a val-sized synthetic set (3769 frames of labels + noisy results).

    python bench/eval_speed.py [--frames 3769] [--false-positives 15] [--seed 0]

Writes the files to a temporary directory, then times evaluate_dirs (reading + evaluation) and,
separately, evaluate() on the already-read objects. Numba compilation is cached on disk after the
first run; the script reports a warm-up on one frame separately so it does not count.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.evaluation import evaluate, evaluate_dirs, format_table  # noqa: E402
from pointpillars_trt.evaluation.synthetic import noisy_detections, random_labels  # noqa: E402
from pointpillars_trt.io.kitti import read_labels, write_labels  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3769)
    ap.add_argument("--false-positives", type=float, default=15.0, help="mean random FPs per frame")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table", action="store_true", help="print the AP table")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        labels, results = Path(tmp) / "label_2", Path(tmp) / "results"
        labels.mkdir()
        results.mkdir()
        t0 = time.perf_counter()
        n_gt = n_dt = 0
        for i in range(args.frames):
            gt = random_labels(rng, int(rng.integers(1, 25)))
            dt = noisy_detections(rng, gt, n_false=args.false_positives)
            write_labels(labels / f"{i:06d}.txt", gt)
            write_labels(results / f"{i:06d}.txt", dt)
            n_gt += len(gt)
            n_dt += len(dt)
        print(f"generated {args.frames} frames ({n_gt} labels, {n_dt} detections) in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        evaluate([read_labels(labels / "000000.txt")], [read_labels(results / "000000.txt")])
        print(f"warm-up (Numba compile or cache load): {time.perf_counter() - t0:.2f} s")

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = evaluate_dirs(results, labels, progress=False)
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        gts = [read_labels(labels / f"{i:06d}.txt") for i in range(args.frames)]
        dts = [read_labels(results / f"{i:06d}.txt") for i in range(args.frames)]
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate(gts, dts)
        t_eval = time.perf_counter() - t0
    print(f"evaluate_dirs: {total:.2f} s for {args.frames} frames (reading ~{t_read:.2f} s, evaluate() {t_eval:.2f} s); "
          f"cpus available: {len(os.sched_getaffinity(0))}")
    print(f"Car 3D AP_R40 moderate: {res.get('3d', 'Car', 'moderate'):.2f}")
    if args.table:
        print(format_table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
