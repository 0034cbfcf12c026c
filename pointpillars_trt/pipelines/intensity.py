"""One warning, once per detector, when a scan's intensities lie far outside the range the model was trained on.

Why: many lidar drivers give intensities 0..255; a KITTI model (trained on 0..1) then finds nothing, silently.
The check reads a strided sample of each host scan's intensity column, as the model will see it (after the
config's intensity_scale), until it has warned; it names the range and the scale that would fix the data.
Device (CUDA) points are not looked at: that would need a copy to the host.
"""
from __future__ import annotations

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.model.config import PointPillarsConfig

SAMPLE = 256  # intensities looked at per scan
FAR = 1.0  # "far outside": more than FAR range widths beyond either end of the range
FRACTION = 0.01  # ... for more than this fraction of the sample (a few odd returns are no reason to warn)
FULL_SCALES = (100.0, 255.0, 4095.0, 65535.0)  # what drivers give: percent, 8-bit, 12-bit, 16-bit


class IntensityCheck:
    """Call it with each host scan ([N, C>=4] float32); it warns (log.warn) at most once."""

    def __init__(self, cfg: PointPillarsConfig) -> None:
        self.lo, self.hi = (float(v) for v in cfg.intensity_range)
        self.scale = float(cfg.intensity_scale)
        width = self.hi - self.lo
        self.far_lo, self.far_hi = self.lo - FAR * width, self.hi + FAR * width
        self.warned = False

    def __call__(self, points: np.ndarray) -> None:
        if self.warned or len(points) == 0:
            return
        i = points[:: max(1, len(points) // SAMPLE), 3]
        if self.scale != 1.0:
            i = i * np.float32(self.scale)
        if self.far_lo <= i.min() and i.max() <= self.far_hi:  # the usual case: 3.8-6.9 us a scan on 2 shared cores
            return
        far = np.count_nonzero((i > self.far_hi) | (i < self.far_lo))
        if far > FRACTION * len(i):
            self.warned = True
            log.warn(self.message(i, far))

    def message(self, seen: np.ndarray, far: int) -> str:
        """One line: what the sample held, the model's range, and the fix (a scale when the values are too large)."""
        top, bottom = float(seen.max()), float(seen.min())
        what = f"up to {top:.4g}" if top > self.far_hi else f"down to {bottom:.4g}"
        head = (f"scan intensities {what} ({far} of {len(seen)} sampled points far outside {self.lo:g}..{self.hi:g}, "
                f"the model's training range), so its detections will be wrong")
        if top <= self.far_hi:
            return f"{head}; map them into {self.lo:g}..{self.hi:g} before detecting"
        s = f"{self.scale * (self.hi - self.lo) / next((f for f in FULL_SCALES if f >= top), top):.3g}"
        return f"{head}; scale them: --intensity-scale {s} (API: intensity_scale={s})"
