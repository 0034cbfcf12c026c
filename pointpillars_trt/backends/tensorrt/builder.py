"""Loader, build half: ONNX -> strongly typed network -> serialized plan, with ``tensorrt`` or ``tensorrt_rtx``.

Precision comes from the ONNX graph (pfn_fp16.onnx, rpn_fp32.onnx, ...), never
from builder flags: TensorRT 11.x removed BuilderFlag.FP16/BF16/INT8/FP8/INT4/FP4,
OBEY/PREFER_PRECISION_CONSTRAINTS and the INT8 calibrator ("Migrating from
TensorRT 10.x to 11.x"), and builds strongly typed networks only;
NetworkDefinitionCreationFlag.STRONGLY_TYPED is kept but ignored there, while
10.x needs it to get the same behaviour. So one path serves all: pass
STRONGLY_TYPED when the enum has it, set no precision flag.

Version compatibility ("Engine Compatibility"): BuilderFlag.VERSION_COMPATIBLE
makes a plan later TensorRT versions can run; it embeds the lean runtime (host
code), so the loading Runtime needs ``engine_host_code_allowed = True``;
EXCLUDE_LEAN_RUNTIME leaves it out (then only the same version's lean runtime runs it).

Differences between the flavours (checked against the installed tensorrt_rtx
1.7.1.116 with dir()/help(), against NVIDIA's TensorRT-RTX pages "CPU-Only AOT
and TensorRT-RTX Engines", "Working with Runtime Cache", "Working with RTX CUDA
Graphs" and the 1.2 release notes, and by building this project's four ONNX
files on a machine with no GPU); the code for each lives in flavour.py:

* module: ``tensorrt`` (full, 10.x/11.x) / ``tensorrt_rtx`` / ``tensorrt_lean`` or
  ``tensorrt_lean_bindings`` (no Builder). Preference full > rtx > lean.
* building without a GPU: RTX yes ("CPU-only AOT", on by default); full no.
* build targets: RTX has IBuilderConfig.num_compute_capabilities and
  set_compute_capability(ComputeCapability.SM75|SM80|SM86|SM89|SM120|SM121, i);
  with none set it targets 8.0/8.6/8.9/12.0+; SM75 must be asked for and refuses
  FP32 GEMM (our FP32 PFN: "FP32 GEMM is not supported"). The full builder has no
  such API and builds for the GPU it runs on. A plan's size and build time do not
  depend on the number of RTX targets (measured: identical for 1 and 5), because
  RTX compiles kernels at run time (JIT).
* timing cache: full: create_timing_cache / set_timing_cache / get_timing_cache.
  RTX 1.2+: the same methods exist but are deprecated no-ops (DeprecationWarning
  "Timing cache operations are no-ops in TensorRT-RTX"), so they are not called.
* runtime cache + runtime config (RTX only): ICudaEngine.create_runtime_config ->
  IRuntimeConfig.create_runtime_cache / set_runtime_cache,
  IRuntimeCache.serialize / deserialize (False when the blob is from another RTX
  version, GPU, OS or driver), create_execution_context(runtime_config).
* CUDA graphs: RTX's IRuntimeConfig.cuda_graph_strategy (CudaGraphStrategy.DISABLED
  / WHOLE_GRAPH_CAPTURE: RTX captures and replays the engine itself) and
  IExecutionContext.is_stream_capturable(stream). Full TensorRT: capture the
  stream around execute_async_v3 after one warm-up call outside the capture
  ("Optimizing TensorRT Performance", CUDA Graphs). RTX 1.2 release notes: user
  stream capture needs BuilderFlag.REQUIRE_USER_ALLOCATION (RTX only; not set here).
* GPUs the runtime accepts: full: any it supports; RTX: 8.0 8.6 8.9 12.0 12.1
  (+7.5 when built for it) and only those the plan targets. Hopper (9.0) is refused
  at deserialize_cuda_engine; we refuse before, from the GPU's capability.
* Runtime.get_engine_validity(plan) -> (EngineValidity, diagnostics) exists in RTX
  but needs a GPU (without one: INVALID, "Error reading CUDA GPU properties"); unused.
* IHostMemory from build_serialized_network: buffer protocol in both (RTX's has
  .nbytes but no len()); we copy it with bytes().
* VERSION_COMPATIBLE / EXCLUDE_LEAN_RUNTIME: exist in RTX's BuilderFlag, but the
  lean runtime is a full-TensorRT product; --version-compatible is refused with RTX.

Calls: Logger, Builder, Builder.create_network(flags), OnnxParser(network, logger)
.parse_from_file / num_errors / get_error(i).desc() / .node(), INetworkDefinition
.num_inputs / get_input / num_outputs / get_output / num_layers / get_layer,
ITensor.name / shape / dtype, ILayer.type / num_outputs / get_output_type,
Builder.create_builder_config, IBuilderConfig.set_memory_pool_limit(MemoryPoolType
.WORKSPACE, bytes), Builder.create_optimization_profile, IOptimizationProfile
.set_shape, IBuilderConfig.add_optimization_profile, (full) create_timing_cache /
set_timing_cache / get_timing_cache, ITimingCache.serialize, set_flag(BuilderFlag
.VERSION_COMPATIBLE / EXCLUDE_LEAN_RUNTIME), (RTX) num_compute_capabilities /
set_compute_capability, Builder.build_serialized_network -> IHostMemory | None.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from pointpillars_trt.backends.tensorrt import flavour as fl
from pointpillars_trt.backends.tensorrt.cache import CacheResult, EngineKey, Profile, find_or_build, short_version
from pointpillars_trt.backends.tensorrt.flavour import Flavour
from pointpillars_trt.model.tensor_names import NETWORKS, PFN_INPUT, RPN_INPUT, onnx_filename
from pointpillars_trt.errors import UserError

TRT_MISSING = (
    "no TensorRT builder is installed: pip install tensorrt-rtx (builds without a GPU; its engines run on "
    "cc 8.0/8.6/8.9/12.x) or the full `tensorrt` package 10.x/11.x (on a machine with an NVIDIA GPU); "
    "or run infer/bench without engines: --backend torch (GPU) or --backend onnxruntime (CPU)"
)


def builder_flavour() -> Flavour:
    """The preferred installed flavour that can build (full tensorrt, else tensorrt_rtx), or a UserError."""
    flavour = fl.select(need_builder=True)
    if flavour is None:
        raise UserError(TRT_MISSING)
    return flavour


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
    cache = config.get_timing_cache() if path is not None else None  # IBuilderConfig.get_timing_cache -> ITimingCache
    if cache is not None:
        fl.save_bytes(path, bytes(cache.serialize()), log)  # ITimingCache.serialize -> IHostMemory (buffer protocol)


def parse_onnx(flavour: Flavour, onnx_path: Path) -> tuple[Any, Any, Any]:
    """(builder, strongly typed network, parser) for ``onnx_path``; a one-line UserError when the parser refuses it."""
    trt = flavour.module
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(fl.network_flags(flavour))
    parser = trt.OnnxParser(network, logger)
    if not Path(onnx_path).is_file():
        raise UserError(f"ONNX file not found: {onnx_path}")
    if not parser.parse_from_file(str(onnx_path)):  # parse_from_file also finds external .onnx.data weights
        errors = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            errors.append(f"node {err.node()}: {err.desc()}".replace("\n", " "))
        detail = "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
        raise UserError(f"{flavour.label}'s ONNX parser rejected {onnx_path}: {detail or 'no details'}; re-export it")
    return builder, network, parser


def _profile_input(network: Any, onnx_path: Path, profile: Profile) -> tuple[int, ...]:
    """The shape of the profile's input (dynamic first dimension only), checked against the network."""
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
    return shape


def build_serialized_engine(
    onnx_path: Path,
    profile: Profile,
    *,
    flavour: Optional[Flavour] = None,
    targets: Sequence[str] = (),
    workspace_mb: int = 4096,
    timing_cache: Optional[Path] = None,
    version_compatible: bool = False,
    exclude_lean_runtime: bool = False,
    log: Callable[[str], None] = print,
) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network, add one profile for its dynamic input, build the plan."""
    flavour = flavour or builder_flavour()
    if exclude_lean_runtime and not version_compatible:
        raise UserError("--exclude-lean-runtime only applies with --version-compatible")
    if version_compatible and flavour.name == fl.RTX:
        raise UserError("--version-compatible builds plans for the full TensorRT and its lean runtime; "
                        "TensorRT-RTX cannot make them")
    trt = flavour.module
    builder, network, _parser = parse_onnx(flavour, onnx_path)
    rest = _profile_input(network, onnx_path, profile)[1:]
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(profile.input_name, (profile.min, *rest), (profile.opt, *rest), (profile.max, *rest))
    config.add_optimization_profile(opt_profile)
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    fl.set_build_targets(flavour, config, targets)
    if flavour.has_timing_cache:
        _load_timing_cache(config, timing_cache, log)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UserError(f"{flavour.label} failed to build an engine from {onnx_path} (see its log above); "
                        f"a larger --workspace-mb or a smaller --max-pillars/--max-batch may help")
    if flavour.has_timing_cache:
        _save_timing_cache(config, timing_cache, log)
    return bytes(plan)


def timing_cache_path(engines_dir: Path, trt_version: str, sm: str) -> Path:
    """engines/timing_trt<ver>_<sm>.cache: one persistent timing cache per TensorRT version and GPU (full only)."""
    return Path(engines_dir) / f"timing_trt{short_version(trt_version)}_{sm}.cache"


def make_builder_fn(
    *,
    workspace_mb: int,
    timing_cache: Optional[Path],
    log: Callable[[str], None] = print,
    flavour: Optional[Flavour] = None,
    targets: Sequence[str] = (),
) -> Callable[[Path, EngineKey], bytes]:
    """A builder_fn for cache.find_or_build: builds the key's profile and flags from the ONNX file."""

    def build(onnx_path: Path, key: EngineKey) -> bytes:
        return build_serialized_engine(
            onnx_path, key.profile, flavour=flavour, targets=targets, workspace_mb=workspace_mb,
            timing_cache=timing_cache, version_compatible=key.version_compatible,
            exclude_lean_runtime=key.exclude_lean_runtime, log=log,
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
    flavour: str = fl.FULL,
    version_compatible: bool = False,
    exclude_lean_runtime: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
    build_info: Optional[dict[str, Any]] = None,
) -> list[CacheResult]:
    """Find or build every (network, precision) engine, in order, with a progress line per engine (time, size)."""
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
        r = find_or_build(
            onnx_dir / onnx_filename(network, precision), network=network, precision=precision, profile=prof,
            trt_version=trt_version, compute_capability=compute_capability, engines_dir=engines_dir,
            builder_fn=builder_fn, log=log, version_compatible=version_compatible, flavour=flavour,
            exclude_lean_runtime=exclude_lean_runtime, force=force, build_info=build_info,
        )
        size = r.path.stat().st_size / 2**20
        log(f"[{i}/{len(jobs)}] {network} {precision}: {r.action} in {r.build_seconds:.2f} s, {size:.2f} MiB")
        results.append(r)
    return results


def build_engines(
    onnx_dir: Path,
    engines_dir: Path,
    precisions: list[str],
    profiles: dict[str, Profile],
    *,
    flavour: Flavour,
    targets: Sequence[str],
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    version_compatible: bool = False,
    exclude_lean_runtime: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
    build_info: Optional[dict[str, Any]] = None,
) -> list[CacheResult]:
    """build_all with ``flavour``'s builder for ``targets`` (the compute capabilities the key records)."""
    cc = ",".join(targets)
    timing = timing_cache_path(engines_dir, flavour.version, fl.sm_tag(targets)) if flavour.has_timing_cache else None
    builder_fn = make_builder_fn(workspace_mb=workspace_mb, timing_cache=timing, log=log, flavour=flavour,
                                 targets=targets if flavour.name == fl.RTX else ())
    info = {"flavour": flavour.label, "targets": list(targets), "workspace_mb": workspace_mb, **(build_info or {})}
    Path(engines_dir).mkdir(parents=True, exist_ok=True)
    return build_all(Path(onnx_dir), Path(engines_dir), precisions, profiles, trt_version=flavour.version,
                     compute_capability=cc, builder_fn=builder_fn, flavour=flavour.name,
                     version_compatible=version_compatible, exclude_lean_runtime=exclude_lean_runtime,
                     force=force, log=log, build_info=info)
