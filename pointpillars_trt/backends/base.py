"""The backend interface, modelled on polygraphy's runners: one small class per backend, same few methods.

A runner wraps one network (PFN or RPN). ``activate`` loads it, ``infer`` runs it
on named input arrays and writes named, preallocated output arrays in place,
``deactivate`` frees it. The leading (dynamic) dimension of each input sets the
run's shape; outputs are passed already sliced to the matching size. CPU
runners take numpy arrays; GPU runners take anything with
``__cuda_array_interface__`` and a CUDA stream handle.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Mapping


class Runner(ABC):
    """Base class for PFN/RPN runners (onnxruntime, torch, tensorrt)."""

    name: str = "runner"
    #: "cpu" runners take host arrays, "cuda" runners device arrays
    device: str = "cpu"
    #: (dtype, layout) the runner wants its image input in: the exported networks' contract is float32 NCHW; a
    #: runner that computes in FP16 channels-last asks for ("float16", "nhwc") so the pillar scatter writes that
    #: directly and no conversion runs between the scatter and the first convolution
    input_format: tuple[str, str] = ("float32", "nchw")
    #: True when infer may run on two streams at once (no scratch memory of the runner's own): then the GPU pipeline
    #: runs two batches side by side. A TensorRT execution context owns its activations, so it is not.
    reentrant: bool = False
    #: the runner's background compiles (inductor_compile.BackgroundCompiles), which the GPU pipeline starts and
    #: follows; None for runners that never compile in the background
    background: Any = None

    def __init__(self) -> None:
        self.is_active = False

    @abstractmethod
    def activate(self) -> None:
        """Load the network; called once before the first infer."""

    @abstractmethod
    def infer(self, feed: Mapping[str, Any], out: Mapping[str, Any], stream: int = 0) -> None:
        """Run on ``feed`` and write every array of ``out`` in place (on ``stream`` for GPU runners)."""

    def deactivate(self) -> None:
        """Free the network; the runner may be activated again."""
        self.is_active = False

    @property
    @abstractmethod
    def input_names(self) -> tuple[str, ...]: ...

    @property
    @abstractmethod
    def output_names(self) -> tuple[str, ...]: ...

    def __enter__(self) -> "Runner":
        if not self.is_active:
            self.activate()
            self.is_active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class ViewCache:
    """Framework views (a torch tensor, a Numba array) of device buffers, made once per (pointer, shape, dtype).

    Bounded: the PFN's row count changes with the scan's bucket, so the set of shapes is not fixed forever."""

    def __init__(self, make: Callable[[Any, dict], Any], limit: int = 64) -> None:
        self._make, self._limit = make, limit
        self._views: dict[tuple, Any] = {}

    def __call__(self, buf: Any) -> Any:
        cai = buf.__cuda_array_interface__
        key = (cai["data"][0], tuple(cai["shape"]), cai["typestr"])
        v = self._views.get(key)
        if v is None:
            if len(self._views) >= self._limit:
                self._views.clear()
            v = self._views[key] = self._make(buf, cai)
        return v

    def clear(self) -> None:
        self._views.clear()
