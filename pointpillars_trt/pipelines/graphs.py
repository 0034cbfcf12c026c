"""CUDA graph capture and replay of everything a scan enqueues on the pipeline's stream.

Two flavours with the same three methods (capture, replay, free) and ``took``, the device memory a capture took
(cudaMemGetInfo's drop across capture and instantiation): ``CudaGraph`` uses cuda-python's stream capture
directly (TensorRT and Numba only); ``TorchGraph`` captures through ``torch.cuda.graph`` so that the memory torch
allocates during capture comes from a private pool that lives as long as the graph (the torch backend needs it).
Numba kernels launched on ``cuda.external_stream`` of the same stream are captured by either.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from pointpillars_trt.pipelines.cuda_runtime import _cudart, check, frees_deferred, mem_get_info


@contextmanager
def capture_guard() -> Iterator[None]:
    """No device or pinned memory freed while a capture runs, by us (frees_deferred) or by Numba (defer_cleanup):
    a free inside the capture, from a buffer the garbage collector reaches then, invalidates it."""
    from numba import cuda

    with frees_deferred(), cuda.defer_cleanup():
        yield


class CudaGraph:
    """A graph captured with cudaStreamBeginCapture on a raw stream and launched with cudaGraphLaunch."""

    def __init__(self) -> None:
        self._rt = _cudart()
        self._graph: Any = None
        self._exec: Any = None
        self.took = 0

    def capture(self, stream: int, enqueue: Callable[[], None]) -> None:
        """Record everything ``enqueue`` puts on ``stream`` (nothing runs), then instantiate it."""
        rt = self._rt
        free = mem_get_info()[0]
        with capture_guard():
            check(rt.cudaStreamBeginCapture(stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
                  "cudaStreamBeginCapture")
            try:
                enqueue()
            finally:
                self._graph = check(rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        self._exec = check(rt.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")
        self.took = max(0, free - mem_get_info()[0])

    def replay(self, stream: int) -> None:
        check(self._rt.cudaGraphLaunch(self._exec, stream), "cudaGraphLaunch")

    def free(self) -> None:
        if self._exec is not None:
            self._rt.cudaGraphExecDestroy(self._exec)
            self._exec = None
        if self._graph is not None:
            self._rt.cudaGraphDestroy(self._graph)
            self._graph = None


class TorchGraph:
    """A graph captured through torch.cuda.graph on the pipeline's stream. Graphs of one pool share its memory,
    which is only safe for graphs that never run at the same time: one pool per device slot (stream)."""

    _pools: dict[int, Any] = {}

    def __init__(self, pool: int = 0) -> None:
        import torch

        self._torch = torch
        self._g = torch.cuda.CUDAGraph()
        if pool not in TorchGraph._pools:
            TorchGraph._pools[pool] = torch.cuda.graph_pool_handle()
        self._pool = TorchGraph._pools[pool]
        self._exec: int | None = None
        self._rt = _cudart()
        self.took = 0

    @classmethod
    def pool_bytes(cls) -> int:
        """Device memory held by the graphs' pools in this process (torch's allocator snapshot): their activations."""
        if not cls._pools:
            return 0
        import torch

        ids = {tuple(p) for p in cls._pools.values()}
        return sum(seg["total_size"] for seg in torch.cuda.memory_snapshot()
                   if tuple(seg.get("segment_pool_id", ())) in ids)

    def capture(self, stream: int, enqueue: Callable[[], None]) -> None:
        torch = self._torch
        s = torch.cuda.ExternalStream(stream)
        # torch.cuda.graph empties torch's cache before it captures: empty it first, so that the drop is the graph's
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        free = mem_get_info()[0]
        with capture_guard(), torch.cuda.graph(self._g, pool=self._pool, stream=s, capture_error_mode="thread_local"):
            enqueue()
        self.took = max(0, free - mem_get_info()[0])
        # torch documents the executable graph's handle for launches through cuda-python; replaying through it
        # skips torch's stream switch and its RNG prologue (the captured work draws no random numbers)
        try:
            self._exec = int(self._g.raw_cuda_graph_exec())
        except (AttributeError, RuntimeError):
            self._exec = None

    def replay(self, stream: int) -> None:
        if self._exec is not None:
            check(self._rt.cudaGraphLaunch(self._exec, stream), "cudaGraphLaunch")
            return
        # CUDAGraph.replay launches on torch's current stream: make it ours for the call
        torch = self._torch
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            self._g.replay()

    def free(self) -> None:
        self._exec = None
        self._g.reset()


def make_graph(kind: str, pool: int = 0) -> CudaGraph | TorchGraph:
    """'torch' when a runner allocates through torch during capture (in memory pool `pool`), else 'cuda'."""
    return TorchGraph(pool) if kind == "torch" else CudaGraph()
