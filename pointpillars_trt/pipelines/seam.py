"""The one place where Numba meets foreign memory and streams (absent from Numba's CUDA simulator).

Kernels only ever see Numba device arrays and a Numba stream. On a GPU those come
from DeviceBuffers (``cuda.from_cuda_array_interface``) and the pipeline's raw
stream (``cuda.external_stream``); under NUMBA_ENABLE_CUDASIM=1 (CI) they are plain
``cuda.device_array``s and stream 0, so the same kernels run on small inputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import config, cuda


def simulator() -> bool:
    """True when Numba runs CUDA kernels in its Python simulator."""
    return bool(config.ENABLE_CUDASIM)


class SimAllocator:
    """Allocates zeroed Numba device arrays (works in the simulator and on a GPU with Numba's own memory)."""

    def array(self, shape: tuple[int, ...], dtype: Any, name: str = "") -> Any:
        return cuda.to_device(np.zeros(shape, dtype))

    def fill(self, arr: Any, value: Any) -> None:
        arr.copy_to_device(np.full(arr.shape, value, arr.dtype))


class BufferAllocator:
    """Allocates DeviceBuffers (kept in ``buffers`` by name) and hands Numba views of them to the kernels."""

    def __init__(self) -> None:
        self.buffers: dict[str, Any] = {}

    def array(self, shape: tuple[int, ...], dtype: Any, name: str = "") -> Any:
        from pointpillars_trt.pipelines.cuda_runtime import DeviceBuffer

        buf = DeviceBuffer(shape, dtype)
        self.buffers[name or f"buf{len(self.buffers)}"] = buf
        return numba_view(buf)

    def fill(self, arr: Any, value: Any) -> None:
        arr.copy_to_device(np.full(arr.shape, value, arr.dtype))


def numba_view(obj: Any, axes: tuple[int, ...] | None = None) -> Any:
    """A Numba device array over anything with __cuda_array_interface__ (no copy, no sync); with axes, the
    C-contiguous array seen with its dimensions permuted (numpy's transpose(axes), a strided view)."""
    if simulator():
        return obj if axes is None else obj[...].transpose(axes)
    cai = dict(obj.__cuda_array_interface__)
    if axes is not None:
        shape = tuple(cai["shape"])
        item = np.dtype(cai["typestr"]).itemsize
        strides = [item * int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(len(shape))]
        cai.update(shape=tuple(shape[a] for a in axes), strides=tuple(strides[a] for a in axes))
    return cuda.from_cuda_array_interface(cai, owner=obj, sync=False)


def numba_strided(buf: Any, shape: tuple[int, ...], dtype: Any, offset_bytes: int, strides: tuple[int, ...]) -> Any:
    """A Numba device array over buf's memory from offset_bytes with the given shape and byte strides (no copy): e.g.
    every batch item's header words of the [B, nout] result rows (GPU only)."""
    cai = {"shape": tuple(shape), "strides": tuple(strides), "typestr": np.dtype(dtype).str,
           "data": (int(buf.ptr) + int(offset_bytes), False), "version": 3}
    return cuda.from_cuda_array_interface(cai, owner=buf, sync=False)


def numba_stream(handle: int) -> Any:
    """The Numba stream to launch on: the pipeline's raw stream, or 0 in the simulator / without one."""
    if simulator() or not handle:
        return 0
    return cuda.external_stream(handle)
