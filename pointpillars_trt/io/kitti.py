"""KITTI file formats: calib, label_2 (read/write) and detection results; scans are read in io/points.py.

Boxes inside the project are lidar-frame (x, y, z_centre, dx, dy, dz, yaw); KITTI
labels are camera-frame (h, w, l, x, y_bottom, z, rotation_y). The conversions
here are the only place the two meet.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.points import POINT_BYTES, ScanStats, read_bin, write_bin  # noqa: F401  (their old home)

KITTI_IMAGE_SHAPE = (375, 1242)  # (height, width) of KITTI's left colour camera, where no image says otherwise


def read_text(path: Path, what: str) -> str:
    """A KITTI text file's contents; UserError naming the file for missing, binary or unreadable ones."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{what} {path}: cannot be read as a KITTI text file ({type(e).__name__})") from None


# ---------------------------------------------------------------------------- calib
@dataclass
class Calib:
    """KITTI object calibration: P2 (3x4), R0_rect (3x3), Tr_velo_to_cam (3x4)."""

    P2: np.ndarray
    R0: np.ndarray
    V2C: np.ndarray

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Calib":
        path = Path(path)
        text = read_text(path, "calib")
        vals: dict[str, np.ndarray] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            key, sep, rest = line.partition(":")
            if not sep:
                raise UserError(f"{path}:{n}: not a 'KEY: values' calib line")
            try:
                vals[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
            except ValueError:
                raise UserError(f"{path}:{n}: non-numeric value in calib entry {key.strip()}") from None
        need = {"P2": 12, "R0_rect": 9, "Tr_velo_to_cam": 12}
        for k, n in need.items():
            if k not in vals:
                raise UserError(f"calib {path}: missing {k}")
            if vals[k].size != n:
                raise UserError(f"calib {path}: {k} has {vals[k].size} values, expected {n}")
        return cls(vals["P2"].reshape(3, 4), vals["R0_rect"].reshape(3, 3), vals["Tr_velo_to_cam"].reshape(3, 4))

    def write(self, path: str | os.PathLike) -> None:
        """Write in KITTI's object calib layout (P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo)."""
        f = lambda a: " ".join(f"{v:.12e}" for v in np.asarray(a).ravel())  # noqa: E731
        lines = [f"P{i}: {f(self.P2)}" for i in range(4)]
        lines += [f"R0_rect: {f(self.R0)}", f"Tr_velo_to_cam: {f(self.V2C)}", f"Tr_imu_to_velo: {f(np.eye(3, 4))}"]
        Path(path).write_text("\n".join(lines) + "\n")

    def lidar_to_rect(self, pts: np.ndarray) -> np.ndarray:
        """Lidar-frame points [N,3] -> rectified camera frame [N,3]."""
        hom = np.hstack([pts[:, :3], np.ones((len(pts), 1))])
        return (hom @ self.V2C.T) @ self.R0.T

    def rect_to_lidar(self, pts: np.ndarray) -> np.ndarray:
        """Rectified camera frame [N,3] -> lidar frame [N,3]."""
        V2C4 = np.vstack([self.V2C, [0, 0, 0, 1]])
        R04 = np.eye(4)
        R04[:3, :3] = self.R0
        hom = np.hstack([pts[:, :3], np.ones((len(pts), 1))])
        return (hom @ np.linalg.inv(R04 @ V2C4).T)[:, :3]

    def rect_to_image(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project rect-frame points to image pixels; returns (uv [N,2], depth [N])."""
        hom = np.hstack([pts[:, :3], np.ones((len(pts), 1))]) @ self.P2.T
        depth = hom[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = hom[:, :2] / depth[:, None]
        return uv, depth


def find_calib(scan: Path, calib: Path | None) -> Path | None:
    """The calib for a scan: `calib` (a file for all scans, or a folder of <id>.txt), else KITTI layout's sibling
    calib/<id>.txt (…/velodyne/<id>.bin), else None. UserError when a given calib has no file for the scan."""
    if calib is not None:
        c = calib / f"{scan.stem}.txt" if calib.is_dir() else calib
        if not c.is_file():
            raise UserError(f"calib not found: {c}")
        return c
    c = scan.parent.parent / "calib" / f"{scan.stem}.txt"
    return c if scan.parent.name == "velodyne" and c.is_file() else None


def scan_image_shape(scan: Path) -> tuple[int, int]:
    """(height, width) of the KITTI image_2 beside a scan in KITTI's layout, for clipping 2D boxes (its header
    only); KITTI's usual size otherwise."""
    img = scan.parent.parent / "image_2" / f"{scan.stem}.png"
    if scan.parent.name == "velodyne" and img.is_file():
        from PIL import Image

        with Image.open(img) as im:
            return im.size[1], im.size[0]
    return KITTI_IMAGE_SHAPE


# ---------------------------------------------------------------------------- boxes
#: half-extent signs of the eight corners along x, y, z (bottom face 0-3, top face 4-7)
_CORNER_SIGNS = np.array([[1, 1, -1, -1, 1, 1, -1, -1], [-1, 1, 1, -1, -1, 1, 1, -1], [-1, -1, -1, -1, 1, 1, 1, 1]]) * 0.5
def box_corners_lidar(boxes: np.ndarray) -> np.ndarray:
    """Eight corners [N,8,3] of lidar boxes (x,y,z_centre,dx,dy,dz,yaw)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    sx, sy, sz = _CORNER_SIGNS
    local = np.stack([sx[None] * b[:, 3:4], sy[None] * b[:, 4:5], sz[None] * b[:, 5:6]], axis=-1)
    c, s = np.cos(b[:, 6])[:, None], np.sin(b[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s + b[:, 0:1]
    y = local[..., 0] * s + local[..., 1] * c + b[:, 1:2]
    return np.stack([x, y, local[..., 2] + b[:, 2:3]], axis=-1)


def lidar_boxes_to_camera(boxes: np.ndarray, calib: Calib) -> np.ndarray:
    """Lidar boxes [N,7] -> KITTI camera boxes [N,7] as (x, y_bottom, z, l, h, w, rotation_y)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    bottom = b[:, :3].copy()
    bottom[:, 2] -= b[:, 5] / 2
    xyz = calib.lidar_to_rect(bottom)
    ry = -b[:, 6] - np.pi / 2
    ry = ry - np.floor(ry / (2 * np.pi) + 0.5) * 2 * np.pi  # to [-pi, pi)
    return np.column_stack([xyz, b[:, 3], b[:, 5], b[:, 4], ry])


def camera_boxes_to_lidar(cam: np.ndarray, calib: Calib) -> np.ndarray:
    """KITTI camera boxes (x, y_bottom, z, l, h, w, ry) -> lidar boxes (x, y, z_centre, dx, dy, dz, yaw)."""
    c = np.asarray(cam, dtype=np.float64).reshape(-1, 7)
    xyz = calib.rect_to_lidar(c[:, :3])
    xyz[:, 2] += c[:, 4] / 2
    return np.column_stack([xyz, c[:, 3], c[:, 5], c[:, 4], -c[:, 6] - np.pi / 2])


def project_boxes_to_image(boxes: np.ndarray, calib: Calib, image_shape: tuple[int, int] | None) -> np.ndarray:
    """2D image boxes [N,4] (x1,y1,x2,y2) of lidar boxes, clipped to (height, width) when given."""
    corners = box_corners_lidar(boxes).reshape(-1, 3)
    uv, _ = calib.rect_to_image(calib.lidar_to_rect(corners))
    uv = uv.reshape(-1, 8, 2)
    bb = np.concatenate([uv.min(axis=1), uv.max(axis=1)], axis=1)
    if image_shape is not None:
        h, w = image_shape
        bb[:, [0, 2]] = bb[:, [0, 2]].clip(0, w - 1)
        bb[:, [1, 3]] = bb[:, [1, 3]].clip(0, h - 1)
    return bb


# ---------------------------------------------------------------------------- labels
@dataclass
class KittiObjects:
    """The objects of one KITTI label_2 / result file, column by column (camera frame)."""

    name: np.ndarray  # [N] str
    truncated: np.ndarray  # [N] float
    occluded: np.ndarray  # [N] int
    alpha: np.ndarray  # [N]
    bbox: np.ndarray  # [N,4] x1 y1 x2 y2
    dimensions: np.ndarray  # [N,3] h w l  (KITTI column order)
    location: np.ndarray  # [N,3] x y_bottom z (rect camera)
    rotation_y: np.ndarray  # [N]
    score: np.ndarray | None = None  # [N] results only

    def __len__(self) -> int:
        return len(self.name)

    @classmethod
    def empty(cls, with_score: bool = False) -> "KittiObjects":
        z = np.zeros(0)
        return cls(np.zeros(0, dtype="<U16"), z, np.zeros(0, int), z, np.zeros((0, 4)), np.zeros((0, 3)),
                   np.zeros((0, 3)), z, z.copy() if with_score else None)

    def camera_boxes(self) -> np.ndarray:
        """[N,7] (x, y_bottom, z, l, h, w, ry)."""
        h, w, l = self.dimensions.T
        return np.column_stack([self.location, l, h, w, self.rotation_y])

    def lidar_boxes(self, calib: Calib) -> np.ndarray:
        return camera_boxes_to_lidar(self.camera_boxes(), calib)

    def select(self, mask: np.ndarray) -> "KittiObjects":
        return KittiObjects(self.name[mask], self.truncated[mask], self.occluded[mask], self.alpha[mask], self.bbox[mask],
                            self.dimensions[mask], self.location[mask], self.rotation_y[mask],
                            None if self.score is None else self.score[mask])


def parse_labels(text: str, source: str = "<labels>") -> KittiObjects:
    """Parse KITTI label_2 text (15 columns, or 16 with a score). Errors name the file and line."""
    rows = []
    scores = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise UserError(f"{source}:{n}: expected 15 or 16 columns (type ... rotation_y [score]), got {len(parts)}")
        try:
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            raise UserError(f"{source}:{n}: non-numeric value in label line: {line.strip()[:80]}") from None
        if not all(math.isfinite(v) for v in vals):
            raise UserError(f"{source}:{n}: NaN or Inf in label line")
        rows.append((parts[0], vals[:14]))
        scores.append(vals[14] if len(vals) == 15 else None)
    if not rows:
        return KittiObjects.empty()
    has_score = [s is not None for s in scores]
    if any(has_score) and not all(has_score):
        raise UserError(f"{source}: some lines have a score column and some do not")
    a = np.array([r[1] for r in rows], dtype=np.float64)
    return KittiObjects(
        name=np.array([r[0] for r in rows]),
        truncated=a[:, 0], occluded=a[:, 1].astype(int), alpha=a[:, 2], bbox=a[:, 3:7], dimensions=a[:, 7:10],
        location=a[:, 10:13], rotation_y=a[:, 13],
        score=np.array(scores, dtype=np.float64) if all(has_score) else None,
    )


def read_labels(path: str | os.PathLike) -> KittiObjects:
    """Read a KITTI label_2 (or result) file."""
    return parse_labels(read_text(Path(path), "label file"), str(path))


#: one label_2 line: type, truncated, occluded, alpha, bbox (4), dimensions h w l, location x y z, rotation_y
_LABEL_ROW = "%s %.2f %d %.6f " + " ".join(["%.2f"] * 4) + " " + " ".join(["%.4f"] * 6) + " %.6f"


def format_labels(objs: KittiObjects) -> str:
    """KITTI label_2 text; a 16th score column when the objects carry scores. One %-format for all lines (a
    line at a time took 0.9 ms for 46 objects on 2 cores, too slow for folder runs at the GPU's pace)."""
    n = len(objs)
    if n == 0:
        return ""
    cols = [objs.name.tolist(), objs.truncated.tolist(), np.asarray(objs.occluded).astype(int).tolist(),
            objs.alpha.tolist(), *objs.bbox.T.tolist(), *objs.dimensions.T.tolist(), *objs.location.T.tolist(),
            objs.rotation_y.tolist()]
    row = _LABEL_ROW
    if objs.score is not None:
        cols.append(objs.score.tolist())
        row += " %.6f"
    return "\n".join([row] * n) % tuple(v for line in zip(*cols) for v in line) + "\n"


def write_labels(path: str | os.PathLike, objs: KittiObjects) -> None:
    Path(path).write_text(format_labels(objs))


def detections_to_kitti(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
                        calib: Calib, image_shape: tuple[int, int] | None = None) -> KittiObjects:
    """Lidar-frame detections -> KITTI result objects (camera frame, 2D box from projected corners)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    cam = lidar_boxes_to_camera(boxes, calib)
    alpha = -np.arctan2(-boxes[:, 1], boxes[:, 0]) + cam[:, 6]
    alpha = alpha - np.floor(alpha / (2 * np.pi) + 0.5) * 2 * np.pi  # KITTI's [-pi, pi)
    n = len(boxes)
    return KittiObjects(
        name=np.array([class_names[int(l) - 1] for l in labels]) if n else np.zeros(0, dtype="<U16"),
        truncated=np.zeros(n), occluded=np.zeros(n, int), alpha=alpha,
        bbox=project_boxes_to_image(boxes, calib, image_shape) if n else np.zeros((0, 4)),
        dimensions=cam[:, [4, 5, 3]], location=cam[:, :3], rotation_y=cam[:, 6], score=np.asarray(scores, np.float64),
    )


def detections_to_json(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
                       meta: dict | None = None) -> str:
    """Lidar-frame detections as the results JSON (the one format: Detections.to_json)."""
    from pointpillars_trt.io.detections import Detections

    return Detections(np.asarray(boxes).reshape(-1, 7), np.asarray(scores), np.asarray(labels)).to_json(class_names, meta)
