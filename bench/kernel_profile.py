"""Every GPU kernel of a scan, by name, with its time per scan: torch.profiler (CUPTI) around graph replays, so the
Numba kernels, torch's and Inductor's all show. Run on the device:
python bench/kernel_profile.py SCANS_DIR CKPT [--precision fp16] [--compile] [--torch-pfn] [--batch B] [--reps N]
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.model.config import PointPillarsConfig  # noqa: E402
from pointpillars_trt.pipelines.factory import make_gpu_pipeline  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scans", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--torch-pfn", action="store_true")
    ap.add_argument("--no-graph", action="store_true")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=60)
    a = ap.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile

    scans = [np.fromfile(f, np.float32).reshape(-1, 4) for f in sorted(a.scans.glob("*.bin"))]
    pipe = make_gpu_pipeline(PointPillarsConfig(), "torch", a.precision, checkpoint=a.checkpoint, compile=a.compile,
                             pfn_kernel=not a.torch_pfn, graph=not a.no_graph, max_batch=a.batch)
    B = a.batch
    batches = [[scans[(i * B + k) % len(scans)] for k in range(B)] for i in range(len(scans))]
    with pipe:
        for b in batches * 2:
            pipe.run_batch(b)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for i in range(a.reps):
                pipe.run_batch(batches[i % len(batches)])
            torch.cuda.synchronize()
        stage_ms = defaultdict(list)
        for i in range(a.reps):
            pipe.run_batch(batches[i % len(batches)])
            for k, v in pipe.times().items():
                stage_ms[k].append(v * 1e3)
    print("stage medians per call (CUDA events): " + ", ".join(f"{k} {np.median(v):.3f}" for k, v in stage_ms.items()))
    per = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            name = e.name if len(e.name) < 90 else e.name[:87] + "..."
            per[name][0] += 1
            per[name][1] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
    total = sum(v[1] for v in per.values())
    print(f"{a.precision} compile={a.compile} torch_pfn={a.torch_pfn} graph={not a.no_graph} batch={B}: "
          f"{total / a.reps / 1e3:.3f} ms of kernels + copies per call ({total / a.reps / B / 1e3:.3f} per scan)")
    print("| us per call | launches per call | kernel |\n|---|---|---|")
    for name, (n, us) in sorted(per.items(), key=lambda kv: -kv[1][1]):
        print(f"| {us / a.reps:.1f} | {n / a.reps:.1f} | `{name}` |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
