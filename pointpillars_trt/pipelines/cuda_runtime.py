"""Device memory, pinned host memory, one stream and events through cuda-python's runtime API.

Thin on purpose: buffers expose ``__cuda_array_interface__`` (v3, no stream key) so
Numba, torch and TensorRT (by pointer) address the same cudaMalloc'd memory; the
Numba side of that seam lives in pipelines/seam.py so kernels stay testable in the simulator.
"""
from __future__ import annotations

import ctypes
import gc
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from pointpillars_trt.errors import UserError


def _cudart():
    """cuda.bindings.runtime, or a UserError saying what is missing."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError:
            raise UserError("the GPU path needs cuda-python (pip install 'cuda-python>=12'); "
                            "use --device cpu / --backend onnxruntime without a GPU") from None
    return cudart


def check(result: Any, what: str) -> Any:
    """Unpack a cuda-python (err, *values) tuple; raise RuntimeError naming the call on failure."""
    cudart = _cudart()
    err, *vals = result if isinstance(result, tuple) else (result,)
    if int(err) != int(cudart.cudaError_t.cudaSuccess):
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"{what} failed: {name.decode() if isinstance(name, bytes) else name}")
    if not vals:
        return None
    return vals[0] if len(vals) == 1 else tuple(vals)


def device_count() -> int:
    """Number of CUDA devices cuda-python sees (0 when the driver is missing)."""
    try:
        cudart = _cudart()
        err, n = cudart.cudaGetDeviceCount()
    except UserError:
        return 0
    return int(n) if int(err) == 0 else 0


def device_name(device_id: int = 0) -> str:
    """The CUDA device's name, e.g. 'NVIDIA H200' (cudaGetDeviceProperties)."""
    name = check(_cudart().cudaGetDeviceProperties(device_id), "cudaGetDeviceProperties").name
    return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()


def mem_get_info() -> tuple[int, int]:
    """(free, total) device memory in bytes (cudaMemGetInfo)."""
    free, total = check(_cudart().cudaMemGetInfo(), "cudaMemGetInfo")
    return int(free), int(total)


class _Captures:
    """Captures in progress in this process (any thread), the frees they hold back, and whether the cyclic
    collector was on before the first began. Re-entrant lock: a collector run inside the critical section may
    call _release from a finalizer in the same thread."""

    lock = threading.RLock()
    depth = 0
    collect = False
    deferred: list[tuple[Callable[[int], Any], int]] = []


def _release(free: Callable[[int], Any], ptr: int) -> None:
    """free(ptr) now, or after the stream captures in progress: cudaFree / cudaFreeHost while a stream is being
    captured invalidate the capture, and a buffer of an earlier pipeline may be garbage-collected at any
    allocation, including one inside enqueue() (seen: one H200 test run in two failed its capture that way)."""
    with _Captures.lock:
        if _Captures.depth:
            _Captures.deferred.append((free, ptr))
            return
    free(ptr)


@contextmanager
def frees_deferred() -> Iterator[None]:
    """For the length of a stream capture: no cyclic garbage collection, and every buffer free (DeviceBuffer,
    PinnedBuffer) held back until the last capture in progress (detectors in other threads capture too) ends."""
    c = _Captures
    with c.lock:
        if c.depth == 0:
            c.collect = gc.isenabled()
            gc.disable()
        c.depth += 1
    try:
        yield
    finally:
        with c.lock:
            c.depth -= 1
            pending: list[tuple[Callable[[int], Any], int]] = []
            if c.depth == 0:
                pending, c.deferred = c.deferred, []
                if c.collect:
                    gc.enable()
        for free, ptr in pending:
            free(ptr)


class _CaiView:
    """A typed window (pointer, shape, dtype) into a DeviceBuffer; keeps the buffer alive."""

    def __init__(self, owner: "DeviceBuffer", ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.owner, self.ptr, self.shape, self.dtype = owner, int(ptr), tuple(int(s) for s in shape), np.dtype(dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 3, "strides": None}

    def view(self, shape: tuple[int, ...], dtype: Any = None, offset_bytes: int = 0) -> "_CaiView":
        """A C-contiguous window starting offset_bytes into this one."""
        v = _CaiView(self.owner, self.ptr + offset_bytes, shape, dtype or self.dtype)
        if offset_bytes + v.nbytes > self.nbytes:
            raise ValueError(f"view of {v.nbytes} bytes at {offset_bytes} exceeds buffer of {self.nbytes}")
        return v

    def __getitem__(self, s: slice) -> "_CaiView":
        """Leading-dimension slice [:n] (what runners are given for dynamic shapes)."""
        if not isinstance(s, slice) or s.start not in (None, 0) or s.step not in (None, 1):
            raise TypeError("device buffers support only [:n] slices")
        n = min(self.shape[0], s.stop if s.stop is not None else self.shape[0])
        return _CaiView(self.owner, self.ptr, (n, *self.shape[1:]), self.dtype)

    def __dlpack__(self, stream: Any = None, **kw: Any) -> Any:
        """DLPack capsule over this view (CUDA device 0 memory; the producer's work is complete when handed out)."""
        from pointpillars_trt.pipelines.dlpack import to_capsule

        return to_capsule(self.ptr, self.shape, self.dtype, self.__dlpack_device__(), keepalive=self)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, int(getattr(self.owner, "device_id", 0)))  # kDLCUDA

    def __repr__(self) -> str:
        return f"DeviceView(0x{self.ptr:x}, {self.shape}, {self.dtype})"


class DeviceBuffer(_CaiView):
    """cudaMalloc'd C-contiguous array, zeroed on allocation, freed by free() or garbage collection."""

    def __init__(self, shape: tuple[int, ...], dtype: Any = np.float32) -> None:
        cudart = _cudart()
        shape = tuple(int(s) for s in shape)
        nbytes = max(1, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        ptr = check(cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes})")
        super().__init__(self, int(ptr), shape, dtype)
        self._cudart = cudart
        check(cudart.cudaMemset(self.ptr, 0, nbytes), "cudaMemset")

    def free(self) -> None:
        if getattr(self, "ptr", 0):
            _release(self._cudart.cudaFree, self.ptr)
            self.ptr = 0

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # interpreter shutdown: the context may already be gone
            pass


class PinnedBuffer:
    """Page-locked host memory (cudaHostAlloc, mapped) seen as a numpy array, for async H2D/D2H copies and for
    kernels that read it directly (device_view)."""

    def __init__(self, shape: tuple[int, ...], dtype: Any = np.float32) -> None:
        self._cudart = cudart = _cudart()
        self.nbytes = max(1, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        self.ptr = int(check(cudart.cudaHostAlloc(self.nbytes, cudart.cudaHostAllocMapped), "cudaHostAlloc"))
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=np.uint8).view(dtype)[: int(np.prod(shape))].reshape(shape)
        self._device_ptr = 0

    def device_view(self, shape: tuple[int, ...], dtype: Any, offset_bytes: int = 0) -> "_CaiView":
        """A window of this (mapped) host memory as kernels address it: read by the GPU over the bus, no copy."""
        if not self._device_ptr:
            self._device_ptr = int(check(self._cudart.cudaHostGetDevicePointer(self.ptr, 0), "cudaHostGetDevicePointer"))
        v = _CaiView(self, self._device_ptr + offset_bytes, shape, dtype)
        if offset_bytes + v.nbytes > self.nbytes:
            raise ValueError(f"view of {v.nbytes} bytes at {offset_bytes} exceeds pinned buffer of {self.nbytes}")
        return v

    def free(self) -> None:
        if getattr(self, "ptr", 0):
            self.array = None
            _release(self._cudart.cudaFreeHost, self.ptr)
            self.ptr = 0

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:
            pass


class Stream:
    """One non-blocking CUDA stream; ``handle`` is the raw cudaStream_t as an int (for Numba, torch, TensorRT)."""

    def __init__(self) -> None:
        self._cudart = cudart = _cudart()
        self._stream = check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreate")
        self.handle = int(self._stream)
        self.syncs = 0  # host synchronisations on this stream (tests count them)

    def synchronize(self) -> None:
        self.syncs += 1
        check(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def h2d(self, dst: _CaiView, src: np.ndarray, nbytes: int) -> None:
        """Async copy from pinned host memory (src must be pinned for true async) to dst."""
        check(self._cudart.cudaMemcpyAsync(dst.ptr, src.ctypes.data, nbytes,
                                           self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream), "H2D copy")

    def d2h(self, dst: np.ndarray, src: _CaiView, nbytes: int) -> None:
        check(self._cudart.cudaMemcpyAsync(dst.ctypes.data, src.ptr, nbytes,
                                           self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream), "D2H copy")

    def d2d_rows(self, dst: _CaiView, src_ptr: int, src_pitch: int, row_bytes: int, rows: int) -> None:
        """Async device-to-device copy of ``rows`` rows of ``row_bytes`` (source rows ``src_pitch`` apart) into dst."""
        if rows:
            check(self._cudart.cudaMemcpy2DAsync(dst.ptr, row_bytes, src_ptr, src_pitch, row_bytes, rows,
                                                 self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, self._stream),
                  "D2D copy")

    def wait_for(self, producer: int | None, event: "Event") -> None:
        """Order this stream after everything already enqueued on ``producer`` (a raw handle; None: the legacy
        default stream), without a host sync: record ``event`` there and wait on it here."""
        handle = 1 if producer is None else int(producer)  # 1 = cudaStreamLegacy
        if handle == self.handle:
            return
        check(self._cudart.cudaEventRecord(event._event, handle), "cudaEventRecord (producer stream)")
        check(self._cudart.cudaStreamWaitEvent(self._stream, event._event, 0), "cudaStreamWaitEvent")

    def synchronize_to(self, event: "Event") -> None:
        """Block the host until ``event``, recorded on this stream, has completed: a synchronise of this stream up
        to that point (work queued after it may still run)."""
        self.syncs += 1
        event.synchronize()

    def memset(self, dst: _CaiView, value: int = 0) -> None:
        check(self._cudart.cudaMemsetAsync(dst.ptr, value, dst.nbytes, self._stream), "cudaMemsetAsync")

    def destroy(self) -> None:
        if getattr(self, "_stream", None) is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None


class Event:
    """A CUDA event recorded on a stream; elapsed_ms(other) after the stream was synchronised."""

    def __init__(self) -> None:
        self._cudart = cudart = _cudart()
        self._event = check(cudart.cudaEventCreate(), "cudaEventCreate")

    def record(self, stream: Stream) -> None:
        check(self._cudart.cudaEventRecord(self._event, stream._stream), "cudaEventRecord")

    def record_timing(self, stream: Stream, capturing: bool = False) -> None:
        """Record for timing; inside a stream capture as an external event node, so that replays record it too
        (that flag is illegal outside a capture)."""
        cudart = self._cudart
        if capturing:
            check(cudart.cudaEventRecordWithFlags(self._event, stream._stream, cudart.cudaEventRecordExternal),
                  "cudaEventRecordWithFlags")
        else:
            self.record(stream)

    def synchronize(self) -> None:
        """Wait on the host until the work before this event's last record has finished."""
        check(self._cudart.cudaEventSynchronize(self._event), "cudaEventSynchronize")

    def elapsed_ms(self, end: "Event") -> float:
        """Milliseconds from this event to ``end`` (both must have completed)."""
        fn = getattr(self._cudart, "cudaEventElapsedTime", None) or self._cudart.cudaEventElapsedTime_v2
        return float(check(fn(self._event, end._event), "cudaEventElapsedTime"))

    def destroy(self) -> None:
        if getattr(self, "_event", None) is not None:
            self._cudart.cudaEventDestroy(self._event)
            self._event = None
