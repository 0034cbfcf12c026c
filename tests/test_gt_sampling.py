"""Ground-truth sampling and the real frames in training, on real KITTI frames (../shared/kitti) and generated ones:
the database holds what OpenPCDet's PREPARE keeps, pasted objects never overlap anything (rotated BEV IoU with
shapely, independently of the project's own), keep their points and scan pattern, replace the scene's points
inside them; ignore regions; and the real split never leaks: only its frames train, and eval warns otherwise."""
from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from conftest import KITTI, REPO
from pointpillars_trt.io.kitti_frames import read_labelled_frame
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.training.data import TrainingFrames, make_mix
from pointpillars_trt.training.frames import real_arrays, scene_arrays
from pointpillars_trt.training.gt_sampling import SamplingOptions, sample_into
from pointpillars_trt.training.targets import anchor_classes, assign_targets
from test_cli_bad_input import cli

CFG = PointPillarsConfig()
TRAIN = (REPO / "data/splits/kitti_train.txt").read_text().split()
EVAL = (REPO / "data/splits/kitti_eval.txt").read_text().split()


def footprint(b: np.ndarray) -> Polygon:
    c, s = math.cos(b[6]), math.sin(b[6])
    return Polygon([(b[0] + x * c - y * s, b[1] + x * s + y * c)
                    for x, y in ((b[3] / 2, b[4] / 2), (-b[3] / 2, b[4] / 2), (-b[3] / 2, -b[4] / 2), (b[3] / 2, -b[4] / 2))])


def inside(points: np.ndarray, b: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Points in box b, by moving them into the box's frame (independent of the project's points_in_box)."""
    d = points[:, :2].astype(np.float64) - b[:2]
    lx = d[:, 0] * math.cos(-b[6]) - d[:, 1] * math.sin(-b[6])
    ly = d[:, 0] * math.sin(-b[6]) + d[:, 1] * math.cos(-b[6])
    return (np.abs(lx) <= b[3] / 2 + tol) & (np.abs(ly) <= b[4] / 2 + tol) & (np.abs(points[:, 2] - b[2]) <= b[5] / 2 + tol)


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    return make_mix(CFG, seed=3, frames=40, real_root=str(KITTI), real_ids=TRAIN, real_fraction=0.3, gt_sampling=True,
                    db_frames=40, cache_dir=str(tmp_path_factory.mktemp("frames")), workers=0)


def test_splits_are_disjoint_and_cover_the_real_frames():
    assert not set(TRAIN) & set(EVAL)
    frames = sorted(p.stem for p in (KITTI / "training/velodyne").glob("*.bin"))
    assert sorted(TRAIN + EVAL) == frames == (REPO / "data/splits/kitti_all.txt").read_text().split()


def test_cross_validation_folds_score_each_eval_frame_once_with_a_model_that_never_trained_on_it():
    held = []
    for k in range(3):
        train = (REPO / f"data/splits/kitti_cv{k}_train.txt").read_text().split()
        score = (REPO / f"data/splits/kitti_cv{k}_eval.txt").read_text().split()
        assert not set(train) & set(score) and set(TRAIN) <= set(train)  # the two training frames train every fold
        assert sorted(train + score) == sorted(TRAIN + EVAL)
        held += score
    assert sorted(held) == sorted(EVAL)


def test_database_holds_usable_objects_of_the_training_split_only(mix):
    db = mix.database
    assert set(db.source[db.is_real]) == set(TRAIN)  # every real object comes from a training frame, none from eval
    assert (~db.is_real).sum() > 100 and set(db.names) == set(CFG.class_names)
    sizes = np.diff(db.offsets)
    assert sizes.min() >= 5  # OpenPCDet's filter_by_min_points
    for k in range(len(db)):
        assert inside(db.object_points(k), db.boxes[k]).all()
    # the real database: 000008's cars of a known difficulty that the image edge did not cut (its 0.88-truncated
    # one and the one of unknown occlusion are left out) and 000134's objects
    o = read_labelled_frame(KITTI, "000008").objects
    known = (o.name == "Car") & (o.truncated <= 0.15) & (o.occluded <= 2) & (o.bbox[:, 3] - o.bbox[:, 1] >= 25)
    assert ((db.source == "000008") & (db.names == "Car")).sum() == known.sum() == 4
    assert ((db.source == "000134") & (db.names == "Pedestrian")).sum() >= 5


@pytest.mark.parametrize("source", ["real", "synthetic"])
def test_pasted_objects_never_overlap_and_replace_the_points_inside(mix, source):
    rng = np.random.default_rng(7)
    frame = mix.real[1][1] if source == "real" else scene_arrays(3, 5, CFG)
    out = sample_into(frame, mix.database, CFG.class_names, rng)
    n_new = len(out["boxes"]) - len(frame["boxes"])
    assert n_new >= 5
    boxes = np.concatenate([out["boxes"], out["other"]])
    polys = [footprint(b) for b in boxes]
    for i in range(len(polys)):
        for j in range(i + 1, len(polys)):
            assert polys[i].intersection(polys[j]).area < 1e-6, (i, j)
    labels = np.abs(out["labels"])
    for name, group in SamplingOptions().groups:  # filled up to the group size, never beyond what was there
        k = CFG.class_names.index(name) + 1
        assert (labels == k).sum() <= max(group, (np.abs(frame["labels"]) == k).sum())
    for b in out["boxes"][:n_new]:  # the scene's own points inside a pasted box are gone
        assert inside(frame["points"], b).sum() == 0 or inside(out["points"], b).sum() >= 5
        assert math.degrees(abs(math.atan2(b[1], b[0]))) <= 35.01
    kept_scene = len(out["points"]) - sum(inside(out["points"], b).sum() for b in out["boxes"][:n_new])
    assert kept_scene <= len(frame["points"])
    removed = np.any([inside(frame["points"], b, 0.0) for b in out["boxes"][:n_new]], axis=0)
    pasted = out["points"][:len(out["points"]) - int((~removed).sum())]  # pasted points come first
    assert len(pasted) >= 5 * n_new
    assert np.any([inside(pasted, b, 1e-3) for b in out["boxes"][:n_new]], axis=0).all()  # each in its box
    assert (out["labels"][:n_new] > 0).all() and out["usable"][:n_new].all()


def test_a_real_object_keeps_its_scan_pattern(mix):
    """Turned about the sensor and not moved out, its points keep their ranges and heights above its box bottom."""
    db = mix.database
    k = int(np.flatnonzero(db.is_real & (db.names == "Car"))[0])
    opts = SamplingOptions(groups=(("Car", 100),), real_share=1.0, farther=1.0)
    frame = {**mix.real[0][1], "boxes": np.zeros((0, 7)), "labels": np.zeros(0, np.int64), "usable": np.zeros(0, bool),
             "other": np.zeros((0, 7))}
    one = type(db)(db.names[k:k + 1], db.boxes[k:k + 1], db.bottom[k:k + 1], db.source[k:k + 1],
                   np.array([0, db.offsets[k + 1] - db.offsets[k]]), db.object_points(k))
    out = sample_into(frame, one, CFG.class_names, np.random.default_rng(1), opts)
    src, got = db.object_points(k), out["points"][:len(db.object_points(k))]
    np.testing.assert_allclose(np.sort(np.hypot(got[:, 0], got[:, 1])), np.sort(np.hypot(src[:, 0], src[:, 1])), atol=1e-3)
    np.testing.assert_array_equal(got[:, 3], src[:, 3])
    b0, b1 = db.boxes[k], out["boxes"][0]
    np.testing.assert_allclose(np.sort(got[:, 2] - (b1[2] - b1[5] / 2)), np.sort(src[:, 2] - (b0[2] - b0[5] / 2)), atol=1e-4)


def test_real_items_come_from_the_training_split_only(mix):
    ds = TrainingFrames(CFG, 40, seed=3, train=True, mix=mix)
    sources = [ds.frame(k)[0] for k in range(400)]
    real = [s for s in sources if s != "synthetic"]
    assert set(real) == set(TRAIN) and 0.2 < len(real) / len(sources) < 0.4
    item = ds[int(np.flatnonzero(np.array(sources) != "synthetic")[0])]  # a real frame runs the whole pipeline
    assert len(item["pos_idx"]) > 0 and item["features"].shape[1:] == (32, 10)


def test_faint_objects_are_ignore_regions():
    anchors, acls = make_anchors(CFG), anchor_classes(CFG)
    car = np.array([[20.0, 2.0, -0.9, 3.9, 1.6, 1.56, 0.0]])
    strong = assign_targets(anchors, car, np.array([1]), CFG, acls)
    faint = assign_targets(anchors, car, np.array([-1]), CFG, acls)
    none = assign_targets(anchors, np.zeros((0, 7)), np.zeros(0, np.int64), CFG, acls)
    assert len(strong.pos_idx) > 0 and len(faint.pos_idx) == 0
    flipped = np.flatnonzero(faint.labels != none.labels)
    assert len(flipped) > 0 and (faint.labels[flipped] == -1).all() and (none.labels[flipped] == 0).all()
    assert set(strong.pos_idx) <= set(flipped)  # where the object would teach, it now teaches nothing


def test_real_arrays_of_a_frame():
    f = real_arrays(read_labelled_frame(KITTI, "000001"), CFG)  # a truck (other), a far car, an occluded cyclist
    assert f["other"].shape == (1, 7) and len(f["boxes"]) == 2
    assert f["ground"][2] == pytest.approx(-1.71, abs=0.08)


def test_eval_warns_when_a_frame_trained_the_model(tmp_path):
    import torch

    ck = torch.load(REPO.parent / "shared/checkpoints/pointpillar_kitti_random_seed0.pth", map_location="cpu",
                    weights_only=True)
    ck["train_args"] = {"real_ids": ["000008"]}
    path = tmp_path / "m.pth"
    torch.save(ck, path)
    split = tmp_path / "ids.txt"
    split.write_text("000008\n000009\n")
    r = cli("eval", "--data", KITTI, "--split", split, "--checkpoint", path, "--out", tmp_path / "ev",
            "--cache-dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "frame(s) 000008 trained this model" in r.stderr and "000009 trained" not in r.stderr
