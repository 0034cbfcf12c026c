"""`make-sample` CLI module and the committed data/sample."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from pointpillars_trt.cli import make_sample as sample_cli
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import Calib, read_bin, read_labels
from pointpillars_trt.sample.dataset import frame_seed
from pointpillars_trt.sample.scene import generate_scene

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def parse(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    sample_cli.add_parser(sub)
    return ap.parse_args(["make-sample", *argv])


def test_writes_frames_into_new_dir(tmp_path: Path) -> None:
    out = tmp_path / "new"
    args = parse("--out", str(out), "--frames", "2", "--seed", "5")
    assert args.func is sample_cli.run
    assert sample_cli.run(args) == 0
    assert (out / "ImageSets/val.txt").read_text() == "000000\n000001\n"
    assert len(read_bin(out / "training/velodyne/000001.bin")) > 5000


def test_refuses_non_empty_dir_without_force(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(UserError, match="--force"):
        sample_cli.run(parse("--out", str(tmp_path)))
    assert not (tmp_path / "training").exists()
    assert sample_cli.run(parse("--out", str(tmp_path), "--force")) == 0
    assert (tmp_path / "keep.txt").read_text() == "user data"  # --force overwrites its own files only
    assert (tmp_path / "training/label_2/000000.txt").is_file()


def test_empty_dir_is_fine_and_bad_args_are_user_errors(tmp_path: Path) -> None:
    assert sample_cli.run(parse("--out", str(tmp_path))) == 0
    with pytest.raises(UserError, match="--frames"):
        sample_cli.run(parse("--out", str(tmp_path / "x"), "--frames", "0"))
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        sample_cli.run(parse("--out", str(tmp_path / "file")))


def test_committed_sample_is_small_and_matches_the_generator() -> None:
    files = [p for p in SAMPLE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2_000_000
    assert (SAMPLE / "ImageSets/val.txt").read_text().split() == ["000000"]
    pts = read_bin(SAMPLE / "training/velodyne/000000.bin")
    objs = read_labels(SAMPLE / "training/label_2/000000.txt")
    calib = Calib.read(SAMPLE / "training/calib/000000.txt")
    assert set(objs.name) <= set(PointPillarsConfig().class_names) and len(objs) > 0
    # regenerate frame 0 of seed 0: same objects and scan (tolerances allow other platforms' last-bit maths)
    scene = generate_scene(frame_seed(0, 0))
    assert list(objs.name) == list(scene.names)
    np.testing.assert_allclose(objs.lidar_boxes(calib)[:, :6], scene.boxes[:, :6], atol=2e-3)
    assert abs(len(pts) - len(scene.points)) <= 0.01 * len(pts)
