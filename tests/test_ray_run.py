"""Folder runs over Ray (runs/ray_run.py) on one local CPU cluster for the module (2 CPUs), on real shared scans and a
corrupt one: the same files as one process, byte for byte; the corrupt scan reported and the rest finished; a rerun
skips what is done; a detector actor killed mid-run (SIGKILL) loses no result (Ray restarts it and runs its batch
again); `infer --ray ADDRESS` joins the cluster; without Ray installed, one line names the extra."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ALL_SCANS, REPO

ray = pytest.importorskip("ray", reason='Ray Data is the cluster extra: pip install -e ".[cluster]"')


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    """The 12 shared scans (hard links) and, in the middle, one whose every point is NaN: only a full read finds it."""
    d = tmp_path_factory.mktemp("scans")
    for i, src in enumerate(ALL_SCANS):
        try:
            os.link(src, d / f"{i:02d}_{src.stem}.bin")
        except OSError:
            (d / f"{i:02d}_{src.stem}.bin").write_bytes(src.read_bytes())
    np.full((100, 4), np.nan, np.float32).tofile(d / "05_nan.bin")
    return d


@pytest.fixture(scope="module")
def spec(onnx_dir):
    from pointpillars_trt import DetectorSpec

    return DetectorSpec.onnx(onnx_dir, device="cpu", max_batch=2)


@pytest.fixture(scope="module")
def single(scans, spec, tmp_path_factory) -> tuple[Path, object]:
    """One process's results and summary: the reference."""
    from pointpillars_trt import infer_folder

    out = tmp_path_factory.mktemp("single") / "out"
    return out, infer_folder(spec, scans, out, progress=False)


def _same_files(a: Path, b: Path) -> None:
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))
    for name in os.listdir(a):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_ray_writes_what_one_process_writes_and_reports_the_corrupt_scan(cluster, scans, spec, single, tmp_path):
    from pointpillars_trt import infer_folder

    ref, one = single
    assert one.done == 12 and len(one.failed) == 1 and "05_nan.bin: all 100 points hold NaN or Inf" in one.failed[0][1]
    s = infer_folder(spec, scans, tmp_path / "out", ray=True, progress=False)
    assert (s.total, s.done, s.skipped) == (13, 12, 0) and s.failed == one.failed
    assert sum(s.workers.values()) == 12 and s.seconds > 0
    _same_files(tmp_path / "out", ref)
    s = infer_folder(spec, scans, tmp_path / "out", ray=True, progress=False)  # a rerun: nothing to do
    assert (s.done, s.skipped, len(s.failed)) == (0, 12, 1)
    for name in sorted(os.listdir(ref))[:3]:  # three results lost: only those are run again
        (tmp_path / "out" / name).unlink()
    s = infer_folder(spec, scans, tmp_path / "out", ray=True, progress=False)
    assert (s.done, s.skipped) == (3, 9)
    _same_files(tmp_path / "out", ref)


def _descendants(pid: int) -> list[int]:
    """Processes under pid (this test's Ray cluster: raylet, workers), from /proc."""
    parent = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                parent[int(p)] = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [pid]
    while todo:
        up = todo.pop()
        kids = [c for c, pp in parent.items() if pp == up]
        found += kids
        todo += kids
    return found


def _detector_actor() -> int | None:
    for pid in _descendants(os.getpid()):
        try:
            if b"DetectScans" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            pass
    return None


def test_a_killed_actor_loses_no_result(cluster, scans, spec, single, tmp_path):
    from pointpillars_trt import infer_folder

    out, got = tmp_path / "out", {}
    run = threading.Thread(target=lambda: got.setdefault("s", infer_folder(spec, scans, out, ray=True, progress=False)))
    run.start()
    deadline = time.monotonic() + 300
    while not (out.is_dir() and len(os.listdir(out)) >= 2):
        assert run.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    victim = _detector_actor()
    assert victim is not None, "no detector actor process found"
    os.kill(victim, signal.SIGKILL)
    run.join(600)
    s = got["s"]
    assert s.done == 12 and len(s.failed) == 1, s
    assert len(s.workers) == 2, s.workers  # the killed actor and the one Ray started in its place
    _same_files(out, single[0])


def test_the_command_joins_a_cluster_and_names_the_missing_extra(cluster, scans, onnx_dir, single, tmp_path):
    args = ["infer", str(scans), "--onnx-dir", str(onnx_dir), "--device", "cpu", "--batch", "2", "--out",
            str(tmp_path / "out"), "--ray", cluster]
    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", *args], capture_output=True, text=True, cwd=REPO,
                       timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr  # 1: the NaN scan failed
    assert "13 scans: 12 done, 1 failed" in r.stderr and "per worker: " in r.stderr and "05_nan.bin" in r.stderr
    _same_files(tmp_path / "out", single[0])
    code = "import sys; sys.modules['ray'] = None; from pointpillars_trt.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, *args[:-2], "--out", str(tmp_path / "o2"), "--ray"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and 'pip install "pointpillars_trt[cluster]"' in lines[0], r.stderr
