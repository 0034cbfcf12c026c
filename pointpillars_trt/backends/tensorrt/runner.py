"""TensorRT backend: runs one serialized engine (PFN or RPN) on device buffers with the named-tensor API.

Works with the full ``tensorrt`` package (10.x or 11.x) or, for version-compatible
plans, the lean runtime alone. Module names checked by installing the wheels
(TensorRT 11.4.0.106 and 10.16.1.11): the ``tensorrt-lean-cu13-bindings`` /
``tensorrt-lean-cu12-bindings`` wheels install the module ``tensorrt_lean_bindings``;
the ``tensorrt-lean-cu13`` meta package adds ``tensorrt_lean``, which re-exports it.

Calls used (TensorRT 10.x/11.x Python API, identical in the lean bindings):
``Runtime(logger)``, ``Runtime.engine_host_code_allowed``,
``Runtime.deserialize_cuda_engine`` (returns None on failure),
``ICudaEngine.num_io_tensors / get_tensor_name / get_tensor_mode / get_tensor_dtype /
get_tensor_shape / get_tensor_profile_shape / num_optimization_profiles /
create_execution_context``, ``IExecutionContext.set_input_shape / get_tensor_shape /
set_tensor_address / execute_async_v3``. No binding indices, no execute_v2.

Creating a ``Runtime`` on a machine without a usable GPU logs "CUDA initialization
failure" and a later ``deserialize_cuda_engine`` segfaults (seen with the 11.4 lean
bindings here), so :func:`require_gpu` runs first, through the CUDA driver API
by ctypes, which needs no Python package.
"""
from __future__ import annotations

import ctypes
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.model.tensor_names import PFN_INPUT, RPN_INPUT
from pointpillars_trt.backends.base import Runner

#: tried in this order: the full package, then the lean runtime (meta package name, then the bindings wheel's)
TRT_MODULES = ("tensorrt", "tensorrt_lean", "tensorrt_lean_bindings")

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

# CUDA driver API (cuda.h): CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
_CU_ATTR_CC_MAJOR = 75
_CU_ATTR_CC_MINOR = 76
#: the driver library by soname first (what torch/TensorRT dlopen), then where container images mount it
_LIBCUDA_NAMES = ("libcuda.so.1", "libcuda.so", "/usr/local/nvidia/lib64/libcuda.so.1",
                  "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "nvcuda.dll")


def import_tensorrt(names: Sequence[str] = TRT_MODULES) -> Optional[ModuleType]:
    """The first importable TensorRT Python module of ``names`` (full package first), or None."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def is_lean(trt: ModuleType) -> bool:
    """True for the lean runtime (it has no Builder: it can only deserialize and run plans)."""
    return not hasattr(trt, "Builder")


@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device the engines run on: index, name and compute capability."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    device_count: int

    @property
    def cc(self) -> str:
        """'9.0'"""
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    @property
    def sm(self) -> str:
        """'sm90'"""
        return f"sm{self.compute_capability[0]}{self.compute_capability[1]}"


def probe_gpu(device: int = 0, lib_names: Sequence[str] = _LIBCUDA_NAMES) -> tuple[Optional[GpuInfo], str]:
    """(GpuInfo, "") for CUDA device ``device``, or (None, why not); never raises, never touches TensorRT.

    Uses the CUDA driver API through ctypes: cuInit, cuDeviceGetCount, cuDeviceGet,
    cuDeviceGetName, cuDeviceGetAttribute (CUDA Driver API reference).
    """
    lib = None
    for name in lib_names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        return None, "the CUDA driver library (libcuda) is not installed"
    try:
        rc = lib.cuInit(0)
        if rc != 0:
            return None, f"cuInit failed with CUDA error {rc} (no GPU, or the driver is too old)"
        count = ctypes.c_int(0)
        rc = lib.cuDeviceGetCount(ctypes.byref(count))
        if rc != 0 or count.value == 0:
            return None, "no CUDA device found"
        if not 0 <= device < count.value:
            return None, f"CUDA device {device} does not exist ({count.value} found)"
        dev = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(dev), device) != 0:
            return None, f"cuDeviceGet({device}) failed"
        buf = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(buf, 256, dev)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        if (lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, dev) != 0
                or lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, dev) != 0):
            return None, "cannot read the GPU's compute capability"
    except AttributeError as e:  # a libcuda without these symbols
        return None, f"unusable CUDA driver library ({e})"
    return GpuInfo(device, buf.value.decode(errors="replace"), (major.value, minor.value), count.value), ""


def require_gpu(device: int = 0) -> GpuInfo:
    """The GPU, or a UserError saying there is none (checked before any TensorRT Runtime is created)."""
    info, why = probe_gpu(device)
    if info is None:
        raise UserError(f"the tensorrt backend needs an NVIDIA GPU, but {why}; use --backend onnxruntime (CPU)")
    return info


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
        trt_module: Optional[ModuleType] = None,
        gpu_check: Optional[Callable[[int], Any]] = None,
    ) -> None:
        """``allow_host_code``: let TensorRT load a plan that embeds host code (a version-compatible plan
        that carries its lean runtime). None = allow it only if the engine's sidecar (written by our
        builder) says it is such a plan: a plan with host code executes it when loaded, so only trusted,
        self-built plans get it. ``trt_module`` / ``gpu_check`` are test seams."""
        super().__init__()
        self.engine_path = Path(engine_path)
        self.allow_host_code = allow_host_code
        self.device_index = device_index
        self._trt = trt_module
        self._gpu_check = gpu_check or require_gpu
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._io: dict[str, TensorInfo] = {}
        self._bound: dict[str, tuple[int, tuple[int, ...]]] = {}

    # ---- loading -------------------------------------------------------------
    def _host_code_allowed(self) -> bool:
        """Explicit setting, else what our sidecar records (version-compatible and lean runtime embedded)."""
        if self.allow_host_code is not None:
            return self.allow_host_code
        from pointpillars_trt.backends.tensorrt.cache import read_sidecar  # local import: the cache module is optional here

        side = read_sidecar(self.engine_path) or {}
        key = side.get("key", {}) if isinstance(side.get("key"), dict) else {}
        return bool(key.get("version_compatible")) and not bool(key.get("exclude_lean_runtime"))

    def activate(self) -> None:
        """Check the GPU, deserialize the engine, create its execution context and read its I/O tensors."""
        self._gpu_check(self.device_index)  # before any Runtime: without a GPU TensorRT crashes later
        trt = self._trt or import_tensorrt()
        if trt is None:
            raise UserError("the tensorrt backend needs TensorRT's Python runtime (pip install tensorrt, or "
                            "tensorrt-lean-cu13 for version-compatible engines); or use --backend torch/onnxruntime")
        self._trt = trt
        try:
            plan = self.engine_path.read_bytes()
        except FileNotFoundError:
            raise UserError(f"engine file not found: {self.engine_path}; build it with `pointpillars-trt build`") from None
        except OSError as e:
            raise UserError(f"cannot read engine file {self.engine_path}: {e.strerror or e}") from None
        if not plan:
            raise UserError(f"engine file {self.engine_path} is empty; rebuild it with `pointpillars-trt build --force`")
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)  # TensorRT Runtime(logger)
        if self._host_code_allowed():
            runtime.engine_host_code_allowed = True  # Runtime.engine_host_code_allowed (default False)
        engine = runtime.deserialize_cuda_engine(plan)  # Runtime.deserialize_cuda_engine -> ICudaEngine | None
        if engine is None:
            lean = " (the lean runtime only loads plans built with --version-compatible)" if is_lean(trt) else ""
            raise UserError(
                f"{self.engine_path}: TensorRT {getattr(trt, '__version__', '?')} cannot load this engine: "
                f"corrupt, not a TensorRT plan, or built by another TensorRT version or GPU{lean}; "
                f"rebuild it with `pointpillars-trt build --force`"
            )
        if engine.num_optimization_profiles < 1:
            raise UserError(f"{self.engine_path}: engine has no optimisation profile; rebuild it")
        context = engine.create_execution_context()  # ICudaEngine.create_execution_context
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
        """Drop context, engine and runtime (TensorRT frees them when their references go)."""
        self._context = self._engine = self._runtime = None
        self._bound = {}
        super().deactivate()

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
