"""Where a single scan's host-to-host wall time goes (issue 11): staging the points into pinned memory, launching the
graph, waiting for the GPU, reading the results; plus the same scans through pipeline.run and the public Detector.
Run on the device: python bench/host_phases.py SCANS_DIR CKPT [--compile] [--torch-pfn] [--iters N]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.model.config import PointPillarsConfig  # noqa: E402
from pointpillars_trt.pipelines.factory import make_gpu_pipeline  # noqa: E402


def pct(x: list[float]) -> str:
    a = np.asarray(x) * 1e3
    return f"p50 {np.median(a):.3f} p99 {np.percentile(a, 99):.3f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scans", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--torch-pfn", action="store_true")
    a = ap.parse_args()
    scans = [np.fromfile(f, np.float32).reshape(-1, 4) for f in sorted(a.scans.glob("*.bin"))]
    pipe = make_gpu_pipeline(PointPillarsConfig(), "torch", "fp16", checkpoint=a.checkpoint, compile=a.compile,
                             pfn_kernel=not a.torch_pfn)
    pc = time.perf_counter
    phases: dict[str, list[float]] = {k: [] for k in ("stage", "launch", "wait", "results", "sum", "run()")}
    with pipe:
        for s in scans * 3:
            pipe.run(s)  # capture every bucket
        for i in range(a.iters):
            scan = scans[i % len(scans)]
            t0 = pc()
            counts = [pipe._check(scan)]
            cap = pipe.bucket(counts[0])
            src = pipe._stage_inputs([scan], counts)
            t1 = pc()
            pipe._graphs[(1, cap, src, 0, 0)].replay(pipe.stream.handle)
            t2 = pc()
            pipe.stream.synchronize()
            t3 = pc()
            pipe._result(0, False)
            t4 = pc()
            for k, v in zip(("stage", "launch", "wait", "results", "sum"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                phases[k].append(v)
            t5 = pc()
            pipe.run(scan)
            phases["run()"].append(pc() - t5)
        gpu_total = [pipe.times()["total"]]
    out = {k: pct(v) for k, v in phases.items()}
    out["points per scan"] = [len(s) for s in scans]
    out["last gpu total ms"] = gpu_total[0] * 1e3
    print(json.dumps({"compile": a.compile, "torch_pfn": a.torch_pfn, **out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
