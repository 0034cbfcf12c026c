"""Unfused float arithmetic for kernels that must match the CPU bit for bit.

NVVM contracts a*b+c into one FMA by default (different rounding from NumPy and
the njit code); libdevice's *_rn functions are never contracted. The simulator
has no libdevice, so there they are the plain (already unfused) operators.
"""
from __future__ import annotations

from numba import cuda

from numba import config

if config.ENABLE_CUDASIM:  # the simulator (see pipelines/seam.py)
    @cuda.jit(device=True)
    def fmul(a, b):
        return a * b

    @cuda.jit(device=True)
    def fadd(a, b):
        return a + b

    @cuda.jit(device=True)
    def fsub(a, b):
        return a - b
else:
    from numba.cuda import libdevice

    @cuda.jit(device=True, inline=True)
    def fmul(a, b):
        return libdevice.fmul_rn(a, b)

    @cuda.jit(device=True, inline=True)
    def fadd(a, b):
        return libdevice.fadd_rn(a, b)

    @cuda.jit(device=True, inline=True)
    def fsub(a, b):
        return libdevice.fsub_rn(a, b)


if config.ENABLE_CUDASIM:  # the simulator (see pipelines/seam.py)
    import numpy as _np

    @cuda.jit(device=True)
    def f32_bits(x):
        """The IEEE bits of a float32 as int32 (order-preserving for positive floats)."""
        return _np.float32(x).view(_np.int32)

    @cuda.jit(device=True)
    def fexp(x):
        """float32 exp (NumPy's in the simulator, libdevice's expf on the GPU)."""
        return _np.exp(_np.float32(x))
else:
    import math as _math

    @cuda.jit(device=True, inline=True)
    def f32_bits(x):
        return libdevice.float_as_int(x)

    @cuda.jit(device=True, inline=True)
    def fexp(x):
        return _math.exp(x)
