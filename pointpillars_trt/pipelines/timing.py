"""Per-stage timing of a pipeline over a folder of scans: median and p99, markdown/JSON tables, and a memory soak.

Times come from the pipeline's ScanResult.times (CUDA events on the GPU
pipeline, perf_counter on the CPU one), in seconds; tables show milliseconds.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pointpillars_trt.errors import UserError

ORDER = ("h2d", "voxelize", "pfn", "scatter", "rpn", "postprocess", "d2h", "total", "wall")


def load_scans(folder: str | Path, limit: int | None = None) -> list[np.ndarray]:
    """Every *.bin scan (N x 4 float32) in a folder, sorted by name."""
    files = sorted(Path(folder).glob("*.bin"))[:limit]
    if not files:
        raise UserError(f"no .bin scans in {folder}")
    from pointpillars_trt.io.kitti import read_bin

    return [read_bin(f) for f in files]  # same checks as infer: odd sizes refused, NaN/Inf rows dropped


def time_pipeline(pipe: Any, scans: Sequence[np.ndarray], iters: int, warmup: int = 5) -> dict[str, list[float]]:
    """Run iters scans (cycling through ``scans``) after warmup runs; per-stage seconds of each run, plus wall."""
    for i in range(warmup):
        pipe.run(scans[i % len(scans)])
    out: dict[str, list[float]] = {}
    for i in range(iters):
        t0 = time.perf_counter()
        r = pipe.run(scans[i % len(scans)])
        wall = time.perf_counter() - t0
        t = dict(r.times)
        t.setdefault("total", sum(v for k, v in r.times.items() if k not in ("h2d", "d2h")))
        t["wall"] = wall
        for k, v in t.items():
            out.setdefault(k, []).append(float(v))
    return out


def throughput(pipe: Any, scans: Sequence[Any], batch: int, iters: int, warmup: int = 3,
               overlap: bool = True) -> dict[str, float]:
    """Scans per second, host to host, running batches of `batch` scans (cycling through ``scans``) back to back:
    through run_batches (host staging and result reading overlapped with the GPU) or, overlap=False, run_batch
    one batch at a time. Also the per-stage CUDA-event medians of a batch (ms) and how many device slots ran
    (with two, consecutive batches' stages overlap on the GPU, so the medians do not add up to batch_ms)."""
    groups = [[scans[(i * batch + k) % len(scans)] for k in range(batch)] for i in range(max(iters, 1))]
    run = pipe.run_batches if overlap and hasattr(pipe, "run_batches") else (lambda gs: map(pipe.run_batch, gs))
    for _ in run(groups[:max(warmup, 2)]):  # both pinned slots allocated and their graphs captured before timing
        pass
    stages: dict[str, list[float]] = {}
    t_start = time.perf_counter()
    for _ in run(groups):
        for k, v in pipe.times().items():
            stages.setdefault(k, []).append(v)
    elapsed = time.perf_counter() - t_start
    return {"batch": batch, "overlap": overlap, "scans_per_s": batch * len(groups) / elapsed,
            "batch_ms": 1e3 * elapsed / len(groups), "device_slots": len(getattr(pipe, "devs", [None])),
            "stage_median_ms": {k: round(float(np.median(v)) * 1e3, 4) for k, v in stages.items()}}


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """{stage: {median_ms, p99_ms, mean_ms}}."""
    res = {}
    for k in sorted(samples, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER)):
        a = np.asarray(samples[k]) * 1e3
        res[k] = {"median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}
    return res


def markdown_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per stage, a median and a p99 column per configuration (e.g. 'torch fp32')."""
    names = list(results)
    stages = [s for s in ORDER if any(s in results[n] for n in names)]
    head = "| stage | " + " | ".join(f"{n} median ms | {n} p99 ms" for n in names) + " |"
    sep = "|---|" + "---|---|" * len(names)
    rows = [head, sep]
    for s in stages:
        cells = []
        for n in names:
            v = results[n].get(s)
            cells += [f"{v['median_ms']:.3f}", f"{v['p99_ms']:.3f}"] if v else ["", ""]
        rows.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def mixed_sizes(scans: Sequence[np.ndarray], fractions: Sequence[float] = (1.0, 0.5, 0.1, 0.01),
                seed: int = 0) -> list[np.ndarray]:
    """Each scan cut to each fraction of its points, shuffled (seeded): a soak then meets several point buckets
    (captured graphs) in an order no cache can predict."""
    cut = [s[: max(1, int(len(s) * f))] for s in scans for f in fractions]
    return [cut[i] for i in np.random.default_rng(seed).permutation(len(cut))]


def soak(pipe: Any, scans: Sequence[np.ndarray], n: int, mem_info: Callable[[], tuple[int, int]],
         progress: Callable[[int], None] = lambda i: None, every: int = 250) -> dict[str, Any]:
    """Run n scans; device memory in use (total - free, MiB) after a warm-up pass over every scan, every
    `every` scans, and at the end. Allocators and cuDNN autotuning grow once per new shape during the warm-up;
    a leak would keep growing after it."""
    for pts in scans:  # warm-up: every input shape once
        pipe.run(pts)
    free0, total = mem_info()
    used = lambda free: (total - free) / 2**20  # noqa: E731
    samples = {0: used(free0)}
    dets = []
    for i in range(1, n + 1):
        r = pipe.run(scans[i % len(scans)])
        dets.append(len(r.detections))
        if i % every == 0 or i == n:
            samples[i] = used(mem_info()[0])
            progress(i)
    return {"scans": n, "warmup_scans": len(scans), "used_mib_start": samples[0], "used_mib_end": samples[n],
            "delta_mib": samples[n] - samples[0], "max_mib": max(samples.values()), "samples_mib": samples,
            "total_mib": total / 2**20, "detections_mean": float(np.mean(dets))}
