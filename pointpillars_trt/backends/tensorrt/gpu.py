"""The CUDA GPU the engines run on, read through the CUDA driver API by ctypes (no Python package, no TensorRT).

Creating a TensorRT ``Runtime`` on a machine without a usable GPU logs "CUDA
initialization failure" and a later ``deserialize_cuda_engine`` segfaults (seen
with the 11.4 lean bindings), so every runtime path calls :func:`require_gpu`
first; the TensorRT-RTX refusal of unsupported compute capabilities reads
:attr:`GpuInfo.cc` from here before any plan is deserialized.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Optional, Sequence

from pointpillars_trt.errors import UserError

# CUDA driver API (cuda.h): CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
_CU_ATTR_CC_MAJOR = 75
_CU_ATTR_CC_MINOR = 76
#: the driver library by soname first (what torch/TensorRT dlopen), then where container images mount it
_LIBCUDA_NAMES = ("libcuda.so.1", "libcuda.so", "/usr/local/nvidia/lib64/libcuda.so.1",
                  "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "nvcuda.dll")



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
