"""Plausible input mistakes on real scans give a one-line answer, never silent junk: intensities 0..255 on a model
trained on 0..1 (a warning once, and --intensity-scale that fixes it), float64 or 3/5-column data in a .bin (refused,
naming the cause), and x, y, z-only data (one path in every format: --intensity V)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ALL_SCANS, CHECKPOINT, assert_same_detections, gpu_stack_reason
from test_cli_bad_input import assert_one_line_error, cli
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.points import read_bin, read_points

SCALE_HINT = "--intensity-scale 0.00392"


def _scaled(points: np.ndarray, factor: float) -> np.ndarray:
    return (points * np.float32([1, 1, 1, factor])).astype(np.float32)


# ---------------------------------------------------------------------------------------------- intensity range
def test_real_scans_in_range_raise_no_warning_and_x255_do(cfg, capsys):
    from pointpillars_trt.pipelines.intensity import IntensityCheck

    for scan in ALL_SCANS:
        check = IntensityCheck(cfg)
        check(read_bin(scan))
        assert not check.warned, scan
        check(_scaled(read_bin(scan), 255))
        assert check.warned, scan
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(ALL_SCANS) and all(SCALE_HINT in ln and "0..1" in ln for ln in lines), lines
    # 16-bit and percent drivers get their own scale; a scale already given is applied before judging
    for factor, hint in ((65535, "1.53e-05"), (100, "0.01")):
        IntensityCheck(cfg)(_scaled(read_bin(ALL_SCANS[0]), factor))
        assert f"--intensity-scale {hint} " in capsys.readouterr().err
    from dataclasses import replace

    fixed = IntensityCheck(replace(cfg, intensity_scale=1 / 255))
    fixed(_scaled(read_bin(ALL_SCANS[0]), 255))
    assert not fixed.warned


def test_api_scale_gives_the_plain_scans_detections_and_warns_once(onnx_dir, capsys):
    """Detector(intensity_scale=1/255) on scans x255 finds what the plain detector finds on the scans; without the
    scale the same detector warns once for the whole run, not per scan. The scale changes no cache key."""
    from pointpillars_trt.api import Detector

    scans = [read_bin(s) for s in ALL_SCANS[:3]]
    with Detector.from_onnx(onnx_dir, device="cpu") as plain, \
            Detector.from_onnx(onnx_dir, device="cpu", intensity_scale=1 / 255) as scaled:
        assert scaled.cfg.digest() == plain.cfg.digest() and scaled.cfg.intensity_scale == pytest.approx(1 / 255)
        refs = plain.detect_batch(scans)
        for got, ref in zip(scaled.detect_batch([_scaled(p, 255) for p in scans]), refs):
            assert_same_detections(got, ref)
        assert capsys.readouterr().err == ""
        wrong = plain.detect_batch([_scaled(p, 255) for p in scans])
        assert sum(len(d) for d in wrong) != sum(len(d) for d in refs)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and SCALE_HINT in err[0] and "intensity_scale=0.00392" in err[0], err


def test_gpu_scale_gives_the_cpu_detections_from_host_and_device_points(onnx_dir, tmp_path):
    """The GPU pipeline applies the scale in its voxelizer kernel, so NumPy and CUDA-tensor scans x255 both give the
    CPU pipeline's detections of the plain scans (skipped without a CUDA GPU)."""
    why = gpu_stack_reason()
    if why:
        pytest.skip(f"needs a CUDA GPU: {why}")
    import torch

    from pointpillars_trt.api import Detector

    scans = [read_bin(s) for s in ALL_SCANS[:4]]
    with Detector.from_onnx(onnx_dir, device="cpu") as cpu, \
            Detector.from_checkpoint(CHECKPOINT, device="cuda", cache_dir=tmp_path, compile=False, tf32=False,
                                     intensity_scale=1 / 255) as gpu:
        for p in scans:
            ref, x255 = cpu(p), _scaled(p, 255)
            assert_same_detections(gpu(x255), ref)
            assert_same_detections(gpu(torch.from_numpy(x255).cuda()), ref)


def test_cli_warns_once_and_intensity_scale_fixes_it(tmp_path, onnx_dir):
    scans = tmp_path / "x255"
    scans.mkdir()
    for s in ALL_SCANS[:2]:
        _scaled(read_bin(s), 255).tofile(scans / s.name)
    # on the CPU: the comparisons are across processes, where a GPU's FP16 may flip the untrained model's tied boxes
    r = cli("infer", scans, "--onnx-dir", onnx_dir, "--out", tmp_path / "wrong", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and SCALE_HINT in warnings[0] and "RuntimeWarning" not in r.stderr, r.stderr
    # 1/255 in full: the untrained shared model's 200-odd overlapping boxes move with the 4th digit of the scale
    fixed = cli("infer", scans, "--onnx-dir", onnx_dir, "--out", tmp_path / "fixed", "--intensity-scale", str(1 / 255),
                "--device", "cpu")
    plain = cli("infer", *ALL_SCANS[:2], "--onnx-dir", onnx_dir, "--out", tmp_path / "plain", "--device", "cpu")
    assert fixed.returncode == plain.returncode == 0 and "warning" not in fixed.stderr, fixed.stderr
    for s in ALL_SCANS[:2]:
        got, ref = (json.loads((tmp_path / d / f"{s.stem}.json").read_text())["detections"] for d in ("fixed", "plain"))
        assert len(got) == len(ref) > 0
        assert np.allclose([d["score"] for d in got], [d["score"] for d in ref], atol=1e-3)
    r = cli("infer", scans, "--onnx-dir", onnx_dir, "--intensity-range", "1,0")
    assert r.returncode == 2 and "error: argument --intensity-range: expected LO,HI with LO < HI" in r.stderr


def test_bad_intensity_options_are_one_line_errors(onnx_dir):
    from pointpillars_trt.api import Detector

    for bad in ({"intensity_scale": 0}, {"intensity_scale": "x"}, {"intensity_range": (1, 0)},
                {"intensity_range": (0,)}):
        with pytest.raises(UserError, match="intensity"):
            Detector.from_onnx(onnx_dir, device="cpu", **bad)
    assert_one_line_error(cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--intensity-scale", "0"),
                          "intensity scale must be a positive number")
    r = cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--intensity-scale", "nan")
    assert r.returncode == 2 and "error: argument --intensity-scale: expected a finite number" in r.stderr


# ---------------------------------------------------------------------------------------------- .bin layouts
@pytest.mark.parametrize("scan", ALL_SCANS, ids=lambda p: p.stem)
def test_bin_as_float64_or_wrong_columns_is_refused_naming_the_cause(tmp_path, scan):
    pts = read_bin(scan)
    n = len(pts) // 4 * 4  # so that 3- and 5-column files are a multiple of 16 bytes: the size check cannot tell
    cases = {"f64.bin": (pts.astype(np.float64), "look like float64"),
             "xyz.bin": (pts[:n, :3], "repeat every 3, not every 4"),
             "ring.bin": (np.hstack([pts[:n], np.arange(n, dtype=np.float32)[:, None] % 64]),
                          "repeat every 5, not every 4"),
             "shuffled_xyz.bin": (pts[np.random.default_rng(0).permutation(n), :3], "repeat every 3")}
    for name, (arr, why) in cases.items():
        f = tmp_path / name
        arr.astype("<f8" if arr.dtype == np.float64 else "<f4").tofile(f)
        assert f.stat().st_size % 16 == 0
        with pytest.raises(UserError, match=why):
            read_points(f)
    # the right reading is what the message says
    np.testing.assert_array_equal(read_points(tmp_path / "ring.bin", point_dims=5), pts[:n])
    np.testing.assert_array_equal(read_points(tmp_path / "xyz.bin", point_dims=3, intensity=0.5)[:, :3], pts[:n, :3])
    # and what passes: the scan itself, 0..255 / 0..65535 intensities, zero intensity
    for factor in (1, 255, 65535, 0):
        f = tmp_path / f"i{factor}.bin"
        _scaled(pts, factor).tofile(f)
        np.testing.assert_array_equal(read_points(f), _scaled(pts, factor))


def test_bin_mistakes_through_the_cli_before_the_model_loads(tmp_path, onnx_dir):
    pts = read_bin(ALL_SCANS[0])
    n = len(pts) // 4 * 4
    pts.astype(np.float64).tofile(tmp_path / "f64.bin")
    pts[:n, :3].tofile(tmp_path / "xyz.bin")
    for name, fragments in (("f64.bin", ("float64", "astype(np.float32)")),
                            ("xyz.bin", ("--point-dims 3 --intensity V",))):
        r = cli("infer", tmp_path / name, "--onnx-dir", onnx_dir, "--cache-dir", tmp_path / "cache")
        assert_one_line_error(r, name, *fragments)
        assert "backend" not in r.stderr
    r = cli("infer", tmp_path / "xyz.bin", "--onnx-dir", onnx_dir, "--point-dims", "4", "--show", "0")
    assert r.returncode == 0, r.stderr  # --point-dims 4 says the layout is meant: read as given


# ---------------------------------------------------------------------------------------------- x, y, z only
def _xyz_files(points: np.ndarray, d):
    """The same x, y, z in every format that can lack intensity: {name: extra CLI args}."""
    xyz = points[:, :3]
    np.save(d / "xyz.npy", xyz)
    np.savez(d / "xyz.npz", points=xyz)
    xyz.tofile(d / "xyz.bin")
    np.save(d / "wide.npy", np.hstack([xyz, points[:, 3:], np.ones((len(xyz), 1), np.float32)]))
    head = (f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {len(xyz)}\nHEIGHT 1\n"
            f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(xyz)}\nDATA binary\n")
    (d / "xyz.pcd").write_bytes(head.encode() + np.ascontiguousarray(xyz, "<f4").tobytes())
    return {"xyz.npy": [], "xyz.npz": [], "xyz.bin": ["--point-dims", "3"], "xyz.pcd": [],
            "wide.npy": ["--point-dims", "5", "--columns", "0,1,2"]}


def _summary(r) -> str:
    """'N points, P pillars, D detections (...)' of infer's first scan line."""
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()[0].split(": ", 1)[1].split(" in ")[0]


def test_xyz_only_has_one_path_in_every_format(tmp_path, onnx_dir):
    """Without --intensity every x, y, z-only source is refused with the same advice; with it every one reads the
    same points and gives the same detections: no advice that is then refused, no silent 0 for a .pcd."""
    points = read_bin(ALL_SCANS[0])
    points = points[: len(points) // 4 * 4]  # a 3-column .bin of these is a multiple of 16 bytes
    files = _xyz_files(points, tmp_path)
    for name, extra in files.items():
        kw = {"point_dims": int(extra[1])} if "--point-dims" in extra else {}
        if "--columns" in extra:
            kw["columns"] = (0, 1, 2)
        with pytest.raises(UserError, match="no intensity.*--intensity V"):
            read_points(tmp_path / name, **kw)
        got = read_points(tmp_path / name, intensity=0.25, **kw)
        np.testing.assert_array_equal(got[:, :3], points[:, :3])
        assert (got[:, 3] == np.float32(0.25)).all()
    summaries = set()  # on the CPU: compared across processes, where a GPU's FP16 may flip the untrained model's ties
    extra_cpu = ("--device", "cpu")
    for name, extra in files.items():
        assert_one_line_error(cli("infer", tmp_path / name, "--onnx-dir", onnx_dir, *extra, "--show", "0"),
                              name, "--intensity V")
        r = cli("infer", tmp_path / name, "--onnx-dir", onnx_dir, *extra, "--intensity", "0.25", "--show", "0", *extra_cpu)
        assert "warning" not in r.stderr, r.stderr
        summaries.add(_summary(r))
    # --intensity replaces a file's own: the scan with its intensities, given 0.25, is the same again
    points.tofile(tmp_path / "full.bin")
    r = cli("infer", tmp_path / "full.bin", "--onnx-dir", onnx_dir, "--intensity", "0.25", "--show", "0", *extra_cpu)
    summaries.add(_summary(r))
    assert len(summaries) == 1, summaries  # the same points, pillars and detections from every format
    assert _summary(cli("infer", tmp_path / "full.bin", "--onnx-dir", onnx_dir, "--show", "0", *extra_cpu)) not in summaries
    # a constant far outside the model's range is warned about like any scan
    r = cli("infer", tmp_path / "xyz.npy", "--onnx-dir", onnx_dir, "--intensity", "200", "--show", "0")
    assert r.returncode == 0 and SCALE_HINT in r.stderr
