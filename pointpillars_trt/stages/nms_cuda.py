"""Rotated BEV NMS on the GPU (Numba CUDA), the last two launches of postprocess_cuda: a pairwise IoU bitmask in
64 x 64 tiles cut into row slabs, then one block's greedy walk in score order; blockIdx.y is the batch item. Same float64 IoU as rotated_iou.py,
same greedy rule as postprocess.py (suppress when IoU > thresh, keep at most max_det); counts are read from device
memory, so the launch sizes depend on the config only (graph-safe).
"""
from __future__ import annotations

from numba import cuda, float32, float64, int16, int32, uint64

from pointpillars_trt.launch import bounded_blocks
from pointpillars_trt.stages.rotated_iou_cuda import box_geometry, iou_from_corners

NTILE = 64
K_MAX = 4096  # nms_pre the kernels are compiled for
NW_MAX = (K_MAX + NTILE - 1) // NTILE  # 64-bit words of one mask row
MAX_DET_GPU = 1024
PAIRS_MAX = NTILE * NTILE  # candidate pairs of one tile (a compile-time constant for shared memory)
LG_NSLAB_MAX = 3  # a tile is cut into up to 8 row slabs (work items) when there are few tiles
NSLAB_MAX = 1 << LG_NSLAB_MAX
MASK_THREADS = 128
MASK_BLOCKS = 640  # the mask grid: about the blocks of MASK_THREADS an H200 holds at once (132 SMs x 5)
MASK_BLOCKS_MIN = 48  # ... per batch item, at least
CROWS = 2 * NTILE  # candidates of one greedy chunk (two mask words)
NCHUNK_MAX1 = NW_MAX // 2 + 1
GREEDY_THREADS = 512  # warp 0 walks; 15 warps OR and stage (more threads: fewer serial loads each)


def mask_blocks(nms_pre: int, batch: int = 1) -> int:
    """Blocks of the mask launch per batch item: MASK_BLOCKS shared between the items (at least MASK_BLOCKS_MIN
    each), or fewer when the largest n has fewer work items."""
    m = (nms_pre + NTILE - 1) // NTILE
    return bounded_blocks(m * (m + 1) // 2 * NSLAB_MAX, batch, MASK_BLOCKS, MASK_BLOCKS_MIN)


@cuda.jit(cache=True)
def _nms_mask(nsel_, boxes_, nms_thresh, mask_):
    """Bit q of mask[i, cb] = IoU(i, cb*64+q) > thresh for j = cb*64+q > i, on the upper triangle of 64 x 64 tiles
    below n. A work item is a slab of a tile's rows: the tiles are cut into the most slabs (8, 4, 2 or 1) that
    still leave at most one item per block, so a few dense tiles (small n) spread over many blocks while many
    tiles (large n) are not cut (each cut recomputes the columns' geometry). Items are numbered diagonal tiles
    first (the densest: neighbours in score order overlap most) and taken in a grid-stride loop.

    Per item: the corners, circumradii, areas and axis-aligned bounds of the 64 column boxes and the slab's rows
    (at once, by different threads); pass 1 (the item's pairs spread over all threads) rejects pairs whose
    circumcircles or bounds do not meet (their intersection is empty: IoU 0, exactly as the clipping would give)
    and lists the others in shared memory; pass 2 clips the listed pairs with every thread busy (the float64
    clipping of one pair is long and serial). Per-box quantities are stored one row per quantity (g[k, box]), so
    a warp reads consecutive words."""
    bi = cuda.blockIdx.y  # the batch item
    nsel, boxes, mask = nsel_[bi], boxes_[bi], mask_[bi]
    sh = cuda.shared.array((8, NTILE), float64)  # columns: x, y, circumradius, area, xmin, xmax, ymin, ymax
    shc = cuda.shared.array((NTILE, 4, 2), float64)
    rg = cuda.shared.array((8, NTILE), float64)  # the same for the slab's rows
    rc = cuda.shared.array((NTILE, 4, 2), float64)
    pairs = cuda.shared.array(PAIRS_MAX, int16)
    bits = cuda.shared.array(NTILE, uint64)
    npairs = cuda.shared.array(1, int32)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    n = nsel[0]
    m = (n + NTILE - 1) // NTILE
    ntiles = m * (m + 1) // 2
    lg = LG_NSLAB_MAX  # log2 of the slabs a tile is cut into
    while lg > 0 and ntiles << lg > cuda.gridDim.x:
        lg -= 1
    srows = NTILE >> lg
    it = cuda.blockIdx.x
    while it < ntiles << lg:  # grid-stride, the same trips in every thread (while loops: no 64-bit divisions)
        tt = it >> lg
        r0 = (it - (tt << lg)) * srows  # first row of the slab in its tile
        it += cuda.gridDim.x
        d = 0
        while tt >= m - d:  # tile tt of diagonal d
            tt -= m - d
            d += 1
        rb = tt
        cb = tt + d
        nr = min(srows, n - rb * NTILE - r0)  # rows of the slab and columns of the tile below n
        nq = min(NTILE, n - cb * NTILE)
        if nr <= 0:  # the whole block
            continue
        u = t
        while u < NTILE + srows:  # u < 64: column u into (sh, shc); else slab row u - 64 into (rg, rc)
            side = 0 if u < NTILE else 1
            v = u - side * NTILE
            j = cb * NTILE + v if side == 0 else rb * NTILE + r0 + v
            g = sh if side == 0 else rg
            c = shc if side == 0 else rc
            if (v < nq) if side == 0 else (v < nr):
                x = float64(boxes[j, 0])
                y = float64(boxes[j, 1])
                r, area = box_geometry(x, y, float64(boxes[j, 3]), float64(boxes[j, 4]), float64(boxes[j, 6]), c[v])
                g[0, v] = x
                g[1, v] = y
                g[2, v] = r
                g[3, v] = area
                g[4, v] = min(min(c[v, 0, 0], c[v, 1, 0]), min(c[v, 2, 0], c[v, 3, 0]))
                g[5, v] = max(max(c[v, 0, 0], c[v, 1, 0]), max(c[v, 2, 0], c[v, 3, 0]))
                g[6, v] = min(min(c[v, 0, 1], c[v, 1, 1]), min(c[v, 2, 1], c[v, 3, 1]))
                g[7, v] = max(max(c[v, 0, 1], c[v, 1, 1]), max(c[v, 2, 1], c[v, 3, 1]))
            u += T
        u = t
        while u < srows:
            bits[u] = uint64(0)
            u += T
        if t == 0:
            npairs[0] = 0
        cuda.syncthreads()
        p = t
        while p < srows * NTILE:  # p = slab row * 64 + column: a warp takes one row and 32 columns
            r = p // NTILE
            q = p - r * NTILE
            if r < nr and q < nq and (d > 0 or q > r0 + r):
                ddx = rg[0, r] - sh[0, q]
                ddy = rg[1, r] - sh[1, q]
                rr = rg[2, r] + sh[2, q]
                if ddx * ddx + ddy * ddy <= rr * rr and rg[4, r] <= sh[5, q] and sh[4, q] <= rg[5, r] \
                        and rg[6, r] <= sh[7, q] and sh[6, q] <= rg[7, r]:
                    k = cuda.atomic.add(npairs, 0, 1)
                    pairs[k] = p
            p += T
        cuda.syncthreads()
        k = t
        while k < npairs[0]:
            r = pairs[k] // NTILE
            q = pairs[k] - r * NTILE
            if iou_from_corners(rc[r], rg[0, r], rg[1, r], rg[2, r], rg[3, r],
                                shc[q], sh[0, q], sh[1, q], sh[2, q], sh[3, q]) > nms_thresh:
                cuda.atomic.or_(bits, r, uint64(1) << uint64(q))
            k += T
        cuda.syncthreads()
        u = t
        while u < nr:
            mask[rb * NTILE + r0 + u, cb] = bits[u]
            u += T
        cuda.syncthreads()  # before the next item overwrites the shared arrays


@cuda.jit(device=True, inline=True)
def _stage(mask, n, nwords, C, buf, u0, step):
    """Chunk C's 128 rows into buf[row, k] = mask word 2C + k (k = 0, 1: the chunk's own words, upper triangle
    only; k = 2, 3: the next chunk's), 0 past n or the last word, spread over threads u0 + step * j."""
    u = u0
    while u < 4 * CROWS:
        row = u >> 2
        k = u & 3
        i = C * CROWS + row
        w = 2 * C + k
        buf[row, k] = mask[i, w] if (i < n and w < nwords and k >= row >> 6) else uint64(0)
        u += step


@cuda.jit(cache=True)
def _nms_greedy(nsel_, mask_, boxes_, scores_s_, labels_s_, num_pillars_, vstats_, max_det, header_, dets_):
    """One block: walk the candidates in score order, keep those no kept box suppresses (at most max_det).

    One block barrier per chunk of 128 candidates (two mask words). Thread 0 walks chunk C from one candidate
    neither removed nor passed to the next (lowest set bit: suppressed ones cost nothing), ORing each keeper's
    words of the chunk (staged in shared memory) into registers, and its words of chunk C+1 (staged too) into
    carries it ORs into removed[] at the end. Meanwhile warps 1.. OR the rows of chunk C-1's keepers into the
    words of chunks >= C+1 (flattened (keeper, word) pairs, shared atomics) and stage chunk C+1's rows: a
    chunk's global loads overlap the walk of the one before, and removed[] holds every earlier keeper's bits
    when a chunk's walk starts. While loops throughout: a range with a step known only at run time divides
    (64-bit, a long subroutine) for its trip count."""
    bi = cuda.blockIdx.y  # the batch item
    nsel, mask, boxes, scores_s, labels_s = nsel_[bi], mask_[bi], boxes_[bi], scores_s_[bi], labels_s_[bi]
    num_pillars, vstats, header, dets = num_pillars_[bi], vstats_[bi], header_[bi], dets_[bi]
    removed = cuda.shared.array(NW_MAX, uint64)
    keep = cuda.shared.array(MAX_DET_GPU, int32)
    kstart = cuda.shared.array(NCHUNK_MAX1, int32)  # kstart[C]: keepers before chunk C
    staged = cuda.shared.array((2, CROWS, 4), uint64)  # double-buffered by chunk parity
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    B0 = 32 if T > 32 else 0  # the first thread of the loads; a block of one warp does them after the walk
    n = nsel[0]
    nwords = (n + NTILE - 1) // NTILE
    u = t
    while u < NW_MAX:
        removed[u] = uint64(0)
        u += T
    _stage(mask, n, nwords, 0, staged[0], t, T)
    if t == 0:
        kstart[0] = 0
    cuda.syncthreads()
    nk = 0
    for C in range((nwords + 1) >> 1):
        par = C & 1
        if t == 0:
            nk = kstart[C]
            sb = staged[par]
            w0 = 2 * C
            rem0 = removed[w0]
            rem1 = removed[w0 + 1]
            c0 = uint64(0)
            c1 = uint64(0)
            left = n - w0 * NTILE  # candidates of word w0 below n (>= 1)
            valid = ~uint64(0) if left >= NTILE else (uint64(1) << uint64(left)) - uint64(1)
            todo = ~rem0 & valid
            while todo != uint64(0) and nk < max_det:
                low = todo & (~todo + uint64(1))  # the lowest candidate neither removed nor passed
                b = int32(cuda.popc(low - uint64(1)))
                keep[nk] = w0 * NTILE + b
                nk += 1
                rem0 |= sb[b, 0]  # bits above b only (upper triangle)
                rem1 |= sb[b, 1]
                c0 |= sb[b, 2]
                c1 |= sb[b, 3]
                todo = ~rem0 & valid & ~(low | (low - uint64(1)))  # above b
            left -= NTILE  # the chunk's second word
            valid = uint64(0) if left <= 0 else (~uint64(0) if left >= NTILE else
                                                  (uint64(1) << uint64(left)) - uint64(1))
            todo = ~rem1 & valid
            while todo != uint64(0) and nk < max_det:
                low = todo & (~todo + uint64(1))
                b = int32(cuda.popc(low - uint64(1)))
                keep[nk] = w0 * NTILE + NTILE + b
                nk += 1
                rem1 |= sb[NTILE + b, 1]
                c0 |= sb[NTILE + b, 2]
                c1 |= sb[NTILE + b, 3]
                todo = ~rem1 & valid & ~(low | (low - uint64(1)))
            if c0 != uint64(0):  # nonzero only below the last word; warps 1.. OR into these words concurrently
                cuda.atomic.or_(removed, w0 + 2, c0)
            if c1 != uint64(0):
                cuda.atomic.or_(removed, w0 + 3, c1)
            kstart[C + 1] = nk
        if t >= B0:  # warps 1..: chunk C-1's keepers into the words of chunks >= C+1; chunk C+1 into shared memory
            k0 = kstart[C - 1] if C > 0 else 0
            wn = 2 * C + 2
            p = t - B0  # p = keeper * 64 + word offset (shifts, no division; offsets past the last word idle)
            pend = (kstart[C] - k0) * NTILE
            while p < pend:
                w = wn + (p & (NTILE - 1))
                if w < nwords:
                    v = mask[keep[k0 + (p >> 6)], w]
                    if v != uint64(0):
                        cuda.atomic.or_(removed, w, v)
                p += T - B0
            if wn < nwords:
                _stage(mask, n, nwords, C + 1, staged[1 - par], t - B0, T - B0)
        cuda.syncthreads()
        nk = kstart[C + 1]
        if nk >= max_det:
            break
    r = t
    while r < nk:
        i = keep[r]
        for q in range(7):
            dets[r, q] = boxes[i, q]
        dets[r, 7] = scores_s[i]
        dets[r, 8] = float32(labels_s[i])
        r += T
    if t == 0:
        header[0] = nk
        header[1] = num_pillars[0]
        for q in range(4):
            header[2 + q] = vstats[q]
