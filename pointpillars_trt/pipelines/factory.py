"""Building pipelines: make_pipeline (the CPU pipeline with onnxruntime, or a GPU one) and make_gpu_pipeline
(torch or TensorRT runners, TensorRT engines found or built).

Importing this module is cheap and works without a GPU; make_gpu_pipeline checks for the GPU stack.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pointpillars_trt import phases
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.store import ModelFiles


def make_pipeline(cfg: PointPillarsConfig, model: ModelFiles, backend: str, device: str, precision: str, *,
                  threads: int | None = None, max_batch: int = 1, engines_dir: str | Path = "engines",
                  **gpu_options: Any) -> Any:
    """The pipeline for a resolved (backend, device): a CpuPipeline with onnxruntime runners on the CPU, else
    make_gpu_pipeline's GpuPipeline (gpu_options go to it). Not entered yet (runners load in __enter__)."""
    if device == "cpu":
        from pointpillars_trt.backends.onnxruntime_runner import OnnxRuntimeRunner
        from pointpillars_trt.model import tensor_names as tn
        from pointpillars_trt.pipelines.cpu import CpuPipeline

        if gpu_options:
            raise UserError(f"GPU options {sorted(gpu_options)} given for a CPU detector; drop them or use device='cuda'")
        onnx = model.onnx()  # exported from the checkpoint on first need
        return CpuPipeline(cfg, OnnxRuntimeRunner(onnx / tn.onnx_filename("pfn", precision), threads),
                           OnnxRuntimeRunner(onnx / tn.onnx_filename("rpn", precision), threads))
    if backend == "torch" and model.checkpoint is None:
        raise UserError("--backend torch needs the checkpoint: pass --checkpoint (an --onnx-dir whose manifest names "
                        "an existing checkpoint also works)")
    # the torch backend builds its networks from the checkpoint: no ONNX export on its way (model/store.py)
    onnx_dir = model.onnx() if backend == "tensorrt" else model.onnx_dir
    return make_gpu_pipeline(cfg, backend, precision, checkpoint=model.checkpoint, onnx_dir=onnx_dir,
                             engines_dir=engines_dir, max_batch=max_batch, **gpu_options)


def make_gpu_pipeline(cfg: PointPillarsConfig, backend: str, precision: str, *, checkpoint: str | Path | None = None,
                      onnx_dir: str | Path | None = None, engines_dir: str | Path = "engines",
                      max_batch: int = 1, graph: bool = True, compile: bool | str = "auto", tf32: bool = True,
                      fold: bool = True, pfn_kernel: bool = True,
                      fp16_canvas: bool = True, upload_kernel: bool = True, overlap_batches: bool = True,
                      max_points: int | None = None,
                      log: Callable[[str], None] | None = None) -> Any:
    """A GpuPipeline with torch runners (from the checkpoint) or TensorRT runners (engines built from onnx_dir).

    graph: one captured CUDA graph per shape (False: launch by launch); compile: the torch backend's RPN through
    Inductor max-autotune (BN-folded, fused heads either way): auto (default: compile in the background where this
    machine's Inductor cache already tuned the shape, so the first detections come from the uncompiled RPN without
    waiting for Dynamo; else tune before the first detection), now (True), off (False)
    (backends/inductor_compile.py); tf32: FP32 convolutions on TF32 tensor cores, as
    TensorRT's FP32 engines do (False: strict FP32); fold=False keeps the checkpoint's RPN as it is (BatchNorm
    and ZeroPad as separate ops, three heads, the PFN in torch: OpenPCDet-style eager execution, the bench's
    baseline); pfn_kernel: the torch backend's PFN as backends/numba_pfn.py's kernel over the real pillars only (on an
    H200 inside the graph 0.042 ms against torch's 0.194 ms over the bucket's rows, `bench/tools.py kernels`; False
    keeps torch's PFN, to compare); fp16_canvas: the FP16 torch RPN takes its input as the FP16 channels-last canvas the
    scatter writes (False: the FP32 NCHW canvas of the ONNX contract, converted by the runner, to compare);
    upload_kernel: the points reach the
    GPU through a kernel reading exactly the scan's n points from mapped pinned memory (False: a captured memcpy of
    the whole capacity bucket, to compare); overlap_batches: consecutive batches of run_batches run side by
    side on two sets of device buffers and streams (runners that may run twice at once: torch's, the PFN kernel;
    the second set is allocated on the first run_batches; H200, B = 32: 4124 scans/s against 4015 with one set,
    bench/results/2026-12-02_h200_throughput.md) (GpuPipeline)."""
    from pointpillars_trt.backends.inductor_compile import compile_mode
    from pointpillars_trt.pipelines.gpu import DEFAULT_MAX_POINTS, GpuPipeline, require_gpu_stack

    if compile_mode(compile) == "auto" and not graph:  # (a bad value is one line before any GPU work)
        compile = "now"  # launch by launch calls the module every scan: no background compile (inductor_compile.py)
    require_gpu_stack()
    phases.mark("GPU stack checked (cuda-python, Numba)")
    if precision not in ("fp32", "fp16"):
        raise UserError(f"precision must be fp32 or fp16, got {precision!r}")
    if backend == "torch":
        import torch  # noqa: F401  (timed on its own: a large part of a cold start)

        phases.mark("import torch")
        from pointpillars_trt.model import tensor_names as tn
        from pointpillars_trt.backends.torch_runner import TorchRunner
        from pointpillars_trt.model.inference import fold_rpn
        from pointpillars_trt.model.networks import load_checkpoint

        if checkpoint is None:
            raise UserError("the torch backend needs --checkpoint")
        nets = load_checkpoint(checkpoint, cfg)
        if pfn_kernel and fold:  # the PFN as one Numba kernel over the real pillars only (backends/numba_pfn.py)
            from pointpillars_trt.backends.numba_pfn import NumbaPfnRunner

            pfn = NumbaPfnRunner(nets.vfe, tn.PFN_INPUT, tn.PFN_OUTPUT)
        else:
            pfn = TorchRunner(nets.vfe, tn.PFN_INPUT, (tn.PFN_OUTPUT,), precision, tf32=tf32)
        rpn = TorchRunner(fold_rpn(nets.rpn) if fold else nets.rpn, tn.RPN_INPUT, tn.RPN_OUTPUTS, precision,
                          compile=compile, tf32=tf32, cache_dir=Path(engines_dir), log=log,
                          native_input=fp16_canvas and fold)
    elif backend == "tensorrt":
        pfn, rpn = _tensorrt_runners(cfg, precision, onnx_dir, Path(engines_dir))
    else:
        raise UserError(f"backend {backend!r} does not run on the GPU pipeline (torch or tensorrt)")
    phases.mark("networks built (checkpoint read, or TensorRT engines found)")
    pipe = GpuPipeline(cfg, pfn, rpn, max_batch=max_batch, max_points=max_points or DEFAULT_MAX_POINTS, graph=graph,
                       upload_kernel=upload_kernel, overlap_batches=overlap_batches, log=log)
    phases.mark("GPU buffers (CUDA context)")
    return pipe


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
