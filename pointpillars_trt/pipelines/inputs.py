"""Points as the pipelines take them: a host NumPy array, or DevicePoints (memory already on the pipeline's GPU)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DevicePoints:
    """A float32 [n, >=4] point array in device memory (x, y, z, intensity first), rows row_stride_bytes apart.

    stream: the producer's raw CUDA stream handle (None: unknown, the legacy default stream is waited on);
    keepalive: the object that owns the memory, held until the pipeline has copied it."""

    ptr: int
    n: int
    row_stride_bytes: int
    device_id: int = 0
    stream: int | None = None
    keepalive: Any = None
