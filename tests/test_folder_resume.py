"""Folder runs that resume, through the real CLI in a subprocess on 16 real scans (the 12 shared ones, some under two
names: hard links): killed with SIGKILL mid-way and run again with the same command, the results equal an
uninterrupted run's byte for byte, the files finished before the kill are not rewritten (same inode and mtime), the
summary counts them as skipped, and no file is partial or temporary. Ctrl-C (SIGINT) finishes the scans in flight,
prints the summary and exits with 130; the rerun completes the folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ALL_SCANS, KITTI, REPO

CALIB = KITTI / "training/calib/000134.txt"  # one calib for all: each scan also gets a KITTI txt
N_SCANS = 16


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    from pointpillars_trt.runs.scan_links import linked_scans

    d = tmp_path_factory.mktemp("scans")
    linked_scans(ALL_SCANS, N_SCANS, d)
    return d


def _cmd(scans: Path, out: Path, onnx_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pointpillars_trt", "infer", str(scans), "--onnx-dir", str(onnx_dir), "--device",
            "cpu", "--calib", str(CALIB), "--out", str(out), *extra]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.fixture(scope="module")
def reference(scans, onnx_dir, tmp_path_factory) -> Path:
    """The uninterrupted run's results."""
    out = tmp_path_factory.mktemp("ref") / "out"
    r = _run(_cmd(scans, out, onnx_dir))
    assert r.returncode == 0, r.stderr
    assert f"{N_SCANS} scans: {N_SCANS} done" in r.stderr and "scans/s end to end" in r.stderr
    assert len(os.listdir(out)) == 2 * N_SCANS
    return out


def _start_and_wait(cmd: list[str], out: Path, results: int) -> subprocess.Popen:
    """Start the command in a session of its own (a terminal's Ctrl-C reaches its whole process group, writer
    processes included: os.killpg) and wait until `results` scans have both their files in out (a count of JSON
    files alone raced the writer: killed between a scan's JSON and its txt, 5 JSON files left 4 finished scans)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         start_new_session=True)
    deadline = time.monotonic() + 600
    while not (out.is_dir() and len(_finished(out)) >= results):
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return p


def _finished(out: Path) -> dict[str, tuple[int, int, int, int]]:
    """Stems whose JSON and txt both exist -> (inode, mtime) of the two files."""
    names = set(os.listdir(out))
    stat = lambda n: (os.stat(out / n).st_ino, os.stat(out / n).st_mtime_ns)  # noqa: E731
    return {n[:-5]: stat(n) + stat(n[:-5] + ".txt") for n in names if n.endswith(".json") and n[:-5] + ".txt" in names}


def _assert_whole(out: Path) -> None:
    """Every file a finished result (JSON parses, txt is KITTI), nothing temporary."""
    from pointpillars_trt.io.kitti import read_labels

    for name in os.listdir(out):
        assert not name.startswith("."), f"temporary file left: {name}"
        if name.endswith(".json"):
            json.loads((out / name).read_text())
        else:
            read_labels(out / name)


def _assert_same_as(out: Path, reference: Path) -> None:
    assert sorted(os.listdir(out)) == sorted(os.listdir(reference))
    for name in os.listdir(reference):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_killed_run_resumes_without_recomputing(scans, onnx_dir, reference, tmp_path):
    """Killed with its writer processes running, then resumed on threads: the files equal the reference run's,
    whose 16 scans were written on threads (auto), byte for byte."""
    out = tmp_path / "out"
    p = _start_and_wait(_cmd(scans, out, onnx_dir, "--writers", "processes"), out, 5)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    _assert_whole_or_temporary(out)
    before = _finished(out)
    assert 5 <= len(before) < N_SCANS
    r = _run(_cmd(scans, out, onnx_dir, "--writers", "threads"))
    assert r.returncode == 0, r.stderr
    assert f"{N_SCANS} scans: {N_SCANS - len(before)} done, {len(before)} skipped (finished before)" in r.stderr
    after = _finished(out)
    assert {stem: after[stem] for stem in before} == before  # not rewritten: same inodes, same mtimes
    _assert_whole(out)
    _assert_same_as(out, reference)


def _assert_whole_or_temporary(out: Path) -> None:
    """Right after a kill: temporary files may be there, every other file is whole."""
    for name in os.listdir(out):
        if not name.startswith("."):
            (json.loads((out / name).read_text()) if name.endswith(".json") else (out / name).read_text())


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_ctrl_c_finishes_what_is_in_flight_and_exits_130(scans, onnx_dir, reference, tmp_path, workers):
    """Ctrl-C as a terminal sends it: to the process group (reader and writer processes ignore it; the run finishes
    the scans in flight)."""
    out = tmp_path / "out"
    p = _start_and_wait(_cmd(scans, out, onnx_dir, "--batch", "2", "--writers", workers, "--readers", workers, "-v"),
                        out, 3)
    os.killpg(p.pid, signal.SIGINT)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: finishing the scans in flight" in stderr
    done = len(_finished(out))
    assert 3 <= done < N_SCANS
    assert f"{N_SCANS} scans: {done} done, {N_SCANS - done} not run (interrupted" in stderr
    assert len(stdout.splitlines()) == done  # -v: a line for each scan written, none for a scan not written
    _assert_whole(out)
    r = _run(_cmd(scans, out, onnx_dir, "--batch", "2"))
    assert r.returncode == 0 and f"{N_SCANS - done} done, {done} skipped" in r.stderr, r.stderr
    _assert_same_as(out, reference)


def test_force_recomputes_and_other_settings_are_refused(scans, onnx_dir, reference, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    r = _run(_cmd(scans, out, onnx_dir, "--score-thresh", "0.3"))
    assert r.returncode == 2 and "holds results of other settings (score_thresh 0.1 there, 0.3 now)" in r.stderr
    assert "--force" in r.stderr and "backend" not in r.stderr  # refused before the model loads
    r = _run(_cmd(scans, out, onnx_dir))
    assert r.returncode == 0 and f"0 done, {N_SCANS} skipped" in r.stderr and "backend" not in r.stderr, r.stderr
    ino = os.stat(out / "000000.json").st_ino
    r = _run(_cmd(scans, out, onnx_dir, "--force", "--score-thresh", "0.3"))
    assert r.returncode == 0 and f"{N_SCANS} scans: {N_SCANS} done" in r.stderr, r.stderr
    assert os.stat(out / "000000.json").st_ino != ino  # rewritten (a new file renamed over the old)
    rows = json.loads((out / "000000.json").read_text())
    assert rows["run"]["score_thresh"] == 0.3 and min(d["score"] for d in rows["detections"]) >= 0.3


def test_the_api_runs_a_folder_and_a_spec_resumes_it(onnx_dir, tmp_path):
    """infer_folder with a built Detector, then again with the DetectorSpec of the same export: the spec's identity
    (computed without loading anything) is the detector's, so the rerun skips everything."""
    from pointpillars_trt import Detector, DetectorSpec, infer_folder

    scans = ALL_SCANS[:3]
    with Detector.from_onnx(onnx_dir, device="cpu") as det:
        s = infer_folder(det, scans, tmp_path / "out", score_thresh=0.2, progress=False)
        model_id = det.model_id
    assert (s.total, s.done, s.skipped, s.failed, s.interrupted) == (3, 3, 0, [], False) and s.seconds > 0
    rows = json.loads((tmp_path / "out" / f"{scans[0].stem}.json").read_text())
    assert rows["run"] == {"model_id": model_id, "precision": "fp32", "score_thresh": 0.2, "reader": {}}
    spec = DetectorSpec.onnx(onnx_dir, device="cpu")
    assert spec.identity() == model_id
    s = infer_folder(spec, scans, tmp_path / "out", score_thresh=0.2, progress=False)
    assert (s.done, s.skipped) == (0, 3)


def test_the_readme_example_runs_as_written(tmp_path):
    """The Python block of README.md's "Folder runs" section, from a scratch folder holding the repository's data/;
    run twice, the second run skips the scan."""
    import re

    section = (REPO / "README.md").read_text().split("## Folder runs", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    (tmp_path / "data").symlink_to(REPO / "data")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for want in ("1 0 [] ", "0 1 [] "):
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0 and r.stdout.startswith(want), r.stderr
    assert sorted(os.listdir(tmp_path / "results")) == ["000000.json", "000000.txt"]
