"""pipelines.cuda_runtime.frees_deferred: no buffer is freed and no cyclic garbage collection runs while a stream
is being captured (a cudaFree inside a capture invalidates it); the frees happen when the last capture ends, in
whichever thread. The same failure, reproduced on a GPU, is in test_gpu_device.py
(test_capture_survives_a_buffer_freed_by_gc)."""
from __future__ import annotations

import gc
import threading

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


def test_captures_in_two_threads_overlapping() -> None:
    """Thread A starts capturing, B starts, A ends first: until B ends nothing is freed and the collector stays off;
    then both threads' frees happen and the collector is back as it was."""
    freed: list[str] = []
    was = gc.isenabled()
    a_in, b_in, a_out, b_may_end = (threading.Event() for _ in range(4))
    seen: dict[str, object] = {}

    def a() -> None:
        with rt.frees_deferred():
            a_in.set()
            b_in.wait(5)
            rt._release(freed.append, "a")
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with rt.frees_deferred():
            b_in.set()
            b_may_end.wait(5)
            seen["freed while b captures"] = list(freed)
            seen["collector while b captures"] = gc.isenabled()
            rt._release(freed.append, "b")

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start()
    tb.start()
    assert a_out.wait(5)
    b_may_end.set()
    ta.join(5)
    tb.join(5)
    assert seen == {"freed while b captures": [], "collector while b captures": False}
    assert sorted(freed) == ["a", "b"] and gc.isenabled() == was
