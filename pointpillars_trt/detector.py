"""From command-line model options to a ready pipeline: config, model files (checkpoint -> ONNX cache), backend choice.

Shared by infer, eval --data, view and bench so every command takes the same
--checkpoint / --onnx-dir / --random-init / --precision / --backend / --device.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import log
from . import tensor_names as tn
from .config import PointPillarsConfig
from .errors import UserError

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")


def add_model_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The model/backend options every detecting command shares."""
    g = p.add_argument_group("model (one of)")
    g.add_argument("--checkpoint", type=Path, help="OpenPCDet checkpoint (.pth with 'model_state'); exported to ONNX once and cached")
    g.add_argument("--onnx-dir", type=Path, help="directory written by `export` (pfn/rpn_fp32/fp16.onnx + manifest.json)")
    g.add_argument("--random-init", action="store_true",
                   help="a seeded random-init model the project makes itself: UNTRAINED, for trying the tool only")
    b = p.add_argument_group("backend")
    b.add_argument("--config", type=Path, help="OpenPCDet model YAML (pointpillar.yaml layout); default: KITTI PointPillars")
    b.add_argument("--precision", choices=tn.PRECISIONS, default="fp32", help="which exported graph to run (default fp32)")
    b.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: tensorrt, else torch on a GPU, else onnxruntime on the CPU")
    b.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="where to run (default: cuda if available)")
    b.add_argument("--cache-dir", type=Path, default=Path("engines"),
                   help="where exported ONNX files and built engines are cached (default ./engines)")
    b.add_argument("--threads", type=int, default=None, help="CPU threads for onnxruntime (default: all cores)")
    p.set_defaults(_model_required=required)


def load_config(args: argparse.Namespace) -> PointPillarsConfig:
    return PointPillarsConfig.from_openpcdet_yaml(args.config) if args.config else PointPillarsConfig()


def _export_cached(checkpoint: Path, cfg: PointPillarsConfig, cache_dir: Path) -> Path:
    """Export a checkpoint to cache_dir/onnx/<checkpoint sha12>_<config hash>/ once; later runs reuse it."""
    from .export import export_onnx
    from .hashing import file_sha256
    from .model import load_checkpoint

    if not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")
    out = cache_dir / "onnx" / f"{file_sha256(checkpoint)[:12]}_{cfg.digest()}"
    mf = out / tn.MANIFEST
    if mf.is_file():
        try:
            if json.loads(mf.read_text()).get("config") == cfg.inference_dict():
                return out
            log.info(f"cached ONNX in {out} does not match the config: re-exporting")
        except json.JSONDecodeError:
            log.info(f"cached ONNX manifest {mf} is unreadable: re-exporting")
    nets = load_checkpoint(checkpoint, cfg)
    log.info(f"exporting {checkpoint} to ONNX (FP32 + FP16) in {out} (once; ~30 s)")
    export_onnx(nets, out, checkpoint=checkpoint, force=True, progress=lambda s: log.info("  " + s))
    return out


def resolve_model(args: argparse.Namespace, cfg: PointPillarsConfig) -> tuple[Path, Path | None, bool]:
    """(ONNX directory, checkpoint if known, untrained?) for the model the options name."""
    given = [n for n in ("checkpoint", "onnx_dir") if getattr(args, n, None)] + (["random_init"] if args.random_init else [])
    if len(given) > 1:
        raise UserError("give only one of --checkpoint, --onnx-dir, --random-init")
    if not given:
        raise UserError("no model: give --checkpoint CKPT.pth, --onnx-dir DIR (from `export`), or --random-init for an untrained demo model")
    if args.onnx_dir:
        from .onnx_manifest import read_manifest

        m = read_manifest(args.onnx_dir)
        if m.get("config") != cfg.inference_dict():
            raise UserError(f"{args.onnx_dir} was exported with a different config than {args.config or 'the default'}; pass the matching --config")
        ck = m.get("checkpoint") or {}
        ckpt = Path(ck["path"]) if ck.get("path") and Path(ck["path"]).is_file() else None
        return Path(args.onnx_dir), ckpt, "random-init" in json.dumps(ck)
    if args.random_init:
        from .model import random_checkpoint

        ckpt = Path(args.cache_dir) / f"random-init-seed0_{cfg.digest()}.pth"
        if not ckpt.is_file():
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            random_checkpoint(ckpt, cfg, seed=0)
        return _export_cached(ckpt, cfg, Path(args.cache_dir)), ckpt, True
    return _export_cached(Path(args.checkpoint), cfg, Path(args.cache_dir)), Path(args.checkpoint), False


def _cuda_available() -> bool:
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # numba without CUDA support, broken driver...
        return False


def _tensorrt_available() -> bool:
    """TensorRT with its builder is importable, so `auto` can build engines (the lean runtime only runs prebuilt
    engines: it is used when --backend tensorrt is asked for explicitly)."""
    try:
        from .backends.tensorrt_runner import import_tensorrt, is_lean

        trt = import_tensorrt()
    except Exception:  # a broken install must not break `auto`
        return False
    return trt is not None and not is_lean(trt)


def choose_backend(backend: str, device: str) -> tuple[str, str]:
    """(backend, device) after resolving 'auto' and checking that the choice can run here."""
    has_gpu = _cuda_available() if device != "cpu" else False
    if device == "cuda" and not has_gpu:
        raise UserError("--device cuda: no usable CUDA GPU found (numba.cuda.is_available() is False); use --device cpu")
    if backend == "auto":
        if has_gpu and _tensorrt_available():
            backend = "tensorrt"
        elif has_gpu:
            backend = "torch"
        else:
            backend = "onnxruntime"
    if backend == "tensorrt":
        from .backends.tensorrt_runner import import_tensorrt

        if import_tensorrt() is None:
            raise UserError("--backend tensorrt: no TensorRT Python module (tensorrt 10.x/11.x, or the lean runtime "
                            "for prebuilt engines) is installed; use --backend torch or onnxruntime")
    if backend == "onnxruntime" and device == "cuda":
        raise UserError("--backend onnxruntime runs on the CPU here (onnxruntime's CPU build); use --device cpu, "
                        "or --backend torch/tensorrt on the GPU")
    if backend in ("tensorrt", "torch"):
        if device == "cpu":
            raise UserError(f"--backend {backend} runs on the GPU; use --backend onnxruntime with --device cpu")
        if not has_gpu:
            raise UserError(f"--backend {backend} needs a CUDA GPU and none was found; use --backend onnxruntime")
        return backend, "cuda"
    return backend, "cpu"


@dataclass
class Detector:
    """A pipeline plus a line describing what runs (backend, device, precision, model)."""

    pipeline: Any
    description: str
    untrained: bool
    cfg: PointPillarsConfig

    def __enter__(self) -> "Detector":
        self.pipeline.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pipeline.__exit__(*exc)

    def run(self, points):
        return self.pipeline.run(points)


def make_detector(args: argparse.Namespace) -> Detector:
    """Build the pipeline the options ask for; says which backend 'auto' picked."""
    cfg = load_config(args)
    backend, device = choose_backend(args.backend, args.device)
    onnx_dir, ckpt, untrained = resolve_model(args, cfg)
    prec = args.precision
    if device == "cpu":
        from .backends.onnxruntime_runner import OnnxRuntimeRunner
        from .pipeline import CpuPipeline

        pipe = CpuPipeline(cfg, OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("pfn", prec), args.threads),
                           OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("rpn", prec), args.threads))
    else:
        from .gpu import make_gpu_pipeline

        if backend == "torch" and ckpt is None:
            raise UserError("--backend torch needs the checkpoint: pass --checkpoint (an --onnx-dir whose manifest names an existing checkpoint also works)")
        pipe = make_gpu_pipeline(cfg, backend, prec, checkpoint=ckpt, onnx_dir=onnx_dir, engines_dir=Path(args.cache_dir))
    desc = f"backend {backend} ({device}), {prec}, model {onnx_dir}"
    if args.backend == "auto":
        desc += "  [auto-selected]"
    return Detector(pipe, desc, untrained, cfg)
