"""Open3D 3D view of a scan with boxes: an interactive window, or the same view rendered headless to PNG.

open3d is imported lazily (it is optional). Its headless OffscreenRenderer (Filament) aborts the whole
process when no Vulkan driver is installed, so the driver files are checked before it is created.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from pointpillars_trt.io.detections import Detections
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import box_corners_lidar
from pointpillars_trt.viz.bev import DEFAULT_CLASSES, _label_name
from pointpillars_trt.viz.overlay import add_header
from pointpillars_trt.viz.style import GT_COLOR, caption, class_color, point_colors

INSTALL_HINT = ("pip install open3d (0.19+); on a headless Linux machine also "
                "apt-get install libusb-1.0-0 libvulkan1 mesa-vulkan-drivers")
# bottom face 0-3 (front-right, front-left, rear-left, rear-right), top face 4-7, as box_corners_lidar orders them
_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def import_open3d() -> Any:
    """open3d, or a UserError with the install hint."""
    try:
        import open3d
    except (ImportError, OSError) as e:  # OSError: a missing shared library such as libusb-1.0
        raise UserError(f"the 3D viewer needs Open3D, which could not be imported ({e}); {INSTALL_HINT}; "
                        "or write a bird's-eye view with --bev out.png") from None
    return open3d


def vulkan_driver_files() -> list[Path]:
    """Vulkan ICD manifest files the loader would find (VK_DRIVER_FILES / VK_ICD_FILENAMES, else the standard dirs)."""
    env = os.environ.get("VK_DRIVER_FILES") or os.environ.get("VK_ICD_FILENAMES")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if Path(p).is_file()]
    roots = (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep) + ["/etc"]
    roots += (os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(os.pathsep)
    roots += ["/usr/local/share", "/usr/share"]
    found: list[Path] = []
    for r in dict.fromkeys(roots):
        d = Path(r) / "vulkan" / "icd.d"
        if d.is_dir():
            found += sorted(d.glob("*.json"))
    return found


def check_display() -> None:
    """Raise UserError where an interactive window cannot open (Linux without DISPLAY / WAYLAND_DISPLAY)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display for a 3D window (DISPLAY is not set); save it with --save out.png "
                        "or write a bird's-eye view with --bev out.png")


def check_offscreen_support() -> None:
    """Raise UserError where creating an OffscreenRenderer would abort the process (Linux without a Vulkan driver)."""
    if sys.platform.startswith("linux") and not vulkan_driver_files():
        raise UserError("headless 3D rendering needs a Vulkan driver and none is installed "
                        "(no /usr/share/vulkan/icd.d/*.json); apt-get install libvulkan1 mesa-vulkan-drivers, "
                        "or write a bird's-eye view with --bev out.png")


def _boxes_lineset(o3d: Any, boxes: np.ndarray, colors: Sequence[tuple[int, int, int]], front_cross: bool,
                   gamma: float = 1.0) -> Any:
    """All boxes as one LineSet: 12 edges, a heading line from the top centre to the front edge, optionally an X
    on the front face (the predicted-box style)."""
    corners = box_corners_lidar(boxes)
    verts, lines, cols = [], [], []
    for k, (c, color) in enumerate(zip(corners, colors)):
        base = len(verts) * 10
        top_centre, front_mid = c[4:8].mean(axis=0), (c[4] + c[5]) / 2
        verts.append(np.vstack([c, top_centre, front_mid]))
        segs = _EDGES + [(8, 9)] + ([(0, 5), (1, 4)] if front_cross else [])
        lines += [(base + a, base + b) for a, b in segs]
        cols += [color] * len(segs)
    ls = o3d.geometry.LineSet()
    ls.points = o3d.utility.Vector3dVector(np.vstack(verts).astype(np.float64))
    ls.lines = o3d.utility.Vector2iVector(np.array(lines, np.int32))
    ls.colors = o3d.utility.Vector3dVector((np.array(cols, np.float64) / 255.0) ** gamma)
    return ls


def build_geometries(o3d: Any, points: np.ndarray, detections: Detections | None, gt_boxes: np.ndarray | None,
                     class_names: Sequence[str], color_by: str, score_thresh: float,
                     linear: bool = False) -> tuple[dict[str, Any], list[str] | None]:
    """Named geometries (points, predicted boxes, ground truth) and the names of the drawn detections.

    linear: colours for Filament (the offscreen renderer), which treats them as linear and encodes to sRGB;
    they are pre-decoded so the PNG shows the same palette as the BEV.
    """
    gamma = 2.2 if linear else 1.0
    pts = np.asarray(points, np.float32)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[:, :3].astype(np.float64)))
    pcd.colors = o3d.utility.Vector3dVector((point_colors(pts, color_by).astype(np.float64) / 255.0) ** gamma)
    geoms: dict[str, Any] = {"points": pcd}
    det_names = None
    if detections is not None:
        keep = np.asarray(detections.scores) >= score_thresh
        boxes = np.asarray(detections.boxes, np.float64)[keep]
        det_names = [_label_name(int(l), class_names) for l in np.asarray(detections.labels)[keep]]
        if len(boxes):
            geoms["detections"] = _boxes_lineset(o3d, boxes, [class_color(n, class_names) for n in det_names], True,
                                                 gamma)
    if gt_boxes is not None and len(gt_boxes):
        geoms["ground_truth"] = _boxes_lineset(o3d, np.asarray(gt_boxes, np.float64).reshape(-1, 7),
                                               [GT_COLOR] * len(gt_boxes), False, gamma)
    return geoms, det_names


def view_caption(points: np.ndarray, detections: Detections | None, gt_names: Sequence[str] | None,
                 class_names: Sequence[str], title: str, score_thresh: float) -> str:
    names = None
    if detections is not None:
        keep = np.asarray(detections.scores) >= score_thresh
        names = [_label_name(int(l), class_names) for l in np.asarray(detections.labels)[keep]]
    return caption(title, len(points), names, score_thresh, None if gt_names is None else list(gt_names))


def show_window(points: np.ndarray, detections: Detections | None = None, gt_boxes: np.ndarray | None = None,
                gt_names: Sequence[str] | None = None, class_names: Sequence[str] = DEFAULT_CLASSES, title: str = "",
                color_by: str = "height", score_thresh: float = 0.0) -> str:
    """Open an interactive Open3D window (blocks until closed); returns the caption it printed."""
    check_display()
    o3d = import_open3d()
    geoms, _ = build_geometries(o3d, points, detections, gt_boxes, class_names, color_by, score_thresh)
    text = view_caption(points, detections, gt_names, class_names, title, score_thresh)
    legend = ", ".join(f"{n}={'rgb' + str(class_color(n, class_names))}" for n in class_names)
    print(text)
    print(f"colours: {legend}; ground truth = white boxes; predicted boxes have an X on the front face")
    o3d.visualization.draw_geometries(list(geoms.values()), window_name=text[:200], width=1280, height=800)
    return text


def save_png(out_png: str | os.PathLike, points: np.ndarray, detections: Detections | None = None,
             gt_boxes: np.ndarray | None = None, gt_names: Sequence[str] | None = None,
             class_names: Sequence[str] = DEFAULT_CLASSES, title: str = "", color_by: str = "height",
             score_thresh: float = 0.0, size: tuple[int, int] = (1280, 720)) -> Path:
    """Render the 3D view headless (OffscreenRenderer) from behind and above the sensor, with the caption header."""
    o3d = import_open3d()
    check_offscreen_support()
    from open3d.visualization import rendering

    geoms, _ = build_geometries(o3d, points, detections, gt_boxes, class_names, color_by, score_thresh, linear=True)
    renderer = rendering.OffscreenRenderer(*size)
    renderer.scene.set_background([0.0, 0.0, 0.0, 1.0])
    pmat = rendering.MaterialRecord()
    pmat.shader, pmat.point_size = "defaultUnlit", 2.0
    lmat = rendering.MaterialRecord()
    lmat.shader, lmat.line_width = "unlitLine", 2.0
    for name, g in geoms.items():
        renderer.scene.add_geometry(name, g, pmat if name == "points" else lmat)
    # chase view: eye behind and above the sensor, looking ~25 m ahead
    renderer.setup_camera(50.0, np.array([24.0, 0.0, -2.0], np.float32), np.array([-9.0, 0.0, 13.0], np.float32),
                          np.array([0.0, 0.0, 1.0], np.float32))
    img = Image.fromarray(np.asarray(renderer.render_to_image())).convert("RGB")
    del renderer
    text = view_caption(points, detections, gt_names, class_names, title, score_thresh)
    out = add_header(img, text, list(class_names), with_gt=gt_boxes is not None, gt_dashed=False)
    out_png = Path(out_png)
    out.save(out_png)
    return out_png
