"""The model options every detecting command shares (--checkpoint / --onnx-dir / --random-init, --config,
--precision, --backend, --device, --cache-dir, --threads), and the one adapter from them to a Detector."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from pointpillars_trt.api import BACKENDS, DEVICES, Detector, choose_backend
from pointpillars_trt.cli.point_options import finite
from pointpillars_trt.errors import UserError
from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.cache_dir import default_cache_dir
from pointpillars_trt.model import store
from pointpillars_trt.runs.spec import DetectorSpec


#: the GPU pipeline's options the flags set: option -> (argparse dest turning it off, the flags to name in errors)
GPU_FLAGS = {"graph": ("no_graph", "--no-graph"), "compile": ("no_compile", "--compile/--no-compile"),
             "tf32": ("strict_fp32", "--strict-fp32")}


def add_model_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add the shared model/backend options to a command's parser."""
    g = p.add_argument_group("model (one of; default: the project's trained model, data/models/MODEL_CARD.md)")
    g.add_argument("--checkpoint", type=Path, help="OpenPCDet checkpoint (.pth with 'model_state'); exported to ONNX once "
                   "(cached) for the backends that run ONNX")
    g.add_argument("--onnx-dir", type=Path, help="directory written by `export` (pfn/rpn_fp32/fp16.onnx + manifest.json)")
    g.add_argument("--random-init", action="store_true",
                   help="a seeded random-init model the project makes itself: UNTRAINED, for trying the tool only")
    b = p.add_argument_group("backend")
    b.add_argument("--config", type=Path, help="OpenPCDet model YAML (pointpillar.yaml layout); default: KITTI PointPillars")
    b.add_argument("--intensity-range", type=_range, metavar="LO,HI",
                   help="the intensities the model was trained on (default 0,1: KITTI's; OpenPCDet's YAML does not "
                        "say); scans far outside it get a warning")
    b.add_argument("--precision", choices=tn.PRECISIONS, default="fp32", help="which exported graph to run (default fp32)")
    b.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: tensorrt, else torch on a GPU, else onnxruntime on the CPU")
    b.add_argument("--device", choices=DEVICES, default="auto", help="where to run (default: cuda if available)")
    b.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                   help="where exported ONNX files and built engines are cached (default: $POINTPILLARS_TRT_CACHE, "
                        "else $XDG_CACHE_HOME/pointpillars_trt or ~/.cache/pointpillars_trt)")
    b.add_argument("--threads", type=int, default=None, help="CPU threads for onnxruntime (default: all cores)")
    g = p.add_argument_group("GPU pipeline")
    g.add_argument("--batch", type=int, default=1, metavar="B",
                   help="scans per GPU run (one captured graph per batch size; default 1: lowest latency)")
    g.add_argument("--no-graph", action="store_true",
                   help="launch every kernel from the host instead of replaying one captured CUDA graph per scan")
    g.add_argument("--compile", choices=("auto", "now", "off"), default="auto",
                   help="torch backend: when the RPN goes through Inductor's max-autotune. auto (default): never "
                        "before an answer: the first scans run the uncompiled RPN, then a worker thread compiles it "
                        "from this machine's tuning; a machine that never tuned it tunes in a background process once "
                        "a run lasts over a minute (`tune` tunes ahead); now: before the first scan (the first tuning "
                        "takes about a minute, then is cached); off: never (slower RPN)")
    g.add_argument("--no-compile", action="store_true", help="the same as --compile off")
    g.add_argument("--strict-fp32", action="store_true",
                   help="FP32 without TF32 tensor cores (TensorRT's and this tool's FP32 default to TF32)")
    p.set_defaults(_model_required=required)


def _range(text: str) -> tuple[float, float]:
    """'0,255' -> (0.0, 255.0); a usage error unless two finite numbers LO < HI."""
    try:
        lo, hi = (finite(v) for v in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        lo = hi = math.nan
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"expected LO,HI with LO < HI, got {text!r}")
    return lo, hi


def _check_one_model(args: argparse.Namespace) -> None:
    given = [n for n in ("checkpoint", "onnx_dir") if getattr(args, n, None)] + (["random_init"] if args.random_init else [])
    if len(given) > 1:
        raise UserError("give only one of --checkpoint, --onnx-dir, --random-init")


def model_files(args: argparse.Namespace) -> store.ModelFiles:
    """The model files the options name, without building a pipeline (for `build` and `export`)."""
    _check_one_model(args)
    cfg = store.load_config(args.config)
    if args.onnx_dir:
        return store.from_onnx_dir(args.onnx_dir, cfg, str(args.config or "the default"))
    if args.random_init:
        return store.random_init(cfg, Path(args.cache_dir))
    if args.checkpoint:
        return store.from_checkpoint(args.checkpoint, cfg, Path(args.cache_dir))
    return store.default_model(cfg, Path(args.cache_dir))


def detector_spec(args: argparse.Namespace, **gpu_options: Any) -> DetectorSpec:
    """The DetectorSpec the options name (a Detector.from_checkpoint/from_onnx/default/random_init call as data);
    gpu_options (e.g. `bench --compare`'s) go to the GPU pipeline beside the flags' own."""
    _check_one_model(args)
    options = dict(config=args.config, precision=args.precision, backend=args.backend, device=args.device,
                   cache_dir=args.cache_dir, threads=args.threads, max_batch=getattr(args, "batch", 1),
                   intensity_scale=getattr(args, "intensity_scale", None), intensity_range=args.intensity_range,
                   **gpu_options)
    for key, (dest, _) in GPU_FLAGS.items():
        if getattr(args, dest, False):  # only what was asked for: the CPU pipeline refuses GPU options
            options[key] = False
    if getattr(args, "compile", "auto") != "auto" and "compile" not in options:
        options["compile"] = args.compile
    flags = [flag for key, (_, flag) in GPU_FLAGS.items() if key in options]
    if flags and choose_backend(args.backend, args.device)[1] == "cpu":
        raise UserError(f"{', '.join(flags)} set the GPU pipeline, and this run is on the CPU; drop "
                        f"{'it' if len(flags) == 1 else 'them'}, or run on a GPU (--device cuda)")
    if args.onnx_dir:
        return DetectorSpec.onnx(args.onnx_dir, **options)
    if args.random_init:
        return DetectorSpec.random_init(**options)
    if args.checkpoint:
        return DetectorSpec.checkpoint(args.checkpoint, **options)
    return DetectorSpec.default(**options)


def make_detector(args: argparse.Namespace, **gpu_options: Any) -> Detector:
    """The Detector the options name (only turns options into a Detector.from_checkpoint/from_onnx/random_init call)."""
    return detector_spec(args, **gpu_options).build()
