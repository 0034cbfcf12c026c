"""PointPillars LiDAR 3D detection as a chain of GPU stages (TensorRT + Numba CUDA), with CPU fallbacks.

The public API is what ``__all__`` names; everything else is internal. Detector and its result types are imported
on first use, so ``import pointpillars_trt`` stays cheap.
"""
from __future__ import annotations

from typing import Any

from pointpillars_trt.errors import UserError
from pointpillars_trt.model.config import AnchorClass, PointPillarsConfig

__version__ = "0.1.0"
__all__ = ["AnchorClass", "Calib", "Detections", "Detector", "DetectorSpec", "DevicePoints", "FolderSummary",
           "PointPillarsConfig", "ScanResult", "UserError", "VoxelStats", "__version__", "infer_folder"]

_LAZY = {
    "Detector": "pointpillars_trt.api",
    "DetectorSpec": "pointpillars_trt.runs.spec",
    "FolderSummary": "pointpillars_trt.runs.summary",
    "infer_folder": "pointpillars_trt.runs.folder",
    "Calib": "pointpillars_trt.io.kitti",
    "Detections": "pointpillars_trt.io.detections",
    "ScanResult": "pointpillars_trt.pipelines.cpu",
    "DevicePoints": "pointpillars_trt.pipelines.inputs",
    "VoxelStats": "pointpillars_trt.stages.voxelize",
}


def __getattr__(name: str) -> Any:
    """Import the public classes on first access (PEP 562)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pointpillars_trt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
