"""pipelines.cuda_runtime.frees_deferred: no buffer is freed and no cyclic garbage collection runs while a stream
is being captured (a cudaFree inside a capture invalidates it); the frees happen when the capture ends.
The same failure, reproduced on a GPU, is in test_gpu_device.py (test_capture_survives_a_buffer_freed_by_gc)."""
from __future__ import annotations

import gc

from pointpillars_trt.pipelines import cuda_runtime as rt


def test_frees_wait_for_the_end_of_the_capture() -> None:
    freed: list[int] = []
    rt._release(freed.append, 1)
    assert freed == [1]  # no capture: freed at once
    was = gc.isenabled()
    with rt.frees_deferred():
        assert not gc.isenabled()
        rt._release(freed.append, 2)
        with rt.frees_deferred():  # nested (a capture inside a capture guard)
            rt._release(freed.append, 3)
        assert freed == [1], "freed while a capture was still running"
    assert sorted(freed) == [1, 2, 3] and gc.isenabled() == was
    try:
        with rt.frees_deferred():
            rt._release(freed.append, 4)
            raise KeyError("capture failed")
    except KeyError:
        pass
    assert freed[-1] == 4 and gc.isenabled() == was  # a failed capture still frees and restores the collector
