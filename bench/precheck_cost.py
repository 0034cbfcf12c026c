"""What `infer DIR`'s check before the model loads costs per scan: a full read (the old check) against the size and
header check (io.points.check_points_file), on a folder of synthetic KITTI-size scans, page cache warm.
python bench/precheck_cost.py [--scans 300] [--points 120000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pointpillars_trt.io.points import check_points_file, read_points  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=300)
    ap.add_argument("--points", type=int, default=120_000, help="points per scan (KITTI: about 120k)")
    a = ap.parse_args()
    pts = np.random.default_rng(0).normal(0, 20, (a.points, 4)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        files = [Path(d) / f"{i:06d}.bin" for i in range(a.scans)]
        for f in files:
            pts.tofile(f)
        for f in files:  # warm the page cache
            read_points(f)
        t = time.perf_counter()
        for f in files:
            read_points(f, with_stats=True)
        full = (time.perf_counter() - t) / a.scans
        t = time.perf_counter()
        for f in files:
            check_points_file(f)
        cheap = (time.perf_counter() - t) / a.scans
    print(f"{a.points}-point scans, page cache warm: full read {full * 1e3:.3f} ms/scan, size + header check "
          f"{cheap * 1e3:.3f} ms/scan; a 7481-scan KITTI folder: {full * 7481:.1f} s against {cheap * 7481:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
