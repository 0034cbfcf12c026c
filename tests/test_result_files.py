"""The result files of a folder run (io/result_files.py) on real detections of a shared scan: written whole, planned
for a rerun (finished skipped, unfinished redone, other settings and foreign files refused), and their two text forms
checked against independent formatters (json.dumps of to_dict; KITTI lines formatted one at a time)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import ALL_SCANS, KITTI, make_cpu_pipeline
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import Calib, detections_to_kitti, format_labels, read_labels
from pointpillars_trt.io.points import read_bin
from pointpillars_trt.io.result_files import ResultFolder, ScanJob, read_run_record, write_atomic

SETTINGS = {"model_id": "sha256:0123456789abcdef/19b3809e", "precision": "fp32", "score_thresh": 0.1, "reader": {}}
CALIB = KITTI / "training/calib/000134.txt"


@pytest.fixture(scope="module")
def dets(cfg, onnx_dir):
    """The random-init model's detections on two shared scans (hundreds of boxes: every formatting path)."""
    with make_cpu_pipeline(cfg, onnx_dir) as pipe:
        return [pipe.run(read_bin(s)).detections for s in ALL_SCANS[:2]]


def _write_all(folder, jobs, dets, cfg):
    for job, d in zip(jobs, dets):
        folder.write(job, d, cfg.class_names, {"scan": str(job.source)})


def _line_by_line(objs) -> str:
    """KITTI label text formatted one value at a time (the writer's former loop), as an independent reference."""
    lines = []
    for i in range(len(objs)):
        cols = [str(objs.name[i]), f"{objs.truncated[i]:.2f}", f"{int(objs.occluded[i])}", f"{objs.alpha[i]:.6f}"]
        cols += [f"{v:.2f}" for v in objs.bbox[i]] + [f"{v:.4f}" for v in objs.dimensions[i]]
        cols += [f"{v:.4f}" for v in objs.location[i]] + [f"{objs.rotation_y[i]:.6f}"]
        cols += [f"{objs.score[i]:.6f}"] if objs.score is not None else []
        lines.append(" ".join(cols) + "\n")
    return "".join(lines)


def test_json_is_to_dict_and_kitti_is_line_by_line(dets, cfg):
    """to_json's one-pass formatting gives json.dumps(to_dict)'s values; format_labels gives the line-at-a-time text,
    for results (16 columns) and labels (15)."""
    names, calib = cfg.class_names, Calib.read(CALIB)
    for d in dets + [d.above(0.5) for d in dets] + [type(dets[0]).empty()]:
        back = json.loads(d.to_json(names, {"scan": "a.bin", "run": SETTINGS}))
        assert back == {"frame": "lidar", "scan": "a.bin", "run": SETTINGS, "detections": d.to_dict(names)["detections"]}
        objs = detections_to_kitti(d.boxes, d.scores, d.labels, names, calib, (375, 1242))
        assert format_labels(objs) == _line_by_line(objs)
    assert sum(len(d) for d in dets) > 100
    labels = read_labels(KITTI / "training/label_2/000134.txt")
    assert len(labels) > 0 and format_labels(labels) == _line_by_line(labels)


def test_written_whole_with_the_run_record(tmp_path, dets, cfg):
    folder = ResultFolder(tmp_path, SETTINGS)
    jobs = [ScanJob(ALL_SCANS[0], "a", Calib.read(CALIB)), ScanJob(ALL_SCANS[1], "b")]
    _write_all(folder, jobs, dets, cfg)
    assert sorted(os.listdir(tmp_path)) == ["a.json", "a.txt", "b.json"]  # no temporary file left
    assert read_run_record(tmp_path / "a.json") == SETTINGS
    assert len(read_labels(tmp_path / "a.txt")) == len(json.loads((tmp_path / "a.json").read_text())["detections"]) > 0
    assert read_run_record(tmp_path / "a.txt") is None


def test_a_rerun_skips_finished_redoes_unfinished_and_refuses_others(tmp_path, dets, cfg):
    jobs = [ScanJob(ALL_SCANS[0], "a", Calib.read(CALIB)), ScanJob(ALL_SCANS[1], "b")]
    folder = ResultFolder(tmp_path, SETTINGS)
    assert folder.plan(jobs).todo == jobs  # the folder does not exist yet
    _write_all(folder, jobs, dets, cfg)
    plan = folder.plan(jobs)
    assert (plan.todo, plan.skipped) == ([], jobs)
    (tmp_path / "a.txt").unlink()  # killed between a's JSON and its txt: a is redone, b kept
    plan = folder.plan(jobs)
    assert (plan.todo, plan.skipped) == ([jobs[0]], [jobs[1]])
    other = ResultFolder(tmp_path, {**SETTINGS, "score_thresh": 0.3})
    with pytest.raises(UserError, match=r"a\.json holds results of other settings \(score_thresh 0\.1 there, 0\.3 now\).*--force"):
        other.plan(jobs)
    assert len(other.plan(jobs, force=True).todo) == 2
    (tmp_path / "b.json").write_text('{"frame": "lidar", "detections": []}')  # not written by a run: no record
    with pytest.raises(UserError, match=r"b\.json exists and was not written by infer --out"):
        folder.plan(jobs[1:])
    (tmp_path / "b.json").unlink()
    (tmp_path / "b.txt").write_text("Car 0 0 0 0 0 0 0 1 1 1 1 1 1 0\n")  # a label file where a result would go
    with pytest.raises(UserError, match=r"b\.txt exists and was not written"):
        folder.plan([ScanJob(ALL_SCANS[1], "b", Calib.read(CALIB))])


def test_temporary_files_of_a_killed_run_are_removed_and_nothing_else(tmp_path):
    for name in (".a.json.123.part", ".b.txt.9.part", ".notes.part", "a.json.part", ".x.json.abc.part", "keep.txt"):
        (tmp_path / name).write_text("x")
    assert ResultFolder(tmp_path, SETTINGS).remove_temps() == 2
    assert sorted(os.listdir(tmp_path)) == [".notes.part", ".x.json.abc.part", "a.json.part", "keep.txt"]


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    write_atomic(tmp_path / "r.json", "old")
    (tmp_path / "d.json").mkdir()  # os.replace onto a folder fails after the temporary file was written
    with pytest.raises(OSError):
        write_atomic(tmp_path / "d.json", "new")
    assert sorted(os.listdir(tmp_path)) == ["d.json", "r.json"] and (tmp_path / "r.json").read_text() == "old"


def test_non_finite_values_still_round_trip(cfg):
    from pointpillars_trt.io.detections import Detections

    d = Detections(np.array([[1, 2, 3, 4, 5, 6, np.nan]], np.float32), np.array([0.5], np.float32), np.array([1], np.int32))
    assert np.isnan(json.loads(d.to_json(cfg.class_names))["detections"][0]["yaw"])
