"""`view` CLI module: inputs (detections JSON, labels + calib), output safety, detections passed in by a caller."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pointpillars_trt.io.detections import Detections
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import detections_to_json
from pointpillars_trt.cli import view as view_cli
from pointpillars_trt.viz.inputs import load_detections_json, load_ground_truth
from pointpillars_trt.viz.style import CLASS_COLORS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "kitti"
SCAN = SHARED / "scans" / "000000.bin"
TRAIN = SHARED / "training"
CLASSES = ("Car", "Pedestrian", "Cyclist")
pytestmark = pytest.mark.skipif(not SCAN.is_file(), reason=f"shared KITTI scans not found at {SHARED}")


def parse(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    view_cli.add_parser(ap.add_subparsers())
    return ap.parse_args(["view", *argv])


def car_at(x: float, y: float) -> Detections:
    return Detections(np.array([[x, y, -1.0, 3.9, 1.6, 1.56, 0.0]], np.float32), np.array([0.8], np.float32),
                      np.array([1], np.int32))


def test_detections_json_round_trip_and_bev(tmp_path: Path) -> None:
    d = car_at(20.0, 5.0)
    js = tmp_path / "det.json"
    js.write_text(detections_to_json(d.boxes, d.scores, d.labels, CLASSES, meta={"scan": "000000.bin"}))
    back = load_detections_json(js, CLASSES)
    np.testing.assert_allclose(back.boxes, d.boxes, atol=1e-4)
    assert back.labels.tolist() == [1] and back.scores.tolist() == pytest.approx([0.8])
    out = tmp_path / "bev.png"
    assert view_cli.run(parse(str(SCAN), "--detections", str(js), "--bev", str(out))) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    row, col = 48 + int((70.4 - 21.0) / 0.1), int((40 - 5.0) / 0.1)  # 1 m ahead of the car: its heading mark
    assert np.any(np.all(img[row - 1:row + 2, col - 1:col + 2] == CLASS_COLORS["Car"], axis=-1))


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    out = tmp_path / "bev.png"
    out.write_bytes(b"keep")
    with pytest.raises(UserError, match="--force"):
        view_cli.run(parse(str(SCAN), "--bev", str(out)))
    assert out.read_bytes() == b"keep"
    save = tmp_path / "3d.png"
    save.write_bytes(b"keep")
    with pytest.raises(UserError, match="--force"):
        view_cli.run(parse(str(SCAN), "--save", str(save)))
    assert view_cli.run(parse(str(SCAN), "--bev", str(out), "--force")) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_are_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = str(tmp_path / "b.png")
    with pytest.raises(UserError, match="--calib"):
        view_cli.run(parse(str(SCAN), "--labels", str(TRAIN / "label_2" / "000134.txt"), "--bev", out))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not a detections JSON"):
        view_cli.run(parse(str(SCAN), "--detections", str(bad), "--bev", out))
    bad.write_text('{"frame": "lidar", "detections": [{"x": 1}]}')
    with pytest.raises(UserError, match="detection 0"):
        load_detections_json(bad, CLASSES)
    with pytest.raises(UserError, match="not found"):
        view_cli.run(parse(str(tmp_path / "missing.bin"), "--bev", out))
    with pytest.raises(UserError, match="png"):
        view_cli.run(parse(str(SCAN), "--bev", str(tmp_path / "b.jpg")))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if __import__("sys").platform.startswith("linux"):
        with pytest.raises(UserError, match="--save|--bev"):
            view_cli.run(parse(str(SCAN)))  # a window needs a display


def test_caller_passes_detections_and_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bev.png"
    args = parse(str(TRAIN / "velodyne" / "000134.bin"), "--labels", str(TRAIN / "label_2" / "000134.txt"),
                 "--calib", str(TRAIN / "calib" / "000134.txt"), "--bev", str(out), "--color-by", "intensity")
    assert view_cli.run(args, detections=car_at(10.0, -10.0)) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    row, col = 48 + int((70.4 - 11.0) / 0.1), int((40 + 10.0) / 0.1)
    assert np.any(np.all(img[row - 1:row + 2, col - 1:col + 2] == CLASS_COLORS["Car"], axis=-1))
    boxes, names = load_ground_truth(TRAIN / "label_2" / "000134.txt", TRAIN / "calib" / "000134.txt")
    assert len(boxes) == len(names) == 15 and "DontCare" not in names
    with pytest.raises(UserError, match="use one"):
        view_cli.run(parse(str(SCAN), "--detections", str(out), "--bev", str(tmp_path / "c.png")),
                     detections=car_at(1, 1))
