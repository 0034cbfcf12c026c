"""Build a serialized TensorRT engine from one ONNX file (full ``tensorrt`` package 10.x or 11.x only).

Precision comes from the ONNX graph (pfn_fp16.onnx, rpn_fp32.onnx, ...), never
from builder flags, because TensorRT 10.x -> 11.x changed exactly that
(TensorRT docs, "Migrating from TensorRT 10.x to 11.x" and its Python pages):

* 11.x removed every weak-typing flag: BuilderFlag.FP16, BF16, INT8, FP8, INT4,
  FP4, OBEY_PRECISION_CONSTRAINTS, PREFER_PRECISION_CONSTRAINTS (and DIRECT_IO),
  plus the INT8 calibrator API; precision must be in the graph (ModelOpt AutoCast
  or an FP16 export, which is what our exporter writes).
* 11.x networks are always strongly typed; NetworkDefinitionCreationFlag.STRONGLY_TYPED
  is kept but ignored. On 10.x it must be passed to create_network to get the same
  behaviour (otherwise 10.x would be free to pick its own precisions).
* So one code path serves both: pass STRONGLY_TYPED when the enum has it, set no
  precision flag at all. Other 11.x removals (ICudaEngine.device_memory_size,
  binding-index APIs, which 10.x already dropped) are not used here.

Version compatibility (TensorRT docs, "Engine Compatibility"): BuilderFlag.VERSION_COMPATIBLE
makes a plan that later TensorRT versions can run; it embeds the lean runtime
(host code), so the loading Runtime needs ``engine_host_code_allowed = True``.
Adding BuilderFlag.EXCLUDE_LEAN_RUNTIME leaves the lean runtime out (a smaller plan),
which then runs only on the lean runtime of the very same TensorRT version.

Calls (TensorRT 10.x/11.x Python API): Logger, Builder, Builder.create_network,
OnnxParser(network, logger).parse_from_file / num_errors / get_error(i).desc()/.node(),
INetworkDefinition.num_inputs / get_input(i) (ITensor.name, .shape),
Builder.create_builder_config, IBuilderConfig.set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes),
Builder.create_optimization_profile, IOptimizationProfile.set_shape(name, min, opt, max),
IBuilderConfig.add_optimization_profile, IBuilderConfig.create_timing_cache(bytes),
IBuilderConfig.set_timing_cache(cache, ignore_mismatch), IBuilderConfig.get_timing_cache,
ITimingCache.serialize, IBuilderConfig.set_flag(BuilderFlag.VERSION_COMPATIBLE / EXCLUDE_LEAN_RUNTIME),
Builder.build_serialized_network -> IHostMemory | None.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

from pointpillars_trt.backends.tensorrt.cache import CacheResult, EngineKey, Profile, find_or_build
from pointpillars_trt.model.tensor_names import NETWORKS, PFN_INPUT, RPN_INPUT, onnx_filename
from pointpillars_trt.errors import UserError

TRT_MISSING = (
    "TensorRT's builder (the `tensorrt` Python package 10.x/11.x) is not installed; install it with "
    "pip install tensorrt (on a machine with an NVIDIA GPU and driver) or use --backend torch/onnxruntime"
)


def import_trt_builder() -> ModuleType:
    """The full ``tensorrt`` module (the lean runtime cannot build), or a UserError saying how to get it."""
    try:
        import tensorrt as trt  # noqa: PLC0415
    except ImportError:
        raise UserError(TRT_MISSING) from None
    if not hasattr(trt, "Builder"):
        raise UserError(TRT_MISSING)
    return trt


def _network_flags(trt: ModuleType) -> int:
    """1 << STRONGLY_TYPED where the enum has it (needed on 10.x, accepted and ignored on 11.x)."""
    flag = getattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _load_timing_cache(config: Any, path: Optional[Path], log: Callable[[str], None]) -> Any:
    """Create the builder's timing cache from ``path`` (empty if absent or unusable) and attach it."""
    blob = b""
    if path is not None and path.is_file():
        try:
            blob = path.read_bytes()
        except OSError as e:
            log(f"timing cache {path} unreadable ({e.strerror or e}); starting an empty one")
    cache = config.create_timing_cache(blob)  # IBuilderConfig.create_timing_cache(serialized) -> ITimingCache
    if cache is None and blob:
        log(f"timing cache {path} was made by another TensorRT/GPU; starting an empty one")
        cache = config.create_timing_cache(b"")
    # IBuilderConfig.set_timing_cache(cache, ignore_mismatch) -> bool (C++ setTimingCache); only False means refused
    if cache is not None and config.set_timing_cache(cache, False) is False:
        log(f"timing cache {path} does not match this TensorRT/GPU; starting an empty one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def _save_timing_cache(config: Any, path: Optional[Path], log: Callable[[str], None]) -> None:
    """Serialize the (now updated) timing cache back to ``path`` atomically."""
    if path is None:
        return
    cache = config.get_timing_cache()  # IBuilderConfig.get_timing_cache -> ITimingCache
    if cache is None:
        return
    data = bytes(cache.serialize())  # ITimingCache.serialize -> IHostMemory (buffer protocol)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        log(f"could not save timing cache {path}: {e.strerror or e}")


def build_serialized_engine(
    onnx_path: Path,
    profile: Profile,
    *,
    workspace_mb: int = 4096,
    timing_cache: Optional[Path] = None,
    version_compatible: bool = False,
    exclude_lean_runtime: bool = False,
    log: Callable[[str], None] = print,
    trt: Optional[ModuleType] = None,
) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network, add one profile for its dynamic input, build the plan."""
    trt = trt or import_trt_builder()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # parse_from_file also finds external .onnx.data weights
        errors = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            errors.append(f"node {err.node()}: {err.desc()}")
        detail = "; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")
        raise UserError(f"TensorRT's ONNX parser rejected {onnx_path}: {detail or 'no details'}")

    inputs = {network.get_input(i).name: network.get_input(i) for i in range(network.num_inputs)}
    if profile.input_name not in inputs:
        raise UserError(f"{onnx_path}: no input named '{profile.input_name}' (inputs: {sorted(inputs)}); "
                        f"re-export the ONNX files")
    shape = tuple(int(d) for d in inputs[profile.input_name].shape)
    if not shape or shape[0] != -1 or any(d < 0 for d in shape[1:]):
        raise UserError(f"{onnx_path}: input '{profile.input_name}' has shape {shape}; expected a dynamic "
                        f"first dimension only (re-export with dynamic axes)")
    others = [n for n, t in inputs.items() if n != profile.input_name and any(int(d) < 0 for d in t.shape)]
    if others:
        raise UserError(f"{onnx_path}: other dynamic inputs {others} have no profile")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    opt_profile = builder.create_optimization_profile()
    rest = shape[1:]
    opt_profile.set_shape(profile.input_name, (profile.min, *rest), (profile.opt, *rest), (profile.max, *rest))
    config.add_optimization_profile(opt_profile)
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    elif exclude_lean_runtime:
        raise UserError("--exclude-lean-runtime only applies with --version-compatible")
    _load_timing_cache(config, timing_cache, log)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UserError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above); "
                        f"a larger --workspace-mb or a smaller --max-pillars/--max-batch may help")
    _save_timing_cache(config, timing_cache, log)
    return bytes(plan)


def timing_cache_path(engines_dir: Path, trt_version: str, sm: str) -> Path:
    """engines/timing_trt<ver>_<sm>.cache: one persistent timing cache per TensorRT version and GPU."""
    from pointpillars_trt.backends.tensorrt.cache import short_version

    return Path(engines_dir) / f"timing_trt{short_version(trt_version)}_{sm}.cache"


def make_builder_fn(
    *,
    workspace_mb: int,
    timing_cache: Optional[Path],
    log: Callable[[str], None] = print,
    trt: Optional[ModuleType] = None,
) -> Callable[[Path, EngineKey], bytes]:
    """A builder_fn for cache.find_or_build: builds the key's profile and flags from the ONNX file."""

    def build(onnx_path: Path, key: EngineKey) -> bytes:
        return build_serialized_engine(
            onnx_path, key.profile, workspace_mb=workspace_mb, timing_cache=timing_cache,
            version_compatible=key.version_compatible, exclude_lean_runtime=key.exclude_lean_runtime,
            log=log, trt=trt,
        )

    return build


DEFAULT_OPT_PILLARS = 12000
DEFAULT_WORKSPACE_MB = 4096


def profiles_for(max_pillars: int, opt_pillars: int, max_batch: int) -> dict[str, Profile]:
    """The one optimisation profile per network: PFN pillars 1/opt/max, RPN batch 1/1/max."""
    if opt_pillars > max_pillars:
        raise UserError(f"--opt-pillars {opt_pillars} is larger than --max-pillars {max_pillars}")
    return {"pfn": Profile(PFN_INPUT, 1, opt_pillars, max_pillars), "rpn": Profile(RPN_INPUT, 1, 1, max_batch)}


def build_all(
    onnx_dir: Path,
    engines_dir: Path,
    precisions: list[str],
    profiles: dict[str, Profile],
    *,
    trt_version: str,
    compute_capability: str,
    builder_fn: Optional[Callable[[Path, Any], bytes]],
    version_compatible: bool = False,
    exclude_lean_runtime: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
    build_info: Optional[dict[str, Any]] = None,
) -> list[CacheResult]:
    """Find or build every (network, precision) engine, in order, with numbered progress lines."""
    missing = [onnx_dir / onnx_filename(n, p) for p in precisions for n in NETWORKS
               if not (onnx_dir / onnx_filename(n, p)).is_file()]
    if missing:
        raise UserError(f"ONNX files missing: {', '.join(str(m) for m in missing)}; export them first")
    jobs = [(n, p) for p in precisions for n in NETWORKS]
    results = []
    for i, (network, precision) in enumerate(jobs, 1):
        prof = profiles[network]
        log(f"[{i}/{len(jobs)}] {network} {precision}: profile '{prof.input_name}' "
            f"min/opt/max {prof.min}/{prof.opt}/{prof.max}")
        results.append(find_or_build(
            onnx_dir / onnx_filename(network, precision), network=network, precision=precision, profile=prof,
            trt_version=trt_version, compute_capability=compute_capability, engines_dir=engines_dir,
            builder_fn=builder_fn, log=log, version_compatible=version_compatible,
            exclude_lean_runtime=exclude_lean_runtime, force=force, build_info=build_info,
        ))
    return results
