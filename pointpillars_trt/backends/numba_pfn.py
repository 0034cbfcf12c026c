"""The PFN as one Numba CUDA kernel (the torch backend's default PFN): BatchNorm folded into the linear layer,
max over a pillar's points before the ReLU, and only the pillars that exist (the count is read from device memory)
and, when the pipeline passes the per-pillar point counts, only their points.

Why: the network is tiny (10 -> 64 per point) but the pipeline must run it on a capacity of rows known before the
upload (min(max_pillars, bucket)); torch runs a [rows, 32, 64] matmul, a max and two pointwise ops over all of them
(0.2 ms on an H200 for 32k rows), this kernel touches only the real pillars. It computes in float32 for both
precisions. Output rows >= the pillar count are left as they are: the scatter never reads them.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from numba import cuda, float32, int32

from pointpillars_trt.backends.base import Runner, ViewCache
from pointpillars_trt.errors import UserError
from pointpillars_trt.launch import bounded_blocks

G = 16  # pillars per block
CPT = 4  # output channels per thread: each shared-memory load of a feature feeds CPT multiply-adds
F_MAX = 12  # input features per point (10 for PointPillars, 11 with the distance), padded to 12 in shared memory
M_MAX = 32  # points per pillar
C_MAX = 256  # output channels (64 for PointPillars), a multiple of CPT; G * C / CPT <= 1024 threads
SHF = G * M_MAX * F_MAX  # shared floats of one block's pillars
WN = F_MAX * CPT  # weights a thread holds (registers)
COUNT = "num_pillars"  # optional feed entry: int32 device array whose [0] ([b, 0] batched) is the pillar count
POINTS = "num_points"  # optional feed entry: int32 [P] ([B, P] batched), each pillar's point count (rows past it 0)


def block_threads(channels: int) -> int:
    """Threads of one pfn_kernel block for `channels` output channels: CPT channels of one of G pillars each."""
    return G * channels // CPT


@cuda.jit(cache=True)
def pfn_kernel(features, M, F, count, npts, use_npts, weight_t, shift, out):
    """out[b, p, c] = relu(max_k(sum_f features[b, p, k, f] * weight_t[f, c]) + shift[c]) for p < count[b, 0]
    (grid-stride), batch item b = blockIdx.y: one launch for a batch.

    With use_npts, only pillar p's first npts[b, p] rows are read: the others are zero, and an all-zero row gives
    exactly +0.0, so max(real rows, 0) is the same number (KITTI pillars hold 3 to 6 of their 32 points on average).

    features[b] is the flat [P * M * F] view of item b's [P, M, F] input: a block's G pillars are G * M * F consecutive
    floats, staged in shared memory one point row a thread, each padded to F_MAX features (zeros). Thread (pillar
    g, channels c0..c0+CPT-1) holds those channels' F_MAX weights in registers (zero past F) and runs fully
    unrolled loops of constant length: one broadcast shared load per CPT multiply-adds. The previous version
    (one channel a thread, staging one float a thread with a division by F) took 37 us per 20k-point scan on an
    H200 (`bench/tools.py kernels`); the first indexed [C, F] weights in shared memory (16-way bank conflicts) with
    runtime-length loops (0.15 ms)."""
    shf = cuda.shared.array(SHF, float32)
    shn = cuda.shared.array(G, int32)
    C = weight_t.shape[1]
    TP = C // CPT  # threads per pillar
    MF = M * F
    P = features.shape[1] // MF
    b = cuda.blockIdx.y
    t = cuda.threadIdx.x
    g = t // TP
    c0 = (t - g * TP) * CPT
    w = cuda.local.array(WN, float32)
    for f in range(F_MAX):
        for j in range(CPT):
            w[f * CPT + j] = weight_t[f, c0 + j] if f < F else float32(0.0)
    num = count[b, 0]
    if num > P:
        num = P
    best = cuda.local.array(CPT, float32)
    acc = cuda.local.array(CPT, float32)
    base = cuda.blockIdx.x * G
    while base < num:
        cuda.syncthreads()
        rows = num - base
        if rows > G:
            rows = G
        if t < rows:
            shn[t] = min(npts[b, base + t], M) if use_npts else M
        cuda.syncthreads()
        # stage the block's points, one (pillar, point) row a thread at a time, padded to F_MAX with zeros: a
        # row's F loads are independent (in flight together); rows past a pillar's count are not read
        r = t
        src = base * MF + t * F
        while r < rows * M:
            if int32(r) - (int32(r) // int32(M)) * int32(M) < shn[int32(r) // int32(M)]:
                for f in range(F_MAX):
                    shf[r * F_MAX + f] = features[b, src + f] if f < F else float32(0.0)
            r += cuda.blockDim.x
            src += cuda.blockDim.x * F
        cuda.syncthreads()
        p = base + g
        if p < num:
            off = g * M * F_MAX  # rows staged as (pillar q, point k) -> q * M + k
            n = shn[g]
            for j in range(CPT):
                best[j] = float32(-3.4e38)
            for k in range(M_MAX):
                if k < n:
                    row = off + k * F_MAX
                    for j in range(CPT):
                        acc[j] = float32(0.0)
                    for f in range(F_MAX):
                        x = shf[row + f]
                        for j in range(CPT):
                            acc[j] += x * w[f * CPT + j]
                    for j in range(CPT):
                        if acc[j] > best[j]:
                            best[j] = acc[j]
            if n < M:  # the zero rows' +0.0, as if they had been computed
                for j in range(CPT):
                    if float32(0.0) > best[j]:
                        best[j] = float32(0.0)
            for j in range(CPT):
                v = best[j] + shift[c0 + j]
                out[b, p, c0 + j] = v if v > float32(0.0) else float32(0.0)
        base += cuda.gridDim.x * G


def fold_pfn(vfe: Any) -> tuple[np.ndarray, np.ndarray]:
    """(weight [C, F] with the BatchNorm scale folded in, shift [C]) from an eval-mode PillarFeatureNet."""
    layer = vfe.pfn_layers[0]
    n = layer.norm
    scale = (n.weight / (n.running_var + n.eps).sqrt()).detach()
    w = (layer.linear.weight.detach() * scale[:, None]).cpu().numpy().astype(np.float32)
    b = (n.bias.detach() - n.running_mean.detach() * scale).cpu().numpy().astype(np.float32)
    return np.ascontiguousarray(w), np.ascontiguousarray(b)


class NumbaPfnRunner(Runner):
    """The PFN on the pipeline's stream and buffers as pfn_kernel; reads the pillar count from feed['num_pillars']
    and, when given, each pillar's point count from feed['num_points'] (only those rows are read). Takes one
    [P, M, F] input or a batch [B, P, M, F] (counts [B, 2] and [B, P]) in one launch."""

    name = "numba-pfn"
    device = "cuda"
    accepts_counts = True  # the pipeline passes its device-side pillar and point counts in the feed
    reentrant = True  # weights are read-only, no scratch
    batched = True  # takes a [B, P, M, F] feed with [B, ...] counts in one call
    numba_kernels = True  # infer only launches a Numba kernel (pipelines/kernel_cache.py records it)

    def __init__(self, vfe: Any, input_name: str, output_name: str, max_blocks: int = 1024) -> None:
        super().__init__()
        w, self._b = fold_pfn(vfe.eval())
        C, F = w.shape
        self._w = np.ascontiguousarray(w.T)  # [F, C]: see pfn_kernel
        if C > C_MAX or C % CPT or F > F_MAX:
            raise UserError(f"the PFN kernel supports up to {C_MAX} filters (a multiple of {CPT}) and {F_MAX} input "
                            f"features, got {C} and {F}")
        self._in, self._out = input_name, output_name
        self.max_blocks = int(max_blocks)
        self._cached_view = ViewCache(lambda buf, cai: cuda.from_cuda_array_interface(cai, owner=buf, sync=False))
        self._streams: dict[int, Any] = {}
        self.weight = self.shift = None

    def activate(self) -> None:
        self.weight, self.shift = cuda.to_device(self._w), cuda.to_device(self._b)
        self.is_active = True

    def deactivate(self) -> None:
        self.weight = self.shift = None
        self._cached_view.clear()
        self._streams.clear()
        super().deactivate()

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self._in,)

    @property
    def output_names(self) -> tuple[str, ...]:
        return (self._out,)

    def _view(self, buf: Any) -> Any:
        return buf if isinstance(buf, cuda.devicearray.DeviceNDArray) else self._cached_view(buf)

    def infer(self, feed: Mapping[str, Any], out: Mapping[str, Any], stream: int = 0) -> None:
        if self.weight is None:
            raise RuntimeError("NumbaPfnRunner: call activate() first")
        x, y = self._view(feed[self._in]), self._view(out[self._out])
        if x.ndim == 3:  # one item: a batch of one
            x, y = x.reshape(1, *x.shape), y.reshape(1, *y.shape)
        B, P, M, F = x.shape
        if M > M_MAX or F != self._w.shape[0]:
            raise UserError(f"the PFN kernel takes [P, <={M_MAX}, {self._w.shape[0]}] features, got {tuple(x.shape)}")
        if COUNT in feed:
            count = self._view(feed[COUNT]).reshape(B, -1)
        else:
            count = cuda.to_device(np.full((B, 1), P, np.int32))
        npts = self._view(feed[POINTS]).reshape(B, P) if POINTS in feed else count  # else a placeholder, not read
        s = self._streams.get(stream)
        if s is None:
            s = self._streams[stream] = cuda.external_stream(stream) if stream else 0
        blocks = bounded_blocks((P + G - 1) // G, B, self.max_blocks, 8)
        pfn_kernel[(blocks, B), block_threads(self._w.shape[1]), s](x.reshape(B, P * M * F), M, F, count, npts,
                                                                    POINTS in feed, self.weight, self.shift, y)
