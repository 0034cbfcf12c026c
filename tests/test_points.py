"""Point cloud formats: the same points stored as .bin, .npy, .npz, .pcd and .ply give the same detections; odd layouts
are read when described (--point-dims, --columns) and refused with one line when not."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ALL_SCANS, make_cpu_pipeline
from test_cli_bad_input import assert_one_line_error, cli
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.points import read_bin, read_points

SCAN = ALL_SCANS[0]


def _open3d_cloud(points):
    o3d = pytest.importorskip("open3d")
    pc = o3d.t.geometry.PointCloud()
    pc.point["positions"] = o3d.core.Tensor(points[:, :3])
    pc.point["intensity"] = o3d.core.Tensor(points[:, 3:4])
    return o3d, pc


def _write_all(points, d):
    """The scan in every format (PCD in all three DATA kinds, written by Open3D); {name: path}."""
    np.save(d / "s.npy", points)
    np.savez(d / "s.npz", points=points)
    points.astype("<f4").tofile(d / "s.bin")
    o3d, pc = _open3d_cloud(points)
    for name, kw in (("binary.pcd", {}), ("ascii.pcd", {"write_ascii": True}), ("compressed.pcd", {"compressed": True}),
                     ("s.ply", {})):
        assert o3d.t.io.write_point_cloud(str(d / name), pc, **kw)
    return {p.name: p for p in d.iterdir()}


def test_same_points_and_detections_from_every_format(tmp_path, cfg, onnx_dir):
    points = read_bin(SCAN)
    files = _write_all(points, tmp_path)
    for name, path in files.items():
        np.testing.assert_array_equal(read_points(path), points, err_msg=name)
    with make_cpu_pipeline(cfg, onnx_dir) as pipe:
        ref = pipe.run(points).detections
        for name in ("s.bin", "s.npy", "binary.pcd", "s.ply"):
            got = pipe.run(read_points(files[name])).detections
            np.testing.assert_array_equal(got.as_array(), ref.as_array(), err_msg=name)


def test_five_column_bin_with_columns(tmp_path):
    """nuScenes-style x, y, z, ring, intensity: --point-dims 5 --columns 0,1,2,4 gives back KITTI's x, y, z, intensity."""
    points = read_bin(SCAN)
    ring = np.arange(len(points), dtype=np.float32)[:, None] % 32
    np.hstack([points[:, :3], ring, points[:, 3:]]).astype("<f4").tofile(tmp_path / "n.bin")
    np.testing.assert_array_equal(read_points(tmp_path / "n.bin", point_dims=5, columns=(0, 1, 2, 4)), points)
    default = read_points(tmp_path / "n.bin", point_dims=5)  # default columns 0..3: the ring becomes intensity
    np.testing.assert_array_equal(default[:, 3], ring[:, 0])


def test_wrong_shape_npy_refused_before_any_model_work(tmp_path, user_cache):
    np.save(tmp_path / "xyz.npy", read_bin(SCAN)[:, :3])
    with pytest.raises(UserError, match=r"x, y, z only, no intensity"):
        read_points(tmp_path / "xyz.npy")
    np.save(tmp_path / "flat.npy", read_bin(SCAN).ravel())
    with pytest.raises(UserError, match=r"shape \(\d+,\)"):
        read_points(tmp_path / "flat.npy")
    before = sorted(user_cache.rglob("*"))
    r = cli("infer", tmp_path / "xyz.npy", "--random-init", "--cache-dir", tmp_path / "cache")
    assert_one_line_error(r, "xyz.npy", "--intensity V")  # advice that works: tests/test_input_mistakes.py
    assert not (tmp_path / "cache").exists() and sorted(user_cache.rglob("*")) == before


def test_content_checked_against_extension(tmp_path):
    """A .npy renamed .bin, read as raw float32, would give 8 junk points from its header: it is refused."""
    np.save(tmp_path / "scan.npy", read_bin(SCAN))
    (tmp_path / "scan.bin").write_bytes((tmp_path / "scan.npy").read_bytes())
    with pytest.raises(UserError, match=r"content is a NumPy \.npy file; rename it to \.npy"):
        read_points(tmp_path / "scan.bin")
    read_bin(SCAN).astype("<f4").tofile(tmp_path / "raw.pcd")
    with pytest.raises(UserError, match="no PCD header"):
        read_points(tmp_path / "raw.pcd")
    (tmp_path / "scan.las").write_bytes(b"LASF")
    with pytest.raises(UserError, match="unknown point cloud extension"):
        read_points(tmp_path / "scan.las")
    with pytest.raises(UserError, match="4 values per point, but --point-dims 5"):
        read_points(tmp_path / "scan.npy", point_dims=5)


def test_nonfinite_rows_against_a_row_by_row_check():
    """The flat-first NaN/Inf check marks exactly the rows a per-value Python loop finds, on a real scan."""
    from pointpillars_trt.io.points import nonfinite_rows

    pts = read_bin(ALL_SCANS[0])
    assert nonfinite_rows(pts) is None  # a clean scan: no mask made
    rng = np.random.default_rng(0)
    bad = pts.copy()
    rows = rng.choice(len(bad), 25, replace=False)
    for i, r in enumerate(rows):
        bad[r, i % 4] = (np.nan, np.inf, -np.inf)[i % 3]
    mask = nonfinite_rows(bad)
    expected = [any(not np.isfinite(float(v)) for v in row) for row in bad]
    assert mask is not None and mask.tolist() == expected and int(mask.sum()) == 25


def test_a_scan_of_only_nan_points_names_them(tmp_path):
    f = tmp_path / "nan.bin"
    np.full((100, 4), np.nan, np.float32).tofile(f)
    with pytest.raises(UserError, match=r"nan.bin: all 100 points hold NaN or Inf"):
        read_bin(f)


def test_check_points_file_finds_what_size_and_header_tell(tmp_path):
    """The cheap pre-check refuses what read_points refuses from size and header alone, with the same message."""
    from pointpillars_trt.io.points import check_points_file

    good, short, npy_named_bin = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    good.write_bytes(ALL_SCANS[0].read_bytes())
    short.write_bytes(ALL_SCANS[0].read_bytes()[:1000])
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    npy_named_bin.write_bytes((tmp_path / "x.npy").read_bytes())
    assert check_points_file(good) == "bin" and check_points_file(tmp_path / "x.npy") == "npy"
    for bad in (short, npy_named_bin, tmp_path / "missing.bin"):
        with pytest.raises(UserError) as cheap:
            check_points_file(bad)
        with pytest.raises(UserError) as full:
            read_points(bad)
        assert str(cheap.value) == str(full.value)
    with pytest.raises(UserError, match="multiple of 28"):
        check_points_file(good, point_dims=7)  # 20285 points x 16 bytes is no whole number of 7-value points
