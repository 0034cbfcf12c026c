"""The ctypes DLPack exporter that hands detection rows out of the GPU pipeline, exercised on host memory: NumPy
and torch consume its capsules, read the right values, and its bookkeeping frees what it holds."""
from __future__ import annotations

import gc

import numpy as np
import torch

from pointpillars_trt.pipelines.dlpack import _ALIVE, HostDLPack


def test_numpy_and_torch_read_the_exported_rows() -> None:
    rows = np.arange(27, dtype=np.float32).reshape(3, 9)
    a = np.from_dlpack(HostDLPack(rows))
    t = torch.from_dlpack(HostDLPack(rows))
    assert a.shape == (3, 9) and np.array_equal(a, rows)
    assert tuple(t.shape) == (3, 9) and t.dtype == torch.float32 and np.array_equal(t.numpy(), rows)
    for dtype in (np.int32, np.uint64, np.float64):
        x = np.arange(6, dtype=dtype).reshape(2, 3)
        assert np.array_equal(np.from_dlpack(HostDLPack(x)), x)


def test_consumed_and_unconsumed_capsules_release_their_memory() -> None:
    gc.collect()
    before = len(_ALIVE)
    a = np.from_dlpack(HostDLPack(np.ones((4, 9), np.float32)))
    assert len(_ALIVE) == before + 1  # held while the consumer's array lives
    del a
    gc.collect()
    assert len(_ALIVE) == before
    capsule = HostDLPack(np.ones(3, np.float32)).__dlpack__()  # never consumed: its destructor frees it
    assert len(_ALIVE) == before + 1
    del capsule
    gc.collect()
    assert len(_ALIVE) == before
