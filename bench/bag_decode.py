"""Messages/s reading a ROS bag of KITTI-size PointCloud2 clouds, decoded the way `infer BAG` decodes them.

    python bench/bag_decode.py [--messages 1000] [--points 20k|120k] [--container mcap|db3|ros1] [--repeats 3]

The bag (Velodyne layout: x y z intensity float32, ring uint16, time float32; 22 bytes a point) is written to a
temporary folder from the shared KITTI scans: `20k` cycles them as they are (camera-field crops, 17-20k points);
`120k` joins six of them turned 60 degrees apart (115-120k points, a full 64-beam sweep's size). Then, with the
page cache warm (one untimed pass), it times: `read` (container + PointCloud2 header parse: Bag.scans), and
`decode` (the same plus every cloud decoded on pipelines/prefetch's reading threads, as Detector.stream does with
prefetch 2, i.e. 2 threads). No model runs: this is what feeds the detector.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bags import STAMP0, VELODYNE, message, records, typestore, write  # noqa: E402
from pointpillars_trt.io.rosbag import open_bag  # noqa: E402
from pointpillars_trt.pipelines.prefetch import prefetched  # noqa: E402

SCANS = sorted((REPO.parent / "shared" / "kitti" / "scans").glob("*.bin"))


def clouds(size: str) -> list[np.ndarray]:
    """The distinct clouds the bag cycles through."""
    scans = [np.fromfile(s, np.float32).reshape(-1, 4) for s in SCANS]
    if size == "20k":
        return scans
    out = []
    for k in range(len(scans)):
        parts = []
        for j in range(6):
            p = scans[(k + j) % len(scans)].copy()
            a = j * np.pi / 3
            c, s = np.cos(a), np.sin(a)
            p[:, 0], p[:, 1] = c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1]
            parts.append(p)
        out.append(np.concatenate(parts))
    return out


def make_bag(folder: Path, container: str, n: int, size: str) -> tuple[Path, float]:
    store = typestore(container == "ros1")
    pcs = clouds(size)
    msgs = [message(store, records(p, VELODYNE), VELODYNE, 0) for p in pcs]

    def stamped():
        for i in range(n):
            yield STAMP0 + i * 100_000_000, msgs[i % len(msgs)]

    path = write(folder / "bench", container, {"/points": list(stamped())})
    return path, float(np.mean([len(p) for p in pcs]))


def timed(bag: Path, decode: bool) -> tuple[float, int]:
    start = time.perf_counter()
    n = pts = 0
    with open_bag(bag) as b:
        if decode:
            for scan, got in prefetched(b.scans(), lambda s: s.read_points(), 2):
                if isinstance(got, Exception):
                    raise got
                n, pts = n + 1, pts + len(got)
        else:
            for scan in b.scans():
                n += 1
    return time.perf_counter() - start, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--points", choices=("20k", "120k"), default="20k")
    ap.add_argument("--container", choices=("mcap", "db3", "ros1"), default="mcap")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        t0 = time.perf_counter()
        bag, mean_pts = make_bag(Path(tmp), a.container, a.messages, a.points)
        size = sum(f.stat().st_size for f in ([bag] if bag.is_file() else bag.iterdir()))
        print(f"bag: {a.messages} messages of {mean_pts:.0f} points on average ({a.points}), {a.container}, "
              f"{size / 1e6:.0f} MB, written in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} cores")
        timed(bag, True)  # page cache warm, imports done
        for what in ("read", "decode"):
            runs = [timed(bag, what == "decode") for _ in range(a.repeats)]
            rates = sorted(n / t for t, n in runs)
            print(f"{what:>6}: {' '.join(f'{r:.0f}' for r in rates)} messages/s "
                  f"(median {rates[len(rates) // 2]:.0f}; {rates[len(rates) // 2] * mean_pts / 1e6:.0f} M points/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
