"""Shared fixtures: paths into ../shared (never copied), the shared checkpoint, one ONNX export per test run."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KITTI = SHARED / "kitti"
CHECKPOINT = SHARED / "checkpoints" / "pointpillar_kitti_random_seed0.pth"
ALL_SCANS = sorted((KITTI / "scans").glob("*.bin")) + [KITTI / "training/velodyne/000134.bin",
                                                        KITTI / "testing/velodyne/000002.bin"]


def gpu_stack_reason() -> str | None:
    """Why the GPU pipeline cannot run here (no cuda-python, numba-cuda or device), or None where it can."""
    from pointpillars_trt.errors import UserError

    try:
        from pointpillars_trt.pipelines.gpu import require_gpu_stack

        require_gpu_stack()
    except (UserError, ImportError) as e:
        return str(e)
    return None


def pytest_report_header(config):
    return f"shared data: {SHARED} ({len(ALL_SCANS)} scans)" + ("" if SHARED.is_dir() else ": MISSING")


#: what marks a test module as reading ../shared (its names for the paths, or the fixtures built from them)
USES_SHARED = re.compile(r"\b(SHARED|KITTI|ALL_SCANS|CHECKPOINT|SCANS?|onnx_dir|state_dict)\b")


def pytest_collection_modifyitems(config, items):
    """Without ../shared (a clone on its own) the tests that read the real scans or the checkpoint are skipped,
    saying why, instead of erroring one by one; the others run. With it (CI, every machine here) nothing is."""
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs {SHARED}: the real KITTI scans and checkpoint the tests read "
                                   "(README, 'Set up, run, test')")
    reads: dict[Path, bool] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path not in reads:
            reads[path] = bool(USES_SHARED.search(path.read_text()))
        if reads[path]:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """One private model cache for the whole test run (commands in-process and in subprocesses), never ~/.cache."""
    d = tmp_path_factory.mktemp("user_cache")
    old = os.environ.get("POINTPILLARS_TRT_CACHE")
    os.environ["POINTPILLARS_TRT_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("POINTPILLARS_TRT_CACHE", None)
    else:
        os.environ["POINTPILLARS_TRT_CACHE"] = old


@pytest.fixture(scope="session")
def cfg():
    from pointpillars_trt.model.config import PointPillarsConfig

    return PointPillarsConfig()


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory, cfg):
    """The shared checkpoint exported once (FP32 + FP16) for the whole test run."""
    from pointpillars_trt.model.export import export_onnx
    from pointpillars_trt.model.networks import load_checkpoint

    out = tmp_path_factory.mktemp("onnx")
    export_onnx(load_checkpoint(CHECKPOINT, cfg), out, checkpoint=CHECKPOINT)
    return out


@pytest.fixture(scope="session")
def state_dict():
    import torch

    return torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["model_state"]


def make_cpu_pipeline(cfg, onnx_dir, precision="fp32"):
    from pointpillars_trt.backends.onnxruntime_runner import OnnxRuntimeRunner
    from pointpillars_trt.pipelines.cpu import CpuPipeline

    return CpuPipeline(cfg, OnnxRuntimeRunner(onnx_dir / f"pfn_{precision}.onnx"), OnnxRuntimeRunner(onnx_dir / f"rpn_{precision}.onnx"))


def assert_same_detections(a, b, tol: float = 1e-3) -> None:
    """Same detections (Detections a vs b): equal count, every row (box, score, label) matched one to one within tol,
    in the same order except near-tied scores, which may swap places (float32 rounding differs between
    implementations by ~1e-6; e.g. scores 0.15155764 vs 0.15155758 swapped on shared scan 000006)."""
    assert len(a) == len(b) > 0, (len(a), len(b))
    ra, rb = a.as_array(), b.as_array()
    free = np.ones(len(rb), bool)
    moved = 0
    for i, row in enumerate(ra):
        err = np.abs(rb - row).max(axis=1)
        err[~free] = np.inf
        j = i if free[i] and err[i] <= tol else int(np.argmin(err))
        assert err[j] <= tol, f"detection {i} {row} has no match within {tol} (closest {err[j]:.3g})"
        assert abs(rb[j, 7] - row[7]) <= 1e-5 or j == i, f"detection {i} moved to {j} without a near-tie in score"
        free[j] = False
        moved += j != i
    assert moved <= max(2, len(ra) // 50), f"{moved} of {len(ra)} detections out of order"
