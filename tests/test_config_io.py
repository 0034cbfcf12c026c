"""Config (OpenPCDet YAML) and KITTI file I/O: round trips on real files, errors that name file and line."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import KITTI, REPO
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import (Calib, detections_to_kitti, lidar_boxes_to_camera, parse_labels, read_bin,
                                       read_labels, write_labels)

YAML = REPO / "pointpillars_trt/model/configs/pointpillar.yaml"


def test_yaml_equals_defaults_and_design_numbers():
    cfg = PointPillarsConfig.from_openpcdet_yaml(YAML)
    assert cfg == PointPillarsConfig()
    assert cfg.grid_size == (432, 496, 1) and cfg.feature_map_size == (216, 248)
    assert cfg.num_anchors == 248 * 216 * 6 and cfg.head_channels == {"cls": 18, "box": 42, "dir": 12}
    assert [a.rotations for a in cfg.anchors] == [(0.0, 1.57)] * 3
    assert (cfg.score_thresh, cfg.nms_pre, cfg.nms_thresh, cfg.max_det) == (0.1, 4096, 0.01, 500)
    assert '"grid_size": [\n    432' in str(cfg)
    assert PointPillarsConfig.from_dict(cfg.to_dict()) == cfg


def test_yaml_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("MODEL: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        PointPillarsConfig.from_openpcdet_yaml(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text(YAML.read_text().replace("MULTI_CLASSES_NMS: False", "MULTI_CLASSES_NMS: True"))
    with pytest.raises(UserError, match="MULTI_CLASSES_NMS"):
        PointPillarsConfig.from_openpcdet_yaml(tmp_path / "b.yaml")
    with pytest.raises(UserError, match="not found"):
        PointPillarsConfig.from_openpcdet_yaml(tmp_path / "missing.yaml")


def test_labels_round_trip_and_frames():
    calib = Calib.read(KITTI / "training/calib/000134.txt")
    objs = read_labels(KITTI / "training/label_2/000134.txt")
    objs = objs.select(objs.name != "DontCare")
    lidar = objs.lidar_boxes(calib)
    np.testing.assert_allclose(lidar_boxes_to_camera(lidar, calib), objs.camera_boxes(), atol=1e-6)
    # a labelled car is on the ground in front of the sensor, centre z above its bottom
    car = lidar[list(objs.name).index("Car")]
    assert car[0] > 0 and -2.5 < car[2] - car[5] / 2 < -1.0
    # detections_to_kitti projects boxes close to the labelled 2D boxes
    kit = detections_to_kitti(lidar, np.ones(len(lidar)), np.ones(len(lidar), int), ("Car",), calib, (375, 1242))
    assert np.median(np.abs(kit.bbox - objs.bbox)) < 3.0


def test_label_writer_reader(tmp_path):
    objs = read_labels(KITTI / "training/label_2/000134.txt")
    write_labels(tmp_path / "x.txt", objs)
    back = read_labels(tmp_path / "x.txt")
    assert list(back.name) == list(objs.name)
    np.testing.assert_allclose(back.location, objs.location, atol=1e-4)


@pytest.mark.parametrize("line, msg", [
    ("Car 0 0 0 1 2 3 4 1 1 1 1 1", "expected 15 or 16 columns"),
    ("Car 0 0 0 1 2 3 4 1 1 x 1 1 1 0", "non-numeric"),
    ("Car 0 0 0 1 2 3 4 1 1 nan 1 1 1 0", "NaN or Inf"),
])
def test_malformed_label_lines(line, msg):
    good = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
    with pytest.raises(UserError, match=f"lab.txt:2: {msg}"):
        parse_labels(good + "\n" + line + "\n", "lab.txt")


def test_calib_round_trip_and_errors(tmp_path):
    c = Calib.read(KITTI / "training/calib/000134.txt")
    c.write(tmp_path / "c.txt")
    d = Calib.read(tmp_path / "c.txt")
    np.testing.assert_allclose(d.P2, c.P2)
    np.testing.assert_allclose(d.V2C, c.V2C)
    (tmp_path / "bad.txt").write_text("P2: 1 2 3\n")
    with pytest.raises(UserError, match="P2 has 3 values"):
        Calib.read(tmp_path / "bad.txt")


def test_read_bin_real_and_truncated(tmp_path):
    pts, st = read_bin(KITTI / "scans/000000.bin", with_stats=True)
    assert pts.shape == (20285, 4) and pts.dtype == np.float32 and st.num_nonfinite == 0
    raw = (KITTI / "scans/000000.bin").read_bytes()
    (tmp_path / "t.bin").write_bytes(raw[:-5])
    with pytest.raises(UserError, match="not a multiple of 16"):
        read_bin(tmp_path / "t.bin")
