"""The synthetic sensor rig: a 64-beam spinning lidar and KITTI's camera (calibration, image, what it sees)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointpillars_trt.io.kitti import KITTI_IMAGE_SHAPE, Calib, box_corners_lidar, project_boxes_to_image
from pointpillars_trt.sample.returns import ReturnModel

IMAGE_SHAPE = KITTI_IMAGE_SHAPE

# KITTI's 2011_09_26 calibration (P2, R0_rect, Tr_velo_to_cam): realistic numbers for the synthetic camera.
_KITTI_P2 = [7.070493e02, 0.0, 6.040814e02, 4.575831e01, 0.0, 7.070493e02, 1.805066e02, -3.454157e-01,
             0.0, 0.0, 1.0, 4.981016e-03]
_KITTI_R0 = [9.999128e-01, 1.009263e-02, -8.511932e-03, -1.012729e-02, 9.999406e-01, -4.037671e-03,
             8.470675e-03, 4.123522e-03, 9.999556e-01]
_KITTI_V2C = [6.927964e-03, -9.999722e-01, -2.757829e-03, -2.457729e-02, -1.162982e-03, 2.749836e-03,
              -9.999955e-01, -6.127237e-02, 9.999753e-01, 6.931141e-03, -1.143899e-03, -3.321029e-01]


def kitti_calib() -> Calib:
    """A KITTI-like calibration (the 2011_09_26 drives' values)."""
    return Calib(np.array(_KITTI_P2).reshape(3, 4), np.array(_KITTI_R0).reshape(3, 3), np.array(_KITTI_V2C).reshape(3, 4))


@dataclass(frozen=True)
class Sensor:
    """A spinning 64-beam lidar like KITTI's HDL-64E (two blocks of 32 lasers), lidar frame origin at the sensor.

    Only the forward sector (+-az_half_deg) is cast: everything else is cropped to the camera FOV anyway.
    The azimuth step is KITTI's: 0.1797 degrees between neighbours on a ring, median over the 11 real frames
    (`sim2real`, docs/sim_to_real/).
    """

    height: float = 1.73  # above the ground
    upper_deg: tuple[float, float] = (2.0, -8.33)  # 32 lasers, about 1/3 degree apart
    lower_deg: tuple[float, float] = (-8.83, -24.8)  # 32 lasers, about 1/2 degree apart
    az_step_deg: float = 0.18
    az_half_deg: float = 50.0
    max_range: float = 120.0
    range_noise: float = 0.02  # metres, 1 sigma
    returns: ReturnModel = ReturnModel()  # which rays come back, and their intensity

    def elevations(self) -> np.ndarray:
        up = np.linspace(*self.upper_deg, 32)
        lo = np.linspace(*self.lower_deg, 32)
        return np.radians(np.concatenate([up, lo]))

    def azimuths(self) -> np.ndarray:
        n = int(round(2 * self.az_half_deg / self.az_step_deg)) + 1
        return np.radians(np.linspace(-self.az_half_deg, self.az_half_deg, n))

    def ray_dirs(self) -> np.ndarray:
        """Unit directions [A*E, 3], azimuth-major (ray a*E + e), so an azimuth interval is a contiguous slice."""
        az, el = self.azimuths()[:, None], self.elevations()[None, :]
        d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) * np.ones_like(az)], axis=-1)
        return d.reshape(-1, 3)



def fov_mask(xyz: np.ndarray, calib: Calib, image_shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Points in front (x > 0) that project inside the image: KITTI's velodyne_reduced crop."""
    if len(xyz) == 0:
        return np.zeros(0, bool)
    rect = calib.lidar_to_rect(xyz[:, :3].astype(np.float64))
    uv, depth = calib.rect_to_image(rect)
    h, w = image_shape
    return ((xyz[:, 0] > 0) & (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h))


def box_truncation(box: np.ndarray, calib: Calib) -> float:
    """KITTI truncation: the fraction of the projected 3D box's 2D extent that falls outside the image."""
    corners = box_corners_lidar(box[None])[0]
    if calib.lidar_to_rect(corners)[:, 2].min() < 0.5:
        return 1.0
    full = project_boxes_to_image(box[None], calib, None)[0]
    clip = project_boxes_to_image(box[None], calib, IMAGE_SHAPE)[0]
    area = lambda b: max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)  # noqa: E731
    return float(np.clip(1.0 - area(clip) / max(area(full), 1e-9), 0.0, 1.0))
