"""Detection agreement of two KITTI result folders (e.g. `eval --data` runs at FP16 and FP32): boxes matched one to one
with the same class and BEV IoU >= 0.9, per frame, over all detections and over those scoring >= 0.5.

usage: PYTHONPATH=. python bench/result_agreement.py RESULTS_A RESULTS_B
"""
from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fp16_vs_fp32 import match_fraction
from pointpillars_trt.io.kitti import read_labels


class BevObjects(SimpleNamespace):
    """boxes [N,7] and labels [N], as match_fraction reads them."""

    def __len__(self) -> int:
        return len(self.labels)


def bev_objects(path: Path, min_score: float) -> BevObjects:
    """The result file's boxes in the camera's BEV plane (x, z, l, w, -ry), in the [x,y,z,dx,dy,dz,yaw] slots
    bev_iou_matrix reads; the same mapping for both sides, so IoUs are those of the KITTI boxes."""
    o = read_labels(path)
    keep = o.score >= min_score if o.score is not None and len(o) else np.zeros(len(o), bool)
    h, w, l = o.dimensions[keep].T
    x, y, z = o.location[keep].T
    boxes = np.column_stack([x, z, y, l, w, h, -o.rotation_y[keep]]) if keep.any() else np.zeros((0, 7))
    return BevObjects(boxes=boxes, labels=o.name[keep])


def agreement(a_dir: Path, b_dir: Path, min_score: float) -> tuple[int, int, int]:
    """(matched, max(len a, len b) summed over frames, frames that differ)."""
    hits = total = differ = 0
    for fa in sorted(a_dir.glob("*.txt")):
        a, b = (bev_objects(f, min_score) for f in (fa, b_dir / fa.name))
        h, t = match_fraction(a, b)
        hits, total, differ = hits + h, total + t, differ + (h != t)
    return hits, total, differ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    a = ap.parse_args()
    n = len(list(a.a.glob("*.txt")))
    for s in (0.0, 0.5):
        h, t, d = agreement(a.a, a.b, s)
        print(f"score >= {s}: {h}/{t} detections matched ({100 * h / max(t, 1):.2f}%, same class, BEV IoU >= 0.9); "
              f"{d} of {n} frames differ")


if __name__ == "__main__":
    main()
