"""GPU pipeline (torch, strict FP32, captured graphs) vs CPU pipeline (onnxruntime FP32) on every shared KITTI scan;
graph replay vs launch by launch; scans of very different sizes in any order; batches; needs a CUDA GPU.

Skips with the reason when the GPU stack (cuda-python, numba-cuda, a device) is
missing. Checks: identical pillars/features/coords/counts, head outputs within
1e-3, same detections (boxes within 1e-3), bit-identical reruns, one host
synchronisation per scan, the max_pillars overflow counted as on the CPU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import CHECKPOINT as CKPT, SHARED, gpu_stack_reason, assert_same_detections
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError

SCANS = sorted((SHARED / "kitti").glob("scans/*.bin")) + sorted((SHARED / "kitti").glob("*/velodyne/*.bin"))


def test_no_gpu_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for the GPU pipeline where there is no GPU is a one-line UserError, never a traceback."""
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline
    from pointpillars_trt.pipelines import cuda_runtime as device

    monkeypatch.setattr(device, "device_count", lambda: 0)
    with pytest.raises(UserError):
        make_gpu_pipeline(PointPillarsConfig(), "torch", "fp32", checkpoint=CKPT)


REASON = gpu_stack_reason()
gpu = pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")


def _read(p: Path) -> np.ndarray:
    return np.fromfile(p, np.float32).reshape(-1, 4)  # the shared scans are clean: no NaN rows to drop



def _pipelines(cfg: PointPillarsConfig, onnx_dir: Path, **gpu_options):
    from pointpillars_trt.model import tensor_names as tn
    from pointpillars_trt.backends.onnxruntime_runner import OnnxRuntimeRunner
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline
    from pointpillars_trt.pipelines.cpu import CpuPipeline

    cpu = CpuPipeline(cfg, OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("pfn", "fp32")),
                      OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("rpn", "fp32")))
    opts = dict(tf32=False, compile=False, graph=True)  # strict FP32: the CPU agreement tolerances need it
    opts.update(gpu_options)
    return cpu, make_gpu_pipeline(cfg, "torch", "fp32", checkpoint=CKPT, **opts)


@gpu
@pytest.mark.parametrize("pfn_kernel", [False, True], ids=["torch-pfn", "pfn-kernel"])
def test_gpu_matches_cpu_on_every_scan(onnx_dir: Path, pfn_kernel: bool) -> None:
    from pointpillars_trt.model import tensor_names as tn

    assert SCANS, f"no scans under {SHARED / 'kitti'}"
    cpu, gp = _pipelines(PointPillarsConfig(), onnx_dir, pfn_kernel=pfn_kernel)
    with cpu, gp:
        for path in SCANS:
            pts = _read(path)
            rc, rg = cpu.run(pts), gp.run(pts)
            snap = gp.snapshot()
            p = rc.stats.num_pillars
            assert rg.stats == rc.stats, (path.name, rg.stats, rc.stats)
            want = cpu.voxelizer.features[:p].view(np.int32)
            if gp.devs[0].vox.dense:  # the ONNX PFN's dense input: every row, the zeros past the points included
                assert np.array_equal(snap["features"].view(np.int32), want), path.name
            else:  # the PFN kernel reads each pillar's points only: those rows are written, bit for bit
                real = np.arange(want.shape[1])[None, :] < cpu.voxelizer.npoints[:p, None]
                assert np.array_equal(snap["features"].view(np.int32)[real], want[real]), path.name
            assert gp.devs[0].vox.dense != pfn_kernel
            assert np.array_equal(snap["coords"], cpu.voxelizer.coords[:p]), path.name
            assert np.array_equal(snap["npoints"], cpu.voxelizer.npoints[:p]), path.name
            np.testing.assert_allclose(snap["pillar_features"], cpu.pillar_features[:p], atol=1e-4, rtol=0)
            for name in tn.RPN_OUTPUTS:
                err = float(np.abs(snap[name] - cpu.heads[name]).max())
                assert err < 1e-3, (path.name, name, err)
            assert_same_detections(rg.detections, rc.detections)
            print(f"{path.name}: P={p} dets={len(rg.detections)} gpu total {rg.times['total'] * 1e3:.2f} ms")


@gpu
def test_rerun_bit_identical_and_one_sync(onnx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from numba import cuda

    _, gp = _pipelines(PointPillarsConfig(), onnx_dir)
    other = []
    monkeypatch.setattr(cuda, "synchronize", lambda *a: other.append("numba"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: other.append("torch"))
    with gp:
        pts = _read(SCANS[0])
        first = gp.run(pts).detections.as_array()
        for path in SCANS[1:4]:
            gp.run(_read(path))  # other scans in between: canvas clearing and row zeroing must hold
        other.clear()  # capturing a graph synchronises once (torch.cuda.graph does); replays must not
        before = gp.stream.syncs
        again = gp.run(pts).detections.as_array()
        assert gp.stream.syncs - before == 1, "exactly one stream synchronise per scan"
    assert not other, other
    assert np.array_equal(first.view(np.int32), again.view(np.int32))


@gpu
def test_more_pillars_than_max(onnx_dir: Path) -> None:
    cfg = PointPillarsConfig(max_pillars=1500)
    cpu, gp = _pipelines(cfg, onnx_dir)
    pts = _read(SCANS[0])
    with cpu, gp:
        rc, rg = cpu.run(pts), gp.run(pts)
    assert rc.stats.dropped_max_pillars > 0
    assert rg.stats == rc.stats
    assert_same_detections(rg.detections, rc.detections)


def _mixed_scans(cfg: PointPillarsConfig) -> dict[str, np.ndarray]:
    """Scans of very different sizes: a real one, empty, one point, none in range, 400k points, > max_pillars."""
    rng = np.random.default_rng(0)
    real = _read(SCANS[0])
    r = np.asarray(cfg.point_cloud_range, np.float32)
    dense = np.concatenate([real, real + rng.normal(0, 0.05, real.shape).astype(np.float32),
                            real + rng.normal(0, 0.1, real.shape).astype(np.float32)])[:400_000]
    uniform = np.column_stack([rng.uniform(r[0], r[3], 300_000), rng.uniform(r[1], r[4], 300_000),
                               rng.uniform(-2.0, 0.5, 300_000), rng.uniform(0, 1, 300_000)]).astype(np.float32)
    return {"real": real, "empty": np.zeros((0, 4), np.float32), "one": np.array([[20.0, 1.0, -1.0, 0.5]], np.float32),
            "out_of_range": np.array([[-10.0, 0.0, 0.0, 0.1], [80.0, 0.0, 0.0, 0.2]], np.float32),
            "dense_400k": dense, "overflow": uniform}


@gpu
def test_graph_replays_scans_of_any_size_in_any_order(onnx_dir: Path) -> None:
    """Each scan gives the CPU pipeline's result whatever ran before it: a stale count or canvas cell leaking from
    one replay into the next changes pillars, heads or detections and fails this."""
    cfg = PointPillarsConfig()
    cpu, gp = _pipelines(cfg, onnx_dir)
    scans = _mixed_scans(cfg)
    order = ["dense_400k", "real", "empty", "one", "overflow", "out_of_range", "real", "one", "dense_400k",
             "overflow", "real", "out_of_range", "one"]
    with cpu, gp:
        ref = {k: cpu.run(v) for k, v in scans.items()}
        assert ref["overflow"].stats.dropped_max_pillars > 0 and ref["out_of_range"].stats.num_pillars == 0
        for name in order:
            got = gp.run(scans[name])
            assert got.stats == ref[name].stats, (name, got.stats, ref[name].stats)
            if len(ref[name].detections):
                assert_same_detections(got.detections, ref[name].detections)
            else:
                assert len(got.detections) == 0, name
        info = gp.graph_info()
    assert info["replays"] >= 5, info  # the repeated shapes were replayed, not re-run eagerly
    # the RPN's activations live in the graphs' pool (the 384-channel FP32 map alone is 82 MB): both the allocator's
    # snapshot of the pool and the driver's free memory across the captures see them
    assert info["kind"] == "torch" and info["pool_mib"] > 20 and info["capture_mib"] > 20, info
    print(info)


@gpu
@pytest.mark.parametrize("kind", ["cuda", "torch"])
def test_capture_survives_a_buffer_freed_by_gc(kind: str) -> None:
    """The garbage collector may run at any allocation inside a capture and reach a buffer of an earlier pipeline
    (held in a reference cycle): its cudaFree must wait for the end of the capture, or the capture is invalidated
    (one H200 run of this file in two failed that way). Here the collector is made to run mid-capture."""
    import gc

    from pointpillars_trt.pipelines.cuda_runtime import DeviceBuffer, Stream
    from pointpillars_trt.pipelines.graphs import make_graph

    s = Stream()
    dst = DeviceBuffer((4096,), np.uint8)
    cycle: list = [DeviceBuffer((1 << 20,), np.uint8)]  # allocated before: a cudaMalloc is illegal in a capture
    cycle.append(cycle)  # only the cycle collector frees it
    holder = [cycle]  # reachable until the capture runs (torch collects garbage just before it begins)
    del cycle

    def enqueue() -> None:
        holder.clear()
        gc.collect()  # reaches the buffer now, mid-capture
        s.memset(dst, 7)

    g = make_graph(kind)
    g.capture(s.handle, enqueue)
    g.replay(s.handle)
    s.synchronize()
    out = np.zeros(4096, np.uint8)
    s.d2h(out, dst, 4096)
    s.synchronize()
    g.free()
    assert (out == 7).all()


@gpu
def test_graph_equals_launch_by_launch(onnx_dir: Path) -> None:
    """Strict FP32: the captured graph and the launch-by-launch path agree within 1e-4 on the heads."""
    from pointpillars_trt.model import tensor_names as tn

    cfg = PointPillarsConfig()
    _, graph = _pipelines(cfg, onnx_dir, graph=True)
    _, eager = _pipelines(cfg, onnx_dir, graph=False)
    with graph, eager:
        for path in SCANS:
            pts = _read(path)
            graph.run(pts)
            rg = graph.run(pts)  # the second run of a shape is a replay
            re = eager.run(pts)
            sg, se = graph.snapshot(), eager.snapshot()
            for name in tn.RPN_OUTPUTS:
                err = float(np.abs(sg[name] - se[name]).max())
                assert err < 1e-4, (path.name, name, err)
            assert_same_detections(rg.detections, re.detections)
        assert graph.graph_info()["replays"] >= len(SCANS)


@gpu
@pytest.mark.parametrize("pfn_kernel", [False, True], ids=["torch-pfn", "pfn-kernel"])
def test_batch_equals_one_at_a_time(onnx_dir: Path, pfn_kernel: bool) -> None:
    """A batch of 4 runs each stage as one launch over the batch (the torch PFN item by item): same detections as
    one scan at a time, eager and replayed, for a smaller batch after a larger one, and overlapped
    (consecutive batches on two device slots whose graphs run at the same time)."""
    cfg = PointPillarsConfig()
    _, gp = _pipelines(cfg, onnx_dir, max_batch=4, pfn_kernel=pfn_kernel, overlap_batches=True)
    scans = [_read(p) for p in SCANS[:4]]
    with gp:
        singles = [gp.run(x).detections for x in scans]
        for _ in range(2):  # eager first, then a replay
            batch = gp.run_batch(scans)
            for a, b in zip(batch, singles):
                assert_same_detections(a.detections, b)
        two = gp.run_batch(scans[2:])  # a smaller batch after a larger one
        for a, b in zip(two, singles[2:]):
            assert_same_detections(a.detections, b)
        # overlapped: batch i+1 staged and queued while batch i runs; new shapes (captured mid-stream) and an
        # empty scan in between; every result read from its own pinned slot before that slot is reused
        order = [[0, 1, 2, 3], [2, 3], [0], [], [3, 2, 1, 0], [1, 2], [0, 1, 2, 3], [3]]
        batches = [[scans[i] for i in ix] if ix else [np.zeros((0, 4), np.float32)] for ix in order]
        for _ in range(2):
            got = list(gp.run_batches(batches))
            assert len(gp.devs) == 2, "consecutive batches run side by side on two device slots"
            assert [len(r) for r in got] == [max(1, len(ix)) for ix in order]
            for ix, res in zip(order, got):
                if not ix:
                    assert len(res[0].detections) == 0
                for i, r in zip(ix, res):
                    assert_same_detections(r.detections, singles[i])


@gpu
def test_fp16_compiled_close_to_fp16_eager(onnx_dir: Path) -> None:
    """Inductor's autotuned FP16 RPN inside the graph vs the uncompiled FP16 RPN: head outputs within the FP16 noise
    already measured against FP32 (0.064 on the CPU), and detections that mostly coincide."""
    from pointpillars_trt.model import tensor_names as tn
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline

    cfg = PointPillarsConfig()
    comp = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile=True, graph=True)
    plain = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile=False, graph=True)
    with comp, plain:
        for path in SCANS[:4]:
            pts = _read(path)
            comp.run(pts)
            rc, rp = comp.run(pts), plain.run(pts)
            sc, sp = comp.snapshot(), plain.snapshot()
            for name in tn.RPN_OUTPUTS:
                err = float(np.abs(sc[name] - sp[name]).max())
                assert err < 0.1, (path.name, name, err)
            n = min(len(rc.detections), len(rp.detections))
            assert abs(len(rc.detections) - len(rp.detections)) <= max(5, n // 10), (len(rc.detections), len(rp.detections))


@gpu
def test_fp16_canvas_written_by_the_scatter(onnx_dir: Path) -> None:
    """The FP16 RPN's input is the FP16 channels-last canvas the scatter writes: exactly its pillar features rounded
    to FP16 at their cells (checked against NumPy's scatter and rounding), and the same heads and detections as the
    runner converting the FP32 NCHW canvas itself, whose points arrive by memcpy rather than the upload kernel."""
    from pointpillars_trt.model import tensor_names as tn
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline

    cfg = PointPillarsConfig()
    new = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile=False, graph=True)
    old = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile=False, graph=True, fp16_canvas=False,
                            upload_kernel=False)
    assert new.canvas.dtype == np.float16 and new.canvas.shape[-1] == cfg.pfn_filters
    assert old.canvas.dtype == np.float32 and old.canvas.shape[1] == cfg.pfn_filters
    with new, old:
        for path in SCANS[:6]:
            pts = _read(path)
            for _ in range(2):  # eager, then a replay
                rn, ro = new.run(pts), old.run(pts)
            sn, so = new.snapshot(), old.snapshot()
            for snap, dtype in ((sn, np.float16), (so, np.float32)):
                c, expect = snap["coords"], np.zeros_like(snap["canvas"])
                expect[0, :, c[:, 2], c[:, 3]] = snap["pillar_features"].astype(dtype).astype(np.float32)
                assert np.array_equal(snap["canvas"], expect), (path.name, dtype)
            for name in tn.RPN_OUTPUTS:
                err = float(np.abs(sn[name] - so[name]).max())
                assert err < 1e-3, (path.name, name, err)
            assert_same_detections(rn.detections, ro.detections)
    assert new.transfers["h2d"] < old.transfers["h2d"]  # exactly n points against the whole capacity bucket


@gpu
def test_device_rows_through_dlpack(onnx_dir: Path) -> None:
    import torch

    _, gp = _pipelines(PointPillarsConfig(), onnx_dir)
    with gp:
        res = gp.run(_read(SCANS[0]), keep_on_device=True)
        rows = torch.from_dlpack(res.device_rows)
        assert rows.is_cuda and tuple(rows.shape) == (len(res.detections), 9)
        assert np.array_equal(rows.cpu().numpy(), res.detections.as_array())
