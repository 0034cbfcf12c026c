"""The CPU pipeline: voxelize -> PFN runner -> scatter -> RPN runner -> decode + NMS, buffers allocated once.

The PFN and RPN run through any CPU ``Runner`` (onnxruntime here); the stages
around them are the Numba njit versions whose semantics the GPU kernels copy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.backends.base import Runner
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.stages.postprocess import postprocess
from pointpillars_trt.stages.scatter import clear_pillars, scatter_pillars
from pointpillars_trt.stages.voxelize import VoxelStats, Voxelizer

STAGES = ("voxelize", "pfn", "scatter", "rpn", "postprocess")


@dataclass
class ScanResult:
    """Detections of one scan plus what the pipeline saw on the way (counts, per-stage seconds and 'total')."""

    detections: Detections
    stats: VoxelStats
    times: dict[str, float] = field(default_factory=dict)
    #: GPU only, on request: the [D, 9] detection rows in device memory (``__dlpack__``), valid until the next run
    device_rows: Any = None


class CpuPipeline:
    """Runs one scan at a time on the CPU through two runners; every buffer is allocated in __init__."""

    def __init__(self, cfg: PointPillarsConfig, pfn: Runner, rpn: Runner) -> None:
        self.cfg = cfg
        self.pfn, self.rpn = pfn, rpn
        self.voxelizer = Voxelizer(cfg)
        nx, ny, _ = cfg.grid_size
        fx, fy = cfg.feature_map_size
        ch = cfg.head_channels
        self.pillar_features = np.zeros((cfg.max_pillars, cfg.pfn_filters), np.float32)
        self.canvas = np.zeros((1, cfg.pfn_filters, ny, nx), np.float32)
        self.heads = {name: np.zeros((1, fy, fx, ch[k]), np.float32) for name, k in zip(tn.RPN_OUTPUTS, ("cls", "box", "dir"))}
        self.anchors = make_anchors(cfg)
        self._num_on_canvas = 0

    def __enter__(self) -> "CpuPipeline":
        self.pfn.__enter__()
        self.rpn.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pfn.__exit__(*exc)
        self.rpn.__exit__(*exc)

    def run(self, points: np.ndarray) -> ScanResult:
        """Detect objects in one [N, 4] float32 scan (lidar frame)."""
        t = {}
        t0 = time.perf_counter()
        vox = self.voxelizer
        clear_pillars(vox.coords, self._num_on_canvas, self.canvas)  # undo the last scan's scatter (uses old coords)
        self._num_on_canvas = 0
        stats = vox(points)
        p = stats.num_pillars
        t["voxelize"] = (t1 := time.perf_counter()) - t0
        if p == 0:  # nothing in range: nothing to detect (the RPN on an empty canvas would only echo its biases)
            return ScanResult(Detections.empty(), stats, {**t, **{s: 0.0 for s in STAGES[1:]}, "total": t["voxelize"]})
        self.pfn.infer({tn.PFN_INPUT: vox.features[:p]}, {tn.PFN_OUTPUT: self.pillar_features[:p]})
        t["pfn"] = (t2 := time.perf_counter()) - t1
        scatter_pillars(self.pillar_features, vox.coords, p, self.canvas)
        self._num_on_canvas = p
        t["scatter"] = (t3 := time.perf_counter()) - t2
        self.rpn.infer({tn.RPN_INPUT: self.canvas}, self.heads)
        t["rpn"] = (t4 := time.perf_counter()) - t3
        cls, box, dir_cls = (self.heads[n][0] for n in tn.RPN_OUTPUTS)
        dets = postprocess(cls, box, dir_cls, self.anchors, self.cfg)
        t["postprocess"] = (t5 := time.perf_counter()) - t4
        t["total"] = t5 - t0
        return ScanResult(dets, stats, t)
