"""`pointpillars-trt build`: build the TensorRT engines (pfn/rpn x fp32/fp16) from the exported ONNX files.

The main CLI (cli.py) calls :func:`add_parser` on its subparsers and dispatches to
:func:`run`. Engines go to engines/ under names keyed by what they depend on
(see backends/tensorrt/cache.py); an up-to-date engine is reused, a stale one rebuilt with a
message saying why.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pointpillars_trt.cache_dir import default_cache_dir
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.backends.tensorrt.builder import DEFAULT_OPT_PILLARS, DEFAULT_WORKSPACE_MB, build_all, profiles_for
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.tensor_names import PRECISIONS



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `build` subcommand on an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "build",
        help="build TensorRT engines from the exported ONNX files",
        description="Build the PFN and RPN TensorRT engines (one per precision) from "
                    "<onnx-dir>/{pfn,rpn}_{fp32,fp16}.onnx. Needs an NVIDIA GPU and the "
                    "`tensorrt` Python package (10.x or 11.x).",
    )
    p.add_argument("--onnx-dir", required=True, type=Path, help="folder with pfn_fp32.onnx, rpn_fp16.onnx, ...")
    p.add_argument("--engines-dir", type=Path, default=default_cache_dir(), help="where engines go (default: the user cache, see `cache`)")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                   help="precisions to build (default: fp32 fp16)")
    p.add_argument("--max-pillars", type=int, default=PointPillarsConfig().max_pillars,
                   help="largest pillar count the PFN engine accepts (default: %(default)s)")
    p.add_argument("--opt-pillars", type=int, default=DEFAULT_OPT_PILLARS,
                   help="pillar count TensorRT tunes the PFN for (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=1, help="largest RPN batch (default: 1)")
    p.add_argument("--version-compatible", action="store_true",
                   help="build plans later TensorRT versions (and the lean runtime) can run")
    p.add_argument("--exclude-lean-runtime", action="store_true",
                   help="with --version-compatible: leave the lean runtime out of the plan "
                        "(smaller; then only the lean runtime of the same TensorRT version runs it)")
    p.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB,
                   help="builder workspace memory pool limit in MiB (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="rebuild even if an up-to-date engine exists")
    p.set_defaults(func=run)
    return p


NO_BUILD_NEEDED = ("without engines, run infer/bench with --backend torch (GPU) or --backend onnxruntime (CPU), "
                   "which use the ONNX files directly")


def _builder_and_gpu() -> tuple[Any, Any]:
    """TensorRT's builder module and the GPU, or a UserError that fits `build` (which has no --backend option)."""
    from pointpillars_trt.backends.tensorrt.builder import import_trt_builder
    from pointpillars_trt.backends.tensorrt.runner import probe_gpu

    try:
        trt = import_trt_builder()
    except UserError:
        raise UserError("build needs TensorRT's builder (the `tensorrt` Python package 10.x/11.x): pip install tensorrt "
                        f"on a machine with an NVIDIA GPU; {NO_BUILD_NEEDED}") from None
    gpu, why = probe_gpu()
    if gpu is None:
        raise UserError(f"build needs the NVIDIA GPU the engines will run on, but {why}; {NO_BUILD_NEEDED}")
    return trt, gpu


def run(args: argparse.Namespace) -> int:
    """Build the engines; returns 0, or raises UserError (no TensorRT, no GPU, missing ONNX, failed build)."""
    from pointpillars_trt.backends.tensorrt.builder import make_builder_fn, timing_cache_path

    for flag, value in (("--max-pillars", args.max_pillars), ("--opt-pillars", args.opt_pillars),
                        ("--max-batch", args.max_batch), ("--workspace-mb", args.workspace_mb)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.exclude_lean_runtime and not args.version_compatible:
        raise UserError("--exclude-lean-runtime only applies with --version-compatible")
    profiles = profiles_for(args.max_pillars, args.opt_pillars, args.max_batch)
    if not args.onnx_dir.is_dir():
        raise UserError(f"--onnx-dir {args.onnx_dir} is not a folder")
    trt, gpu = _builder_and_gpu()
    trt_version = str(trt.__version__)
    print(f"TensorRT {trt_version} on {gpu.name} ({gpu.sm}); engines -> {args.engines_dir}/", flush=True)
    args.engines_dir.mkdir(parents=True, exist_ok=True)
    cache_file = timing_cache_path(args.engines_dir, trt_version, gpu.sm)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    builder_fn = make_builder_fn(workspace_mb=args.workspace_mb, timing_cache=cache_file, log=log, trt=trt)
    t0 = time.perf_counter()
    results = build_all(
        args.onnx_dir, args.engines_dir, list(dict.fromkeys(args.precision)), profiles,
        trt_version=trt_version, compute_capability=gpu.cc, builder_fn=builder_fn,
        version_compatible=args.version_compatible, exclude_lean_runtime=args.exclude_lean_runtime,
        force=args.force, log=log,
        build_info={"gpu": gpu.name, "workspace_mb": args.workspace_mb, "timing_cache": cache_file.name},
    )
    built = sum(r.action != "cached" for r in results)
    print(f"done in {time.perf_counter() - t0:.1f} s: {built} built, {len(results) - built} up to date", flush=True)
    for r in results:
        print(f"  {r.key.network} {r.key.precision}: {r.path} ({r.action})", flush=True)
    return 0
