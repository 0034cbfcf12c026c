"""BEV PNG of real KITTI scans: boxes land where their lidar coordinates say, in the right colours."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pointpillars_trt.io.detections import Detections
from pointpillars_trt.io.kitti import Calib, read_bin, read_labels
from pointpillars_trt.viz.bev import BevView, render_bev
from pointpillars_trt.viz.style import CLASS_COLORS, GT_COLOR, caption, point_colors

SHARED = Path(__file__).resolve().parents[2] / "shared" / "kitti"
SCAN = SHARED / "scans" / "000000.bin"
TRAIN = SHARED / "training"
CLASSES = ("Car", "Pedestrian", "Cyclist")
pytestmark = pytest.mark.skipif(not SCAN.is_file(), reason=f"shared KITTI scans not found at {SHARED}")

# The default view, written out: 0.1 m/px, x in [0, 70.4] up the image, y in [-40, 40] to the left, 48 px header.
RES, X_MAX, Y_MAX, HEADER = 0.1, 70.4, 40.0, 48


def pixel(x: float, y: float) -> tuple[int, int]:
    """(row, col) of lidar (x, y) in the PNG."""
    return int(HEADER + (X_MAX - x) / RES), int((Y_MAX - y) / RES)


def has_color(img: np.ndarray, x: float, y: float, color: tuple[int, int, int], r: int = 1) -> bool:
    row, col = pixel(x, y)
    win = img[row - r:row + r + 1, col - r:col + r + 1].reshape(-1, 3)
    return bool(np.any(np.all(win == np.array(color, np.uint8), axis=1)))


def test_detections_drawn_at_their_positions_in_class_colours(tmp_path: Path) -> None:
    pts = read_bin(SCAN)
    dets = Detections(
        boxes=np.array([[20.0, 5.0, -1.0, 3.9, 1.6, 1.56, 0.0],  # car heading +x (up the image)
                        [15.0, -6.0, -0.9, 0.8, 0.6, 1.73, np.pi / 2],  # pedestrian heading +y (left)
                        [30.0, 0.0, -0.9, 1.76, 0.6, 1.73, 0.0]], np.float32),  # cyclist below the threshold
        scores=np.array([0.9, 0.6, 0.05], np.float32), labels=np.array([1, 2, 3], np.int32))
    out = render_bev(pts, tmp_path / "bev.png", detections=dets, class_names=CLASSES, title="000000.bin",
                     score_thresh=0.3)
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (HEADER + 704, 800, 3)
    car, ped, cyc = CLASS_COLORS["Car"], CLASS_COLORS["Pedestrian"], CLASS_COLORS["Cyclist"]
    # heading marks: from the centre towards the front edge
    assert has_color(img, 21.0, 5.0, car)  # 1 m ahead of the car's centre
    assert has_color(img, 20.0 - 3.9 / 2, 5.0, car)  # rear edge
    assert has_color(img, 20.0, 5.0 + 0.8, car)  # left edge
    assert not has_color(img, 20.0, 3.0, car, r=3)  # nothing 2 m to its right
    assert has_color(img, 15.0, -5.85, ped)  # pedestrian heading points to +y
    assert not has_color(img, 30.0, 0.0, cyc, r=4)  # below score_thresh: not drawn
    # the scan itself is there: many coloured map pixels
    assert (img[HEADER:].max(axis=2) > 0).sum() > 5000


def test_ground_truth_dashed_white_and_matching_detections(tmp_path: Path) -> None:
    pts = read_bin(TRAIN / "velodyne" / "000134.bin")
    objs = read_labels(TRAIN / "label_2" / "000134.txt")
    objs = objs.select(objs.name != "DontCare")
    gt = objs.lidar_boxes(Calib.read(TRAIN / "calib" / "000134.txt"))
    names = list(objs.name)
    gt_png = render_bev(pts, tmp_path / "gt.png", gt_boxes=gt, gt_names=names, class_names=CLASSES)
    img = np.asarray(Image.open(gt_png).convert("RGB"))
    for box in gt:  # every GT box outline starts with a dash at its corners
        c, s = np.cos(box[6]), np.sin(box[6])
        fx, fy = box[0] + c * box[3] / 2 - s * box[4] / 2, box[1] + s * box[3] / 2 + c * box[4] / 2
        assert has_color(img, fx, fy, GT_COLOR), f"no GT corner at {fx:.1f},{fy:.1f}"
    # the same boxes as detections: class colour at every centre (the heading mark starts there)
    dets = Detections(gt.astype(np.float32), np.ones(len(gt), np.float32),
                      np.array([CLASSES.index(n) + 1 for n in names], np.int32))
    det_png = render_bev(pts, tmp_path / "det.png", detections=dets, gt_boxes=gt, gt_names=names, class_names=CLASSES)
    img = np.asarray(Image.open(det_png).convert("RGB"))
    for box, name in zip(gt, names):
        assert has_color(img, box[0], box[1], CLASS_COLORS[name]), f"{name} at {box[:2]}"


def test_color_by_intensity_and_view_transform(tmp_path: Path) -> None:
    pts = read_bin(SCAN)
    a = np.asarray(Image.open(render_bev(pts, tmp_path / "h.png", color_by="height")))
    b = np.asarray(Image.open(render_bev(pts, tmp_path / "i.png", color_by="intensity")))
    assert a.shape == b.shape and not np.array_equal(a, b)
    with pytest.raises(ValueError):
        render_bev(pts, tmp_path / "x.png", color_by="range")
    view = BevView()
    np.testing.assert_allclose(view.to_map_px(np.array([20.0, 5.0])), [350.0, 504.0])
    # the point palette never produces box colours (so boxes stay readable)
    cols = point_colors(np.column_stack([np.zeros((101, 2)), np.linspace(-3, 2, 101), np.linspace(0, 1, 101)]))
    for c in [*CLASS_COLORS.values(), GT_COLOR]:
        assert not np.any(np.all(cols == np.array(c), axis=1))


def test_caption_counts_per_class() -> None:
    text = caption("000000.bin", 1234, ["Car", "Car", "Cyclist"], 0.3, ["Car"])
    assert text == "000000.bin | 1234 points | detections (score >= 0.30): Car 2, Cyclist 1 | ground truth: Car 1"
