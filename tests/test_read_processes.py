"""Scans read in reader processes (io.read_processes) are what read_points gives in this process: the same points,
stats and one-line refusals, from several threads at once; a folder run reading so writes the same files as one
reading on threads, and a bad scan in the middle is reported in its turn."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import ALL_SCANS
from test_cli_bad_input import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real scans, and the mistakes read_points refuses: truncated, empty, float64, a .npy renamed .bin, missing;
    one scan with NaN rows (dropped and counted)."""
    d = tmp_path_factory.mktemp("scans")
    good = [d / f"good{i}.bin" for i in range(3)]
    for p, s in zip(good, ALL_SCANS):
        p.write_bytes(s.read_bytes())
    pts = np.fromfile(ALL_SCANS[3], np.float32).reshape(-1, 4)
    nan = pts.copy()
    nan[[5, 17, 400], 1] = np.nan
    nan.tofile(d / "nan.bin")
    (d / "truncated.bin").write_bytes(ALL_SCANS[1].read_bytes()[:1000])
    (d / "empty.bin").write_bytes(b"")
    pts.astype(np.float64).tofile(d / "float64.bin")
    np.save(d / "array.npy", pts)
    (d / "array.npy").rename(d / "npy_named.bin")
    bad = [d / n for n in ("truncated.bin", "empty.bin", "float64.bin", "npy_named.bin", "missing.bin")]
    return good + [d / "nan.bin"], bad


def _outcome(read, path):
    try:
        pts, stats = read(path)
        return pts, stats
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, str(e)


def test_processes_read_what_read_points_reads(files):
    from pointpillars_trt.io.points import PointReader, read_points
    from pointpillars_trt.io.read_processes import ProcessReader

    good, bad = files
    with ProcessReader(PointReader(), 2) as procs:
        for p in good:
            got, stats = procs(p)
            want, want_stats = read_points(p, with_stats=True)
            assert got.dtype == np.float32 and got.shape == want.shape and np.array_equal(got, want)
            assert stats == want_stats
        # the NaN rows: dropped and counted, checked against the file itself
        raw = np.fromfile(good[-1], np.float32).reshape(-1, 4)
        got, stats = procs(good[-1])
        assert stats.num_nonfinite == 3 and np.array_equal(got, raw[np.isfinite(raw).all(axis=1)])
        for p in bad:  # the same one-line refusal, and the reader goes on
            want = _outcome(lambda q: read_points(q, with_stats=True), p)
            assert want[0] == "UserError"
            assert _outcome(procs, p) == want
        assert np.array_equal(procs(good[0])[0], read_points(good[0]))


def test_threads_share_the_processes_and_get_their_own_scans(files):
    from pointpillars_trt.io.points import PointReader, read_points
    from pointpillars_trt.io.read_processes import ProcessReader

    good, _ = files
    want = [read_points(p) for p in good]
    errors: list[str] = []
    with ProcessReader(PointReader(), 3) as procs:
        def work(k: int) -> None:
            for i in range(12):
                j = (i + k) % len(good)
                if not np.array_equal(procs(good[j])[0], want[j]):
                    errors.append(f"thread {k}: scan {j} differs")

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_point_options_travel_to_the_processes(files):
    from pointpillars_trt.io.points import PointReader
    from pointpillars_trt.io.read_processes import ProcessReader

    good, _ = files
    raw = np.fromfile(good[0], np.float32).reshape(-1, 4)
    reader = PointReader(columns=(0, 1, 2), intensity=0.25)
    with ProcessReader(reader, 1) as procs:
        got, _ = procs(good[0])
    assert np.array_equal(got[:, :3], raw[:, :3]) and np.all(got[:, 3] == np.float32(0.25))


def test_a_folder_run_reading_in_processes_writes_what_threads_write(tmp_path, files, onnx_dir):
    good, bad = files
    d = tmp_path / "scans"
    d.mkdir()
    for p in [good[0], bad[0], good[1], good[3]]:  # a truncated scan in the middle
        (d / p.name).write_bytes(p.read_bytes())
    outs = {}
    for readers in ("threads", "processes"):
        r = cli("infer", d, "--onnx-dir", onnx_dir, "--out", tmp_path / readers, "--readers", readers,
                "--writers", "threads", "--score-thresh", "0.2")
        assert r.returncode == 1, r.stderr
        assert "3 of 4 scans done; 1 failed:" in r.stderr and "truncated.bin: 1000 bytes is not a multiple of 16" in r.stderr
        outs[readers] = {p.name: p.read_bytes() for p in (tmp_path / readers).iterdir()}
    assert sorted(outs["threads"]) == ["good0.json", "good1.json", "nan.json"]
    assert outs["processes"] == outs["threads"]


def test_reader_kind_takes_processes_only_for_files_read_by_a_point_reader(tmp_path):
    from pointpillars_trt.errors import UserError
    from pointpillars_trt.io.points import PointReader
    from pointpillars_trt.io.result_files import ScanJob
    from pointpillars_trt.runs.single import reader_kind

    jobs = [ScanJob(tmp_path / f"{i}.bin", str(i), None) for i in range(300)]
    assert reader_kind("threads", jobs, None) == "threads"
    assert reader_kind("processes", jobs, PointReader(point_dims=4)) == "processes"
    assert reader_kind("auto", jobs[:10], None) == "threads"  # short runs: starting processes does not pay
    with pytest.raises(UserError, match="readers='threads'"):
        reader_kind("processes", jobs, lambda p: p)
    with pytest.raises(UserError, match="readers must be one of"):
        reader_kind("spawn", jobs, None)
