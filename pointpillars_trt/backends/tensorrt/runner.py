"""Runner, execute half: one serialized engine (PFN or RPN) on device buffers with the named-tensor API.

Works with every flavour flavour.py finds: the full ``tensorrt`` (10.x/11.x),
``tensorrt_rtx``, or the lean runtime (version-compatible plans only; the
``tensorrt-lean-cu13-bindings`` wheel installs ``tensorrt_lean_bindings``, the
``tensorrt-lean-cu13`` meta package adds ``tensorrt_lean``). An engine runs on
the flavour its sidecar names.

Calls (identical in all three unless marked): ``Logger``, ``Runtime(logger)``,
``Runtime.engine_host_code_allowed``, ``Runtime.deserialize_cuda_engine`` (None on
failure), ``ICudaEngine.num_io_tensors / get_tensor_name / get_tensor_mode /
get_tensor_dtype / get_tensor_shape / get_tensor_profile_shape /
num_optimization_profiles / create_execution_context``, ``IExecutionContext
.set_input_shape / get_tensor_shape / set_tensor_address / execute_async_v3``;
RTX only: ``ICudaEngine.create_runtime_config``, ``IRuntimeConfig
.create_runtime_cache / set_runtime_cache / cuda_graph_strategy``, ``IRuntimeCache
.serialize / deserialize``, ``create_execution_context(runtime_config)``,
``IExecutionContext.is_stream_capturable``. No binding indices, no execute_v2.

Before any Runtime exists, :func:`require_gpu` reads the GPU through the CUDA
driver API (without a GPU TensorRT crashes later), and a TensorRT-RTX engine on
a GPU that RTX does not support (Hopper, cc 9.0, ...) is refused with one line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Optional

import numpy as np

from pointpillars_trt.backends.base import Runner
from pointpillars_trt.backends.tensorrt import flavour as fl
from pointpillars_trt.backends.tensorrt.cache import read_sidecar
from pointpillars_trt.backends.tensorrt.flavour import Flavour
from pointpillars_trt.backends.tensorrt.gpu import GpuInfo, probe_gpu, require_gpu  # noqa: F401 (re-exported)
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.tensor_names import PFN_INPUT, RPN_INPUT

#: TensorRT DataType member name -> numpy dtype (types without a numpy equivalent are refused)
_TRT_TO_NP = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "INT8": np.dtype(np.int8),
    "UINT8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}

#: which build option raises the limit of each dynamic input
_REBUILD_HINT = {PFN_INPUT: "--max-pillars", RPN_INPUT: "--max-batch"}


def import_tensorrt() -> Optional[ModuleType]:
    """The preferred installed TensorRT module (full > tensorrt_rtx > lean; flavour.select), or None."""
    found = fl.select()
    return found.module if found else None


def is_lean(trt: ModuleType) -> bool:
    """True for the lean runtime (it has no Builder: it can only deserialize and run plans)."""
    return not hasattr(trt, "Builder")


def np_dtype(trt_dtype: Any) -> np.dtype:
    """numpy dtype of a TensorRT DataType (by member name, so it works for the full and the lean module)."""
    name = getattr(trt_dtype, "name", str(trt_dtype).split(".")[-1])
    if name not in _TRT_TO_NP:
        raise UserError(f"engine tensor type {name} has no numpy equivalent; export the ONNX with float32/float16 I/O")
    return _TRT_TO_NP[name]


@dataclass(frozen=True)
class TensorInfo:
    """One engine I/O tensor as the engine declares it (-1 = dynamic dimension)."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    #: (min, opt, max) shapes from profile 0, inputs only
    profile: Optional[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = None


def device_array_info(arr: Any, what: str) -> tuple[int, tuple[int, ...], np.dtype]:
    """(pointer, shape, dtype) of a C-contiguous device array from its ``__cuda_array_interface__`` (v2/v3)."""
    try:
        cai = arr.__cuda_array_interface__
    except AttributeError:
        raise TypeError(f"{what}: the tensorrt backend needs a device array with __cuda_array_interface__, "
                        f"got {type(arr).__name__}") from None
    shape = tuple(int(s) for s in cai["shape"])
    dtype = np.dtype(cai["typestr"])
    ptr = int(cai["data"][0])
    strides = cai.get("strides")
    if strides is not None:
        expect, acc = [], dtype.itemsize
        for s in reversed(shape):
            expect.append(acc)
            acc *= s
        if tuple(strides) != tuple(reversed(expect)) and int(np.prod(shape)) > 1:
            raise ValueError(f"{what}: device array must be C-contiguous (strides {tuple(strides)})")
    return ptr, shape, dtype


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine on device buffers, on a caller-given CUDA stream."""

    name = "tensorrt"
    device = "cuda"

    def __init__(
        self,
        engine_path: str | Path,
        *,
        allow_host_code: Optional[bool] = None,
        device_index: int = 0,
        flavour: Optional[Flavour] = None,
        runtime_cache: Optional[Path] = None,
        cuda_graphs: bool = False,
        log: Callable[[str], None] = print,
        trt_module: Optional[ModuleType] = None,
        gpu_check: Optional[Callable[[int], Optional[GpuInfo]]] = None,
    ) -> None:
        """``allow_host_code``: let TensorRT load a plan that embeds host code (a version-compatible plan
        that carries its lean runtime). None = allow it only if the engine's sidecar (written by our
        builder) says it is such a plan: a plan with host code executes it when loaded, so only trusted,
        self-built plans get it. ``flavour``: default, the one the sidecar names (flavour.for_engine).
        ``runtime_cache`` (TensorRT-RTX): the JIT kernel cache file, default engines/runtime_rtx<ver>_sm<cc>.cache
        next to the engine. ``cuda_graphs`` (TensorRT-RTX): let RTX capture and replay the engine itself
        (CudaGraphStrategy.WHOLE_GRAPH_CAPTURE); leave it off when the caller captures the stream.
        ``trt_module`` / ``gpu_check`` are test seams (a module taken as the full flavour; a GpuInfo source)."""
        super().__init__()
        self.engine_path = Path(engine_path)
        self.allow_host_code = allow_host_code
        self.device_index = device_index
        self.flavour = flavour or (Flavour(fl.FULL, trt_module) if trt_module is not None else None)
        self.runtime_cache = runtime_cache
        self.cuda_graphs = cuda_graphs
        self._log = log
        self._gpu_check = gpu_check or require_gpu
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._rt_cache: Any = None
        self._rt_config: Any = None
        self._io: dict[str, TensorInfo] = {}
        self._bound: dict[str, tuple[int, tuple[int, ...]]] = {}

    # ---- loading -------------------------------------------------------------
    def _key(self) -> dict:
        """The engine's sidecar key (our builder writes it), or {} for a plan of unknown provenance."""
        side = read_sidecar(self.engine_path) or {}
        return side["key"] if isinstance(side.get("key"), dict) else {}

    def _host_code_allowed(self, key: dict) -> bool:
        """Explicit setting, else what our sidecar records (version-compatible and lean runtime embedded)."""
        if self.allow_host_code is not None:
            return self.allow_host_code
        return bool(key.get("version_compatible")) and not bool(key.get("exclude_lean_runtime"))

    def _read_plan(self) -> bytes:
        """The plan's bytes, or a one-line UserError (missing, unreadable, empty)."""
        try:
            plan = self.engine_path.read_bytes()
        except FileNotFoundError:
            raise UserError(f"engine file not found: {self.engine_path}; build it with `pointpillars-trt build`") from None
        except OSError as e:
            raise UserError(f"cannot read engine file {self.engine_path}: {e.strerror or e}") from None
        if not plan:
            raise UserError(f"engine file {self.engine_path} is empty; rebuild it with `pointpillars-trt build --force`")
        return plan

    def activate(self) -> None:
        """Check the GPU (and RTX's support of it), deserialize the engine, create its context, read its I/O."""
        gpu = self._gpu_check(self.device_index)  # before any Runtime: without a GPU TensorRT crashes later
        key = self._key()
        flavour = self.flavour or fl.for_engine(key)
        if flavour is None:
            raise UserError("the tensorrt backend needs a TensorRT Python module (pip install tensorrt-rtx, the full "
                            "tensorrt, or tensorrt-lean-cu13 for version-compatible engines); or use --backend torch/onnxruntime")
        if gpu is not None:  # RTX refuses unsupported GPUs: say so before deserializing
            targets = key.get("compute_capability", "").split(",") if key.get("flavour") == fl.RTX else None
            fl.check_can_run(flavour, gpu.cc, gpu.name, targets, what=f"{self.engine_path.name} (TensorRT-RTX)")
        self.flavour = flavour
        trt = flavour.module
        plan = self._read_plan()
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if self._host_code_allowed(key):
            runtime.engine_host_code_allowed = True  # Runtime.engine_host_code_allowed (default False)
        engine = runtime.deserialize_cuda_engine(plan)  # Runtime.deserialize_cuda_engine -> ICudaEngine | None
        if engine is None:
            lean = " (the lean runtime only loads plans built with --version-compatible)" if is_lean(trt) else ""
            raise UserError(
                f"{self.engine_path}: {flavour.label} cannot load this engine: "
                f"corrupt, not a TensorRT plan, or built by another TensorRT version or GPU{lean}; "
                f"rebuild it with `pointpillars-trt build --force`"
            )
        if engine.num_optimization_profiles < 1:
            raise UserError(f"{self.engine_path}: engine has no optimisation profile; rebuild it")
        if gpu is not None and self.runtime_cache is None and flavour.has_runtime_cache:
            self.runtime_cache = fl.runtime_cache_path(self.engine_path.parent, flavour, gpu.cc)
        self._rt_config, self._rt_cache = fl.make_runtime_config(flavour, engine, self.runtime_cache,
                                                                 self.cuda_graphs, self._log)
        context = (engine.create_execution_context(self._rt_config) if self._rt_config is not None
                   else engine.create_execution_context())  # ICudaEngine.create_execution_context
        if context is None:
            raise UserError(f"{self.engine_path}: cannot create an execution context (out of GPU memory?)")
        self._runtime, self._engine, self._context = runtime, engine, context
        self._io = self._introspect(trt, engine)
        self._bound = {}
        self.is_active = True

    @staticmethod
    def _introspect(trt: ModuleType, engine: Any) -> dict[str, TensorInfo]:
        """Read every I/O tensor's name, direction, dtype, shape and (inputs) profile-0 min/opt/max shapes."""
        io: dict[str, TensorInfo] = {}
        for i in range(engine.num_io_tensors):  # ICudaEngine.num_io_tensors
            name = engine.get_tensor_name(i)  # ICudaEngine.get_tensor_name
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT  # get_tensor_mode -> TensorIOMode
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))  # get_tensor_shape -> Dims
            profile = None
            if is_input:
                mn, op, mx = engine.get_tensor_profile_shape(name, 0)  # get_tensor_profile_shape(name, profile)
                profile = (tuple(int(d) for d in mn), tuple(int(d) for d in op), tuple(int(d) for d in mx))
            io[name] = TensorInfo(name, is_input, np_dtype(engine.get_tensor_dtype(name)), shape, profile)
        return io

    def deactivate(self) -> None:
        """Save RTX's runtime cache (JIT kernels), then drop context, engine and runtime."""
        if self._rt_cache is not None and self.runtime_cache is not None:
            fl.save_bytes(self.runtime_cache, bytes(self._rt_cache.serialize()), self._log)  # IRuntimeCache.serialize
        self._context = self._engine = self._runtime = self._rt_cache = self._rt_config = None
        self._bound = {}
        super().deactivate()

    def capturable(self, stream: int) -> bool:
        """Whether the graph pipeline may capture this engine's execute_async_v3 on ``stream`` into a CUDA graph.

        Call it after one warm-up infer() with the shapes and addresses the graph will use, outside any
        capture: TensorRT documents ("Optimizing TensorRT Performance", CUDA Graphs) that the first enqueue
        after a shape change does deferred work that must not land in a graph. TensorRT-RTX answers with
        IExecutionContext.is_stream_capturable(stream) (its 1.2 release notes: capture also needs plans built
        with BuilderFlag.REQUIRE_USER_ALLOCATION, which `build` does not set yet, and the runner's built-in
        ``cuda_graphs`` off); the full package has no such query, so True. UNTESTED on this hardware: the lent
        GPUs are Hopper, where RTX engines do not run, and the full tensorrt could not be installed.
        """
        if self._context is None:
            raise RuntimeError("TensorRTRunner: call activate() first")
        return fl.stream_capturable(self.flavour, self._context, stream) and not self.cuda_graphs

    # ---- introspection -------------------------------------------------------
    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """The engine's I/O tensors (after activate)."""
        if not self._io:
            raise RuntimeError("TensorRTRunner: call activate() first")
        return dict(self._io)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n, t in self.tensors.items() if t.is_input)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(n for n, t in self.tensors.items() if not t.is_input)

    def max_shape(self, input_name: str) -> tuple[int, ...]:
        """Largest shape profile 0 accepts for this input (e.g. (max_pillars, 32, 10))."""
        prof = self.tensors[input_name].profile
        assert prof is not None
        return prof[2]

    # ---- running -------------------------------------------------------------
    def _check_input(self, info: TensorInfo, shape: tuple[int, ...], dtype: np.dtype) -> None:
        """Same dtype, same rank, fixed dims equal, dynamic dims inside the profile (UserError over the max)."""
        where = f"{self.engine_path.name}: input '{info.name}'"
        if dtype != info.dtype:
            raise UserError(f"{where} is {info.dtype} in the engine but the buffer is {dtype}: "
                            f"engine and pipeline precision differ; rebuild or pick the matching engine")
        if len(shape) != len(info.shape):
            raise ValueError(f"{where}: rank {len(shape)} buffer {shape} for engine shape {info.shape}")
        fixed = [(ax, d, s) for ax, (d, s) in enumerate(zip(info.shape, shape)) if d >= 0 and d != s]
        if fixed:
            raise UserError(f"{where}: buffer shape {shape} does not match the engine's {info.shape} on axes "
                            f"{[ax for ax, _, _ in fixed]}: the engine was built for another model configuration")
        assert info.profile is not None
        mn, _, mx = info.profile
        for ax, (s, lo, hi) in enumerate(zip(shape, mn, mx)):
            if s > hi:
                flag = _REBUILD_HINT.get(info.name, "a larger profile")
                what = {PFN_INPUT: "pillars", RPN_INPUT: "scans in the batch"}.get(info.name) if ax == 0 else None
                what = f"{s} {what}" if what else f"size {s} on axis {ax}"
                raise UserError(
                    f"{where}: {what} exceeds the engine's profile maximum of {hi} (shape {shape}, max {mx}); "
                    f"rebuild the engines with a larger {flag} (pointpillars-trt build {flag} N --force)"
                )
            if s < lo:
                raise ValueError(f"{where}: shape {shape} is below the profile minimum {mn} "
                                 f"(an empty input must be skipped by the caller)")

    def infer(self, feed: Mapping[str, Any], out: Mapping[str, Any], stream: int = 0) -> None:
        """Bind ``feed``/``out`` device buffers by name and enqueue the engine on ``stream`` (no sync).

        IExecutionContext.set_input_shape for each input, set_tensor_address for
        every I/O tensor, execute_async_v3(stream). Outputs must be passed with
        exactly the shape the engine infers for these inputs.
        """
        if self._context is None:
            raise RuntimeError("TensorRTRunner: call activate() first")
        ctx, io = self._context, self._io
        missing = [n for n, t in io.items() if (n not in feed if t.is_input else n not in out)]
        extra = [n for n in list(feed) + list(out) if n not in io]
        if missing or extra:
            raise ValueError(f"{self.engine_path.name}: missing tensors {missing}, unknown tensors {extra}; "
                             f"engine has inputs {self.input_names} and outputs {self.output_names}")
        for name, info in io.items():
            if not info.is_input:
                continue
            ptr, shape, dtype = device_array_info(feed[name], f"input '{name}'")
            self._check_input(info, shape, dtype)
            if self._bound.get(name, (None, None))[1] != shape:
                if not ctx.set_input_shape(name, shape):  # IExecutionContext.set_input_shape -> bool
                    raise ValueError(f"{self.engine_path.name}: TensorRT rejected shape {shape} for '{name}'")
            self._bind(name, ptr, shape)
        for name, info in io.items():
            if info.is_input:
                continue
            ptr, shape, dtype = device_array_info(out[name], f"output '{name}'")
            want = tuple(int(d) for d in ctx.get_tensor_shape(name))  # IExecutionContext.get_tensor_shape
            if shape != want or dtype != info.dtype:
                raise ValueError(f"{self.engine_path.name}: output '{name}' buffer is {dtype}{list(shape)}, "
                                 f"the engine writes {info.dtype}{list(want)} for these inputs")
            self._bind(name, ptr, shape)
        if not ctx.execute_async_v3(int(stream)):  # IExecutionContext.execute_async_v3(stream_handle) -> bool
            raise RuntimeError(f"{self.engine_path.name}: TensorRT execute_async_v3 failed (see the TensorRT log)")

    def _bind(self, name: str, ptr: int, shape: tuple[int, ...]) -> None:
        """set_tensor_address, skipped when the address and shape are unchanged since the last call."""
        if self._bound.get(name) == (ptr, shape):
            return
        if not self._context.set_tensor_address(name, ptr):  # IExecutionContext.set_tensor_address -> bool
            raise ValueError(f"{self.engine_path.name}: TensorRT rejected the address of '{name}'")
        self._bound[name] = (ptr, shape)
