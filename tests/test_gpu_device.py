"""GPU pipeline (torch FP32) vs CPU pipeline (onnxruntime FP32) on every shared KITTI scan; needs a CUDA GPU.

Skips with the reason when the GPU stack (cuda-python, numba-cuda, a device) is
missing. Checks: identical pillars/features/coords/counts, head outputs within
1e-3, same detections (boxes within 1e-3), bit-identical reruns, one host
synchronisation per scan, the max_pillars overflow counted as on the CPU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import CHECKPOINT as CKPT, SHARED, assert_same_detections
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError

SCANS = sorted((SHARED / "kitti").glob("scans/*.bin")) + sorted((SHARED / "kitti").glob("*/velodyne/*.bin"))


def _gpu_reason() -> str | None:
    try:
        from pointpillars_trt.pipelines.gpu import require_gpu_stack

        require_gpu_stack()
    except (UserError, ImportError) as e:
        return str(e)
    return None


def test_no_gpu_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for the GPU pipeline where there is no GPU is a one-line UserError, never a traceback."""
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline
    from pointpillars_trt.pipelines import cuda_runtime as device

    monkeypatch.setattr(device, "device_count", lambda: 0)
    with pytest.raises(UserError):
        make_gpu_pipeline(PointPillarsConfig(), "torch", "fp32", checkpoint=CKPT)


REASON = _gpu_reason()
gpu = pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")


def _read(p: Path) -> np.ndarray:
    return np.fromfile(p, np.float32).reshape(-1, 4)  # the shared scans are clean: no NaN rows to drop



def _pipelines(cfg: PointPillarsConfig, onnx_dir: Path):
    from pointpillars_trt.model import tensor_names as tn
    from pointpillars_trt.backends.onnxruntime_runner import OnnxRuntimeRunner
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline
    from pointpillars_trt.pipelines.cpu import CpuPipeline

    cpu = CpuPipeline(cfg, OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("pfn", "fp32")),
                      OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("rpn", "fp32")))
    return cpu, make_gpu_pipeline(cfg, "torch", "fp32", checkpoint=CKPT)


@gpu
def test_gpu_matches_cpu_on_every_scan(onnx_dir: Path) -> None:
    from pointpillars_trt.model import tensor_names as tn

    assert SCANS, f"no scans under {SHARED / 'kitti'}"
    cpu, gp = _pipelines(PointPillarsConfig(), onnx_dir)
    with cpu, gp:
        for path in SCANS:
            pts = _read(path)
            rc, rg = cpu.run(pts), gp.run(pts)
            snap = gp.snapshot()
            p = rc.stats.num_pillars
            assert rg.stats == rc.stats, (path.name, rg.stats, rc.stats)
            assert np.array_equal(snap["features"].view(np.int32), cpu.voxelizer.features[:p].view(np.int32)), path.name
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
