"""Host-side costs of a folder run per scan, with the real code and no GPU: reading N scans through the stream's
reader threads, formatting results (JSON; KITTI txt with the calib projection), writing N results whole through the
run's writer threads (JSON only, and JSON + txt), and planning a rerun over N finished results. At 2500 scans/s a
folder run has 0.4 ms of host time per scan; these say where it goes.

    python bench/folder_host.py ../shared/kitti/scans --n 7481 [--calib ../shared/kitti/training/calib/000134.txt]

The detections written are the default model's on the given scans (detected once, cycled); the scans are read under
N names (hard links in a temporary folder, as the device measurement makes them).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pointpillars_trt import Detector  # noqa: E402
from pointpillars_trt.io.kitti import Calib  # noqa: E402
from pointpillars_trt.io.points import read_points  # noqa: E402
from pointpillars_trt.io.result_files import ResultFolder, ScanJob  # noqa: E402
from pointpillars_trt.pipelines.prefetch import prefetched  # noqa: E402
from pointpillars_trt.runs.single import WRITERS, run_settings  # noqa: E402
from link_scans import linked  # noqa: E402  (bench/)


def per_scan_us(seconds: float, n: int) -> str:
    return f"{seconds / n * 1e6:7.1f} us/scan ({n / seconds:7.0f} scans/s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scans", type=Path, help="folder of .bin scans")
    ap.add_argument("--n", type=int, default=7481, help="scans to read and results to write (default 7481)")
    ap.add_argument("--calib", type=Path, default=None, help="a KITTI calib: also time the KITTI txt of each result")
    ap.add_argument("--prefetch", type=int, default=64, help="reads ahead, as infer --batch 32 does (default 64)")
    args = ap.parse_args()
    scans = sorted(args.scans.glob("*.bin"))
    with Detector.default() as det:  # the detections a real run writes
        results = [det(read_points(s)) for s in scans]
        meta = {"model": det.description, "untrained": det.untrained}
        settings = run_settings(det.model_id, det.precision, det.cfg.score_thresh)
    names = det.cfg.class_names
    print(f"{len(scans)} scans, {sum(map(len, results)) / len(results):.1f} detections a scan on average; "
          f"{os.cpu_count()} cores; n = {args.n}")
    tmp = Path(tempfile.mkdtemp(prefix="folder_host_"))
    try:
        paths = linked(scans, args.n, tmp / "scans")
        t = time.perf_counter()
        for _, got in prefetched(paths, read_points, args.prefetch):
            assert not isinstance(got, Exception), got
        print(f"read (stream's reader threads)     {per_scan_us(time.perf_counter() - t, args.n)}")
        calib = Calib.read(args.calib) if args.calib else None
        for what, c in (("JSON", None),) + ((("JSON + KITTI txt", calib),) if calib else ()):
            k = min(args.n, 2000)
            t = time.perf_counter()
            for i in range(k):
                d = results[i % len(results)]
                d.to_json(names, {"scan": str(paths[i]), **meta})
                if c is not None:
                    d.to_kitti(c, names)
            print(f"format {what:<26}  {per_scan_us(time.perf_counter() - t, k)}  (one thread)")
            folder = ResultFolder(tmp / f"out_{len(what)}", settings)
            folder.out.mkdir()
            jobs = [ScanJob(p, p.stem, c) for p in paths]
            t = time.perf_counter()
            with ThreadPoolExecutor(WRITERS) as pool:
                for f in [pool.submit(folder.write, j, results[i % len(results)], names, {"scan": str(j.source), **meta})
                          for i, j in enumerate(jobs)]:
                    f.result()
            print(f"write {what:<27}  {per_scan_us(time.perf_counter() - t, args.n)}  ({WRITERS} writer threads, "
                  "format + temporary file + rename)")
            t = time.perf_counter()
            plan = folder.plan(jobs)
            assert len(plan.skipped) == args.n, len(plan.skipped)
            print(f"plan a rerun ({what}){' ' * (22 - len(what))}{per_scan_us(time.perf_counter() - t, args.n)}  (all skipped)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
