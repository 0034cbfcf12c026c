"""Block-wide sum and inclusive prefix sum for kernels of TPB threads a block, through a shared int32 array of TPB
entries. Each call starts by writing only its own thread's entry, so calls may follow each other on one array; a
thread that reads another's entry after block_scan must synchronise before the array is written again."""
from __future__ import annotations

from numba import cuda

TPB = 256  # threads per block of the per-point kernels (power of two)


@cuda.jit(device=True)
def block_sum(sh, t, v):
    """Sum v over the block (TPB threads) through shared array sh; result valid in every thread."""
    sh[t] = v
    cuda.syncthreads()
    s = TPB // 2
    while s > 0:
        if t < s:
            sh[t] += sh[t + s]
        cuda.syncthreads()
        s //= 2
    r = sh[0]
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def block_scan(sh, t, v):
    """Inclusive prefix sum of v over the block (TPB threads, Hillis-Steele) through shared array sh."""
    sh[t] = v
    cuda.syncthreads()
    s = 1
    while s < TPB:
        w = sh[t - s] if t >= s else 0
        cuda.syncthreads()
        sh[t] += w
        cuda.syncthreads()
        s *= 2
    return sh[t]
