"""FP16 vs FP32 on the shared scans (onnxruntime CPU): max head-output difference and detections matched at BEV IoU >= 0.9.

usage: python bench/fp16_vs_fp32.py [--checkpoint CKPT] [--onnx-dir DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.backends.onnxruntime_runner import OnnxRuntimeRunner
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.io.kitti import read_bin
from pointpillars_trt.pipelines.cpu import CpuPipeline
from pointpillars_trt.stages.rotated_iou import bev_iou_matrix

SHARED = Path(__file__).resolve().parents[2] / "shared"


def match_fraction(a, b, iou=0.9) -> tuple[int, int]:
    """Greedy one-to-one matches of a's boxes to b's boxes with same label and BEV IoU >= iou."""
    if len(a) == 0 or len(b) == 0:
        return 0, max(len(a), len(b))
    m = bev_iou_matrix(a.boxes.astype(np.float64), b.boxes.astype(np.float64))
    m[a.labels[:, None] != b.labels[None, :]] = 0
    used, hits = set(), 0
    for i in range(len(a)):
        j = int(np.argmax(np.where([k not in used for k in range(len(b))], m[i], -1)))
        if m[i, j] >= iou:
            used.add(j)
            hits += 1
    return hits, max(len(a), len(b))


def compare(cfg, onnx_dir: Path, scans: list[Path]) -> list[dict]:
    rows = []
    pipes = {p: CpuPipeline(cfg, OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("pfn", p)),
                            OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("rpn", p))).__enter__() for p in tn.PRECISIONS}
    for scan in scans:
        pts = read_bin(scan)
        res = {p: pipes[p].run(pts) for p in tn.PRECISIONS}
        diffs = {n: float(np.abs(pipes["fp16"].heads[n] - pipes["fp32"].heads[n]).max()) for n in tn.RPN_OUTPUTS}
        hits, total = match_fraction(res["fp32"].detections, res["fp16"].detections)
        rows.append({"scan": scan.name, **diffs, "fp32": len(res["fp32"].detections), "fp16": len(res["fp16"].detections),
                     "matched": hits, "of": total})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", type=Path, default=SHARED / "checkpoints/pointpillar_kitti_random_seed0.pth")
    ap.add_argument("--onnx-dir", type=Path)
    a = ap.parse_args()
    cfg = PointPillarsConfig()
    onnx_dir = a.onnx_dir
    if onnx_dir is None:
        from pointpillars_trt.model.export import export_onnx
        from pointpillars_trt.model.networks import load_checkpoint

        onnx_dir = Path(tempfile.mkdtemp())
        export_onnx(load_checkpoint(a.checkpoint, cfg), onnx_dir, checkpoint=a.checkpoint)
    scans = sorted((SHARED / "kitti/scans").glob("*.bin")) + [SHARED / "kitti/training/velodyne/000134.bin",
                                                               SHARED / "kitti/testing/velodyne/000002.bin"]
    rows = compare(cfg, onnx_dir, scans)
    print(f"| scan | max|Δcls| | max|Δbox| | max|Δdir| | dets fp32 | dets fp16 | matched (IoU>=0.9, same class) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scan']} | {r['cls_preds']:.4f} | {r['box_preds']:.4f} | {r['dir_cls_preds']:.4f} | {r['fp32']} | {r['fp16']} | {r['matched']}/{r['of']} |")
    h, t = sum(r["matched"] for r in rows), sum(r["of"] for r in rows)
    print(f"\nall scans: max |Δ| cls {max(r['cls_preds'] for r in rows):.4f}, box {max(r['box_preds'] for r in rows):.4f}, "
          f"dir {max(r['dir_cls_preds'] for r in rows):.4f}; matched {h}/{t} = {100 * h / max(t, 1):.1f}%")


if __name__ == "__main__":
    main()
