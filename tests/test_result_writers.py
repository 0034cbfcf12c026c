"""Result files written by writer processes: byte for byte the files of writer threads, values as the detections
hold them, a scan that cannot be written failed alone, writers deaf to Ctrl-C (SIGINT)."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from conftest import ALL_SCANS, KITTI

CALIB = KITTI / "training/calib/000000.txt"


@pytest.fixture(scope="module")
def detected(onnx_dir):
    """(jobs, detections, class names, meta, settings) of 4 real scans, the first two with a calib."""
    from pointpillars_trt import Detector
    from pointpillars_trt.io.kitti import Calib
    from pointpillars_trt.io.points import read_points
    from pointpillars_trt.io.result_files import ScanJob
    from pointpillars_trt.runs.single import run_settings

    calib = Calib.read(CALIB)
    with Detector.from_onnx(onnx_dir, device="cpu") as det:
        dets = [det(read_points(s)) for s in ALL_SCANS[:4]]
        meta = {"model": det.description, "untrained": det.untrained}
        settings = run_settings(det.model_id, det.precision, det.cfg.score_thresh)
        names = det.cfg.class_names
    assert all(len(d) for d in dets)
    jobs = [ScanJob(s, s.stem, calib if i < 2 else None) for i, s in enumerate(ALL_SCANS[:4])]
    return jobs, dets, names, meta, settings


def _write(kind, out, detected):
    from pointpillars_trt.io.result_files import ResultFolder
    from pointpillars_trt.runs.result_writers import ResultWriters

    jobs, dets, names, meta, settings = detected
    folder = ResultFolder(out, settings)
    out.mkdir()
    with ResultWriters(folder, names, meta, kind) as w:
        outcomes = [w.submit(list(zip(jobs[:3], dets[:3]))).result(), w.submit([(jobs[3], dets[3])]).result()]
    return [o for chunk in outcomes for o in chunk]


def test_processes_write_the_files_threads_write(tmp_path, detected):
    assert _write("threads", tmp_path / "t", detected) == [None] * 4
    assert _write("processes", tmp_path / "p", detected) == [None] * 4
    names = sorted(os.listdir(tmp_path / "t"))
    assert names == sorted(os.listdir(tmp_path / "p")) and len(names) == 6  # 4 JSON, 2 txt (the scans with a calib)
    for n in names:
        assert (tmp_path / "t" / n).read_bytes() == (tmp_path / "p" / n).read_bytes(), n
    jobs, dets, class_names, meta, settings = detected
    for job, d in zip(jobs, dets):  # the values, read back independently of the formatting code
        got = json.loads((tmp_path / "p" / f"{job.stem}.json").read_text())
        assert got["scan"] == str(job.source) and got["run"] == settings and got["model"] == meta["model"]
        rows = got["detections"]
        assert [r["label"] for r in rows] == [class_names[l - 1] for l in d.labels]
        np.testing.assert_allclose([r["score"] for r in rows], d.scores, atol=1e-6)
        np.testing.assert_allclose([[r[k] for k in ("x", "y", "z", "dx", "dy", "dz", "yaw")] for r in rows], d.boxes,
                                   atol=1e-5)
    from pointpillars_trt.io.kitti import scan_image_shape

    for job, d in zip(jobs[:2], dets):  # 2D boxes clipped to the image beside the scan, else KITTI's usual size
        assert (tmp_path / "p" / f"{job.stem}.txt").read_text() == d.to_kitti(job.calib, class_names,
                                                                                 scan_image_shape(job.source))


def test_a_scan_that_cannot_be_written_fails_alone(tmp_path, detected):
    from pointpillars_trt.io.result_files import ResultFolder
    from pointpillars_trt.runs.result_writers import ResultWriters

    jobs, dets, names, meta, settings = detected
    out = tmp_path / "p"
    out.mkdir()
    (out / f"{jobs[1].stem}.json").mkdir()  # os.replace onto a folder fails
    with ResultWriters(ResultFolder(out, settings), names, meta, "processes") as w:
        got = w.submit(list(zip(jobs, dets))).result()
    assert got[0] is None and got[2] is None and got[3] is None
    assert isinstance(got[1], OSError)
    assert sorted(n for n in os.listdir(out) if n.endswith(".json") and (out / n).is_file()) == \
        sorted(f"{j.stem}.json" for j in jobs if j is not jobs[1])
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # its temporary file removed


def test_writer_processes_ignore_ctrl_c(tmp_path, detected):
    from pointpillars_trt.io.result_files import ResultFolder
    from pointpillars_trt.runs.result_writers import ResultWriters

    jobs, dets, names, meta, settings = detected
    out = tmp_path / "p"
    out.mkdir()
    with ResultWriters(ResultFolder(out, settings), names, meta, "processes") as w:
        pids = {w._pool.submit(os.getpid).result() for _ in range(8)} - {os.getpid()}
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGINT)
        assert w.submit(list(zip(jobs, dets))).result() == [None] * 4
        assert {w._pool.submit(os.getpid).result() for _ in range(8)} <= pids  # the same processes, none restarted
    assert len(os.listdir(out)) == 6


def test_writer_kind():
    from pointpillars_trt.errors import UserError
    from pointpillars_trt.runs.result_writers import PROCESS_MIN_SCANS, writer_kind

    assert writer_kind("auto", PROCESS_MIN_SCANS - 1) == "threads"
    assert writer_kind("threads", 10_000) == "threads" and writer_kind("processes", 3) == "processes"
    assert writer_kind("auto", 10_000) == ("processes" if (os.cpu_count() or 1) >= 4 else "threads")
    with pytest.raises(UserError, match="writers must be one of"):
        writer_kind("fork", 10)


def test_off_a_terminal_a_run_says_how_far_it_is(onnx_dir, tmp_path, capsys, monkeypatch):
    """No bar off a terminal: a progress line every PROGRESS_SECONDS (0 here: after each batch) on stderr, with the
    scans done of all, the rate and the time left; nothing on stdout."""
    from pointpillars_trt import Detector, infer_folder
    from pointpillars_trt.runs import single

    monkeypatch.setattr(single, "PROGRESS_SECONDS", 0.0)
    with Detector.from_onnx(onnx_dir, device="cpu", max_batch=2) as det:
        s = infer_folder(det, ALL_SCANS[:4], tmp_path / "out", writers="processes")
    assert (s.done, s.failed) == (4, [])
    err = capsys.readouterr()
    lines = [line for line in err.err.splitlines() if line.startswith("infer: ")]
    assert [line.split(" scans,")[0] for line in lines] == ["infer: 2 of 4", "infer: 4 of 4"], err.err
    assert all("scans/s" in line and line.endswith("s left") for line in lines) and err.out == ""
