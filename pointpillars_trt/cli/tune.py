"""`tune`: fill this machine's caches before the first real run, so that every later process starts warm: the CUDA
kernels (compiled side by side) and, on the torch backend, the RPN tuned by Inductor for each batch size."""
from __future__ import annotations

import argparse

from pointpillars_trt import log
from pointpillars_trt.cli.model_options import add_model_args, make_detector
from pointpillars_trt.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "tune", help="fill this machine's caches (CUDA kernels, the RPN's Inductor tuning) before a run",
        description="Run random scans through the detector the model options name, once per batch size, and wait\n"
                    "for its compiled RPN: the CUDA kernels go into Numba's cache and, on the torch backend, Inductor\n"
                    "tunes the RPN into the cache folder (about a minute per batch size the first time, on an\n"
                    "otherwise idle GPU). Later runs of the same model, precision and batch size start from them.\n"
                    "Without it, a run tunes in the background only once it has lasted over a minute.",
        epilog="example:\n  python -m pointpillars_trt tune --precision fp16 --batch 32   (tunes batch sizes 1 and 32)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    if args.compile == "off" or args.no_compile:
        log.info("--compile off: only the CUDA kernels are compiled, the RPN is not tuned")
    with make_detector(args) as det:
        log.info(det.description)
        for b, s in det.warm_up(sorted({1, args.batch})).items():
            log.info(f"batch size {b}: ready in {s:.1f} s")
    log.info("done: later runs with these options start from this machine's caches")
    return 0
