"""`bench`: per-stage timings (median, p99) of the pipeline over a folder of scans, each precision beside the same
pipeline with one thing changed (--compare); batches' throughput; a memory soak; or the start of a new process
(--startup: `infer SCAN` cold and warm, phase by phase). --out DIR keeps the result as one record per (device,
what): DIR/<date>_<device>_<what>.md + .json (bench/results/README.md)."""
from __future__ import annotations

import argparse
import copy
import shlex
import sys
from pathlib import Path
from typing import Any, NamedTuple

from pointpillars_trt import log
from pointpillars_trt.api import choose_backend
from pointpillars_trt.cli.model_options import add_model_args, make_detector
from pointpillars_trt.errors import UserError
from pointpillars_trt.pipelines import bench_records
from pointpillars_trt.pipelines import timing as bench

GPU_ITERS, GPU_WARMUP = 200, 10
CPU_ITERS, CPU_WARMUP = 5, 1  # a CPU scan takes ~0.4 s on 2 cores
SOAK_SAMPLES = 10  # device memory read this many times over a soak

#: --compare NAME: the GPU pipeline options it changes (GpuPipeline, pipelines/factory.py), its column's label, and
#: the one precision it applies to (None: both)
COMPARE: dict[str, tuple[dict[str, Any], str, str | None]] = {
    "compile": ({"compile": False}, "--no-compile", None),
    "graph": ({"graph": False}, "--no-graph", None),
    "tf32": ({"tf32": False}, "--strict-fp32", "fp32"),
    "eager": ({"graph": False, "compile": False, "fold": False}, "OpenPCDet-style eager", None),
    "pfn-kernel": ({"pfn_kernel": False}, "torch PFN", None),
    "fp16-canvas": ({"fp16_canvas": False}, "FP32 canvas", "fp16"),
    "upload-kernel": ({"upload_kernel": False}, "memcpy upload", None),
    "two-slots": ({"overlap_batches": False}, "one device slot", None),
    "cuda-input": ({}, "points on the GPU", None),
}
COMPARE_HELP = ("compile: Inductor off; graph: launch by launch; tf32: strict FP32 (FP32 only); eager: OpenPCDet-style "
                "(BatchNorm unfused, launch by launch, no compile, torch PFN); pfn-kernel: torch's PFN; fp16-canvas: "
                "the FP32 NCHW canvas (FP16 only); upload-kernel: a memcpy of the whole bucket; two-slots: one set "
                "of device buffers (with --batch); cuda-input: the points already a torch CUDA tensor")


class Config(NamedTuple):
    """One column: the options of its detector, its label, the GPU options it changes, points already on the GPU."""

    args: argparse.Namespace
    label: str
    gpu_options: dict[str, Any]
    cuda_input: bool


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="time each pipeline stage (median/p99) over a folder of scans",
                              description=__doc__)
    p.add_argument("scans", type=Path, help="folder of .bin scans (N x 4 float32); with --startup, one scan or a folder")
    add_model_args(p)
    p.add_argument("--precisions", nargs="+", choices=("fp32", "fp16"), default=None,
                   help="precisions to compare (default: --precision)")
    p.add_argument("--iters", type=int, default=None,
                   help=f"timed scans per configuration (default {GPU_ITERS} on the GPU, {CPU_ITERS} on the CPU: seconds, not minutes)")
    p.add_argument("--warmup", type=int, default=None,
                   help=f"untimed scans first (default {GPU_WARMUP} on the GPU, {CPU_WARMUP} on the CPU)")
    p.add_argument("--compare", nargs="+", choices=tuple(COMPARE), default=(), metavar="NAME",
                   help="GPU only: also time each precision with NAME changed, side by side. " + COMPARE_HELP)
    p.add_argument("--soak", type=int, default=0, metavar="N",
                   help="GPU only: instead of timing, run N scans of mixed sizes (each scan whole, 1/2, 1/10, 1/100) "
                        "and report device memory along the way and the captured graphs")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="write the record DIR/<date>_<device>_<what>.md and .json (what: single-scan, throughput with "
                        "--batch, soak with --soak), with the command, commit, device and date")
    p.add_argument("--force", action="store_true",
                   help="replace the record of the same what on the same device already in --out")
    p.add_argument("--commit", default=None,
                   help="the commit measured, for a tree that is not a git checkout (a copy on a GPU machine); "
                        "default: git's HEAD")
    p.add_argument("--startup", nargs="?", type=int, const=1, default=None, metavar="WARM",
                   help="instead of timing scans: run `infer SCAN` (the first scan of a folder) in a new process with "
                        "every cache empty (this tool's, Numba's, Inductor's, Triton's), then in "
                        "WARM more (default 1) with the caches it filled, and print each phase's seconds: import, CUDA "
                        "context, model, kernel compiles, first scan, exit. The model options given go to infer "
                        "(e.g. --compile now: the tuning in the foreground); $POINTPILLARS_TRT_KERNEL_PROCESSES=0 "
                        "compiles the CUDA kernels one after another in the process, as before")
    p.add_argument("--fresh-bytecode", action="store_true",
                   help="with --startup: start Python's bytecode cache empty too (PYTHONPYCACHEPREFIX), as on a "
                        "machine whose packages were installed without .pyc (default: the machine's own)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    for flag in ("iters", "warmup", "soak", "startup"):
        if (getattr(args, flag) or 0) < 0:
            raise UserError(f"--{flag} must be 0 or more")
    if args.startup is not None:
        return _startup(args)
    backend, device = choose_backend(args.backend, args.device)
    on_gpu = device == "cuda"
    if on_gpu and args.compile == "auto":  # the steady state is timed: compile before the first timed scan
        args.compile = "now"
    if args.soak and not on_gpu:
        raise UserError(f"--soak measures GPU memory and needs an NVIDIA GPU (--backend torch or tensorrt); "
                        f"this run would use {backend} on the CPU, where there is no device memory to watch")
    if args.compare and not on_gpu:
        raise UserError(f"--compare {' '.join(args.compare)} compares GPU pipeline options; this run would use "
                        f"{backend} on the CPU")
    if "two-slots" in args.compare and args.batch < 2:
        raise UserError("--compare two-slots compares batches run side by side: add --batch B (B > 1)")
    what = "soak" if args.soak else "throughput" if on_gpu and args.batch > 1 else "single-scan"
    record = _record(args, device, what)
    iters = args.iters if args.iters is not None else (GPU_ITERS if on_gpu else CPU_ITERS)
    warmup = args.warmup if args.warmup is not None else (GPU_WARMUP if on_gpu else CPU_WARMUP)
    scans = bench.load_scans(args.scans)
    doing = f"memory soak of {args.soak} scans" if args.soak else f"{warmup} warm-up + {iters} timed scans per column"
    print(f"bench: {backend} on {record.device_desc}, {len(scans)} scan(s) from {args.scans}, {doing}", flush=True)
    payload: dict[str, Any] = {"scans": str(args.scans), "num_scans": len(scans), "results": {}}
    lines: list[str] = []  # what the table does not show, printed as it comes and kept for the record

    def note(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    for cfg in configurations(args):
        with make_detector(cfg.args, **cfg.gpu_options) as det:
            name = f"{det.description.split(',')[0].removeprefix('backend ')} {cfg.label}"
            if args.soak:
                note(_soak(det.pipeline, scans, args.soak, name, payload))
                continue
            points = _on_gpu(scans) if cfg.cuda_input else scans
            before = dict(getattr(det.pipeline, "transfers", {}))
            payload["results"][name] = bench.summarize(_timed(det.pipeline, points, iters, warmup, name))
            if cfg.cuda_input:
                moved = {k: v - before.get(k, 0) for k, v in det.pipeline.transfers.items()}
                payload.setdefault("transfers", {})[name] = moved
                note(f"{name}: bytes moved over its warm-up and timed scans {moved} (h2d: point data host to "
                     "device)")
            if on_gpu and args.batch > 1 and not cfg.cuda_input:  # batches are timed from NumPy scans
                tp = bench.throughput(det.pipeline, scans, args.batch, max(20, iters // args.batch))
                payload.setdefault("throughput", {})[name] = tp
                note(f"{name}, batches of {args.batch}: {tp['scans_per_s']:.0f} scans/s ({tp['batch_ms']:.3f} "
                     f"ms per batch, {_overlap(tp)}; stage medians per batch {tp['stage_median_ms']})")
    table = bench.markdown_table(payload["results"]) if payload["results"] else ""
    print(table, flush=True)
    md = "\n\n".join(([table] if table else []) + lines)
    if args.out:
        for path in bench_records.write(args.out, record, payload, md, force=args.force):
            print(f"wrote {path}", flush=True)
    return 0


def _record(args: argparse.Namespace, device: str, what: str) -> bench_records.Record:
    """The run's record (name parts and header), checked against --out before any model work."""
    tag, desc = bench_records.this_device(device)
    command = "python -m pointpillars_trt " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    rec = bench_records.Record(what, tag, desc, command, bench_records.git_commit(args.commit), bench_records.today())
    if args.out:
        bench_records.check_free(args.out, rec, args.force)
    return rec


def _startup(args: argparse.Namespace) -> int:
    """bench --startup: startup_timing.measure with the model options given, as a table (and --out files)."""
    from pointpillars_trt.pipelines import startup_timing

    scan = startup_timing.first_scan(args.scans)
    result = startup_timing.measure(scan, _infer_options(args), args.startup, progress=log.info,
                                    fresh_bytecode=args.fresh_bytecode)
    md = startup_timing.table(result)
    print(md)
    if args.out:  # the device is asked for only now: importing torch here first would warm the cold run's page cache
        record = _record(args, choose_backend(args.backend, args.device)[1], "startup")
        for path in bench_records.write(args.out, record, result, f"`{result['command']}`\n\n{md}", force=args.force):
            print(f"wrote {path}", flush=True)
    return 0


def _infer_options(args: argparse.Namespace) -> list[str]:
    """The model options given on bench's command line, as infer takes them (defaults left out, so that the plain
    command is the README's)."""
    out: list[str] = []
    for name in ("checkpoint", "onnx_dir", "config"):
        if getattr(args, name, None):
            out += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    for name, default in (("precision", "fp32"), ("backend", "auto"), ("device", "auto"), ("compile", "auto"),
                          ("batch", 1), ("threads", None)):
        if getattr(args, name, default) != default:
            out += [f"--{name}", str(getattr(args, name))]
    for flag in ("random_init", "no_graph", "no_compile", "strict_fp32"):
        if getattr(args, flag, False):
            out.append(f"--{flag.replace('_', '-')}")
    return out


def configurations(args: argparse.Namespace) -> list[Config]:
    """Every precision as given, each followed by the same precision with each --compare NAME changed (where NAME
    applies to that precision). The parsed options are copied, never changed."""
    out = []
    for prec in args.precisions or [args.precision]:
        base = copy.copy(args)
        base.precision = prec
        out.append(Config(base, prec, {}, False))
        for name in args.compare:
            options, label, only = COMPARE[name]
            if only in (None, prec):
                out.append(Config(base, f"{prec} {label}", dict(options), name == "cuda-input"))
    return out


def _on_gpu(scans: list) -> list:
    """The scans as torch CUDA tensors, read in place by the pipeline (pipelines/inputs.py)."""
    import torch

    from pointpillars_trt.pipelines.inputs import as_scan

    tensors = [torch.from_numpy(s).cuda() for s in scans]
    torch.cuda.synchronize()
    return [as_scan(t, gpu=True, device_id=t.device.index or 0) for t in tensors]


def _soak(pipe: Any, scans: list, n: int, name: str, payload: dict) -> str:
    """The soak over mixed sizes, reported into payload['soak'][name]; its line for the table."""
    from pointpillars_trt.pipelines.cuda_runtime import mem_get_info

    res = bench.soak(pipe, bench.mixed_sizes(scans), n, mem_get_info,
                     lambda i: print(f"  soak {i}/{n}", flush=True), every=max(1, n // SOAK_SAMPLES))
    if hasattr(pipe, "graph_info"):
        res["graphs"] = pipe.graph_info()
    payload.setdefault("soak", {})[name] = res
    trail = ", ".join(f"{k}: {v:.1f}" for k, v in res["samples_mib"].items())
    graphs = res.get("graphs", {})
    return (f"{name}: {res['scans']} scans of mixed sizes after a {res['warmup_scans']}-scan warm-up, device memory used "
            f"{res['used_mib_start']:.1f} MiB -> {res['used_mib_end']:.1f} MiB (delta {res['delta_mib']:+.1f} MiB; by "
            f"scan {trail}); graphs: {graphs.get('captures', 0)} captured, {graphs.get('replays', 0)} replays, "
            f"{graphs.get('capture_mib', 0)} MiB taken by their captures, a {graphs.get('pool_mib', 0)} MiB pool")


def _overlap(tp: dict) -> str:
    """How a throughput figure was run, for its line: host overlap, and two batches at once on two device slots."""
    slots = tp.get("device_slots", 1)
    return "host and GPU overlapped" + (f", {slots} batches on the GPU at once" if slots > 1 else "")


def _timed(pipe: Any, scans: list, iters: int, warmup: int, name: str) -> dict[str, list[float]]:
    """bench.time_pipeline one scan at a time (cycling through the scans) behind a progress bar."""
    bench.time_pipeline(pipe, scans, 0, warmup)
    samples: dict[str, list[float]] = {}
    for i in log.progress(range(iters), desc=name, unit="scan", disable=iters == 0):
        for k, v in bench.time_pipeline(pipe, [scans[i % len(scans)]], 1, 0).items():
            samples.setdefault(k, []).extend(v)
    return samples
