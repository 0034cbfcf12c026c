"""The GPU data path: device buffers, Numba CUDA kernels, the GPU pipeline and its factory.

Importing this package is cheap and works without a GPU (the simulator tests
import its kernel modules); make_gpu_pipeline checks for the GPU stack.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError


def make_gpu_pipeline(cfg: PointPillarsConfig, backend: str, precision: str, *, checkpoint: str | Path | None = None,
                      onnx_dir: str | Path | None = None, engines_dir: str | Path = "engines",
                      max_batch: int = 1) -> Any:
    """A GpuPipeline with torch runners (from the checkpoint) or TensorRT runners (engines built from onnx_dir)."""
    from pointpillars_trt.pipelines.gpu import GpuPipeline, require_gpu_stack

    require_gpu_stack()
    if precision not in ("fp32", "fp16"):
        raise UserError(f"precision must be fp32 or fp16, got {precision!r}")
    if backend == "torch":
        from pointpillars_trt.model import tensor_names as tn
        from pointpillars_trt.backends.torch_runner import TorchRunner
        from pointpillars_trt.model.networks import load_checkpoint

        if checkpoint is None:
            raise UserError("the torch backend needs --checkpoint")
        nets = load_checkpoint(checkpoint, cfg)
        pfn = TorchRunner(nets.vfe, tn.PFN_INPUT, (tn.PFN_OUTPUT,), precision)
        rpn = TorchRunner(nets.rpn, tn.RPN_INPUT, tn.RPN_OUTPUTS, precision)
    elif backend == "tensorrt":
        pfn, rpn = _tensorrt_runners(cfg, precision, onnx_dir, Path(engines_dir))
    else:
        raise UserError(f"backend {backend!r} does not run on the GPU pipeline (torch or tensorrt)")
    return GpuPipeline(cfg, pfn, rpn, max_batch=max_batch)


def _tensorrt_runners(cfg: PointPillarsConfig, precision: str, onnx_dir: str | Path | None,
                      engines_dir: Path) -> tuple[Any, Any]:
    """TensorRTRunners for this precision's engines: built (or rebuilt when stale) for this GPU where a builder that
    runs here is installed (full tensorrt, else tensorrt_rtx on a GPU it supports), else the newest engines in
    engines_dir whose sidecar matches the ONNX files' sha256 (lean runtime)."""
    from pointpillars_trt.model import tensor_names as tn
    from pointpillars_trt.backends.tensorrt import flavour as fl
    from pointpillars_trt.backends.tensorrt.runner import TensorRTRunner, require_gpu
    from pointpillars_trt.backends.tensorrt.cache import ENGINE_SUFFIX, check_fits, check_prebuilt, sha256_file

    if onnx_dir is None:
        raise UserError("the tensorrt backend needs the ONNX export the engines were built from (--onnx-dir)")
    gpu = require_gpu()
    flavour = fl.select(need_builder=True)
    lean = fl.load(fl.LEAN)
    if flavour is not None and not (lean and flavour.name == fl.RTX and gpu.cc not in fl.RTX_CCS):
        fl.check_can_run(flavour, gpu.cc, gpu.name)  # RTX on Hopper: one line, before building anything
        return _build_engines(cfg, flavour, gpu, precision, Path(onnx_dir), engines_dir)
    runtime_version = lean.version if lean else "unknown"
    runners = []
    for net in tn.NETWORKS:
        onnx = Path(onnx_dir) / tn.onnx_filename(net, precision)
        if not onnx.is_file():
            raise UserError(f"ONNX file not found: {onnx}")
        sha = sha256_file(onnx)
        candidates = sorted(engines_dir.glob(f"{net}_{precision}_*{ENGINE_SUFFIX}"), key=lambda p: -p.stat().st_mtime)
        why = {p: check_prebuilt(p, sha, gpu.cc, runtime_version) for p in candidates}
        usable = [p for p in candidates if why[p] is None]
        if not usable:
            detail = f" ({candidates[0].name}: {why[candidates[0]]})" if candidates else ""
            raise UserError(f"no usable TensorRT engine for {net} {precision} built from {onnx} in {engines_dir}/"
                            f"{detail}; build one with `pointpillars-trt build --version-compatible` where TensorRT's "
                            "builder is installed")
        if net == "pfn":
            check_fits(usable[0], cfg.max_pillars)
        runners.append(TensorRTRunner(usable[0], flavour=lean))
    return runners[0], runners[1]


def _build_engines(cfg: PointPillarsConfig, flavour: Any, gpu: Any, precision: str, onnx_dir: Path,
                   engines_dir: Path) -> tuple[Any, Any]:
    """Find-or-build the PFN and RPN engines for this GPU with build's defaults (profile up to cfg.max_pillars, batch 1)."""
    from pointpillars_trt import log
    from pointpillars_trt.backends.tensorrt.runner import TensorRTRunner
    from pointpillars_trt.backends.tensorrt.builder import DEFAULT_OPT_PILLARS, build_engines, profiles_for

    results = build_engines(onnx_dir, engines_dir, [precision],
                            profiles_for(cfg.max_pillars, min(DEFAULT_OPT_PILLARS, cfg.max_pillars), 1),
                            flavour=flavour, targets=(gpu.cc,), log=log.info, build_info={"gpu": gpu.name})
    pfn, rpn = (TensorRTRunner(r.path, flavour=flavour, log=log.info) for r in results)  # pfn then rpn
    return pfn, rpn
