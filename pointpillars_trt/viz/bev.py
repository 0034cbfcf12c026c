"""Bird's-eye-view PNG of a scan with predicted and ground-truth boxes, drawn with PIL only (no Open3D, no GUI)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from pointpillars_trt.model.config import KITTI_ANCHORS
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.io.kitti import box_corners_lidar
from pointpillars_trt.viz.overlay import HEADER_PX, add_header, dashed_line
from pointpillars_trt.viz.style import GT_COLOR, caption, class_color, point_colors

DEFAULT_CLASSES = tuple(a.name for a in KITTI_ANCHORS)


@dataclass(frozen=True)
class BevView:
    """The BEV raster: lidar x points up the image, y to the left, `res` metres per pixel.

    Pixel of lidar (x, y): column = (y_max - y) / res, row = header_px + (x_max - x) / res.
    """

    x_range: tuple[float, float] = (0.0, 70.4)
    y_range: tuple[float, float] = (-40.0, 40.0)
    res: float = 0.1
    header_px: int = HEADER_PX

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the map part, without the header."""
        return (int(round((self.y_range[1] - self.y_range[0]) / self.res)),
                int(round((self.x_range[1] - self.x_range[0]) / self.res)))

    def to_map_px(self, xy: np.ndarray) -> np.ndarray:
        """[..., 2] lidar (x, y) -> [..., 2] (column, row) in the map part (before the header is added)."""
        xy = np.asarray(xy, np.float64)
        return np.stack([(self.y_range[1] - xy[..., 1]) / self.res, (self.x_range[1] - xy[..., 0]) / self.res], -1)


def _draw_grid(d: ImageDraw.ImageDraw, view: BevView) -> None:
    """Range rings every 10 m around the sensor and a sensor marker, for scale."""
    c0 = view.to_map_px(np.array([0.0, 0.0]))
    for r in range(10, 200, 10):
        rp = r / view.res
        d.ellipse([c0[0] - rp, c0[1] - rp, c0[0] + rp, c0[1] + rp], outline=(55, 55, 55))
    d.polygon([(c0[0], c0[1] - 10), (c0[0] - 6, c0[1] + 2), (c0[0] + 6, c0[1] + 2)], fill=(200, 200, 200))


def _draw_scale_bar(d: ImageDraw.ImageDraw, view: BevView, metres: int = 10) -> None:
    """A `metres`-long bar with end ticks and its length above it, on a dark patch in the map's bottom-left corner."""
    x0, y0 = 16, view.size[1] - 20
    x1 = x0 + metres / view.res
    grey = (230, 230, 230)
    d.rectangle([x0 - 8, y0 - 30, x1 + 8, y0 + 10], fill=(0, 0, 0), outline=(90, 90, 90))
    d.line([(x0, y0), (x1, y0)], fill=grey, width=3)
    for x in (x0, x1):
        d.line([(x, y0 - 6), (x, y0 + 6)], fill=grey, width=2)
    d.text((x0, y0 - 26), f"{metres} m", fill=grey)


def _draw_boxes(d: ImageDraw.ImageDraw, view: BevView, boxes: np.ndarray, colors: Sequence[tuple[int, int, int]],
                dashed: bool, width: int) -> None:
    """Box outlines (bottom face) plus a heading mark from the centre to the middle of the front edge."""
    if len(boxes) == 0:
        return
    corners = view.to_map_px(box_corners_lidar(boxes)[:, :4, :2])  # front-right, front-left, rear-left, rear-right
    centres = view.to_map_px(np.asarray(boxes, np.float64)[:, :2])
    for quad, ctr, color in zip(corners, centres, colors):
        front = (quad[0] + quad[1]) / 2
        segs = [(quad[i], quad[(i + 1) % 4]) for i in range(4)] + [(ctr, front)]
        for a, b in segs:
            if dashed:
                dashed_line(d, a, b, color, width=width)
            else:
                d.line([tuple(a), tuple(b)], fill=color, width=width)


def render_bev(points: np.ndarray, out_png: str | os.PathLike, detections: Detections | None = None,
               gt_boxes: np.ndarray | None = None, gt_names: Sequence[str] | None = None,
               class_names: Sequence[str] = DEFAULT_CLASSES, title: str = "", color_by: str = "height",
               score_thresh: float = 0.0, view: BevView = BevView()) -> Path:
    """Write a BEV PNG: points coloured by height/intensity, detections (score >= score_thresh) in class colours,
    ground truth dashed white, and a caption + legend header. Returns the PNG path."""
    w, h = view.size
    canvas = np.zeros((h, w, 3), np.uint8)
    pts = np.asarray(points, np.float32)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"points must be [N, 3+] (x, y, z[, intensity]), got shape {pts.shape}")
    order = np.argsort(pts[:, 2], kind="stable")  # higher points drawn last (on top)
    pts = pts[order]
    px = np.floor(view.to_map_px(pts[:, :2])).astype(np.int64)
    ok = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    img = Image.fromarray(canvas)
    d = ImageDraw.Draw(img)
    _draw_grid(d, view)
    canvas = np.asarray(img).copy()
    canvas[px[ok, 1], px[ok, 0]] = point_colors(pts[ok], color_by)
    img = Image.fromarray(canvas)
    d = ImageDraw.Draw(img)

    if gt_boxes is not None and len(gt_boxes):
        _draw_boxes(d, view, np.asarray(gt_boxes, np.float64).reshape(-1, 7), [GT_COLOR] * len(gt_boxes), True, 2)
    det_names = None
    if detections is not None:
        keep = np.asarray(detections.scores) >= score_thresh
        boxes, labels = np.asarray(detections.boxes)[keep], np.asarray(detections.labels)[keep]
        det_names = [_label_name(int(l), class_names) for l in labels]
        # lowest score first so the most confident box ends on top
        order = np.argsort(np.asarray(detections.scores)[keep], kind="stable")
        _draw_boxes(d, view, boxes[order], [class_color(det_names[i], class_names) for i in order], False, 2)

    _draw_scale_bar(d, view)
    text = caption(title, len(points), det_names, score_thresh, None if gt_names is None else list(gt_names))
    out = add_header(img, text, list(class_names), with_gt=gt_boxes is not None, header_px=view.header_px)
    out_png = Path(out_png)
    out.save(out_png)
    return out_png


def _label_name(label: int, class_names: Sequence[str]) -> str:
    """1-based label -> class name (unknown ids keep a readable name)."""
    return class_names[label - 1] if 1 <= label <= len(class_names) else f"class{label}"
