"""The synthetic scene generator: reproducibility, KITTI files, geometry of points vs labels, occlusion levels."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.io.kitti import Calib, read_bin, read_labels
from pointpillars_trt.sample.dataset import write_dataset, write_frame
from pointpillars_trt.sample.layout import SIZE_SPREAD, Layout
from pointpillars_trt.sample.raycast import Prim
from pointpillars_trt.sample.scene import generate_scene, render_layout
from pointpillars_trt.sample.sensor import IMAGE_SHAPE, Sensor

CFG = PointPillarsConfig()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, 3, seed=7, progress=False)
    return root


@pytest.fixture(scope="module")
def scenes() -> list:
    return [generate_scene(s, CFG) for s in range(12)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def points_in_box(points: np.ndarray, box: np.ndarray, tol: float) -> np.ndarray:
    """Independent rotated-box test: move points into the box frame (rotate by -yaw) and compare half sizes."""
    x, y, z, dx, dy, dz, yaw = box
    px, py = points[:, 0] - x, points[:, 1] - y
    lx = np.cos(yaw) * px + np.sin(yaw) * py
    ly = -np.sin(yaw) * px + np.cos(yaw) * py
    return (np.abs(lx) <= dx / 2 + tol) & (np.abs(ly) <= dy / 2 + tol) & (np.abs(points[:, 2] - z) <= dz / 2 + tol)


def test_same_seed_same_bytes_and_layout(dataset: Path, tmp_path: Path) -> None:
    write_dataset(tmp_path, 3, seed=7, progress=False)
    a, b = _files(dataset), _files(tmp_path)
    assert sorted(a) == sorted(b)
    assert a == b
    for fid in ("000000", "000001", "000002"):
        for sub, ext in (("velodyne", "bin"), ("label_2", "txt"), ("calib", "txt")):
            assert f"training/{sub}/{fid}.{ext}" in a
    assert (dataset / "ImageSets" / "val.txt").read_text().split() == ["000000", "000001", "000002"]


def test_different_seed_differs(dataset: Path, tmp_path: Path) -> None:
    write_dataset(tmp_path, 1, seed=8, progress=False)
    assert (tmp_path / "training/velodyne/000000.bin").read_bytes() != (dataset / "training/velodyne/000000.bin").read_bytes()
    # frames of one dataset differ from each other too
    assert (dataset / "training/velodyne/000000.bin").read_bytes() != (dataset / "training/velodyne/000001.bin").read_bytes()


def test_labels_round_trip(tmp_path: Path) -> None:
    scene = generate_scene(3, CFG)
    write_frame(tmp_path, "000000", scene)
    objs = read_labels(tmp_path / "training/label_2/000000.txt")
    calib = Calib.read(tmp_path / "training/calib/000000.txt")
    ref = scene.kitti_objects()
    assert len(objs) == len(scene.boxes) > 0
    assert list(objs.name) == list(scene.names)
    assert np.array_equal(objs.occluded, scene.occlusion)
    np.testing.assert_allclose(objs.truncated, scene.truncation, atol=0.006)
    np.testing.assert_allclose(objs.bbox, ref.bbox, atol=0.006)
    np.testing.assert_allclose(objs.dimensions, ref.dimensions, atol=1e-4)
    np.testing.assert_allclose(objs.location, ref.location, atol=1e-4)
    np.testing.assert_allclose(objs.alpha, ref.alpha, atol=1e-6)
    assert np.all((objs.bbox[:, [0, 2]] >= 0) & (objs.bbox[:, [0, 2]] <= IMAGE_SHAPE[1] - 1))
    assert np.all((objs.bbox[:, [1, 3]] >= 0) & (objs.bbox[:, [1, 3]] <= IMAGE_SHAPE[0] - 1))
    back = objs.lidar_boxes(calib)
    np.testing.assert_allclose(back[:, :6], scene.boxes[:, :6], atol=2e-3)
    dyaw = (back[:, 6] - scene.boxes[:, 6] + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(dyaw).max() < 1e-5
    pts = read_bin(tmp_path / "training/velodyne/000000.bin")
    assert np.array_equal(pts, scene.points)


def test_visible_objects_have_points_in_their_label_box(dataset: Path) -> None:
    checked = 0
    for fid in ("000000", "000001", "000002"):
        pts = read_bin(dataset / f"training/velodyne/{fid}.bin")
        objs = read_labels(dataset / f"training/label_2/{fid}.txt")
        boxes = objs.lidar_boxes(Calib.read(dataset / f"training/calib/{fid}.txt"))
        for name, occ, box in zip(objs.name, objs.occluded, boxes):
            inside = int(points_in_box(pts, box, tol=0.05).sum())
            if occ < 3:
                assert inside > 0, f"{fid}: visible {name} at {box[:3]} has no points in its box"
                checked += 1
    assert checked >= 10


def test_points_lie_in_camera_fov(dataset: Path) -> None:
    for fid in ("000000", "000001", "000002"):
        pts = read_bin(dataset / f"training/velodyne/{fid}.bin").astype(np.float64)
        assert 5_000 < len(pts) < 60_000
        c = Calib.read(dataset / f"training/calib/{fid}.txt")
        # lidar -> camera -> rectified -> image, written out as one 3x4 matrix product
        velo_to_rect = np.vstack([c.R0 @ c.V2C, [0, 0, 0, 1]])
        img = (c.P2 @ velo_to_rect @ np.column_stack([pts[:, :3], np.ones(len(pts))]).T).T
        u, v = img[:, 0] / img[:, 2], img[:, 1] / img[:, 2]
        assert np.all(pts[:, 0] > 0) and np.all(img[:, 2] > 0)
        assert u.min() >= 0 and u.max() < 1242 and v.min() >= 0 and v.max() < 375
        assert np.all((pts[:, 3] >= 0) & (pts[:, 3] <= 1))
        # a 64-beam scan: ground near -1.73 m, nothing far below it
        assert np.percentile(pts[:, 2], 5) == pytest.approx(-1.73, abs=0.35)


def test_class_sizes_follow_config_anchors(scenes) -> None:
    names = np.concatenate([s.names for s in scenes])
    boxes = np.concatenate([s.boxes for s in scenes])
    for anchor in CFG.anchors:
        sel = names == anchor.name
        assert sel.sum() >= 3, f"too few {anchor.name} in 12 scenes"
        size = np.array(anchor.size)
        np.testing.assert_allclose(boxes[sel, 3:6].mean(axis=0), size, rtol=0.08)
        spread = np.array(SIZE_SPREAD[anchor.name.lower()])  # KITTI's label spread, clipped at 2 sigma
        assert np.all(np.abs(boxes[sel, 3:6] / size - 1) <= 2 * spread + 1e-9)
        assert np.all(boxes[sel, 3:6].std(axis=0) / size > 0.3 * spread)  # and they do spread
    assert set(names) <= set(CFG.class_names)


def test_occlusion_levels_for_objects_behind_others(tmp_path: Path) -> None:
    sensor = Sensor()
    lay = Layout()
    lay.add_object("Car", 10.0, 0.0, (3.9, 1.6, 1.56), 0.0, sensor)  # in front, nothing between it and the sensor
    lay.add_object("Car", 18.0, 0.0, (3.9, 1.6, 1.56), 0.0, sensor)  # right behind it
    lay.add_object("Car", 18.5, -1.9, (3.9, 1.6, 1.56), 0.0, sensor)  # behind, half to the side
    lay.add_object("Pedestrian", 25.0, 6.0, (0.8, 0.6, 1.73), 0.3, sensor)  # in the open
    lay.clutter.append(Prim("box", (30.0, -8.0, 0.0, 0.5, 6.0, 6.0, 0.0), -1, "wall", 0.5))  # a wall ...
    lay.add_object("Pedestrian", 33.0, -8.0, (0.8, 0.6, 1.73), 0.3, sensor)  # ... hiding this one completely
    scene = render_layout(lay, np.random.default_rng(0), sensor)
    front, behind, half, ped, hidden = range(5)
    assert scene.occlusion[front] == 0 and scene.occlusion[ped] == 0
    assert scene.occlusion[behind] == 2
    assert scene.occlusion[half] in (1, 2)
    assert scene.occlusion[hidden] == 3 and scene.num_points[hidden] == 0
    vf = scene.visible_fraction
    assert vf[behind] < vf[half] < vf[front]
    assert scene.num_points[front] > 10 * scene.num_points[behind] > 0
    write_frame(tmp_path, "000000", scene)
    assert list(read_labels(tmp_path / "training/label_2/000000.txt").occluded) == [0, 2, scene.occlusion[half], 0, 3]


def test_generation_is_fast() -> None:
    t = time.perf_counter()
    scene = generate_scene(123, CFG)
    assert time.perf_counter() - t < 5.0
    assert len(scene.points) > 5000


@pytest.mark.parametrize("style", ["sedan", "hatchback", "estate"])
def test_cars_are_shaped_like_cars(style, monkeypatch) -> None:
    """A car seen from the side: low hood and boot, a cabin that reaches the roof in the middle, every point inside
    the box, and glass that loses rays (fewer returns on the cabin than on the body below it)."""
    from pointpillars_trt.sample import objects

    monkeypatch.setattr(objects, "car_style", lambda rng: style)
    lay = Layout()
    lay.add_object("Car", 9.0, 0.0, (4.2, 1.7, 1.5), np.pi / 2, Sensor())  # broadside, 9 m ahead, facing left
    scene = render_layout(lay, np.random.default_rng(0))
    box = scene.boxes[0]
    pts = scene.points[points_in_box(scene.points, box, tol=0.05)]
    along = pts[:, 1] - box[1]  # towards the car's front
    assert len(pts) > 200 and np.abs(along).max() <= 2.15
    h = pts[:, 2] - (box[2] - box[5] / 2)
    front, middle = along > 1.45, np.abs(along + 0.2) < 0.4
    assert h[front].max() < 0.68 * 1.5 and h[middle].max() > 0.9 * 1.5
    side = np.abs(along) < 1.0
    body, cabin = side & (h > 0.25 * 1.5) & (h < 0.55 * 1.5), side & (h > 0.65 * 1.5) & (h < 0.9 * 1.5)
    assert cabin.sum() < 0.8 * body.sum()
