"""Point clouds from the files people have: KITTI .bin (float32, 4 a point or --point-dims), .npy/.npz, .pcd, .ply.

Every reader returns N x 4 float32 (x, y, z, intensity) in the lidar frame, rows with NaN/Inf dropped and
counted. The format comes from the file name and is checked against the content, so a .npy renamed .bin
(or a truncated file) is a one-line UserError instead of junk points.

xyz-only data takes one path in every format: a scan without intensity (a 3-column .bin/.npy/.npz, --columns X,Y,Z,
a PCD/PLY without an intensity field) is refused unless the caller gives `intensity`, one value for every point
(--intensity V). Why not 0 with a warning: the model was trained with intensity, and any constant
changes what it finds (the default model on the sample scan: 15 detections with its intensities, 20 with 0, 12
with 0.3), so the choice is the user's, made once and visibly.

Why .pcd is read here and .ply through Open3D: an uncompressed PCD (DATA ascii or binary, what PCL and
ROS write by default) is a text header plus a fixed-size record array, which NumPy reads exactly in a few
lines, so .pcd scans work on the base install. PCD's binary_compressed (LZF) and PLY (ascii, either
endianness, several elements, list properties) are real parsers; those go to Open3D's tensor I/O, which
keeps the intensity field (its legacy reader drops it), and name the `viz` extra when it is missing.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.bin_check import check_bin_values

POINT_BYTES = 16  # x, y, z, intensity as float32: KITTI's velodyne layout
FORMATS = {".bin": "bin", ".npy": "npy", ".npz": "npz", ".pcd": "pcd", ".ply": "ply"}
SCAN_SUFFIXES = tuple(FORMATS)
KITTI_COLUMNS = (0, 1, 2, 3)
INTENSITY_NAMES = ("intensity", "i", "reflectance", "remission")
OPEN3D_HINT = 'pip install "pointpillars_trt[viz]" (Open3D)'
_WHAT = {"bin": "float32 .bin scan", "npy": "NumPy .npy", "npz": "NumPy .npz", "pcd": "PCD", "ply": "PLY"}


@dataclass
class ScanStats:
    """What reading a scan had to drop, so callers can report it."""

    num_points: int
    num_nonfinite: int


@dataclass(frozen=True)
class PointReader:
    """read_points with fixed options, returning (points, ScanStats): a picklable reader (reader processes use it,
    io/read_processes.py) where a lambda would not be."""

    point_dims: int | None = None
    columns: tuple[int, ...] | None = None
    intensity: float | None = None

    def __call__(self, path: str | os.PathLike) -> tuple[np.ndarray, ScanStats]:
        return read_points(path, point_dims=self.point_dims, columns=self.columns, intensity=self.intensity,
                           with_stats=True)


def format_of(path: Path, fmt: str | None = None) -> str:
    """The format a file is read as: `fmt` if given, else its extension; UserError for anything else."""
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise UserError(f"unknown point cloud format {fmt!r}; known: {', '.join(FORMATS.values())}")
        return fmt
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"{path}: unknown point cloud extension {path.suffix or '(none)'!r}; "
                        f"expected one of {', '.join(SCAN_SUFFIXES)}")
    return FORMATS[path.suffix.lower()]


def sniff(head: bytes) -> str | None:
    """The format a file's first bytes announce (npy, npz, pcd, ply), or None (raw float32 has no header)."""
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    if head.startswith((b"ply\n", b"ply\r\n")):
        return "ply"
    if head.lstrip().startswith((b"# .PCD", b"VERSION", b"FIELDS")):
        return "pcd"
    return None


def read_points(path: str | os.PathLike, fmt: str | None = None, point_dims: int | None = None,
                columns: Sequence[int] | None = None, *, intensity: float | None = None, with_stats: bool = False):
    """Read a scan as N x 4 float32 (x, y, z, intensity); NaN/Inf rows dropped (counted in the stats).

    `point_dims` is the number of float32 values per point of a .bin (default 4; nuScenes has 5; 3 for x, y, z)
    and, when given, the column count a .npy/.npz must have; `columns` picks x, y, z[, intensity] among them
    (default 0, 1, 2, 3, or 0, 1, 2 for three). .pcd/.ply files name their fields, so x, y, z and intensity are
    found by name. `intensity`: every point's intensity (replacing the file's); needed where the file has none.
    """
    path = Path(path)
    fmt = format_of(path, fmt)
    if fmt == "bin":  # one open: the checks of check_points_file on the bytes read (the folder runs' hot path)
        pts = _select_columns(_read_bin_array(path, point_dims), path, point_dims, columns)
        return _finish(pts, path, intensity, with_stats)
    fmt = check_points_file(path, fmt, point_dims)
    if fmt in ("pcd", "ply"):
        if point_dims is not None or columns is not None:
            raise UserError(f"{path}: --point-dims/--columns apply to .bin/.npy/.npz; {fmt.upper()} files name their fields")
        pts = _read_pcd(path) if fmt == "pcd" else _read_open3d(path)
    else:
        pts = _select_columns(_read_numpy(path, fmt), path, point_dims, columns)
    return _finish(pts, path, intensity, with_stats)


def _finish(pts: np.ndarray, path: Path, intensity: float | None, with_stats: bool):
    """read_points' common end: the intensity column, NaN/Inf rows dropped and counted, packed float32."""
    pts = _with_intensity(pts, path, intensity)
    bad_rows = nonfinite_rows(pts)
    bad = 0 if bad_rows is None else int(bad_rows.sum())
    if bad and bad == len(pts):
        raise UserError(f"scan {path}: all {bad} points hold NaN or Inf; nothing is left to detect on")
    pts = np.ascontiguousarray(pts[~bad_rows] if bad else pts, dtype=np.float32)
    return (pts, ScanStats(num_points=len(pts), num_nonfinite=bad)) if with_stats else pts


def check_points_file(path: str | os.PathLike, fmt: str | None = None, point_dims: int | None = None) -> str:
    """The checks of read_points that need no more than the file's size and first bytes (missing, empty, a header
    that contradicts the name, a .bin size that is no whole number of points); returns the format. Lets a command
    refuse a bad file in a folder before the model loads without reading every scan twice."""
    path = Path(path)
    fmt = format_of(path, fmt)
    _check_file(path)
    with open(path, "rb") as f:
        _check_header(path, fmt, f.read(64))
    if fmt == "bin":
        _check_bin_size(path, path.stat().st_size, point_dims)
    return fmt


def _check_header(path: Path, fmt: str, head: bytes) -> None:
    """UserError when the file's first bytes announce another format than its name (a .npy renamed .bin...)."""
    found = sniff(head)
    if found != (None if fmt == "bin" else fmt):
        what = f"its content is a {_WHAT[found]} file" if found else f"it has no {_WHAT[fmt]} header"
        raise UserError(f"{path}: read as {_WHAT[fmt]} (from its name), but {what}"
                        + (f"; rename it to .{found}" if found else ""))


def nonfinite_rows(pts: np.ndarray) -> np.ndarray | None:
    """Mask of the rows holding a NaN or Inf, or None when every value is finite. The usual answer comes from the
    sum of squares of all values, one BLAS pass with no temporary (NaN and Inf carry through it; an overflow to Inf
    only sends it on to the exact test): 9 us a 20k-point scan against 12 for isfinite(pts).all(), and per-row
    all(axis=1) costs 15-30x more."""
    if pts.flags.c_contiguous and pts.dtype == np.float32:
        flat = pts.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.dot(flat, flat)):
                return None
    if np.isfinite(pts).all():
        return None
    return ~np.isfinite(pts).all(axis=1)


def read_bin(path: str | os.PathLike, *, with_stats: bool = False):
    """Read an N x 4 float32 KITTI velodyne scan (see read_points); UserError for a missing, empty or odd-sized file."""
    return read_points(path, "bin", with_stats=with_stats)


def write_bin(path: str | os.PathLike, points: np.ndarray) -> None:
    """Write an N x 4 float32 scan in KITTI's velodyne layout."""
    np.ascontiguousarray(points[:, :4], dtype="<f4").tofile(path)


def _check_file(path: Path) -> None:
    """UserError for a missing file, a folder or an empty file."""
    if path.is_dir():
        raise UserError(f"scan {path} is a directory, expected a point cloud file")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UserError(f"scan not found: {path}") from None
    if size == 0:
        raise UserError(f"scan {path} is empty (0 bytes)")


def _check_bin_size(path: Path, size: int, point_dims: int | None) -> None:
    """UserError unless `size` bytes hold a whole number of points of point_dims (default 4) float32 values."""
    dims = 4 if point_dims is None else point_dims
    if size % (4 * dims):
        xyz = dims == 4 and size % 12 == 0
        hint = "; 3 values per point (x, y, z)? pass --point-dims 3 --intensity V" if xyz else ""
        raise UserError(f"scan {path}: {size} bytes is not a multiple of {4 * dims} ({dims} float32 per point"
                        f"{', x,y,z,intensity' if dims == 4 else ''}); truncated, or pass the right --point-dims{hint}")


def _read_bin_array(path: Path, point_dims: int | None) -> np.ndarray:
    """Raw little-endian float32, point_dims (default 4) values per point, read whole through one open file (the
    read itself runs without the GIL, so reader threads overlap), after check_points_file's checks on its size and
    first bytes; values that look like float64 or, without --point-dims, like another number of values per point
    are refused (io/bin_check.py)."""
    try:
        f = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise UserError(f"scan not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"scan {path} is a directory, expected a point cloud file") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise UserError(f"scan {path} is empty (0 bytes)")
        flat = np.empty(size // 4, dtype="<f4")
        got = f.readinto(memoryview(flat).cast("B")[: size // 4 * 4])
    if got != size // 4 * 4:
        raise UserError(f"scan {path}: read {got} of {size} bytes (the file changed while it was read)")
    _check_header(path, "bin", flat[:16].tobytes())
    _check_bin_size(path, size, point_dims)
    dims = 4 if point_dims is None else point_dims
    check_bin_values(path, flat, dims, dims_given=point_dims is not None)
    return flat.reshape(-1, dims)


def _read_numpy(path: Path, fmt: str) -> np.ndarray:
    """The 2-D numeric array of a .npy, or of a .npz's 'points' (or only) array."""
    try:
        if fmt == "npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = "points" if "points" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise UserError(f"{path}: {len(keys)} arrays ({', '.join(keys[:5])}) and none named 'points'")
                arr = z[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: cannot be read as {_WHAT[fmt]} ({str(e).splitlines()[0][:120]})") from None
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise UserError(f"{path}: array of shape {arr.shape} and dtype {arr.dtype}; expected N x 4 numbers "
                        "(x, y, z, intensity), N x 3 with --intensity V, or N x D with --point-dims D --columns")
    return arr


def _select_columns(arr: np.ndarray, path: Path, point_dims: int | None, columns: Sequence[int] | None) -> np.ndarray:
    """x, y, z[, intensity] out of an N x D array, checking D against --point-dims / --columns (N x 3: no intensity)."""
    d = arr.shape[1]
    if point_dims is not None and d != point_dims:
        raise UserError(f"{path}: {d} values per point, but --point-dims {point_dims}")
    if columns is None and d > 4 and point_dims is None:
        raise UserError(f"{path}: {d} values per point, expected 4 (x, y, z, intensity); "
                        f"pass --point-dims {d} and --columns X,Y,Z,INTENSITY to pick them")
    cols = tuple(columns) if columns is not None else KITTI_COLUMNS[:min(d, 4)]
    if len(cols) not in (3, 4) or min(cols) < 0:
        raise UserError(f"--columns needs 3 or 4 column numbers (x, y, z[, intensity]), got {','.join(map(str, cols))}")
    if max(cols) >= d:
        raise UserError(f"{path}: --columns {','.join(map(str, cols))} asks for column {max(cols)} of {d}")
    return arr[:, list(cols)] if cols != tuple(range(d)) else arr


def _read_pcd(path: Path) -> np.ndarray:
    """x, y, z, intensity of a PCD file: DATA ascii/binary with NumPy, binary_compressed through Open3D."""
    with open(path, "rb") as f:
        header: dict[str, list[str]] = {}
        while "DATA" not in header:
            line = f.readline()
            if not line:
                raise UserError(f"{path}: PCD header ends without a DATA line")
            key, *vals = line.decode("ascii", "replace").split() or ["#"]
            if not key.startswith("#"):
                header[key.upper()] = vals
        body = f.read()
    try:
        fields, sizes, types = header["FIELDS"], [int(s) for s in header["SIZE"]], header["TYPE"]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
        n = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        dtype = np.dtype([(f"f{i}", f"<{ {'F': 'f', 'I': 'i', 'U': 'u'}[t.upper()]}{s}", (c,))
                          for i, (s, t, c) in enumerate(zip(sizes, types, counts))])
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise UserError(f"{path}: malformed PCD header ({type(e).__name__}: {e})") from None
    data = header["DATA"][0].lower() if header["DATA"] else ""
    if data == "binary_compressed":
        return _read_open3d(path)
    if data == "binary":
        if len(body) < n * dtype.itemsize:
            raise UserError(f"{path}: PCD body has {len(body)} bytes for {n} points of {dtype.itemsize}; truncated")
        rec = np.frombuffer(body, dtype, count=n)
        column = lambda i: rec[f"f{i}"][:, 0].astype(np.float32)  # noqa: E731
    elif data == "ascii":
        try:
            table = np.loadtxt(io.BytesIO(body), dtype=np.float64, ndmin=2)
        except ValueError as e:
            raise UserError(f"{path}: PCD ascii body is not a table of numbers ({e})") from None
        if table.shape != (n, sum(counts)):
            raise UserError(f"{path}: PCD ascii body is {table.shape[0]} x {table.shape[1]}, header says {n} x {sum(counts)}")
        starts = np.cumsum([0] + counts)
        column = lambda i: table[:, starts[i]].astype(np.float32)  # noqa: E731
    else:
        raise UserError(f"{path}: PCD DATA {data!r} not supported (ascii, binary, binary_compressed)")
    names = [f.lower() for f in fields]
    missing = [a for a in "xyz" if a not in names]
    if missing:
        raise UserError(f"{path}: PCD has no {','.join(missing)} field (fields: {' '.join(fields)})")
    inten = next((names.index(k) for k in INTENSITY_NAMES if k in names), None)
    xyz = [column(names.index(a)) for a in "xyz"]
    return np.column_stack(xyz + ([column(inten)] if inten is not None else []))


def _with_intensity(pts: np.ndarray, path: Path, intensity: float | None) -> np.ndarray:
    """N x 4: the points with `intensity` for every point when given; UserError for x, y, z only without it."""
    if intensity is not None:
        return np.column_stack([pts[:, :3], np.full(len(pts), intensity, np.float32)])
    if pts.shape[1] < 4:
        raise UserError(f"{path}: x, y, z only, no intensity, which the model was trained with; pass --intensity V "
                        "to give every point the intensity V (read_points: intensity=V), and expect other detections "
                        "than with real intensities")
    return pts


def _read_open3d(path: Path) -> np.ndarray:
    """x, y, z, intensity through Open3D's tensor I/O (keeps custom fields such as intensity)."""
    try:
        import open3d as o3d
    except (ImportError, OSError) as e:
        raise UserError(f"reading {path.suffix} files like {path} needs Open3D ({type(e).__name__}); {OPEN3D_HINT}") from None
    pc = o3d.t.io.read_point_cloud(str(path))
    if "positions" not in pc.point or len(pc.point["positions"]) == 0:
        raise UserError(f"{path}: Open3D read no points from it (malformed or empty {path.suffix} file)")
    xyz = pc.point["positions"].numpy().astype(np.float32).reshape(-1, 3)
    key = next((k for k in INTENSITY_NAMES if k in pc.point), None)
    return np.column_stack([xyz, pc.point[key].numpy().astype(np.float32).reshape(-1)]) if key else xyz
