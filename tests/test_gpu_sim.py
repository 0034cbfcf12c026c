"""GPU kernels vs the CPU functions in Numba's CUDA simulator (CI, no GPU), on small real inputs.

Numba picks the simulator when it is first imported, and other test modules
import it normally, so the checks run in child processes (three, side by side) started with
NUMBA_ENABLE_CUDASIM=1 (``python tests/test_gpu_sim.py`` runs them directly);
each test below asserts one check's result. A small config (32x32 grid,
nms_pre 64) keeps the simulated thread count, and so the runtime, small.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
SCAN = SHARED / "kitti" / "scans" / "000000.bin"
SCAN2 = SHARED / "kitti" / "scans" / "000002.bin"


def _small_cfg(**kw):
    from pointpillars_trt.model.config import PointPillarsConfig

    base = dict(point_cloud_range=(10.24, -2.56, -3.0, 15.36, 2.56, 1.0), max_pillars=60, nms_pre=64, max_det=20)
    base.update(kw)
    return PointPillarsConfig(**base)


def _crop(path: Path, cfg, n_in: int = 260, n_out: int = 40):
    """About n_in of the scan's points near the small range plus n_out outside it, in scan order."""
    import numpy as np

    pts = np.fromfile(path, np.float32).reshape(-1, 4)
    r = cfg.point_cloud_range
    inside = (pts[:, 0] >= r[0] - 0.3) & (pts[:, 0] <= r[3] + 0.3) & (pts[:, 1] >= r[1] - 0.3) & (pts[:, 1] <= r[4] + 0.3)
    idx = np.flatnonzero(inside)
    idx = idx[:: max(1, len(idx) // n_in)]
    far = np.flatnonzero(~inside)[:: max(1, (~inside).sum() // n_out)][:n_out]
    return pts[np.sort(np.concatenate([idx, far]))]


def check_voxelize() -> None:
    import numpy as np
    from numba import cuda

    from pointpillars_trt.pipelines.seam import SimAllocator
    from pointpillars_trt.stages.voxelize_cuda import GpuVoxelizer, stats_from_device
    from pointpillars_trt.stages.voxelize import Voxelizer

    cfg = _small_cfg()
    a = _crop(SCAN, cfg)
    # a crowded pillar: 70 copies of one in-range point spread through the scan (tests the 32 cap, slot order and
    # the selection over three 32-entry chunks of the pillar's bucket)
    rng = np.random.default_rng(0)
    base = a[np.flatnonzero((a[:, 0] > 11) & (a[:, 0] < 14) & (np.abs(a[:, 1]) < 2))[0]]
    extra = np.repeat(base[None], 70, 0) + np.float32(1e-3) * rng.random((70, 4), dtype=np.float32)
    a = np.insert(a, np.sort(rng.integers(0, len(a), 70)), extra, axis=0).astype(np.float32)
    b = _crop(SCAN2, cfg)[:150]
    gv = GpuVoxelizer(cfg, SimAllocator(), max_input_points=max(len(a), len(b)), batch=2)
    cv = Voxelizer(cfg)
    cap = gv.max_input_points
    # two batch items in one launch, each with its own sequence of scans; shrinking P checks that rows [P, previous
    # P) are zeroed; a capacity launch larger than the scans (and than the one before) checks that every count
    # comes from device memory and nothing stale leaks between scans or between items
    steps = ((a, b, cap), (b, a, cap), (a[:120], b[:100], 128), (a, a[:7], cap), (b[:1], b[:0], 32),
             (b[:0], a[:30], 32))
    for step in steps:
        for k, pts in enumerate(step[:2]):
            gv.buf.points[k, : len(pts)].copy_to_device(pts) if len(pts) else None
        gv.buf.npts.copy_to_device(np.array([len(step[0]), len(step[1])], np.int32))
        bound = gv.enqueue(step[2])
        cuda.synchronize()
        assert bound == max(1, min(cfg.max_pillars, step[2]))
        for k, pts in enumerate(step[:2]):
            st = cv(pts)
            it = gv.item(k)
            num = it.num_pillars.copy_to_host()
            gs = stats_from_device(num[0], it.stats.copy_to_host())
            assert gs == st, (k, gs, st)
            p = st.num_pillars
            f = it.features.copy_to_host()
            assert np.array_equal(f[:p].view(np.int32), cv.features[:p].view(np.int32)), "features differ"
            coords = cv.coords[:p].copy()
            coords[:, 0] = k  # the batch item
            assert np.array_equal(it.coords.copy_to_host()[:p], coords)
            assert np.array_equal(it.npoints.copy_to_host()[:p], cv.npoints[:p])
            assert not f[p:].any(), "rows past P must be zero"
    assert cv(a).dropped_max_pillars > 0  # the max_pillars path is exercised
    # without dense (a PFN that reads each pillar's points only), those rows are the same and nothing else is written;
    # with room for every pillar, pillars first seen in the second block of points get bucket space after the first's
    wide = _small_cfg(max_pillars=1000)
    cw = Voxelizer(wide)
    from pointpillars_trt.stages.voxelize_cuda import TPB

    assert cw(a[:TPB]).num_pillars < cw(a).num_pillars < wide.max_pillars
    gs = GpuVoxelizer(wide, SimAllocator(), max_input_points=len(a), dense=False)
    gs.buf.features.copy_to_device(np.full(gs.buf.features.shape, 7.0, np.float32))
    gs.buf.points[0, : len(a)].copy_to_device(a)
    gs.buf.npts.copy_to_device(np.array([len(a)], np.int32))
    gs.enqueue(len(a))
    cuda.synchronize()
    st = cw(a)
    f = gs.item(0).features.copy_to_host()
    real = np.zeros(f.shape[:2], bool)
    real[: st.num_pillars] = np.arange(f.shape[1])[None, :] < cw.npoints[: st.num_pillars, None]
    assert np.array_equal(f[real].view(np.int32), cw.features[real].view(np.int32)), "features differ (not dense)"
    assert (f[~real] == 7.0).all(), "not dense: only the points' rows are written"
    assert np.array_equal(gs.item(0).npoints.copy_to_host()[: st.num_pillars], cw.npoints[: st.num_pillars])
    # the simulator fills each pillar's bucket in point order; on a GPU the order is arbitrary: reverse every
    # bucket of item 0 (the worst order for picking the first 32 points by index) and run the decoration again
    st = cv(a)
    p = st.num_pillars
    gv.buf.points[0, : len(a)].copy_to_device(a)
    gv.buf.npts.copy_to_device(np.array([len(a), 0], np.int32))
    gv.enqueue(cap)
    cuda.synchronize()
    cnt, off = gv.pillar_cnt.copy_to_host()[0, :p], gv.pillar_off.copy_to_host()[0, :p]
    assert cnt.max() > 64, "a crowded pillar: its slots are ranks among more than 64 entries"
    bucket = gv.bucket.copy_to_host()
    for n, o in zip(cnt, off):
        bucket[0, o: o + n] = bucket[0, o: o + n][::-1].copy()
    gv.bucket.copy_to_device(bucket)
    gv.enqueue_decorate(cap)
    cuda.synchronize()
    f = gv.item(0).features.copy_to_host()
    assert np.array_equal(f[:p].view(np.int32), cv.features[:p].view(np.int32)), "features differ (reordered)"


def check_intensity_scale() -> None:
    """The intensity scale (0..255 data on a model trained on 0..1) is one float32 multiply on both sides: the GPU
    kernel's features equal the CPU's bit for bit, and the unscaled scan's to float32 rounding."""
    import numpy as np
    from numba import cuda

    from pointpillars_trt.pipelines.seam import SimAllocator
    from pointpillars_trt.stages.voxelize import Voxelizer
    from pointpillars_trt.stages.voxelize_cuda import GpuVoxelizer

    plain, scaled = _small_cfg(), _small_cfg(intensity_scale=1 / 255)
    a = _crop(SCAN, plain)
    a255 = (a * np.float32([1, 1, 1, 255])).astype(np.float32)
    gv = GpuVoxelizer(scaled, SimAllocator(), max_input_points=len(a))
    gv.buf.points[0, : len(a)].copy_to_device(a255)
    gv.buf.npts.copy_to_device(np.array([len(a)], np.int32))
    gv.enqueue(len(a))
    cuda.synchronize()
    cv, ref = Voxelizer(scaled), Voxelizer(plain)
    p = cv(a255).num_pillars
    assert p == ref(a).num_pillars > 0
    f = gv.item(0).features.copy_to_host()[:p]
    assert np.array_equal(f.view(np.int32), cv.features[:p].view(np.int32)), "features differ"
    assert f[..., 3].max() > 0.5 and np.allclose(f, ref.features[:p], rtol=1e-6, atol=0), "scale not applied"


def check_scatter() -> None:
    import numpy as np
    from numba import cuda

    from pointpillars_trt.pipelines.seam import numba_view
    from pointpillars_trt.plugins.pillar_scatter import clear_pillars, scatter_pillars
    from pointpillars_trt.stages.scatter import scatter_pillars as cpu_scatter
    from pointpillars_trt.stages.voxelize import Voxelizer

    cfg = _small_cfg()
    nx, ny, _ = cfg.grid_size
    rng = np.random.default_rng(1)
    P, C = cfg.max_pillars, 8  # 8 channels keep the simulator fast
    # two batch items with their own scans, pillars and counts, scattered in one launch
    pf = rng.standard_normal((2, P, C)).astype(np.float32)
    coords, num = np.zeros((2, P, 4), np.int32), np.zeros((2, 2), np.int32)
    ref = np.zeros((2, C, ny, nx), np.float32)
    for k, pts in enumerate((_crop(SCAN, cfg), _crop(SCAN2, cfg)[:60])):
        cv = Voxelizer(cfg)
        num[k, 0] = p = cv(pts).num_pillars
        coords[k] = cv.coords
        coords[k, :, 0] = k
        cpu_scatter(pf[k], coords[k], p, ref)
    assert num[0, 0] != num[1, 0] and num[:, 0].min() > 0
    d_pf, d_coords, d_num = cuda.to_device(pf), cuda.to_device(coords), cuda.to_device(num)
    d_canvas = cuda.to_device(np.zeros_like(ref))
    scatter_pillars(d_pf, d_coords, d_num, d_canvas, bound=cfg.max_pillars)
    assert np.array_equal(d_canvas.copy_to_host(), ref)
    clear_pillars(d_coords, d_num, d_canvas, bound=8)  # fewer threads than pillars: the clear strides over all
    assert not d_canvas.copy_to_host().any()
    # the FP16 torch RPN's input: an FP16 channels-last canvas, written through the pipeline's strided view of it
    d_nhwc = cuda.to_device(np.zeros((2, ny, nx, C), np.float16))
    view = numba_view(d_nhwc, (0, 3, 1, 2))
    scatter_pillars(d_pf, d_coords, d_num, view, bound=cfg.max_pillars)
    assert np.array_equal(d_nhwc.copy_to_host().transpose(0, 3, 1, 2), ref.astype(np.float16))
    clear_pillars(d_coords, d_num, view, bound=8)
    assert not d_nhwc.copy_to_host().any()
    # batch=1: item 1 is left alone
    scatter_pillars(d_pf, d_coords, d_num, d_canvas, bound=8, batch=1)  # fewer threads than pillars: strides
    got = d_canvas.copy_to_host()
    assert np.array_equal(got[0], ref[0]) and not got[1].any()


def _heads(cfg, seed: int, quantize: bool):
    import numpy as np

    fx, fy = cfg.feature_map_size
    ch = cfg.head_channels
    rng = np.random.default_rng(seed)
    cls = rng.normal(-1.0, 1.5, (fy, fx, ch["cls"])).astype(np.float32)
    if quantize:  # many exactly equal scores: the K-th score has ties that must be broken by anchor index
        cls = np.round(cls * 2) / 2
    box = (0.3 * rng.standard_normal((fy, fx, ch["box"]))).astype(np.float32)
    dirc = rng.standard_normal((fy, fx, ch["dir"])).astype(np.float32)
    return cls, box, dirc


def check_postprocess() -> None:
    import numpy as np
    from numba import cuda

    from pointpillars_trt.stages.anchors import make_anchors
    from pointpillars_trt.stages.postprocess_cuda import HEADER, GpuPostprocess, HeadViews
    from pointpillars_trt.pipelines.seam import SimAllocator
    from pointpillars_trt.stages.postprocess import decode_boxes, postprocess, scores_and_labels, top_candidates

    cfg = _small_cfg()
    anchors = make_anchors(cfg)
    gp = GpuPostprocess(cfg, SimAllocator(), anchors, batch=2)
    num = cuda.to_device(np.array([[5, 0], [5, 0]], np.int32))
    vstats = cuda.to_device(np.tile(np.arange(8, dtype=np.int32), (2, 1)))
    out_h = cuda.to_device(np.zeros((2, HEADER), np.int32))
    out_d = cuda.to_device(np.zeros((2, cfg.max_det, 9), np.float32))

    def make_heads(seed: int, quantize: bool, sparse: bool):
        cls, box, dirc = _heads(cfg, seed, quantize)
        if sparse:  # 30 candidates, all above the dense scans' best: stale bins would move their K-th bucket
            rng = np.random.default_rng(seed)
            cls[:] = -10.0
            cls.reshape(-1, cfg.num_classes)[rng.choice(cls.size // cfg.num_classes, 30, replace=False), 0] = \
                rng.uniform(5.0, 7.0, 30)
        return cls, box, dirc

    # two batch items in one launch, each its own sequence of (seed, ties, sparse): a sparse scan has fewer
    # candidates than nms_pre (no K-th score: the histogram is zeroed by the compaction, not drained); the dense
    # scan after it (item 1) fails if a stale bin leaks into its selection (checked: without the zeroing it does)
    steps = (((0, False, False), (2, False, True)), ((1, True, False), (0, False, False)),
             ((2, False, True), (1, True, False)))
    for step in steps:
        hs = [make_heads(*x) for x in step]
        heads = HeadViews(*(cuda.to_device(np.stack([h[k].reshape(-1) for h in hs])) for k in range(3)))
        gp.enqueue(heads, num, vstats, out_h, out_d)
        cuda.synchronize()
        for k, ((cls, box, dirc), (_, _, sparse)) in enumerate(zip(hs, step)):
            s_cpu, l_cpu = scores_and_labels(cls, cfg.num_classes)
            s_gpu = gp.scores.copy_to_host()[k]
            assert np.array_equal(gp.labels.copy_to_host()[k], l_cpu)
            assert np.abs(s_gpu.view(np.int32) - s_cpu.view(np.int32)).max() <= 1, "scores differ by more than 1 ulp"
            n = int(gp.nsel.copy_to_host()[k, 0])
            ref_idx = top_candidates(s_gpu, cfg.score_thresh, cfg.nms_pre)  # exact order on the same scores
            assert n == len(ref_idx) and (n == cfg.nms_pre) != sparse and n > 3, (n, len(ref_idx))
            gidx = gp.sorted_idx.copy_to_host()[k, :n]
            assert np.array_equal(gidx, ref_idx), "top-K order differs"
            ref_boxes = decode_boxes(box.reshape(-1, 7)[ref_idx], anchors[ref_idx], dirc.reshape(-1, 2)[ref_idx], cfg)
            assert np.allclose(gp.boxes.copy_to_host()[k, :n], ref_boxes, rtol=1e-6, atol=1e-6)
            ref = postprocess(cls, box, dirc, anchors, cfg)
            h = out_h.copy_to_host()[k]
            assert h[0] == len(ref) and h[1] == 5 and list(h[2:6]) == [0, 1, 2, 3], (h, len(ref))
            got = out_d.copy_to_host()[k, : h[0]]
            assert np.allclose(got[:, :7], ref.boxes, atol=1e-5), "NMS kept different boxes"
            assert np.array_equal(got[:, 8].astype(np.int32), ref.labels)
    # nothing in range (item 0) -> no detections; batch=1 leaves item 1's result alone
    before = out_h.copy_to_host()[1]
    gp.enqueue(heads, cuda.to_device(np.array([[0, 0], [5, 0]], np.int32)), vstats, out_h, out_d, batch=1)
    assert out_h.copy_to_host()[0, 0] == 0 and np.array_equal(out_h.copy_to_host()[1], before)
    # 200 candidates: several rank blocks, 10 upper-triangle mask tiles (80 row-slab items) and a walk over 4 mask
    # words (2 chunks) with about 40 to 130 keepers; max_det 100 stops it inside the third word. The kept rows must
    # be exactly the CPU NMS's choice among the GPU's own decoded boxes (so decode rounding cannot hide a wrong pick).
    from pointpillars_trt.stages.nms_cuda import _nms_greedy, _nms_mask
    from pointpillars_trt.stages.postprocess import nms_rotated

    num = num[:1]
    vstats = vstats[:1]
    out_h = cuda.to_device(np.zeros((1, HEADER), np.int32))
    cases = ((0.3, 100, 0, False, 2), (0.3, 500, 1, True, 1), (0.1, 500, 2, False, 1))
    for thresh, max_det, seed, quantize, scans in cases:
        cfg = _small_cfg(nms_pre=200, max_det=max_det, nms_thresh=thresh)
        gp = GpuPostprocess(cfg, SimAllocator(), anchors)
        out_d = cuda.to_device(np.zeros((1, cfg.max_det, 9), np.float32))
        cls, box, dirc = _heads(cfg, seed, quantize)
        heads = HeadViews(cuda.to_device(cls.reshape(1, -1)), cuda.to_device(box.reshape(1, -1)),
                          cuda.to_device(dirc.reshape(1, -1)))
        for _ in range(scans):  # a second scan reuses the scratch the first left behind
            gp.enqueue(heads, num, vstats, out_h, out_d)
            cuda.synchronize()
            n = int(gp.nsel.copy_to_host()[0, 0])
            ref_idx = top_candidates(gp.scores.copy_to_host()[0], cfg.score_thresh, cfg.nms_pre)
            assert n == len(ref_idx) == 200 and np.array_equal(gp.sorted_idx.copy_to_host()[0, :n], ref_idx)
            boxes = gp.boxes.copy_to_host()[0, :n]
            keep = nms_rotated(boxes, cfg.nms_thresh, cfg.max_det)
            assert len(keep) > 64 or thresh < 0.3, len(keep)  # keepers in more than one chunk
            h = out_h.copy_to_host()[0]
            assert h[0] == len(keep), (h[0], len(keep))
            got = out_d.copy_to_host()[0, : h[0]]
            assert np.array_equal(got[:, :7], boxes[keep]), "NMS kept different boxes"
            assert np.array_equal(got[:, 7], gp.sorted_scores.copy_to_host()[0, keep])
            assert np.array_equal(got[:, 8], gp.sorted_labels.copy_to_host()[0, keep].astype(np.float32))
        if max_det == 100:  # fewer blocks than work items (the grid-stride loop) and 64 threads: the same bits
            ref_mask = gp.mask.copy_to_host()[0]
            mask2 = cuda.to_device(np.full((1, *ref_mask.shape), 0x5A5A5A5A5A5A5A5A, np.uint64))
            _nms_mask[7, 64](gp.nsel, gp.boxes, gp._nms_thresh, mask2)
            got_mask = mask2.copy_to_host()[0]
            for i in range(n):
                assert np.array_equal(got_mask[i, i // 64:], ref_mask[i, i // 64:]), i
    # the greedy walk alone on a random upper-triangle mask of 600 candidates (5 chunks of 2 words: the staged
    # next-chunk words and the cross-chunk ORs run), garbage in every word it must not read, against a plain walk;
    # blocks of 256, 64 and 32 threads (one warp: the walker also does the loads)
    rng = np.random.default_rng(3)
    n, nw = 600, 10
    dets_boxes = cuda.to_device(rng.random((1, nw * 64, 7), dtype=np.float32))
    scores_s = cuda.to_device(rng.random((1, nw * 64), dtype=np.float32))
    labels_s = cuda.to_device(rng.integers(1, 4, (1, nw * 64)).astype(np.int32))
    for density, max_det, threads in ((0.004, 1000, 256), (0.004, 150, 256), (0.03, 1000, 64), (0.01, 1000, 32)):
        bits = rng.random((nw * 64, nw * 64)) < density
        i, j = np.indices(bits.shape)
        valid = (j > i) & (j < n) & (i < n)
        garbage = (j < (i // 64) * 64) | (j >= nw * 64) | (i >= n)
        bits = (bits & valid) | (garbage & (rng.random(bits.shape) < 0.5))
        words = np.packbits(bits.reshape(nw * 64, nw, 64)[:, :, ::-1], axis=2).reshape(nw * 64, nw, 8)
        mask = words.view(">u8")[:, :, 0].astype(np.uint64)
        keep, removed = [], np.zeros(nw * 64, bool)
        for c in range(n):
            if len(keep) >= max_det:
                break
            if not removed[c]:
                keep.append(c)
                removed |= bits[c] & valid[c]
        h_d = cuda.to_device(np.zeros((1, HEADER), np.int32))
        d_d = cuda.to_device(np.zeros((1, max_det, 9), np.float32))
        _nms_greedy[1, threads](cuda.to_device(np.array([[n]], np.int32)), cuda.to_device(mask[None]), dets_boxes,
                                scores_s, labels_s, num, vstats, max_det, h_d, d_d)
        h = h_d.copy_to_host()[0]
        assert h[0] == len(keep), (density, max_det, threads, h[0], len(keep))
        assert np.array_equal(d_d.copy_to_host()[0, : h[0], :7], dets_boxes.copy_to_host()[0, keep]), (density,
                                                                                                      max_det)


def check_pfn() -> None:
    """The PFN kernel (BN folded, max before ReLU, rows >= P untouched) vs the checkpoint's torch PFN on the CPU."""
    import numpy as np
    import torch
    from numba import cuda

    from pointpillars_trt.backends.numba_pfn import block_threads, fold_pfn, pfn_kernel
    from pointpillars_trt.model.networks import load_checkpoint
    from pointpillars_trt.stages.voxelize import Voxelizer

    cfg = _small_cfg()
    cv = Voxelizer(cfg)
    pts = _crop(SCAN, cfg)
    inside = pts[(pts[:, 0] > 11) & (pts[:, 0] < 14) & (np.abs(pts[:, 1]) < 2)]
    pts = np.concatenate([pts, np.repeat(inside[:1], 40, axis=0)])  # one full pillar (32 points kept)
    feats, refs, counts, npts = [], [], [], []
    for x in (pts, _crop(SCAN2, cfg)[:60]):  # two batch items of different sizes, one launch
        counts.append(cv(x).num_pillars)
        feats.append(cv.features.copy())
        npts.append(cv.npoints.astype(np.int32))
    vfe = load_checkpoint(SHARED / "checkpoints" / "pointpillar_kitti_random_seed0.pth", cfg).vfe.eval()
    with torch.no_grad():  # give BatchNorm real statistics so the fold is really tested
        n = vfe.pfn_layers[0].norm
        n.running_mean.uniform_(-0.2, 0.2)
        n.running_var.uniform_(0.5, 1.5)
        n.bias.uniform_(-0.3, 0.3)
        refs = [vfe(torch.from_numpy(f[:p])).numpy() for f, p in zip(feats, counts)]
    w, b = fold_pfn(vfe)
    P, M, F = cv.features.shape
    p = counts[0]
    assert 0 < npts[0][:p].min() < M and npts[0][:p].max() == M, "pillars of several sizes, one full"
    assert 0 < counts[1] < counts[0]
    count = np.array([[counts[0], 0], [counts[1], 5]], np.int32)  # [b, 0]: the count ([b, 1] is not read)
    results = []
    for use_npts in (False, True):  # every row read, or only each pillar's points (the zero rows' 0 taken as read)
        out = cuda.to_device(np.full((2, cfg.max_pillars, w.shape[0]), 7.0, np.float32))
        pfn_kernel[(2, 2), block_threads(w.shape[0])](cuda.to_device(np.stack(feats).reshape(2, -1)), M, F,
                                                      cuda.to_device(count), cuda.to_device(np.stack(npts)),
                                                      use_npts, cuda.to_device(np.ascontiguousarray(w.T)),
                                                      cuda.to_device(b), out)  # 2 blocks: the grid-stride loop runs
        got = out.copy_to_host()
        for k in range(2):
            q = counts[k]
            assert np.allclose(got[k, :q], refs[k], atol=1e-4), (use_npts, k, float(np.abs(got[k, :q] - refs[k]).max()))
            assert (got[k, q:] == 7.0).all(), "rows >= P must not be written"
        results.append(got)
    assert np.array_equal(results[0], results[1]), "skipping the zero rows must not change a bit"


def check_upload() -> None:
    """The upload kernel copies slot b's count and exactly its n rows (nothing past them), or the count alone."""
    import numpy as np
    from numba import cuda

    from pointpillars_trt.stages.upload_cuda import upload_points

    pts = np.fromfile(SCAN, np.float32).reshape(-1, 4)[:300]
    src = np.zeros((3, 4 * 512), np.float32)
    src[0, :28] = pts[300 - 7:].reshape(-1)
    src[1, :1200] = pts.reshape(-1)
    src[2] = 5.0  # item 2 is outside the batch
    src_counts = cuda.to_device(np.array([7, 300, 9], np.int32))
    counts = cuda.to_device(np.zeros(3, np.int32))
    points = cuda.to_device(np.full((3, 4 * 512), -1.0, np.float32))
    upload_points(src_counts, cuda.to_device(src), True, counts, points, capacity=512, batch=2)
    got = points.copy_to_host()
    assert list(counts.copy_to_host()) == [7, 300, 0]
    assert np.array_equal(got[0, :28], src[0, :28]) and (got[0, 28:] == -1.0).all()
    assert np.array_equal(got[1, :1200], pts.reshape(-1)) and (got[1, 1200:] == -1.0).all()
    assert (got[2] == -1.0).all()
    src_counts = cuda.to_device(np.array([8, 301, 9], np.int32))
    upload_points(src_counts, cuda.to_device(np.zeros_like(src)), False, counts, points, capacity=512, batch=2)
    assert list(counts.copy_to_host()) == [8, 301, 0] and np.array_equal(points.copy_to_host(), got)


CHECKS = {"voxelize": check_voxelize, "intensity_scale": check_intensity_scale, "scatter": check_scatter,
          "postprocess": check_postprocess, "pfn": check_pfn, "upload": check_upload}


def _run_all() -> dict[str, str]:
    out = {}
    for name, fn in CHECKS.items():
        try:
            fn()
            out[name] = "ok"
        except Exception:
            out[name] = traceback.format_exc()
    return out


@pytest.fixture(scope="module")
def sim_results() -> dict[str, str]:
    if not SCAN.is_file():
        pytest.skip(f"shared KITTI scans not found at {SCAN}")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # the two slow checks (thousands of simulated threads meeting at barriers) each in a child of its own, the
    # rest in a third: they run side by side
    groups = [["voxelize"], ["postprocess"], [n for n in CHECKS if n not in ("voxelize", "postprocess")]]
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *g], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for g in groups]
    out: dict[str, str] = {}
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=900)
        lines = [l for l in stdout.splitlines() if l.startswith("{")]
        assert proc.returncode == 0 and lines, f"simulator child failed:\n{stdout}\n{stderr}"
        out.update(json.loads(lines[-1]))
    return out


@pytest.mark.parametrize("name", list(CHECKS))
def test_kernel_matches_cpu_in_simulator(sim_results: dict[str, str], name: str) -> None:
    assert sim_results[name] == "ok", sim_results[name]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    from numba import config

    assert config.ENABLE_CUDASIM, "run with NUMBA_ENABLE_CUDASIM=1 set before numba is imported"
    for name in [n for n in CHECKS if sys.argv[1:] and n not in sys.argv[1:]]:
        del CHECKS[name]
    print(json.dumps(_run_all()))
