"""backends.base.ViewCache: one framework view per (pointer, shape, dtype) of a device buffer, bounded."""
from __future__ import annotations

from pointpillars_trt.backends.base import ViewCache


class FakeBuffer:
    def __init__(self, ptr: int, shape: tuple[int, ...], typestr: str = "<f4") -> None:
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": shape, "typestr": typestr, "version": 3}


def test_one_view_per_pointer_shape_and_dtype_and_bounded() -> None:
    made = []
    cache = ViewCache(lambda buf, cai: made.append(cai["shape"]) or (cai["data"][0], cai["shape"]), limit=3)
    a = FakeBuffer(0x1000, (4, 9))
    assert cache(a) is cache(a) and len(made) == 1  # the same buffer again: no new view
    cache(FakeBuffer(0x1000, (2, 9)))  # a shorter slice of the same memory is another view
    cache(FakeBuffer(0x1000, (4, 9), "<i4"))
    assert len(made) == 3
    cache(FakeBuffer(0x2000, (4, 9)))  # over the limit: the cache starts again rather than grow
    cache(a)
    assert len(made) == 5
    cache.clear()
    cache(a)
    assert len(made) == 6
