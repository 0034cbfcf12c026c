"""Rotated BEV NMS on the GPU (Numba CUDA), the last two launches of postprocess_cuda: a pairwise IoU bitmask in
64 x 64 tiles, then one block's greedy walk in score order. Same float64 IoU as rotated_iou.py, same greedy rule as
postprocess.py (suppress when IoU > thresh, keep at most max_det); counts are read from device memory.
"""
from __future__ import annotations

from numba import cuda, float32, float64, int32, uint64

from pointpillars_trt.stages.rotated_iou_cuda import box_geometry, iou_from_corners

NTILE = 64
PAIRS_MAX = NTILE * NTILE  # candidate pairs of one tile (a compile-time constant for shared memory)
K_MAX = 4096  # nms_pre the kernels are compiled for
NW_MAX = (K_MAX + NTILE - 1) // NTILE  # 64-bit words of one mask row
MAX_DET_GPU = 1024


@cuda.jit(cache=True)
def _nms_mask(nsel, boxes, nms_thresh, mask):
    """One 64 x 64 tile of the upper triangle: bit q of mask[i, cb] = IoU(i, cb*64+q) > thresh, j > i.

    Corners, circumradii, areas and axis-aligned bounds are computed once per box. Pass 1 (one thread per row)
    rejects pairs whose circumcircles or bounds do not meet (their intersection is empty: IoU 0, exactly as the
    clipping would give) and lists the others in shared memory; pass 2 clips the listed pairs with every thread
    busy, so a warp no longer runs the polygon clipping for one lane while 31 wait (the cost that dominated)."""
    sh = cuda.shared.array((NTILE, 8), float64)  # x, y, circumradius, area, xmin, xmax, ymin, ymax
    shc = cuda.shared.array((NTILE, 4, 2), float64)
    rc = cuda.shared.array((NTILE, 4, 2), float64)
    rg = cuda.shared.array((NTILE, 8), float64)
    pairs = cuda.shared.array(PAIRS_MAX, int32)
    bits = cuda.shared.array(NTILE, uint64)
    npairs = cuda.shared.array(1, int32)
    rb = cuda.blockIdx.x
    cb = cuda.blockIdx.y
    t = cuda.threadIdx.x
    n = nsel[0]
    if cb < rb or rb * NTILE >= n or cb * NTILE >= n:
        return
    for side in range(2):  # columns into (sh, shc), rows into (rg, rc)
        j = (cb if side == 0 else rb) * NTILE + t
        g = sh if side == 0 else rg
        c = shc if side == 0 else rc
        if j < n:
            x = float64(boxes[j, 0])
            y = float64(boxes[j, 1])
            r, area = box_geometry(x, y, float64(boxes[j, 3]), float64(boxes[j, 4]), float64(boxes[j, 6]), c[t])
            g[t, 0] = x
            g[t, 1] = y
            g[t, 2] = r
            g[t, 3] = area
            g[t, 4] = min(min(c[t, 0, 0], c[t, 1, 0]), min(c[t, 2, 0], c[t, 3, 0]))
            g[t, 5] = max(max(c[t, 0, 0], c[t, 1, 0]), max(c[t, 2, 0], c[t, 3, 0]))
            g[t, 6] = min(min(c[t, 0, 1], c[t, 1, 1]), min(c[t, 2, 1], c[t, 3, 1]))
            g[t, 7] = max(max(c[t, 0, 1], c[t, 1, 1]), max(c[t, 2, 1], c[t, 3, 1]))
    bits[t] = uint64(0)
    if t == 0:
        npairs[0] = 0
    cuda.syncthreads()
    i = rb * NTILE + t
    if i < n:
        q0 = t + 1 if cb == rb else 0
        for q in range(q0, NTILE):
            if cb * NTILE + q < n:
                ddx = rg[t, 0] - sh[q, 0]
                ddy = rg[t, 1] - sh[q, 1]
                rr = rg[t, 2] + sh[q, 2]
                if ddx * ddx + ddy * ddy <= rr * rr and rg[t, 4] <= sh[q, 5] and sh[q, 4] <= rg[t, 5] \
                        and rg[t, 6] <= sh[q, 7] and sh[q, 6] <= rg[t, 7]:
                    k = cuda.atomic.add(npairs, 0, 1)
                    pairs[k] = t * NTILE + q
    cuda.syncthreads()
    for k in range(t, npairs[0], NTILE):
        r = pairs[k] // NTILE
        q = pairs[k] - r * NTILE
        if iou_from_corners(rc[r], rg[r, 0], rg[r, 1], rg[r, 2], rg[r, 3],
                            shc[q], sh[q, 0], sh[q, 1], sh[q, 2], sh[q, 3]) > nms_thresh:
            cuda.atomic.or_(bits, r, uint64(1) << uint64(q))
    cuda.syncthreads()
    if i < n:
        mask[i, cb] = bits[t]


@cuda.jit(cache=True)
def _nms_greedy(nsel, mask, boxes, scores_s, labels_s, num_pillars, vstats, max_det, header, dets):
    """One block: walk the candidates in score order, keep those no kept box suppresses (at most max_det); the
    diagonal word of each 64-candidate chunk is staged in shared memory so the serial walk never waits on DRAM."""
    removed = cuda.shared.array(NW_MAX, uint64)
    keep = cuda.shared.array(MAX_DET_GPU, int32)
    diag = cuda.shared.array(NTILE, uint64)
    NW = mask.shape[1]
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
        i = c * NTILE + t
        diag[t] = mask[i, c] if i < n else uint64(0)
        cuda.syncthreads()
        if t == 0:
            nk = state[0]
            state[1] = nk
            rem = removed[c]
            for b in range(NTILE):
                i = c * NTILE + b
                if i >= n or nk >= max_det:
                    break
                if ((rem >> uint64(b)) & uint64(1)) == uint64(0):
                    keep[nk] = i
                    nk += 1
                    rem |= diag[b]
            removed[c] = rem
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
