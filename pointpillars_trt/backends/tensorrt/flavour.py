"""Which TensorRT is installed, and every place where `tensorrt` and `tensorrt_rtx` differ (the one place).

Preference: the full ``tensorrt`` package (10.x/11.x, builds and runs on any
supported GPU) > ``tensorrt_rtx`` (TensorRT for RTX: builds without a GPU, runs
on cc 8.0/8.6/8.9/12.x only) > the lean runtime (``tensorrt_lean`` /
``tensorrt_lean_bindings``: runs version-compatible plans, cannot build). The
differences, checked against the installed ``tensorrt_rtx`` 1.7.1 (dir/help)
and NVIDIA's docs, are listed in builder.py's docstring; the code for each is
here and nowhere else.
"""
from __future__ import annotations

import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

from pointpillars_trt.errors import UserError

FULL, RTX, LEAN = "tensorrt", "tensorrt_rtx", "tensorrt_lean"
#: (flavour, module names to try), in order of preference
MODULES = ((FULL, ("tensorrt",)), (RTX, ("tensorrt_rtx",)), (LEAN, ("tensorrt_lean", "tensorrt_lean_bindings")))
#: short tag in engine file names: pfn_fp16_..._rtx1.7.1_sm80-86-89-120-121_<sha>.engine
TAGS = {FULL: "trt", RTX: "rtx", LEAN: "trt"}

#: TensorRT-RTX: compute capabilities of its ComputeCapability enum (SM75..SM121) and the default target set.
#: 7.5 (Turing) is left out of the default as NVIDIA's "CPU-Only AOT" page does (and it refuses FP32 GEMM, so
#: our FP32 PFN does not build for it: "Cannot compile operation ... for Turing (SM75): FP32 GEMM is not supported").
RTX_CCS = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")
RTX_DEFAULT_CCS = ("8.0", "8.6", "8.9", "12.0", "12.1")

ALTERNATIVES = "use --backend torch, or install the full `tensorrt` package (10.x/11.x), which runs on any recent GPU"


@dataclass(frozen=True)
class Flavour:
    """One installed TensorRT Python module and what it can do."""

    name: str  # FULL | RTX | LEAN
    module: ModuleType

    @property
    def version(self) -> str:
        return str(getattr(self.module, "__version__", "unknown"))

    @property
    def can_build(self) -> bool:
        """The lean runtime has no Builder."""
        return hasattr(self.module, "Builder")

    @property
    def tag(self) -> str:
        return TAGS[self.name]

    @property
    def label(self) -> str:
        """'TensorRT-RTX 1.7.1.116' / 'TensorRT 10.13.0.35' / 'TensorRT lean runtime 11.4.0.106'."""
        return {FULL: "TensorRT", RTX: "TensorRT-RTX", LEAN: "TensorRT lean runtime"}[self.name] + " " + self.version

    @property
    def builds_without_gpu(self) -> bool:
        """TensorRT-RTX builds ahead of time on the CPU ("CPU-Only AOT"); the full builder needs the target GPU."""
        return self.name == RTX

    @property
    def has_timing_cache(self) -> bool:
        """TensorRT-RTX 1.2+ keeps set_timing_cache only as a deprecated no-op (its DeprecationWarning says so)."""
        return self.name != RTX

    @property
    def has_runtime_cache(self) -> bool:
        """IRuntimeConfig + IRuntimeCache (JIT kernels kept across runs) exist in TensorRT-RTX only."""
        return self.name == RTX


def load(name: str, names: Optional[Sequence[str]] = None) -> Optional[Flavour]:
    """The flavour ``name`` if one of its modules imports, else None."""
    for mod in names or dict(MODULES)[name]:
        try:
            return Flavour(name, importlib.import_module(mod))
        except ImportError:
            continue
    return None


def select(*, need_builder: bool = False, modules: Sequence[tuple[str, Sequence[str]]] = MODULES) -> Optional[Flavour]:
    """The preferred installed flavour (full > rtx > lean), or None; ``need_builder`` skips the lean runtime."""
    for name, names in modules:
        fl = load(name, names)
        if fl is not None and (fl.can_build or not need_builder):
            return fl
    return None


def for_engine(side_key: Optional[dict]) -> Optional[Flavour]:
    """The flavour that built an engine (from its sidecar key), else the preferred runtime: a plan runs only there."""
    if not side_key:
        return select()
    if side_key.get("flavour") == RTX:
        return load(RTX)
    return select(modules=[m for m in MODULES if m[0] != RTX])  # older sidecars have no flavour: full/lean


# ---------------------------------------------------------------------------- compute capabilities
def parse_cc(text: str) -> str:
    """'8.6' / '86' / 'sm86' / 'sm_120' -> '8.6' / '12.0' (a UserError for anything else)."""
    t = text.strip().lower().removeprefix("sm").lstrip("_")
    if "." in t:
        major, _, minor = t.partition(".")
    else:
        major, minor = t[:-1], t[-1:]
    if not (major.isdigit() and minor.isdigit()):
        raise UserError(f"--compute-capability {text!r}: expected e.g. 8.6 or sm86")
    return f"{int(major)}.{int(minor)}"


def sm_tag(ccs: Sequence[str]) -> str:
    """('8.0', '8.6') -> 'sm80-86'; ('9.0',) -> 'sm90'."""
    return "sm" + "-".join(c.replace(".", "") for c in ccs)


def build_targets(flavour: Flavour, requested: Sequence[str], gpu_cc: Optional[str],
                  log: Callable[[str], None] = print) -> tuple[str, ...]:
    """The compute capabilities a plan is built for: the requested ones, else the GPU's, else RTX's default set."""
    items = [c.strip() for r in requested for c in r.split(",") if c.strip()]
    every = any(c.lower() == "all" for c in items)
    wanted = tuple(dict.fromkeys(parse_cc(c) for c in items if c.lower() != "all"))
    if every and flavour.name == RTX:
        wanted = tuple(dict.fromkeys(wanted + RTX_DEFAULT_CCS))
    if flavour.name != RTX:
        if gpu_cc is None:
            raise UserError(f"{flavour.label} builds on the GPU it targets, and none was found; "
                            "install tensorrt-rtx to build without a GPU")
        if wanted and wanted != (gpu_cc,):
            raise UserError(f"{flavour.label} builds for the GPU it runs on (compute capability {gpu_cc}), "
                            f"not {' '.join(wanted)}; build on that GPU, or use tensorrt-rtx")
        return (gpu_cc,)
    bad = [c for c in wanted if c not in RTX_CCS]
    if bad:
        raise UserError(f"TensorRT-RTX cannot target compute capability {' '.join(bad)}; "
                        f"it supports {' '.join(RTX_CCS)}")
    if wanted:
        return wanted
    if gpu_cc in RTX_DEFAULT_CCS:
        return (gpu_cc,)
    if gpu_cc is not None:
        log(f"this GPU (compute capability {gpu_cc}) cannot run TensorRT-RTX engines; "
            f"building for {' '.join(RTX_DEFAULT_CCS)} instead")
    return RTX_DEFAULT_CCS


def set_build_targets(flavour: Flavour, config: Any, ccs: Sequence[str]) -> None:
    """RTX: IBuilderConfig.num_compute_capabilities + set_compute_capability(ComputeCapability.SMxy, i).

    The full builder has no such API: it builds for the GPU it runs on (build_targets checks that).
    """
    if flavour.name != RTX:
        return
    trt = flavour.module
    config.num_compute_capabilities = len(ccs)
    for i, cc in enumerate(ccs):
        if not config.set_compute_capability(getattr(trt.ComputeCapability, sm_tag([cc]).upper()), i):
            raise UserError(f"TensorRT-RTX refused compute capability {cc} as a build target")


def unsupported(flavour: Flavour, gpu_cc: str, engine_ccs: Optional[Sequence[str]] = None) -> Optional[str]:
    """Why ``flavour`` cannot run an engine on a GPU of compute capability ``gpu_cc`` (None: it can).

    TensorRT-RTX's runtime refuses other GPUs ("The engine cannot run on this GPU, which has compute
    capability 9.0. Supported compute capabilities: 8.0 8.6 8.9 12.0 12.1", seen on an H100), and a plan
    runs only on the capabilities it was built for. The full package and the lean runtime always pass here.
    """
    targets = tuple(engine_ccs) if engine_ccs else RTX_CCS
    if flavour.name != RTX or gpu_cc in targets:
        return None
    return f"TensorRT-RTX {'engines built for ' if engine_ccs else ''}{' '.join(targets)} only"


def check_can_run(flavour: Flavour, gpu_cc: str, gpu_name: str, engine_ccs: Optional[Sequence[str]] = None,
                  what: str = "TensorRT-RTX engines") -> None:
    """A one-line UserError naming the GPU's compute capability and the alternatives, before any deserialize."""
    why = unsupported(flavour, gpu_cc, engine_ccs)
    if why:
        raise UserError(f"{what} cannot run on this GPU ({gpu_name}, compute capability {gpu_cc}; {why}): "
                        f"{ALTERNATIVES}")


def network_flags(flavour: Flavour) -> int:
    """1 << STRONGLY_TYPED where the enum has it (10.x needs it; 11.x and RTX accept it, both always strongly typed)."""
    flag = getattr(getattr(flavour.module, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


# ---------------------------------------------------------------------------- RTX runtime config, cache, graphs
def runtime_cache_path(engines_dir: Path, flavour: Flavour, gpu_cc: str) -> Path:
    """engines/runtime_rtx<ver>_sm<cc>.cache: RTX's JIT kernels, valid for one RTX version and GPU."""
    return Path(engines_dir) / f"runtime_{flavour.tag}{'.'.join(flavour.version.split('.')[:3])}_{sm_tag([gpu_cc])}.cache"


def make_runtime_config(flavour: Flavour, engine: Any, cache_file: Optional[Path], cuda_graphs: bool,
                        log: Callable[[str], None]) -> tuple[Any, Any]:
    """RTX: (IRuntimeConfig with the runtime cache loaded from ``cache_file`` and the CUDA graph strategy, cache).

    ICudaEngine.create_runtime_config, IRuntimeConfig.create_runtime_cache / set_runtime_cache,
    IRuntimeCache.deserialize (False on a cache from another RTX version/GPU/driver: then it starts empty),
    IRuntimeConfig.cuda_graph_strategy = CudaGraphStrategy.WHOLE_GRAPH_CAPTURE | DISABLED.
    (None, None) for the full package and the lean runtime, which have no runtime config.
    """
    if not flavour.has_runtime_cache:
        if cuda_graphs:
            raise UserError(f"built-in CUDA graphs are a TensorRT-RTX setting; {flavour.label} has none "
                            "(capture the stream around execute_async_v3 instead)")
        return None, None
    trt = flavour.module
    config = engine.create_runtime_config()
    cache = config.create_runtime_cache()
    if cache_file is not None and cache_file.is_file():
        if not cache.deserialize(cache_file.read_bytes()):
            log(f"runtime cache {cache_file} is from another TensorRT-RTX version, GPU or driver; starting empty")
    config.set_runtime_cache(cache)
    config.cuda_graph_strategy = (trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE if cuda_graphs
                                  else trt.CudaGraphStrategy.DISABLED)
    return config, cache


def save_bytes(path: Path, data: bytes, log: Callable[[str], None]) -> None:
    """Write a cache file atomically (temp file + rename); a failure is logged, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        log(f"could not save {path}: {e.strerror or e}")


def stream_capturable(flavour: Flavour, context: Any, stream: int) -> bool:
    """RTX: IExecutionContext.is_stream_capturable(stream); the full package documents no such query (True)."""
    if flavour.name == RTX:
        return bool(context.is_stream_capturable(int(stream)))
    return True


def auto_usable(flavour: Optional[Flavour] = None, gpu_cc: Optional[str] = None,
                gpu_name: str = "this GPU") -> tuple[bool, str]:
    """(True, "") when `--backend auto` may pick TensorRT here; (False, why) when RTX cannot run on the GPU.

    Defaults: the preferred builder flavour and the GPU read through the CUDA driver (gpu.probe_gpu).
    """
    flavour = flavour or select(need_builder=True)
    if flavour is None:
        return False, ""
    if gpu_cc is None:
        from pointpillars_trt.backends.tensorrt.gpu import probe_gpu

        gpu, _why = probe_gpu()
        if gpu is None:
            return False, ""
        gpu_cc, gpu_name = gpu.cc, gpu.name
    why = unsupported(flavour, gpu_cc)
    if why:
        return False, (f"{flavour.label} cannot run on {gpu_name} (compute capability {gpu_cc}; {why}); "
                       "the full `tensorrt` package would")
    return True, ""
