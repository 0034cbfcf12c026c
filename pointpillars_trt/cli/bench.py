"""`bench`: per-stage timings (median, p99) of the pipeline over a folder of scans, FP16 vs FP32, a memory soak, or
the start of a new process (--startup: `infer SCAN` cold and warm, phase by phase)."""
from __future__ import annotations

import argparse
import copy
import shlex
import sys
from pathlib import Path

from pointpillars_trt import log
from pointpillars_trt.pipelines import timing as bench
from pointpillars_trt.api import choose_backend
from pointpillars_trt.cli.model_options import GPU_FLAGS, add_model_args, make_detector
from pointpillars_trt.errors import UserError

GPU_ITERS, GPU_WARMUP = 200, 10
CPU_ITERS, CPU_WARMUP = 5, 1  # a CPU scan takes ~0.4 s on 2 cores
#: --compare OPTION: the model-option flag that turns it off, and the label its column gets
COMPARE = {key: (dest, "--" + dest.replace("_", "-")) for key, (dest, _) in GPU_FLAGS.items()}


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
    p.add_argument("--compare", nargs="+", choices=tuple(COMPARE), default=(), metavar="OPTION",
                   help="GPU only: also time each precision with OPTION turned off, side by side: compile "
                        "(--no-compile), graph (--no-graph), tf32 (--strict-fp32, FP32 only)")
    p.add_argument("--soak", type=int, default=0, metavar="N",
                   help="GPU only: instead of timing, run N scans and report device memory at start and end")
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
    p.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    p.add_argument("--force", action="store_true", help="overwrite existing <out>.json / <out>.md")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.out and not args.force:
        clash = [p for p in (args.out.with_suffix(".json"), args.out.with_suffix(".md")) if p.exists()]
        if clash:
            raise UserError(f"{clash[0]} exists; pass --force or another --out")
    for flag in ("iters", "warmup", "soak", "startup"):
        if (getattr(args, flag) or 0) < 0:
            raise UserError(f"--{flag} must be 0 or more")
    if args.startup is not None:
        return _startup(args)
    backend, device = choose_backend(args.backend, args.device)
    if device == "cuda" and args.compile == "auto":  # the steady state is timed: compile before the first timed scan
        args.compile = "now"
    if args.soak and device != "cuda":
        raise UserError(f"--soak measures GPU memory and needs an NVIDIA GPU (--backend torch or tensorrt); "
                        f"this run would use {backend} on the CPU, where there is no device memory to watch")
    on_gpu = device == "cuda"
    if args.compare and not on_gpu:
        raise UserError(f"--compare {' '.join(args.compare)} compares GPU pipeline options; this run would use "
                        f"{backend} on the CPU")
    iters = args.iters if args.iters is not None else (GPU_ITERS if on_gpu else CPU_ITERS)
    warmup = args.warmup if args.warmup is not None else (GPU_WARMUP if on_gpu else CPU_WARMUP)
    scans = bench.load_scans(args.scans)
    what = f"memory soak of {args.soak} scans" if args.soak else f"{warmup} warm-up + {iters} timed scans per precision"
    print(f"bench: {backend} on {device}, {len(scans)} scan(s) from {args.scans}, {what}", flush=True)
    configs = configurations(args)
    command = "python -m pointpillars_trt " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if getattr(args, "_prog", None):  # run as `python -m pointpillars_trt.cli.bench`
        command = args._prog + " " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results, payload = {}, {"command": command, "scans": str(args.scans), "num_scans": len(scans)}
    for a, label in configs:
        det = make_detector(a)
        name = f"{det.description.split(',')[0].removeprefix('backend ')} {label}"
        with det:
            if args.soak:
                from pointpillars_trt.pipelines.cuda_runtime import mem_get_info

                res = bench.soak(det.pipeline, scans, args.soak, mem_get_info,
                                 lambda i: print(f"  soak {i}/{args.soak}", flush=True))
                payload[name] = res
                trail = ", ".join(f"{k}: {v:.1f}" for k, v in res["samples_mib"].items())
                print(f"{name}: {res['scans']} scans after a {res['warmup_scans']}-scan warm-up, device memory used "
                      f"{res['used_mib_start']:.1f} MiB -> {res['used_mib_end']:.1f} MiB (delta {res['delta_mib']:+.1f} MiB; "
                      f"by scan {trail})", flush=True)
                continue
            samples = _timed(det.pipeline, scans, iters, warmup, name)
            if on_gpu and args.batch > 1:
                tp = bench.throughput(det.pipeline, scans, args.batch, max(20, iters // args.batch))
                payload.setdefault("throughput", {})[name] = tp
                print(f"{name}: batches of {args.batch}: {tp['scans_per_s']:.0f} scans/s ({tp['batch_ms']:.3f} ms "
                      f"per batch, {_overlap(tp)})", flush=True)
        results[name] = bench.summarize(samples)
    md = None
    if results:
        md = bench.markdown_table(results)
        for name, tp in payload.get("throughput", {}).items():
            md += (f"\n\n{name}, batches of {tp['batch']}: {tp['scans_per_s']:.0f} scans/s "
                   f"({tp['batch_ms']:.3f} ms per batch, {_overlap(tp)})")
        payload["results"] = results
        print(md)
    if args.out:
        bench.write_results(args.out, payload, (f"`{command}`\n\n" + md) if md else None)
    return 0


def _startup(args: argparse.Namespace) -> int:
    """bench --startup: startup_timing.measure with the model options given, as a table (and --out files)."""
    from pointpillars_trt.pipelines import startup_timing

    scan = startup_timing.first_scan(args.scans)
    result = startup_timing.measure(scan, _infer_options(args), args.startup, progress=log.info,
                                    fresh_bytecode=args.fresh_bytecode)
    md = startup_timing.table(result)
    print(md)
    if args.out:
        bench.write_results(args.out, result, f"`{result['command']}`\n\n{md}")
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


def configurations(args: argparse.Namespace) -> list[tuple[argparse.Namespace, str]]:
    """(options, column label) for each run: every precision as given, then, per --compare OPTION, the same
    precision with OPTION off (tf32 only where it applies: FP32)."""
    out = []
    for prec in args.precisions or [args.precision]:
        base = copy.copy(args)
        base.precision = prec
        out.append((base, prec))
        for opt in args.compare:
            if opt == "tf32" and prec != "fp32":
                continue
            flag, label = COMPARE[opt]
            a = copy.copy(base)
            setattr(a, flag, True)
            out.append((a, f"{prec} {label}"))
    return out


def _overlap(tp: dict) -> str:
    """How a throughput figure was run, for its line: host overlap, and two batches at once on two device slots."""
    slots = tp.get("device_slots", 1)
    return "host and GPU overlapped" + (f", {slots} batches on the GPU at once" if slots > 1 else "")


def _timed(pipe, scans: list, iters: int, warmup: int, name: str) -> dict[str, list[float]]:
    """bench.time_pipeline one scan at a time (cycling through the scans) behind a progress bar."""
    bench.time_pipeline(pipe, scans, 0, warmup)
    samples: dict[str, list[float]] = {}
    for i in log.progress(range(iters), desc=name, unit="scan", disable=iters == 0):
        for k, v in bench.time_pipeline(pipe, [scans[i % len(scans)]], 1, 0).items():
            samples.setdefault(k, []).extend(v)
    return samples


def main(argv: list[str] | None = None) -> int:
    """`python -m pointpillars_trt.cli.bench SCANS ...` (until the CLI lists this module)."""
    from pointpillars_trt.errors import UserError

    p = argparse.ArgumentParser(prog="python -m pointpillars_trt.cli.bench")
    sub = p.add_subparsers(dest="command")
    add_parser(sub)
    args = p.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    args._prog = "python -m pointpillars_trt.cli.bench"
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
