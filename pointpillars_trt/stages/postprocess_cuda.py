"""Head outputs -> detections on the GPU (Numba CUDA), the same semantics as postprocess.py, seven launches, each
one for a whole batch (blockIdx.y = batch item; a kernel first takes its item's row of every batched array).

1. scores: sigmoid of the max logit + label per anchor; a count of the
   candidates (score >= thresh) and a histogram of their float bits on the
   high bits; the last block to finish picks the bucket that holds the K-th
   best score, only when there are more than K candidates (else no K-th score:
   every candidate is kept and the histogram is not read).
2. refine (returns at once without a K-th bucket): histogram of the low bits
   inside that bucket; the last block gets the exact K-th score and how many
   ties at it are to be kept (m).
3. compact: candidates above the K-th score go to a list (any order); ties go
   to a bitmap by anchor index; without a K-th bucket, each candidate zeroes
   its histogram bin (draining 8193 bins in one block cost ~20 us a scan).
4. ties (one block): the first m ties in index order join the list.
5. rank + decode (K/32 blocks of 256 threads; blocks past n return at once):
   rank = number of larger keys (score bits << 32 | ~index) gives exactly the
   CPU order (score descending, ties by ascending anchor index); a block ranks
   32 candidates, its 8 warps each comparing them with every 8th key; float32
   ResidualCoder decode + direction bins (unfused float32 as NumPy) into row
   `rank`.
6. NMS mask: pairwise rotated BEV IoU > thresh bits on the upper triangle of
   64x64 tiles below n, cut into row slabs when there are few tiles (a grid
   of up to 640 blocks of 128 threads in a grid-stride loop).
7. greedy (one block of 512 threads): walk the mask in score order, 128
   candidates per block barrier, keep <= max_det, write rows (x, y, z, dx,
   dy, dz, yaw, score, label) + counts into the output buffer.
Scores >= 2**-8 only (the histogram covers float bits from 0x3B800000 up).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda, float32, int32, int64, uint32

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError
from pointpillars_trt.stages.cuda_fp import f32_bits, fadd, fexp, fmul, fsub
from pointpillars_trt.stages.nms_cuda import (GREEDY_THREADS, K_MAX, MASK_THREADS, MAX_DET_GPU, NTILE, _nms_greedy,
                                              _nms_mask, mask_blocks)

TPB = 256
LO = 0x3B800000  # float bits of 2**-8: the lowest score the histograms cover
SHIFT = 13
NB1 = ((0x3F800000 - LO) >> SHIFT) + 1  # 8193 high-bit buckets up to 1.0
NB2 = 1 << SHIFT
CH1 = (NB1 + TPB - 1) // TPB
CH2 = (NB2 + TPB - 1) // TPB
MIN_THRESH = float(np.int32(LO).view(np.float32))
# sel slots
S_B1, S_ABOVE1, S_TOTAL, S_KTH, S_M, S_NLIST, S_ACC = 0, 1, 2, 3, 4, 5, 6
HEADER = 8  # int32 words before the detection rows in the output buffer
# compile-time limits of the module-level kernels (shared-memory sizes); the config is checked against them
T_MAX = 1024  # threads of the one-block tie gathering
RC = 32  # candidates ranked by one _rank_decode block (one a lane)
RS = 8  # comparand slices of one _rank_decode block (one a warp): RC * RS threads
RS_MAX = T_MAX // RC


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


@cuda.jit(device=True)
def _last_block(done):
    """True in every thread of the block that finished last (after a threadfence); resets the counter."""
    flag = cuda.shared.array(1, int32)
    cuda.threadfence()
    cuda.syncthreads()
    if cuda.threadIdx.x == 0:
        old = cuda.atomic.add(done, 0, 1)
        flag[0] = 1 if old == cuda.gridDim.x - 1 else 0
        if flag[0] == 1:
            done[0] = 0
    cuda.syncthreads()
    return flag[0] == 1


@cuda.jit(device=True, inline=True)
def _argmax(x, start, n):
    """(index of the largest of x[start:start+n], first on ties, as np.argmax; that value)."""
    best = 0
    top = x[start]
    for k in range(1, n):
        v = x[start + k]
        if v > top:
            top = v
            best = k
    return best, top


@cuda.jit(device=True)
def _drain_histogram(hist, bins, part, t, CH, NB):
    """Move a global histogram into the shared bins (zeroing it for the next scan); part[t] = this thread's sum."""
    acc = 0
    for q in range(CH):
        b = t * CH + q
        if b < NB:
            h = cuda.atomic.exch(hist, b, 0)
            bins[b] = h
            acc += h
    part[t] = acc
    cuda.syncthreads()


@cuda.jit(device=True)
def _bucket_of(part, bins, CH, NB, need):
    """(the bin holding the need-th largest entry, how many lie in higher bins), walking down from the top."""
    cum = 0
    q = TPB - 1
    while cum + part[q] < need:
        cum += part[q]
        q -= 1
    b = min(q * CH + CH, NB) - 1
    while cum + bins[b] < need:
        cum += bins[b]
        b -= 1
    return b, cum


@cuda.jit(cache=True)
def _scores_hist(cls_, num_pillars, NC, THR, K, scores_, labels_, hist1_, sel_, done_):
    b = cuda.blockIdx.y  # the batch item: each array below is its row of the batched one
    cls, scores, labels, hist1, sel, done = cls_[b], scores_[b], labels_[b], hist1_[b], sel_[b], done_[b]
    bins = cuda.shared.array(NB1, int32)
    part = cuda.shared.array(TPB, int32)
    cnt = cuda.shared.array(1, int32)
    a = cuda.grid(1)
    t = cuda.threadIdx.x
    A = scores.shape[0]
    if t == 0:
        cnt[0] = 0
    cuda.syncthreads()
    if a < A:
        s = float32(0.0)
        best = 0
        if num_pillars[b, 0] > 0:  # nothing in range: no detections (as the CPU pipeline)
            best, top = _argmax(cls, a * NC, NC)
            s = float32(1.0) / (float32(1.0) + fexp(-top))
        scores[a] = s
        labels[a] = best + 1
        if s >= THR:
            cuda.atomic.add(hist1, (f32_bits(s) - LO) >> SHIFT, 1)
            cuda.atomic.add(cnt, 0, 1)
    cuda.syncthreads()
    if t == 0 and cnt[0] > 0:
        cuda.atomic.add(sel, S_ACC, cnt[0])
    if _last_block(done):
        if t == 0:
            cnt[0] = cuda.atomic.exch(sel, S_ACC, 0)  # every block's count is in (threadfence in _last_block)
        cuda.syncthreads()
        total = cnt[0]
        if total > K:  # a selection is needed: drain the histogram (zeroing it) and find the K-th score's bucket
            _drain_histogram(hist1, bins, part, t, CH1, NB1)
            if t == 0:
                b1, cum = _bucket_of(part, bins, CH1, NB1, K)
                sel[S_B1] = b1
                sel[S_ABOVE1] = cum
        elif t == 0:  # every candidate is kept: no K-th score (_refine returns at once, _compact zeroes the bins)
            sel[S_B1] = -1
            sel[S_ABOVE1] = 0
            sel[S_KTH] = 0
            sel[S_M] = 0
        if t == 0:
            sel[S_TOTAL] = total


@cuda.jit(cache=True)
def _refine(scores_, THR, K, sel_, hist2_, done_):
    b = cuda.blockIdx.y
    scores, sel, hist2, done = scores_[b], sel_[b], hist2_[b], done_[b]
    bins = cuda.shared.array(NB2, int32)
    part = cuda.shared.array(TPB, int32)
    b1 = sel[S_B1]
    if b1 < 0:  # no more candidates than K (the usual case): the same in every block, so no block waits for another
        return
    a = cuda.grid(1)
    t = cuda.threadIdx.x
    A = scores.shape[0]
    if a < A:
        s = scores[a]
        if s >= THR:
            bits = f32_bits(s) - LO
            if (bits >> SHIFT) == b1:
                cuda.atomic.add(hist2, bits & (NB2 - 1), 1)
    if _last_block(done):
        _drain_histogram(hist2, bins, part, t, CH2, NB2)
        if t == 0:
            need = K - sel[S_ABOVE1]
            b2, cum = _bucket_of(part, bins, CH2, NB2, need)
            sel[S_KTH] = LO + (b1 << SHIFT) + b2
            sel[S_M] = need - cum


@cuda.jit(cache=True)
def _compact(scores_, THR, sel_, cand_, bitmap_, hist1_):
    b = cuda.blockIdx.y
    scores, sel, cand, bitmap, hist1 = scores_[b], sel_[b], cand_[b], bitmap_[b], hist1_[b]
    a = cuda.grid(1)
    if a < scores.shape[0]:
        s = scores[a]
        if s >= THR:
            bits = f32_bits(s)
            kth = sel[S_KTH]
            if bits > kth:
                pos = cuda.atomic.add(sel, S_NLIST, 1)
                cand[pos] = (int64(bits) << 32) | int64(0xFFFFFFFF - a)
            elif bits == kth:
                cuda.atomic.or_(bitmap, a >> 5, uint32(1) << uint32(a & 31))
            if sel[S_B1] < 0:  # the histogram was not drained: zero the bins this scan touched
                hist1[(bits - LO) >> SHIFT] = 0


@cuda.jit(cache=True)
def _gather_ties(sel_, cand_, bitmap_, nsel_):
    """One block: the first m candidates tied at the K-th score (by ascending anchor index, from the bitmap) join
    the list; nsel = list length. Resets the list counter and the bitmap for the next scan."""
    b = cuda.blockIdx.y
    sel, cand, bitmap, nsel = sel_[b], cand_[b], bitmap_[b], nsel_[b]
    part = cuda.shared.array(T_MAX, int32)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    W = bitmap.shape[0]
    CW = (W + T - 1) // T
    nlist = sel[S_NLIST]
    m = sel[S_M]
    kth = int64(sel[S_KTH])
    if m > 0:
        cnt = 0
        for q in range(CW):
            w = t * CW + q
            if w < W:
                cnt += cuda.popc(bitmap[w])
        part[t] = cnt
        cuda.syncthreads()
        if t == 0:
            acc = 0
            for q in range(T):
                c = part[q]
                part[q] = acc
                acc += c
        cuda.syncthreads()
        rank = part[t]
        for q in range(CW):
            w = t * CW + q
            if w < W:
                word = bitmap[w]
                bitmap[w] = uint32(0)
                for bit in range(32):
                    if (word >> uint32(bit)) & uint32(1):
                        if rank < m:
                            cand[nlist + rank] = (kth << 32) | int64(0xFFFFFFFF - (w * 32 + bit))
                        rank += 1
    cuda.syncthreads()
    if t == 0:
        nsel[0] = nlist + m
        sel[S_NLIST] = 0


@cuda.jit(cache=True)
def _rank_decode(nsel_, cand_, scores_, labels_, box_, dirc_, anchors, ND, DOFF, LOFF, PER, boxes_out_, scores_out_,
                 labels_out_, idx_out_):
    """Per candidate: its rank = how many keys are larger (keys are unique: score bits << 32 | ~index), so the
    order is score descending, ties by ascending anchor index, exactly as on the CPU; then the float32
    ResidualCoder decode + direction bin (unfused float32, as NumPy) into row `rank`. O(n^2) compares, spread
    over many small blocks: a block ranks RC candidates (one a lane) and each of its warps compares them with
    every RS-th key (one shared-memory broadcast a compare); the RS partial ranks are summed in shared memory."""
    b = cuda.blockIdx.y
    nsel, cand, scores, labels, box, dirc = nsel_[b], cand_[b], scores_[b], labels_[b], box_[b], dirc_[b]
    boxes_out, scores_out, labels_out, idx_out = boxes_out_[b], scores_out_[b], labels_out_[b], idx_out_[b]
    keys = cuda.shared.array(K_MAX, int64)
    part = cuda.shared.array((RS_MAX, RC), int32)
    t = cuda.threadIdx.x
    S = cuda.blockDim.x // RC  # comparand slices (warps) of this block
    n = nsel[0]
    base = cuda.blockIdx.x * RC
    if base >= n:  # the whole block: before any syncthreads
        return
    j = t
    while j < n:  # while loops: a range with a run-time step divides (64-bit) for its trip count
        keys[j] = cand[j]
        j += cuda.blockDim.x
    cuda.syncthreads()
    c = t % RC
    s = t // RC
    r0 = base + c
    key = keys[r0] if r0 < n else int64(-1)
    rank = 0
    if s < S:
        j = s
        while j < n:
            if keys[j] > key:
                rank += 1
            j += S
        part[s, c] = rank
    cuda.syncthreads()
    if t >= RC or r0 >= n:
        return
    for q in range(1, S):
        rank += part[q, c]
    r = rank
    idx = int64(0xFFFFFFFF) - (key & int64(0xFFFFFFFF))
    idx_out[r] = idx
    xa = anchors[idx, 0]
    ya = anchors[idx, 1]
    za = anchors[idx, 2]
    dxa = anchors[idx, 3]
    dya = anchors[idx, 4]
    dza = anchors[idx, 5]
    diag = math.sqrt(fadd(fmul(dxa, dxa), fmul(dya, dya)))
    boxes_out[r, 0] = fadd(fmul(box[idx * 7 + 0], diag), xa)
    boxes_out[r, 1] = fadd(fmul(box[idx * 7 + 1], diag), ya)
    boxes_out[r, 2] = fadd(fmul(box[idx * 7 + 2], dza), za)
    boxes_out[r, 3] = fexp(box[idx * 7 + 3]) * dxa
    boxes_out[r, 4] = fexp(box[idx * 7 + 4]) * dya
    boxes_out[r, 5] = fexp(box[idx * 7 + 5]) * dza
    yaw = box[idx * 7 + 6] + anchors[idx, 6]
    best, _ = _argmax(dirc, idx * ND, ND)
    v = yaw - DOFF
    fl = float32(math.floor(v / PER + LOFF))
    rot = fsub(v, fmul(fl, PER))
    boxes_out[r, 6] = fadd(rot + DOFF, fmul(PER, float32(best)))
    scores_out[r] = scores[idx]
    labels_out[r] = labels[idx]


@dataclass
class HeadViews:
    """Flat Numba views of a batch's NHWC head outputs ([B, A*NC], [B, A*7], [B, A*ND])."""

    cls: Any
    box: Any
    dir: Any


class GpuPostprocess:
    """Scores, top-K, decode and rotated NMS on the device for a batch of up to `batch` items, each launch one for
    the whole batch (blockIdx.y = item); every scratch buffer from ``alloc`` once, with a leading batch dimension.

    All seven launches have sizes fixed by the config (anchors, nms_pre) and the batch size; counts are read from
    device memory."""

    def __init__(self, cfg: PointPillarsConfig, alloc: Any, anchors: np.ndarray, batch: int = 1) -> None:
        if cfg.score_thresh < MIN_THRESH:
            raise UserError(f"the GPU post-processing needs score_thresh >= {MIN_THRESH} (2**-8), got {cfg.score_thresh}")
        if cfg.nms_pre > K_MAX or cfg.max_det > MAX_DET_GPU:
            raise UserError(f"the GPU post-processing supports nms_pre <= {K_MAX} and max_det <= {MAX_DET_GPU}; "
                            f"the config has {cfg.nms_pre} and {cfg.max_det}")
        self.cfg = cfg
        self.batch = B = int(batch)
        A = cfg.num_anchors
        K = cfg.nms_pre
        self.A, self.K = A, K
        f = np.float32
        self._thr = f(cfg.score_thresh)
        self._dir = (cfg.num_dir_bins, f(cfg.dir_offset), f(cfg.dir_limit_offset), f(2 * np.pi / cfg.num_dir_bins))
        self._nms_thresh = float(cfg.nms_thresh)
        self._sort_threads = min(T_MAX, max(1, _pow2(max(K, 2)) // 2))
        a = lambda shape, dtype, what: alloc.array((B, *shape), dtype, f"post_{what}")  # noqa: E731
        self.anchors = alloc.array((A, 7), np.float32, "post_anchors")
        self.anchors.copy_to_device(np.ascontiguousarray(anchors, np.float32))
        self.scores = a((A,), np.float32, "scores")
        self.labels = a((A,), np.int32, "labels")
        self.hist1 = a((NB1,), np.int32, "hist1")
        self.hist2 = a((NB2,), np.int32, "hist2")
        self.sel = a((8,), np.int32, "sel")
        self._done1 = a((1,), np.int32, "done1")
        self._done2 = a((1,), np.int32, "done2")
        self.cand = a((K,), np.int64, "cand")
        self.bitmap = a(((A + 31) // 32,), np.uint32, "bitmap")
        self.boxes = a((K, 7), np.float32, "sorted_boxes")
        self.sorted_scores = a((K,), np.float32, "sorted_scores")
        self.sorted_labels = a((K,), np.int32, "sorted_labels")
        self.sorted_idx = a((K,), np.int32, "sorted_idx")
        self.nsel = a((1,), np.int32, "nsel")
        nw = (K + NTILE - 1) // NTILE
        self.mask = a((K, nw), np.uint64, "nms_mask")

    def _batch(self, batch: int | None) -> int:
        batch = self.batch if batch is None else int(batch)
        if not 1 <= batch <= self.batch:
            raise ValueError(f"batch {batch} exceeds the post-processing buffers of {self.batch}")
        return batch

    def enqueue_candidates(self, heads: HeadViews, num_pillars: Any, stream: Any = 0, batch: int | None = None) -> None:
        """Launches 1-5: scores, top-K selection, sort and decode into boxes/sorted_scores/sorted_labels[b, :nsel]."""
        B = self._batch(batch)
        nb = ((self.A + TPB - 1) // TPB, B)
        nc = self.cfg.num_classes
        _scores_hist[nb, TPB, stream](heads.cls, num_pillars, nc, self._thr, self.K, self.scores, self.labels,
                                      self.hist1, self.sel, self._done1)
        _refine[nb, TPB, stream](self.scores, self._thr, self.K, self.sel, self.hist2, self._done2)
        _compact[nb, TPB, stream](self.scores, self._thr, self.sel, self.cand, self.bitmap, self.hist1)
        _gather_ties[(1, B), self._sort_threads, stream](self.sel, self.cand, self.bitmap, self.nsel)
        _rank_decode[((self.K + RC - 1) // RC, B), RC * RS, stream](
            self.nsel, self.cand, self.scores, self.labels, heads.box, heads.dir, self.anchors, *self._dir,
            self.boxes, self.sorted_scores, self.sorted_labels, self.sorted_idx)

    def enqueue_nms(self, num_pillars: Any, vstats: Any, header: Any, dets: Any, stream: Any = 0,
                    batch: int | None = None) -> None:
        """Launches 6-7: IoU bitmask and the greedy pass writing header[b, 0] = count (+ counters) and dets[b]."""
        B = self._batch(batch)
        _nms_mask[(mask_blocks(self.K, B), B), MASK_THREADS, stream](self.nsel, self.boxes, self._nms_thresh,
                                                                    self.mask)
        _nms_greedy[(1, B), GREEDY_THREADS, stream](self.nsel, self.mask, self.boxes, self.sorted_scores,
                                                    self.sorted_labels, num_pillars, vstats, self.cfg.max_det,
                                                    header, dets)

    def enqueue(self, heads: HeadViews, num_pillars: Any, vstats: Any, header: Any, dets: Any, stream: Any = 0,
                batch: int | None = None) -> None:
        """All seven launches for the first `batch` items (all by default): num_pillars [B, 2], vstats [B, 8],
        header [B, HEADER] int32, dets [B, max_det, 9]."""
        self.enqueue_candidates(heads, num_pillars, stream, batch)
        self.enqueue_nms(num_pillars, vstats, header, dets, stream, batch)
