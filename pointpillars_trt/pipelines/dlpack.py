"""A minimal DLPack exporter (ctypes): hands out device (or host) memory as a ``dltensor`` capsule, so results can
stay on the GPU and reach torch / CuPy / JAX through ``from_dlpack`` with no copy and no dependency on them.

The capsule owns a DLManagedTensor whose deleter releases the Python object that keeps the memory alive; an
unconsumed capsule frees it from the capsule destructor (the protocol's rule: only while named "dltensor").
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32), ("dtype", _DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]
_CODES = {"i": 0, "u": 1, "f": 2, "b": 6}  # kDLInt, kDLUInt, kDLFloat, kDLBool
_NAME = b"dltensor"
_ALIVE: dict[int, tuple] = {}  # address of a DLManagedTensor -> what must outlive it


@_DELETER
def _deleter(ptr: Any) -> None:
    _ALIVE.pop(ctypes.addressof(ptr.contents), None)


_CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_api = ctypes.pythonapi
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _CAPSULE_DESTRUCTOR]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


@_CAPSULE_DESTRUCTOR
def _capsule_destructor(capsule_ptr: int) -> None:
    cap = ctypes.cast(capsule_ptr, ctypes.py_object)
    if _api.PyCapsule_IsValid(cap, _NAME):  # never consumed: we still own the tensor
        addr = _api.PyCapsule_GetPointer(cap, _NAME)
        _ALIVE.pop(addr, None)


def to_capsule(ptr: int, shape: tuple[int, ...], dtype: Any, device: tuple[int, int], keepalive: Any) -> Any:
    """A DLPack capsule for C-contiguous memory at ``ptr`` (device = (DLDeviceType, id)); keepalive outlives it."""
    dt = np.dtype(dtype)
    if dt.kind not in _CODES:
        raise TypeError(f"no DLPack type code for {dt}")
    shape_arr = (ctypes.c_int64 * max(1, len(shape)))(*shape)
    m = _DLManagedTensor()
    m.dl_tensor.data = ptr
    m.dl_tensor.device = _DLDevice(*device)
    m.dl_tensor.ndim = len(shape)
    m.dl_tensor.dtype = _DLDataType(_CODES[dt.kind], dt.itemsize * 8, 1)
    m.dl_tensor.shape = shape_arr
    m.dl_tensor.strides = None  # compact row-major
    m.dl_tensor.byte_offset = 0
    m.manager_ctx = None
    m.deleter = _deleter
    _ALIVE[ctypes.addressof(m)] = (m, shape_arr, keepalive)
    return _api.PyCapsule_New(ctypes.addressof(m), _NAME, _capsule_destructor)


class HostDLPack:
    """DLPack export of a NumPy array's memory through this module (lets CI test the exporter without a GPU)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = np.ascontiguousarray(a)

    def __dlpack__(self, stream: Any = None, **kw: Any) -> Any:
        return to_capsule(self.a.ctypes.data, self.a.shape, self.a.dtype, (1, 0), keepalive=self.a)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU
