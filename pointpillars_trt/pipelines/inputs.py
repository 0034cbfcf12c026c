"""Points as the pipelines take them: a checked float32 [N, C>=4] NumPy array, or DevicePoints on the pipeline's GPU.

Accepted: NumPy arrays; anything with ``__dlpack__`` on the CPU (a torch CPU tensor: ``np.from_dlpack``, no copy);
anything with ``__cuda_array_interface__`` (torch CUDA tensors, CuPy, Numba device arrays) or CUDA DLPack. The
first four columns are x, y, z, intensity (lidar frame). Every wrong dtype, shape, device, stride or an empty scan
is a one-line UserError saying what was given and what to do; nothing is converted or copied behind your back.

NaN/Inf rows of host input are dropped with a warning, as io.kitti.read_bin does. Device input is not checked for
them (that would need a trip to the host); the voxelizer drops points outside the point cloud range.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.points import nonfinite_rows

ON_GPU_FOR_CPU = ("points are on the GPU but this detector runs on the CPU: pass a NumPy array "
                  "(e.g. points.cpu().numpy()) or make the detector with device='cuda'")
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13  # DLPack device types

_FLOAT32_HINT = {"numpy": "points.astype(np.float32)", "torch": "points.float()",
                 "cupy": "points.astype(cupy.float32)"}
_CONTIGUOUS_HINT = {"numpy": "np.ascontiguousarray(points)", "torch": "points.contiguous()",
                    "cupy": "cupy.ascontiguousarray(points)"}


@dataclass(frozen=True)
class DevicePoints:
    """A scan already on a GPU: n rows of float32 starting at ptr, row_stride_bytes apart (x, y, z, intensity
    first). stream is the producer's CUDA stream handle to wait on (CAI v3: 1 = legacy default stream, 2 =
    per-thread default), None when unknown; keepalive holds the producer's array while the pipeline reads it."""

    ptr: int
    n: int
    row_stride_bytes: int
    device_id: int
    stream: int | None
    keepalive: Any


def as_scan(obj: Any, *, gpu: bool, device_id: int = 0) -> np.ndarray | DevicePoints:
    """Check one scan and return it in the form the pipeline takes (see the module docstring for the rules)."""
    if isinstance(obj, DevicePoints):
        if not gpu:
            raise UserError(ON_GPU_FOR_CPU)
        _check_device(obj.device_id, device_id)
        return obj
    if isinstance(obj, np.ndarray):
        return _host_points(obj, "numpy")
    kind = _kind(obj)
    if _has_cai(obj):
        if not gpu:
            raise UserError(ON_GPU_FOR_CPU)
        return _device_points(obj, kind, device_id)
    if hasattr(obj, "__dlpack__"):
        dev = _dlpack_device(obj)
        if dev is None or dev[0] == _DL_CPU:
            try:
                arr = np.from_dlpack(obj)
            except (BufferError, TypeError, RuntimeError, ValueError) as e:
                raise UserError(f"points ({type(obj).__name__}) cannot be read through DLPack: "
                                f"{str(e).splitlines()[0]} (a torch tensor that requires grad: points.detach())") from None
            return _host_points(arr, kind)
        if dev[0] in (_DL_CUDA, _DL_CUDA_MANAGED):
            if not gpu:
                raise UserError(ON_GPU_FOR_CPU)
            return _device_points(_torch_from_dlpack(obj), kind, device_id, owner=obj)
        raise UserError(f"points ({type(obj).__name__}) are on DLPack device type {dev[0]}; "
                        "give a NumPy array, a CPU tensor or a CUDA array")
    raise UserError(f"points must be a NumPy array or an array offering __dlpack__ / __cuda_array_interface__, "
                    f"got {type(obj).__name__}; e.g. np.asarray(points, np.float32)")


# ---------------------------------------------------------------------------- host
def _host_points(a: np.ndarray, kind: str) -> np.ndarray:
    """float32 [N, C>=4] with packed rows; NaN/Inf rows in x, y, z, intensity dropped with a warning."""
    what = f"{kind} array" if kind == "numpy" else f"{kind} tensor on the CPU"
    if a.dtype != np.float32:  # str(dtype) only for the message: it costs 10-15 us a scan
        _check_dtype(False, str(a.dtype), kind, what)
    _check_shape(a.shape, what)
    _check_strides(a.shape, a.strides, kind, what)
    bad_rows = nonfinite_rows(a[:, :4])
    if bad_rows is not None:
        bad = int(bad_rows.sum())
        if bad == len(a):
            raise UserError(f"empty scan: all {bad} points ({what}) have NaN/Inf coordinates")
        log.warn(f"dropped {bad} point(s) with NaN/Inf coordinates")
        a = a[~bad_rows]
    return a


# ---------------------------------------------------------------------------- device
def _device_points(obj: Any, kind: str, device_id: int, owner: Any = None) -> DevicePoints:
    """DevicePoints from an object's __cuda_array_interface__ (v2/v3) after checking dtype, shape, strides, device."""
    try:
        cai = obj.__cuda_array_interface__
    except (RuntimeError, AttributeError) as e:  # torch: a tensor that requires grad
        raise UserError(f"points ({type(obj).__name__}) give no __cuda_array_interface__ ({str(e).splitlines()[0]}); "
                        "for a torch tensor pass points.detach()") from None
    shape, typestr = tuple(int(s) for s in cai["shape"]), str(cai["typestr"])
    what = f"{kind} array on the GPU"
    _check_dtype(typestr in ("<f4", "=f4"), _dtype_name(typestr), kind, what)
    _check_shape(shape, what)
    strides = cai.get("strides")
    _check_strides(shape, tuple(strides) if strides is not None else (shape[1] * 4, 4), kind, what)
    if cai.get("mask") is not None:
        raise UserError(f"points ({what}) carry a mask; give an unmasked float32 array")
    dev = _device_index(obj)
    if dev is None:
        dev = device_id  # a Numba device array: allocated in the current context (the pipeline's device)
    _check_device(dev, device_id)
    if "stream" in cai:
        stream = None if cai["stream"] is None else int(cai["stream"])
    else:
        stream = _torch_current_stream(obj)
    return DevicePoints(int(cai["data"][0]), shape[0], shape[1] * 4, dev, stream,
                        obj if owner is None else (owner, obj))


def _device_index(obj: Any) -> int | None:
    """The GPU an array lives on: torch's .device.index, CuPy's .device.id, or __dlpack_device__(); None if unknown."""
    dev = getattr(obj, "device", None)
    for attr in ("index", "id"):
        idx = getattr(dev, attr, None)
        if isinstance(idx, int):
            return idx
    dl = _dlpack_device(obj)
    if dl is not None and dl[0] in (_DL_CUDA, _DL_CUDA_MANAGED):
        return int(dl[1])
    return None


def _torch_current_stream(obj: Any) -> int | None:
    """The current stream on a torch CUDA tensor's device (the producer's, when its CAI names none)."""
    if _kind(obj) != "torch":
        return None
    import torch

    return int(torch.cuda.current_stream(obj.device).cuda_stream)


def _torch_from_dlpack(obj: Any) -> Any:
    """A torch view of a CUDA DLPack producer (which offers no __cuda_array_interface__), no copy."""
    try:
        import torch
    except ImportError:
        raise UserError(f"points ({type(obj).__name__}) are CUDA DLPack without __cuda_array_interface__; "
                        "reading them needs torch (pip install torch) or pass a torch/CuPy/Numba array") from None
    return torch.from_dlpack(obj)


# ---------------------------------------------------------------------------- checks
def _check_dtype(ok: bool, dtype: str, kind: str, what: str) -> None:
    if not ok:
        hint = _FLOAT32_HINT.get(kind, "a float32 copy of it")
        raise UserError(f"points are {dtype} ({what}); the detector takes float32: pass {hint}")


def _check_shape(shape: tuple[int, ...], what: str) -> None:
    if len(shape) != 2 or shape[1] < 4:
        extra = "; e.g. points.reshape(-1, 4)" if len(shape) == 1 and shape[0] % 4 == 0 and shape[0] else ""
        raise UserError(f"points must be 2-D [N, C>=4] (x, y, z, intensity first), got shape {shape} ({what}){extra}")
    if shape[0] == 0:
        raise UserError(f"empty scan: points have shape {shape} ({what}); give at least one point")


def _check_strides(shape: tuple[int, ...], strides: tuple[int, ...], kind: str, what: str) -> None:
    n, c = shape
    if strides[1] != 4 or (n > 1 and strides[0] != c * 4):
        hint = _CONTIGUOUS_HINT.get(kind, "a C-contiguous copy")
        raise UserError(f"points are not C-contiguous rows (shape {shape}, strides {tuple(strides)} bytes, expected "
                        f"({c * 4}, 4); {what}): pass {hint}")


def _check_device(dev: int, device_id: int) -> None:
    if dev != device_id:
        raise UserError(f"points are on GPU {dev} but this detector runs on GPU {device_id}: move them there "
                        f"(torch: points.to('cuda:{device_id}'))")


# ---------------------------------------------------------------------------- small helpers
def _has_cai(obj: Any) -> bool:
    try:  # a torch CPU tensor's property raises AttributeError: hasattr is False
        return hasattr(obj, "__cuda_array_interface__")
    except RuntimeError:  # torch CUDA tensor that requires grad: _device_points says what to do
        return True


def _dlpack_device(obj: Any) -> tuple[int, int] | None:
    f = getattr(obj, "__dlpack_device__", None)
    if not callable(f):
        return None
    try:
        t, i = f()
    except Exception:  # a producer that cannot say: treat as unknown
        return None
    return int(t), int(i)


def _kind(obj: Any) -> str:
    """The producing library (numpy, torch, cupy, numba, ...) for messages and hints."""
    return type(obj).__module__.split(".")[0]


def _dtype_name(typestr: str) -> str:
    try:
        return np.dtype(typestr).name
    except TypeError:
        return typestr
