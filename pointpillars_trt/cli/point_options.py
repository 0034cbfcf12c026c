"""The point-file options shared by commands that read scans (--point-dims, --columns) and the folder expansion."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.points import SCAN_SUFFIXES, PointReader, ScanStats, check_points_file


def _columns(text: str) -> tuple[int, ...]:
    """'0,1,2,3' -> (0, 1, 2, 3), or three numbers for x, y, z only; a usage error otherwise."""
    try:
        cols = tuple(int(c) for c in text.split(","))
    except ValueError:
        cols = ()
    if len(cols) not in (3, 4) or min(cols) < 0:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z,I or X,Y,Z (column numbers from 0), got {text!r}")
    return cols


def finite(text: str) -> float:
    """A finite number; a usage error otherwise."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def add_point_args(p: argparse.ArgumentParser) -> None:
    """--point-dims, --columns, --intensity and --intensity-scale, for scans that are not KITTI's N x 4 of 0..1."""
    g = p.add_argument_group("point files (.bin, .npy, .npz, .pcd, .ply)")
    g.add_argument("--point-dims", type=int, metavar="D",
                   help="float32 values per point in a .bin (default 4, KITTI; nuScenes: 5; x, y, z only: 3 with "
                        "--intensity); also the column count a .npy must have")
    g.add_argument("--columns", type=_columns, metavar="X,Y,Z[,I]",
                   help="which of the D columns are x, y, z, intensity (default 0,1,2,3); three numbers: x, y, z only "
                        "(with --intensity)")
    g.add_argument("--intensity", type=finite, metavar="V",
                   help="give every point the intensity V: needed for x, y, z-only scans (3 columns, a PCD/PLY without "
                        "an intensity field), replaces a file's own. The model was trained with real intensities "
                        "(KITTI: 0..1, mean about 0.3), so expect other detections")
    g.add_argument("--intensity-scale", type=finite, metavar="S",
                   help="multiply every point's intensity by S before detecting, e.g. 0.00392 (1/255) for a lidar "
                        "giving 0..255 to a model trained on KITTI's 0..1 (a scan far outside the model's range "
                        "gets a warning naming S)")


def point_reader(args: argparse.Namespace) -> Callable[[Path], tuple[np.ndarray, ScanStats]]:
    """read_points with the command's --point-dims/--columns/--intensity, returning (points, stats)."""
    dims, cols = getattr(args, "point_dims", None), getattr(args, "columns", None)
    intensity = getattr(args, "intensity", None)
    if dims is not None and dims < 3:
        raise UserError(f"--point-dims {dims}: a point needs at least x, y and z (3 values)")
    return PointReader(dims, tuple(cols) if cols is not None else None, intensity)


def point_checker(args: argparse.Namespace) -> Callable[[Path], str]:
    """check_points_file with the command's --point-dims: what a file's size and header can tell, without reading it."""
    dims = getattr(args, "point_dims", None)
    return lambda path: check_points_file(path, point_dims=dims)


def collect_scans(paths: list[Path]) -> list[Path]:
    """Expand folders to their sorted point files (.bin .npy .npz .pcd .ply); every path must exist."""
    scans: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SCAN_SUFFIXES and f.is_file())
            if not found:
                raise UserError(f"{p}: folder has no point files ({' '.join(SCAN_SUFFIXES)})")
            scans += found
        elif p.exists():
            scans.append(p)
        else:
            raise UserError(f"scan not found: {p}")
    return scans
