"""`pointpillars-trt build`: the TensorRT engines (pfn/rpn x fp32/fp16) from the exported ONNX files.

Engines go to --cache-dir (or --engines-dir) under names keyed by what they depend on (see
backends/tensorrt/cache.py); an up-to-date engine is reused, a stale one rebuilt
with a message saying why. With TensorRT-RTX this works on a machine with no GPU.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pointpillars_trt.backends.tensorrt.builder import DEFAULT_OPT_PILLARS, DEFAULT_WORKSPACE_MB, profiles_for
from pointpillars_trt.backends.tensorrt.flavour import RTX_CCS, RTX_DEFAULT_CCS
from pointpillars_trt.cache_dir import default_cache_dir
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.model.tensor_names import PRECISIONS


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `build` subcommand on an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "build",
        help="build TensorRT engines from the exported ONNX files",
        description="Build the PFN and RPN TensorRT engines (one per precision) from <onnx-dir>/{pfn,rpn}_{fp32,fp16}.onnx "
                    "(or a checkpoint, exported once). Uses the full `tensorrt` package (10.x/11.x, on the target GPU) "
                    "if installed, else `tensorrt-rtx`, which builds without a GPU for RTX-class GPUs.",
    )
    m = p.add_argument_group("model (one of)")
    m.add_argument("--onnx-dir", type=Path, help="folder with pfn_fp32.onnx, rpn_fp16.onnx, ...")
    m.add_argument("--checkpoint", type=Path, help="OpenPCDet checkpoint, exported to ONNX once and cached in --cache-dir")
    m.add_argument("--random-init", action="store_true", help="the seeded, UNTRAINED demo model")
    m.add_argument("--config", type=Path, help="OpenPCDet model YAML (default: KITTI PointPillars)")
    m.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                   help="where the export and the engines are cached (default: the user cache, see `cache`)")
    p.add_argument("--engines-dir", type=Path, default=None,
                   help="where engines go (default: --cache-dir, where `infer --backend tensorrt` looks for them)")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                   help="precisions to build (default: fp32 fp16)")
    p.add_argument("--compute-capability", nargs="+", default=[], metavar="CC",
                   help="GPUs to build for, e.g. 8.6 12.0 or 'all' (TensorRT-RTX: any of "
                        f"{' '.join(RTX_CCS)}). Default: this machine's GPU; with TensorRT-RTX and no supported GPU, "
                        f"{' '.join(RTX_DEFAULT_CCS)} (measured: same build time and plan size as one target)")
    p.add_argument("--max-pillars", type=int, default=PointPillarsConfig().max_pillars,
                   help="largest pillar count the PFN engine accepts (default: %(default)s)")
    p.add_argument("--opt-pillars", type=int, default=DEFAULT_OPT_PILLARS,
                   help="pillar count TensorRT tunes the PFN for (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=1, help="largest RPN batch (default: 1)")
    p.add_argument("--version-compatible", action="store_true",
                   help="full tensorrt only: build plans later TensorRT versions (and the lean runtime) can run")
    p.add_argument("--exclude-lean-runtime", action="store_true",
                   help="with --version-compatible: leave the lean runtime out of the plan "
                        "(smaller; then only the lean runtime of the same TensorRT version runs it)")
    p.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB,
                   help="builder workspace memory pool limit in MiB (default: %(default)s)")
    p.add_argument("--report", action="store_true",
                   help="print each engine's inputs/outputs (names, shapes, dtypes, profile ranges) and how many "
                        "layers compute in FP16 vs FP32 in the parsed network")
    p.add_argument("--force", action="store_true", help="rebuild even if an up-to-date engine exists")
    p.set_defaults(func=run)
    return p


def _onnx_dir(args: argparse.Namespace) -> Path:
    """The ONNX folder: --onnx-dir as given, or the cached export of --checkpoint / --random-init (cli.model_options.model_files)."""
    if args.onnx_dir and not (args.checkpoint or args.random_init):
        if not args.onnx_dir.is_dir():
            raise UserError(f"--onnx-dir {args.onnx_dir} is not a folder")
        return args.onnx_dir
    from pointpillars_trt.cli.model_options import model_files

    return model_files(args).onnx()


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the engines and print a line per engine; raises UserError for anything the user can fix."""
    from pointpillars_trt.backends.tensorrt import flavour as fl
    from pointpillars_trt.backends.tensorrt.builder import build_engines, builder_flavour
    from pointpillars_trt.backends.tensorrt.gpu import probe_gpu

    for flag, value in (("--max-pillars", args.max_pillars), ("--opt-pillars", args.opt_pillars),
                        ("--max-batch", args.max_batch), ("--workspace-mb", args.workspace_mb)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.exclude_lean_runtime and not args.version_compatible:
        raise UserError("--exclude-lean-runtime only applies with --version-compatible")
    profiles = profiles_for(args.max_pillars, args.opt_pillars, args.max_batch)
    if not (args.onnx_dir or args.checkpoint or args.random_init):
        raise UserError("no model: give --onnx-dir DIR (from `export`), --checkpoint CKPT.pth or --random-init")
    onnx_dir = _onnx_dir(args)
    engines_dir = args.engines_dir or args.cache_dir
    flavour = builder_flavour()
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    gpu, _why = probe_gpu()
    targets = fl.build_targets(flavour, args.compute_capability, gpu.cc if gpu else None, log)
    where = f"on {gpu.name} ({gpu.sm})" if gpu else "without a GPU"
    log(f"{flavour.label} {where}; engines for compute capability {' '.join(targets)} -> {engines_dir}/")
    t0 = time.perf_counter()
    results = build_engines(
        onnx_dir, engines_dir, list(dict.fromkeys(args.precision)), profiles, flavour=flavour, targets=targets,
        workspace_mb=args.workspace_mb, version_compatible=args.version_compatible,
        exclude_lean_runtime=args.exclude_lean_runtime, force=args.force, log=log,
        build_info={"gpu": gpu.name if gpu else None},
    )
    built = sum(r.action != "cached" for r in results)
    log(f"done in {time.perf_counter() - t0:.1f} s: {built} built, {len(results) - built} up to date")
    for r in results:
        log(f"  {r.key.network} {r.key.precision}: {r.path} ({r.action})")
    if args.report:
        from pointpillars_trt.backends.tensorrt.report import format_summary, summarize

        for r in results:
            onnx = onnx_dir / f"{r.key.network}_{r.key.precision}.onnx"
            for line in format_summary(f"{r.path.name}", summarize(flavour, onnx, r.key.profile)):
                print(line, flush=True)
    return 0
