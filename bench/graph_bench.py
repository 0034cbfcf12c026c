"""Device benchmark of the GPU pipeline's variants, side by side in one process (the numbers of issue 11).

For each precision: captured graph + compiled RPN (+ the PFN kernel, the default), the same with torch's PFN, graph
without compile, launch by launch (compiled), and OpenPCDet-style eager execution (BatchNorm unfused, no graph, no compile); per-stage CUDA-event medians, wall time
host to host (p50/p99); batched throughput; NumPy vs torch-CUDA input; an optional memory soak over mixed sizes.
Run: python bench/graph_bench.py SCANS_DIR CKPT --out bench/results/graph_h200 [--soak 10000]
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
from pointpillars_trt.pipelines import timing  # noqa: E402
from pointpillars_trt.pipelines.factory import make_gpu_pipeline  # noqa: E402

VARIANTS = {  # name: make_gpu_pipeline options
    "graph+compile": dict(graph=True, compile=True),
    "graph": dict(graph=True, compile=False),
    "launches+compile": dict(graph=False, compile=True),
    "eager-openpcdet": dict(graph=False, compile=False, fold=False),
    "graph+compile+torch-pfn": dict(graph=True, compile=True, pfn_kernel=False),
    "graph+compile+fp32-canvas": dict(graph=True, compile=True, fp16_canvas=False),
    "graph+compile+memcpy-upload": dict(graph=True, compile=True, upload_kernel=False),
}


BATCH_VARIANTS = {  # batched throughput: the pipeline's defaults, and each batching choice turned off
    "default": dict(),
    "no-overlap": dict(overlap=False),
    "torch-pfn": dict(pfn_kernel=False),
    "fp32-canvas": dict(fp16_canvas=False),
    "memcpy-upload": dict(upload_kernel=False),
    "one-device-slot": dict(overlap_batches=False),
}


def log(msg: str) -> None:
    print(msg, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scans", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--precisions", nargs="+", default=["fp16", "fp32", "fp32-strict"])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--batches", nargs="*", type=int, default=[1, 4, 8, 16])
    ap.add_argument("--soak", type=int, default=0)
    ap.add_argument("--batch-variants", nargs="+", default=list(BATCH_VARIANTS))
    ap.add_argument("--fp32-variants", nargs="+", default=["graph+compile", "eager-openpcdet"])
    a = ap.parse_args()
    cfg = PointPillarsConfig()
    scans = [np.fromfile(f, np.float32).reshape(-1, 4) for f in sorted(a.scans.glob("*.bin"))]
    res: dict = {"command": "python " + " ".join(sys.argv), "scans": len(scans), "stages": {}, "throughput": {}}

    def save() -> None:  # after every measurement, so a run stopped at its time limit keeps what it measured
        if a.out:
            md = timing.markdown_table(res["stages"])
            timing.write_results(a.out, res, f"`{res['command']}`\n\n{md}\n\n```\n{json.dumps(res['throughput'], indent=1)}\n```")
    for prec in a.precisions:
        p, strict = prec.split("-")[0], prec.endswith("strict")
        for v in a.variants:
            opts = dict(VARIANTS[v], tf32=not strict)
            if strict and v != "graph":
                continue  # strict FP32 is the agreement reference: one variant is enough
            if p == "fp32" and not strict and v not in a.fp32_variants:
                continue
            try:
                run_variant(a, cfg, scans, res, prec, p, v, opts)
            except Exception as e:  # one broken variant must not lose the others' numbers
                log(f"{prec} {v}: FAILED {type(e).__name__}: {str(e)[:300]}")
            save()
    for prec in ("fp16",) if a.batches else ():
        for b in a.batches:
            for tag, opts in BATCH_VARIANTS.items():
                if tag not in a.batch_variants:
                    continue
                name = f"{prec} B={b}" + (f" {tag}" if tag != "default" else "")
                try:
                    popts = {k: v for k, v in opts.items() if k != "overlap"}
                    pipe = make_gpu_pipeline(cfg, "torch", prec, checkpoint=a.checkpoint, graph=True, compile=True,
                                             max_batch=b, log=log, **popts)
                    with pipe:
                        tp = timing.throughput(pipe, scans, b, max(20, a.iters // b), overlap=opts.get("overlap", True))
                except Exception as e:  # one broken variant must not lose the others' numbers
                    log(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}")
                    continue
                res["throughput"][name] = tp
                log(f"{name}: {tp['scans_per_s']:.0f} scans/s ({tp['batch_ms']:.3f} ms per batch; stages "
                    f"{tp['stage_median_ms']})")
                save()
    if a.soak:
        from pointpillars_trt.pipelines.cuda_runtime import mem_get_info

        pipe = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=a.checkpoint, graph=True, compile=True, log=log)
        rng = np.random.default_rng(0)
        mixed = [s[: int(len(s) * f)] for s in scans for f in (1.0, 0.5, 0.1, 0.01)]
        mixed = [mixed[i] for i in rng.permutation(len(mixed))]
        with pipe:
            res["soak"] = timing.soak(pipe, mixed, a.soak, mem_get_info, lambda i: None, every=max(1, a.soak // 10))
            res["soak"]["graphs"] = pipe.graph_info()
        log(f"soak: {json.dumps({k: v for k, v in res['soak'].items() if k != 'samples_mib'})}")
    log(timing.markdown_table(res["stages"]))
    save()
    return 0


def run_variant(a, cfg, scans, res, prec, p, v, opts) -> None:
    """Time one (precision, variant): per-stage medians, wall p50/p99; FP16 graph+compile also with CUDA input."""
    t0 = time.perf_counter()
    pipe = make_gpu_pipeline(cfg, "torch", p, checkpoint=a.checkpoint, log=log, **opts)
    with pipe:
        first = pipe.run(scans[0])
        t_first = time.perf_counter() - t0
        samples = timing.time_pipeline(pipe, scans, a.iters, warmup=2 * len(scans))
        summ = timing.summarize(samples)
        name = f"{prec} {v}"
        res["stages"][name] = summ
        res.setdefault("first_scan_s", {})[name] = t_first
        log(timing.markdown_table({name: summ}))
        log(f"{name}: total {summ['total']['median_ms']:.3f} ms, wall p50 {summ['wall']['median_ms']:.3f} "
            f"p99 {summ['wall']['p99_ms']:.3f} ms (first scan incl. set-up {t_first:.1f} s, "
            f"{len(first.detections)} dets) {pipe.graph_info()}")
        if v == "graph+compile" and p == "fp16":
            import torch

            dev = [torch.from_numpy(s).cuda() for s in scans]
            torch.cuda.synchronize()
            before = dict(pipe.transfers)
            from pointpillars_trt.pipelines.inputs import DevicePoints

            dps = [DevicePoints(t.data_ptr(), t.shape[0], 16, 0, torch.cuda.current_stream().cuda_stream, t)
                   for t in dev]
            ds = timing.summarize(timing.time_pipeline(pipe, dps, a.iters, warmup=len(scans)))
            moved = {k: pipe.transfers[k] - before[k] for k in before}
            res["device_input"] = {"numpy_wall_p50_ms": summ["wall"]["median_ms"],
                                   "cuda_wall_p50_ms": ds["wall"]["median_ms"],
                                   "cuda_h2d_ms": ds["h2d"]["median_ms"], "numpy_h2d_ms": summ["h2d"]["median_ms"],
                                   "bytes_moved_for_cuda_input": moved}
            log(f"device input: wall p50 {ds['wall']['median_ms']:.3f} ms vs numpy {summ['wall']['median_ms']:.3f}"
                f" ms; bytes moved {moved}")


if __name__ == "__main__":
    raise SystemExit(main())
