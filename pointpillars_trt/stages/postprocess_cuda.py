"""Head outputs -> detections on the GPU (Numba CUDA), the same semantics as postprocess.py, six launches.

1. scores: sigmoid of the max logit + label per anchor; histogram of the float
   bits of candidates (score >= thresh) on their high bits; the last block to
   finish picks the bucket that holds the K-th best score.
2. refine: histogram of the low bits inside that bucket; the last block gets
   the exact K-th score and how many ties at it are to be kept (m).
3. compact: candidates above the K-th score go to a list (any order); ties go
   to a bitmap by anchor index.
4. sort + decode (one block): the first m ties in index order join the list;
   a bitonic sort by key (score bits << 32 | ~index) gives exactly the CPU
   order (score descending, ties by ascending anchor index); then float32
   ResidualCoder decode + direction bins (unfused float32 as NumPy).
5. NMS mask: pairwise rotated BEV IoU > thresh bits, 64x64 tiles.
6. greedy (one block): walk the mask in score order, keep <= max_det, write
   rows (x, y, z, dx, dy, dz, yaw, score, label) + counts into the output buffer.
Scores >= 2**-8 only (the histogram covers float bits from 0x3B800000 up).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda, float32, float64, int32, int64, uint32, uint64

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError
from pointpillars_trt.stages.cuda_fp import f32_bits, fadd, fexp, fmul, fsub
from pointpillars_trt.stages.rotated_iou_cuda import bev_iou_dev

TPB = 256
LO = 0x3B800000  # float bits of 2**-8: the lowest score the histograms cover
SHIFT = 13
NB1 = ((0x3F800000 - LO) >> SHIFT) + 1  # 8193 high-bit buckets up to 1.0
NB2 = 1 << SHIFT
CH1 = (NB1 + TPB - 1) // TPB
CH2 = (NB2 + TPB - 1) // TPB
MIN_THRESH = float(np.int32(LO).view(np.float32))
# sel slots
S_B1, S_ABOVE1, S_TOTAL, S_KTH, S_M, S_NLIST = 0, 1, 2, 3, 4, 5
NTILE = 64
HEADER = 8  # int32 words before the detection rows in the output buffer


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


@functools.lru_cache(maxsize=None)
def _kernels(A: int, NC: int, ND: int, K: int, max_det: int, thresh: float, nms_thresh: float,
             dir_offset: float, dir_limit_offset: float, period: float):
    THR = np.float32(thresh)
    DOFF = np.float32(dir_offset)
    LOFF = np.float32(dir_limit_offset)
    PER = np.float32(period)
    S = _pow2(max(K, 2))
    T = min(1024, S // 2)
    W = (A + 31) // 32
    CW = (W + T - 1) // T
    NW = (K + NTILE - 1) // NTILE

    @cuda.jit
    def scores_hist(cls, num_pillars, scores, labels, hist1, sel, done):
        bins = cuda.shared.array(NB1, int32)
        part = cuda.shared.array(TPB, int32)
        a = cuda.grid(1)
        t = cuda.threadIdx.x
        if a < A:
            s = float32(0.0)
            best = 0
            if num_pillars[0] > 0:  # nothing in range: no detections (as the CPU pipeline)
                top = cls[a * NC]
                for k in range(1, NC):
                    v = cls[a * NC + k]
                    if v > top:
                        top = v
                        best = k
                s = float32(1.0) / (float32(1.0) + fexp(-top))
            scores[a] = s
            labels[a] = best + 1
            if s >= THR:
                cuda.atomic.add(hist1, (f32_bits(s) - LO) >> SHIFT, 1)
        if _last_block(done):
            acc = 0
            for q in range(CH1):
                b = t * CH1 + q
                if b < NB1:
                    h = cuda.atomic.exch(hist1, b, 0)
                    bins[b] = h
                    acc += h
            part[t] = acc
            cuda.syncthreads()
            if t == 0:
                total = 0
                for q in range(TPB):
                    total += part[q]
                sel[S_TOTAL] = total
                sel[S_B1] = -1
                sel[S_ABOVE1] = 0
                if total > K:
                    cum = 0
                    q = TPB - 1
                    while cum + part[q] < K:
                        cum += part[q]
                        q -= 1
                    b = min(q * CH1 + CH1, NB1) - 1
                    while cum + bins[b] < K:
                        cum += bins[b]
                        b -= 1
                    sel[S_B1] = b
                    sel[S_ABOVE1] = cum

    @cuda.jit
    def refine(scores, sel, hist2, done):
        bins = cuda.shared.array(NB2, int32)
        part = cuda.shared.array(TPB, int32)
        a = cuda.grid(1)
        t = cuda.threadIdx.x
        b1 = sel[S_B1]
        if a < A and b1 >= 0:
            s = scores[a]
            if s >= THR:
                bits = f32_bits(s) - LO
                if (bits >> SHIFT) == b1:
                    cuda.atomic.add(hist2, bits & (NB2 - 1), 1)
        if _last_block(done):
            acc = 0
            for q in range(CH2):
                b = t * CH2 + q
                if b < NB2:
                    h = cuda.atomic.exch(hist2, b, 0)
                    bins[b] = h
                    acc += h
            part[t] = acc
            cuda.syncthreads()
            if t == 0:
                sel[S_KTH] = 0
                sel[S_M] = 0
                if b1 >= 0:
                    need = K - sel[S_ABOVE1]
                    cum = 0
                    q = TPB - 1
                    while cum + part[q] < need:
                        cum += part[q]
                        q -= 1
                    b = min(q * CH2 + CH2, NB2) - 1
                    while cum + bins[b] < need:
                        cum += bins[b]
                        b -= 1
                    sel[S_KTH] = LO + (b1 << SHIFT) + b
                    sel[S_M] = need - cum

    @cuda.jit
    def compact(scores, sel, cand, bitmap):
        a = cuda.grid(1)
        if a < A:
            s = scores[a]
            if s >= THR:
                bits = f32_bits(s)
                kth = sel[S_KTH]
                if bits > kth:
                    pos = cuda.atomic.add(sel, S_NLIST, 1)
                    cand[pos] = (int64(bits) << 32) | int64(0xFFFFFFFF - a)
                elif bits == kth:
                    cuda.atomic.or_(bitmap, a >> 5, uint32(1) << uint32(a & 31))

    @cuda.jit
    def sort_decode(sel, cand, bitmap, scores, labels, box, dirc, anchors, boxes_out, scores_out, labels_out, idx_out,
                    nsel):
        keys = cuda.shared.array(S, int64)
        part = cuda.shared.array(T, int32)
        t = cuda.threadIdx.x
        nlist = sel[S_NLIST]
        m = sel[S_M]
        kth = int64(sel[S_KTH])
        for r in range(t, S, T):
            keys[r] = cand[r] if r < nlist else int64(-1)
        if m > 0:  # the first m ties, by ascending anchor index, from the bitmap
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
                                keys[nlist + rank] = (kth << 32) | int64(0xFFFFFFFF - (w * 32 + bit))
                            rank += 1
        cuda.syncthreads()
        n = nlist + m
        # bitonic sort, descending
        k = 2
        while k <= S:
            j = k // 2
            while j > 0:
                for i in range(t, S, T):
                    ixj = i ^ j
                    if ixj > i:
                        x = keys[i]
                        y = keys[ixj]
                        if ((i & k) == 0 and x < y) or ((i & k) != 0 and x > y):
                            keys[i] = y
                            keys[ixj] = x
                cuda.syncthreads()
                j //= 2
            k *= 2
        for r in range(t, n, T):
            idx = int64(0xFFFFFFFF) - (keys[r] & int64(0xFFFFFFFF))
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
            best = 0
            top = dirc[idx * ND]
            for q in range(1, ND):
                v = dirc[idx * ND + q]
                if v > top:
                    top = v
                    best = q
            v = yaw - DOFF
            fl = float32(math.floor(v / PER + LOFF))
            rot = fsub(v, fmul(fl, PER))
            boxes_out[r, 6] = fadd(rot + DOFF, fmul(PER, float32(best)))
            scores_out[r] = scores[idx]
            labels_out[r] = labels[idx]
        if t == 0:
            nsel[0] = n
            sel[S_NLIST] = 0

    @cuda.jit
    def nms_mask(nsel, boxes, mask):
        sh = cuda.shared.array((NTILE, 5), float64)
        rb = cuda.blockIdx.x
        cb = cuda.blockIdx.y
        t = cuda.threadIdx.x
        n = nsel[0]
        if cb < rb or rb * NTILE >= n or cb * NTILE >= n:
            return
        j = cb * NTILE + t
        if j < n:
            sh[t, 0] = float64(boxes[j, 0])
            sh[t, 1] = float64(boxes[j, 1])
            sh[t, 2] = float64(boxes[j, 3])
            sh[t, 3] = float64(boxes[j, 4])
            sh[t, 4] = float64(boxes[j, 6])
        cuda.syncthreads()
        i = rb * NTILE + t
        if i < n:
            x = float64(boxes[i, 0])
            y = float64(boxes[i, 1])
            dx = float64(boxes[i, 3])
            dy = float64(boxes[i, 4])
            yaw = float64(boxes[i, 6])
            bits = uint64(0)
            for q in range(NTILE):
                j = cb * NTILE + q
                if j > i and j < n:
                    if bev_iou_dev(x, y, dx, dy, yaw, sh[q, 0], sh[q, 1], sh[q, 2], sh[q, 3], sh[q, 4]) > nms_thresh:
                        bits |= uint64(1) << uint64(q)
            mask[i, cb] = bits

    @cuda.jit
    def nms_greedy(nsel, mask, boxes, scores_s, labels_s, num_pillars, vstats, header, dets):
        removed = cuda.shared.array(NW, uint64)
        keep = cuda.shared.array(max_det, int32)
        state = cuda.shared.array(2, int32)
        t = cuda.threadIdx.x
        n = nsel[0]
        nwords = (n + NTILE - 1) // NTILE
        for w in range(t, NW, NTILE):
            removed[w] = uint64(0)
        if t == 0:
            state[0] = 0
            state[1] = 0
        cuda.syncthreads()
        for c in range(nwords):
            if t == 0:
                nk = state[0]
                state[1] = nk
                for b in range(NTILE):
                    i = c * NTILE + b
                    if i >= n or nk >= max_det:
                        break
                    if ((removed[c] >> uint64(b)) & uint64(1)) == uint64(0):
                        keep[nk] = i
                        nk += 1
                        removed[c] |= mask[i, c]
                state[0] = nk
            cuda.syncthreads()
            nk = state[0]
            start = state[1]
            if nk >= max_det:
                break
            w = c + 1 + t
            while w < nwords:
                acc = removed[w]
                for r in range(start, nk):
                    acc |= mask[keep[r], w]
                removed[w] = acc
                w += NTILE
            cuda.syncthreads()
        nk = state[0]
        for r in range(t, nk, NTILE):
            i = keep[r]
            for q in range(7):
                dets[r, q] = boxes[i, q]
            dets[r, 7] = scores_s[i]
            dets[r, 8] = float32(labels_s[i])
        if t == 0:
            header[0] = nk
            header[1] = num_pillars[0]
            for q in range(4):
                header[2 + q] = vstats[q]

    return scores_hist, refine, compact, sort_decode, nms_mask, nms_greedy, S, T, NW


@dataclass
class HeadViews:
    """Flat Numba views of one batch item's NHWC head outputs ([A*NC], [A*7], [A*ND])."""

    cls: Any
    box: Any
    dir: Any


class GpuPostprocess:
    """Scores, top-K, decode and rotated NMS on the device; every scratch buffer from ``alloc`` once."""

    def __init__(self, cfg: PointPillarsConfig, alloc: Any, anchors: np.ndarray) -> None:
        if cfg.score_thresh < MIN_THRESH:
            raise UserError(f"the GPU post-processing needs score_thresh >= {MIN_THRESH} (2**-8), got {cfg.score_thresh}")
        self.cfg = cfg
        A = cfg.num_anchors
        self.A, K = A, cfg.nms_pre
        self.k = _kernels(A, cfg.num_classes, cfg.num_dir_bins, K, cfg.max_det, float(cfg.score_thresh),
                          float(cfg.nms_thresh), float(cfg.dir_offset), float(cfg.dir_limit_offset),
                          float(2 * np.pi / cfg.num_dir_bins))
        self.anchors = alloc.array((A, 7), np.float32, "anchors")
        self.anchors.copy_to_device(np.ascontiguousarray(anchors, np.float32))
        self.scores = alloc.array((A,), np.float32, "scores")
        self.labels = alloc.array((A,), np.int32, "labels")
        self.hist1 = alloc.array((NB1,), np.int32, "hist1")
        self.hist2 = alloc.array((NB2,), np.int32, "hist2")
        self.sel = alloc.array((8,), np.int32, "sel")
        self.done = alloc.array((2,), np.int32, "done")
        self._done1, self._done2 = self.done[0:1], self.done[1:2]
        self.cand = alloc.array((K,), np.int64, "cand")
        self.bitmap = alloc.array(((A + 31) // 32,), np.uint32, "bitmap")
        self.boxes = alloc.array((K, 7), np.float32, "sorted_boxes")
        self.sorted_scores = alloc.array((K,), np.float32, "sorted_scores")
        self.sorted_labels = alloc.array((K,), np.int32, "sorted_labels")
        self.sorted_idx = alloc.array((K,), np.int32, "sorted_idx")
        self.nsel = alloc.array((1,), np.int32, "nsel")
        nw = (K + NTILE - 1) // NTILE
        self.mask = alloc.array((K, nw), np.uint64, "nms_mask")

    def enqueue_candidates(self, heads: HeadViews, num_pillars: Any, stream: Any = 0) -> None:
        """Launches 1-4: scores, top-K selection, sort and decode into boxes/sorted_scores/sorted_labels[:nsel]."""
        scores_hist, refine, compact, sort_decode, _, _, S, T, _ = self.k
        nb = (self.A + TPB - 1) // TPB
        scores_hist[nb, TPB, stream](heads.cls, num_pillars, self.scores, self.labels, self.hist1, self.sel, self._done1)
        refine[nb, TPB, stream](self.scores, self.sel, self.hist2, self._done2)
        compact[nb, TPB, stream](self.scores, self.sel, self.cand, self.bitmap)
        sort_decode[1, T, stream](self.sel, self.cand, self.bitmap, self.scores, self.labels, heads.box, heads.dir,
                                  self.anchors, self.boxes, self.sorted_scores, self.sorted_labels, self.sorted_idx,
                                  self.nsel)

    def enqueue_nms(self, num_pillars: Any, vstats: Any, header: Any, dets: Any, stream: Any = 0) -> None:
        """Launches 5-6: IoU bitmask and the greedy pass writing header[0]=count (+ counters) and dets rows."""
        _, _, _, _, nms_mask, nms_greedy, _, _, nw = self.k
        nms_mask[(nw, nw), NTILE, stream](self.nsel, self.boxes, self.mask)
        nms_greedy[1, NTILE, stream](self.nsel, self.mask, self.boxes, self.sorted_scores, self.sorted_labels,
                                     num_pillars, vstats, header, dets)

    def enqueue(self, heads: HeadViews, num_pillars: Any, vstats: Any, header: Any, dets: Any, stream: Any = 0) -> None:
        """All six launches."""
        self.enqueue_candidates(heads, num_pillars, stream)
        self.enqueue_nms(num_pillars, vstats, header, dets, stream)
