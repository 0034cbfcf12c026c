"""The public Python API on the CPU: the README example as written, parity with `infer`, batches, the file stream,
bad input (one-line errors) and the detector's lifetime."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import ALL_SCANS, CHECKPOINT, KITTI, REPO
from pointpillars_trt import Detections, Detector, UserError
from pointpillars_trt.io.kitti import read_bin


def readme_examples() -> list[str]:
    """The ```python blocks of README.md's "Python API" section, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture(scope="session")
def api_cache(tmp_path_factory, onnx_dir, cfg):
    """A cache_dir whose ONNX cache already holds the shared checkpoint's export (the test run's), so no re-export."""
    from pointpillars_trt.model.hashing import file_sha256

    cache = tmp_path_factory.mktemp("api-cache")
    (cache / "onnx").mkdir()
    (cache / "onnx" / f"{file_sha256(CHECKPOINT)[:12]}_{cfg.digest()}").symlink_to(onnx_dir, target_is_directory=True)
    return cache


@pytest.fixture(scope="module")
def detector(api_cache):
    with Detector.from_checkpoint(CHECKPOINT, device="cpu", cache_dir=api_cache) as det:
        yield det


def one_line_error(fn, *fragments) -> str:
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_readme_example_runs_as_written(api_cache, monkeypatch, capsys):
    code = readme_examples()[0]
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("POINTPILLARS_TRT_CACHE", str(api_cache))  # the per-user cache, redirected
    ns: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), ns)
    out = capsys.readouterr().out
    assert "backend onnxruntime (cpu)" in out and out.count("kitti/scans/0000") == 10
    assert len(ns["batch"]) == 2 and all(isinstance(d, Detections) for d in ns["batch"])
    lines = ns["kitti_text"].splitlines()
    assert len(lines) == len(ns["dets"]) > 0 and all(len(ln.split()) == 16 for ln in lines)
    assert len(json.loads(ns["json_text"])["detections"]) == len(ns["dets"])
    one_line_error(lambda: ns["detector"](ns["points"]), "closed")  # the with block closed it


@pytest.fixture(scope="module")
def reference(detector):
    """Detections per shared scan from single calls, computed once (each CPU scan costs ~0.4 s)."""
    cache: dict = {}

    def get(scan):
        if scan not in cache:
            cache[scan] = detector(read_bin(scan))
        return cache[scan]

    return get


def test_api_and_infer_agree_on_the_shared_scans(reference, detector, onnx_dir, tmp_path):
    from test_cli_bad_input import cli

    assert len(ALL_SCANS) == 12
    links = tmp_path / "scans"
    links.mkdir()
    for i, scan in enumerate(ALL_SCANS):  # unique names: scans/000002.bin and testing/velodyne/000002.bin clash
        (links / f"{i:02d}_{scan.stem}.bin").symlink_to(scan)
    r = cli("infer", links, "--onnx-dir", onnx_dir, "--device", "cpu", "--out", tmp_path / "out", "--show", "0")
    assert r.returncode == 0, r.stderr
    names = detector.cfg.class_names
    for i, scan in enumerate(ALL_SCANS):
        want = json.loads((tmp_path / "out" / f"{i:02d}_{scan.stem}.json").read_text())["detections"]
        got = json.loads(reference(scan).to_json(names))["detections"]
        assert got == want and len(got) > 0, scan


def test_detect_batch_equals_per_scan_calls(detector, reference):
    scans = ALL_SCANS[:2]
    batch = detector.detect_batch([read_bin(s) for s in scans])
    assert len(batch) == 2
    for s, d in zip(scans, batch):
        np.testing.assert_array_equal(d.as_array(), reference(s).as_array())
    assert detector.detect_batch([]) == []


def test_stream_keeps_input_order_and_survives_bad_sources(detector, reference, tmp_path):
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(ALL_SCANS[1].read_bytes()[:-5])
    array = read_bin(ALL_SCANS[2])
    sources = [ALL_SCANS[0], truncated, array, array.astype(np.float64), str(ALL_SCANS[3]), tmp_path / "missing.bin"]
    out = list(detector.stream(sources, prefetch=2))
    assert [s is src for (s, _), src in zip(out, sources)] == [True] * len(sources)
    ok = [not isinstance(r, Exception) for _, r in out]
    assert ok == [True, False, True, False, True, False]
    assert "not a multiple of 16" in str(out[1][1]) and "float64" in str(out[3][1]) and "not found" in str(out[5][1])
    for k, scan in ((0, ALL_SCANS[0]), (2, ALL_SCANS[2]), (4, ALL_SCANS[3])):
        np.testing.assert_array_equal(out[k][1].detections.as_array(), reference(scan).as_array())
    assert out[0][1].stats.num_pillars > 0 and out[0][1].times["total"] > 0


def test_stream_batches_by_max_batch(api_cache, reference):
    """Three sources in batches of two (the last one short); no point in range is a cheap empty scan."""
    far = np.full((50, 4), 500.0, np.float32)
    with Detector.from_checkpoint(CHECKPOINT, device="cpu", cache_dir=api_cache, max_batch=2) as det:
        out = [r for _, r in det.stream([far, ALL_SCANS[0], far], prefetch=0)]
    assert [len(r.detections) for r in out] == [0, len(reference(ALL_SCANS[0])), 0]


def test_stream_reads_files_with_the_given_reader(detector):
    """stream(read=...) reads each path with the caller's reader (infer passes its --point-dims reader this way):
    here one that keeps every other point, compared with running those points directly."""
    seen = []

    def half(path):
        seen.append(path.name)
        return read_bin(path)[::2].copy()

    out = list(detector.stream(ALL_SCANS[:2], prefetch=1, read=half))
    assert sorted(seen) == sorted(p.name for p in ALL_SCANS[:2])
    for (src, res), scan in zip(out, ALL_SCANS[:2]):
        assert src is scan
        np.testing.assert_array_equal(res.detections.as_array(), detector(read_bin(scan)[::2].copy()).as_array())
    assert out[0][1].stats.points_in_range < detector.run(read_bin(ALL_SCANS[0])).stats.points_in_range  # it was used


class FakeCai:
    """A device array as Numba/CuPy/torch describe one (CUDA Array Interface v3), on GPU `device`."""

    def __init__(self, shape=(100, 4), typestr="<f4", strides=None, device=0, stream=7):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "strides": strides, "data": (1 << 20, False),
                                         "version": 3, "stream": stream}
        self._device = device

    def __dlpack_device__(self):
        return (2, self._device)


@pytest.mark.parametrize("points, fragments", [
    (np.zeros((100, 4)), ("float64", ".astype(np.float32)")),
    (np.zeros((100, 3), np.float32), ("shape (100, 3)", "[N, C>=4]")),
    (np.zeros(400, np.float32), ("shape (400,)", "reshape(-1, 4)")),
    (np.zeros((4, 100), np.float32).T, ("not C-contiguous", "np.ascontiguousarray")),
    (np.zeros((0, 4), np.float32), ("empty scan",)),
    (np.full((5, 4), np.nan, np.float32), ("empty scan", "NaN/Inf")),
    (FakeCai(device=1), ("on the GPU but this detector runs on the CPU",)),
    ([[0.0, 0.0, 0.0, 0.0]], ("NumPy array", "np.asarray")),
])
def test_bad_points_are_one_line_errors(detector, points, fragments):
    one_line_error(lambda: detector(points), *fragments)


def test_bad_torch_tensors_are_one_line_errors(detector):
    torch = pytest.importorskip("torch")
    one_line_error(lambda: detector(torch.zeros(4, 100).t()), "not C-contiguous", ".contiguous()")
    one_line_error(lambda: detector(torch.zeros(100, 4, dtype=torch.float64)), "float64", ".float()")
    one_line_error(lambda: detector(torch.zeros(100, 4, requires_grad=True)), ".detach()")
    one_line_error(lambda: detector(np.zeros((10, 4), np.float32), on_device=True), "runs on the CPU")


def test_torch_cpu_tensor_gives_the_numpy_detections(detector, reference):
    torch = pytest.importorskip("torch")
    pts = read_bin(ALL_SCANS[4])
    np.testing.assert_array_equal(detector(torch.from_numpy(pts)).as_array(), reference(ALL_SCANS[4]).as_array())


def test_close_is_idempotent_and_a_closed_detector_refuses(api_cache):
    det = Detector.from_checkpoint(CHECKPOINT, device="cpu", cache_dir=api_cache)
    pts = read_bin(ALL_SCANS[0])
    assert len(det(pts)) > 0
    det.close()
    det.close()
    for use in (lambda: det(pts), lambda: det.run(pts), lambda: det.detect_batch([pts]), lambda: det.stream([pts]),
                lambda: det.pipeline, lambda: det.__enter__()):
        one_line_error(use, "closed")
    assert "closed" in repr(det)


def test_options_are_checked_like_the_cli(api_cache, tmp_path):
    one_line_error(lambda: Detector.from_checkpoint(CHECKPOINT, precision="fp8"), "precision", "fp32, fp16")
    one_line_error(lambda: Detector.from_checkpoint(CHECKPOINT, backend="jax"), "backend")
    one_line_error(lambda: Detector.from_checkpoint(CHECKPOINT, device="tpu"), "device")
    one_line_error(lambda: Detector.from_checkpoint(CHECKPOINT, max_batch=0), "max_batch")
    one_line_error(lambda: Detector.from_checkpoint(tmp_path / "no.pth", cache_dir=tmp_path), "checkpoint not found")
    one_line_error(lambda: Detector.from_onnx(tmp_path), "manifest.json")
    one_line_error(lambda: Detector.from_checkpoint(CHECKPOINT, device="cpu", backend="torch"), "--backend torch runs on the GPU")
    one_line_error(lambda: Detector.from_checkpoint(CHECKPOINT, device="cpu", cache_dir=api_cache, foo=1), "GPU options")


def test_from_onnx_and_properties(onnx_dir):
    with Detector.from_onnx(onnx_dir, device="cpu", precision="fp16", threads=1) as det:
        assert (det.backend, det.device, det.precision, det.untrained) == ("onnxruntime", "cpu", "fp16", False)
        assert "fp16" in det.description and str(onnx_dir) in det.description
        assert det.cfg.class_names == ("Car", "Pedestrian", "Cyclist")


def test_detections_file_forms_match_the_kitti_writers(detector):
    from pointpillars_trt.io.kitti import Calib, detections_to_json, detections_to_kitti, format_labels

    calib = Calib.read(KITTI / "training/calib/000134.txt")
    d = detector(read_bin(KITTI / "training/velodyne/000134.bin"))
    names = detector.cfg.class_names
    assert d.to_json(names, {"scan": "x"}) == detections_to_json(d.boxes, d.scores, d.labels, names, {"scan": "x"})
    assert d.to_kitti(calib, names, (375, 1242)) == format_labels(detections_to_kitti(d.boxes, d.scores, d.labels, names, calib, (375, 1242)))
    as_dict = d.to_dict(names)
    assert as_dict["frame"] == "lidar" and [x["label"] for x in as_dict["detections"]] == d.labels_named(names)
    assert d.device is None


def test_a_cached_model_loads_without_the_onnx_exporter(api_cache):
    """A detector whose ONNX export is cached does not import onnx (0.7 s of a warm start): a fresh process."""
    import subprocess
    import sys

    code = ("import sys; from pointpillars_trt import Detector; "
            f"d = Detector.from_checkpoint({str(CHECKPOINT)!r}, device='cpu', cache_dir={str(api_cache)!r}); "
            "print(sorted(m for m in sys.modules if m == 'onnx' or m.startswith('onnx.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout
