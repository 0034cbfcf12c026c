"""Is a headerless .bin really float32 values, D to a point? Cheap statistics over a sample that catch the two
plausible mistakes which otherwise give silent junk: float64 data (NumPy's tofile without astype(np.float32)), and a
file of 3 or 5 values per point read as 4 (its size is a multiple of 16 bytes for every fourth point count).

- float64: read as float32, the low halves of the 8-byte numbers are huge, tiny or exactly 0, while the same bytes
  read as float64 are all plausible coordinates.
- columns: in a point cloud some column (z, intensity) varies much less than the values as a whole, so cutting
  the values into rows of the true width gives a column whose spread is a small fraction of the total; rows of a
  wrong width mix every column into every other and each column spreads like the whole.
Measured on the shared KITTI scans (20 frames' worth, ordered and shuffled, intensities 0..1, 0..255 and 0..65535):
the narrowest column's std is 0.00-0.06 of the total at the true width, 0.77-1.00 at a wrong one.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pointpillars_trt.errors import UserError

CHUNK = 1680  # float32 values per sampled chunk: 840 float64 or 1680 float32, a multiple of every width 3..8
WIDTHS = (3, 4, 5, 6, 7, 8)
PLAUSIBLE = (1e-10, 1e5)  # |value| of a coordinate or an intensity, or exactly 0
BAD_FLOAT32 = 0.05  # float64 data read as float32: about 0.2 of the values implausible
GOOD_FLOAT64 = 0.01  # ... and read as float64 none (a few NaN rows allowed); float32 data read so: 0.05 and more
ALIGNED, MIXED = 0.25, 0.5  # narrowest column / total std: a row width that fits; one that does not
_ONES = np.ones(2 * CHUNK)


def check_bin_values(path: Path, flat: np.ndarray, dims: int, dims_given: bool) -> None:
    """UserError when the float32 values of a .bin read `dims` to a point look like float64, or (unless the user
    gave --point-dims) like another number of values per point; costs about 20 us a scan."""
    s = _sample(flat)
    if len(s) < CHUNK:
        return  # too few values to tell (fewer than 420 points)
    as64 = s.view(np.float64)
    if _implausible(s) > BAD_FLOAT32 and _implausible(as64) < GOOD_FLOAT64:
        d = _width(as64)
        raise UserError(f"{path}: the values look like float64 (8-byte) numbers{f', {d} to a point' if d else ''}, "
                        "not float32 (NumPy's tofile without .astype(np.float32)?); convert it once: "
                        "np.fromfile(f, np.float64).astype(np.float32).tofile(new_file)")
    if dims_given:
        return
    s = s.astype(np.float64)
    if _narrowest(s, dims) < MIXED:
        return
    d = _width(s)
    if d and d != dims:
        fix = "--point-dims 3 --intensity V (x, y, z without intensity)" if d == 3 else \
            f"--point-dims {d} (and --columns X,Y,Z,I to pick x, y, z, intensity)"
        raise UserError(f"{path}: the values repeat every {d}, not every {dims}: this looks like {d} float32 values "
                        f"per point; pass {fix}, or --point-dims {dims} if it really has {dims}")


def _sample(flat: np.ndarray) -> np.ndarray:
    """Two chunks of whole rows (the start and the middle), or the whole chunks of a small file (a view)."""
    n = len(flat) // CHUNK * CHUNK
    if n <= 2 * CHUNK:
        return flat[:n]
    mid = n // 2 // CHUNK * CHUNK
    return np.concatenate([flat[:CHUNK], flat[mid: mid + CHUNK]])


def _implausible(v: np.ndarray) -> float:
    """The fraction of values that are no coordinate or intensity: NaN/Inf, beyond 1e5, or nonzero below 1e-10."""
    a = np.abs(v)
    ok = (a == 0) | ((a >= PLAUSIBLE[0]) & (a <= PLAUSIBLE[1]))
    return 1.0 - np.count_nonzero(ok) / len(v)


def _narrowest(s: np.ndarray, d: int) -> float:
    """The smallest column std over the std of all values, with the values cut into rows of d: column sums by BLAS
    and the rest on d Python floats (NumPy's axis-0 reductions over 4-wide rows cost about 3x more)."""
    m = s[: len(s) // d * d].reshape(-1, d)
    k = len(m)
    ones = _ONES[:k]
    sums, squares = (ones @ m).tolist(), (ones @ (m * m)).tolist()
    total = k * d * sum(squares) - sum(sums) ** 2  # (k d)^2 times the variance of all values
    narrowest = min(k * q - t * t for q, t in zip(squares, sums))  # k^2 times the smallest column variance
    return math.sqrt(max(narrowest, 0.0) * d * d / total) if total > 0 else 0.0


def _width(s: np.ndarray) -> int | None:
    """The smallest row width at which some column stands out (narrowest/total < ALIGNED), or None."""
    if not np.isfinite(s).all():
        s = np.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0)  # NaN rows are dropped later; keep the row structure
    return next((d for d in WIDTHS if _narrowest(s, d) < ALIGNED), None)
