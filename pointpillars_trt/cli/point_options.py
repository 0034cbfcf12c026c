"""The point-file options shared by commands that read scans (--point-dims, --columns) and the folder expansion."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.points import SCAN_SUFFIXES, ScanStats, check_points_file, read_points


def _columns(text: str) -> tuple[int, ...]:
    """'0,1,2,3' -> (0, 1, 2, 3); argparse turns the ValueError into a usage error."""
    cols = tuple(int(c) for c in text.split(","))
    if len(cols) != 4 or min(cols) < 0:
        raise ValueError(text)
    return cols


def add_point_args(p: argparse.ArgumentParser) -> None:
    """--point-dims and --columns, for .bin/.npy/.npz scans that are not KITTI's N x 4."""
    g = p.add_argument_group("point files (.bin, .npy, .npz, .pcd, .ply)")
    g.add_argument("--point-dims", type=int, metavar="D",
                   help="float32 values per point in a .bin (default 4, KITTI; nuScenes: 5); also the column count a .npy must have")
    g.add_argument("--columns", type=_columns, metavar="X,Y,Z,I",
                   help="which of the D columns are x, y, z, intensity (default 0,1,2,3)")


def point_reader(args: argparse.Namespace) -> Callable[[Path], tuple[np.ndarray, ScanStats]]:
    """read_points with the command's --point-dims/--columns, returning (points, stats)."""
    dims, cols = getattr(args, "point_dims", None), getattr(args, "columns", None)
    if dims is not None and dims < 4:
        raise UserError(f"--point-dims {dims}: a point needs at least x, y, z and intensity (4 values)")
    return lambda path: read_points(path, point_dims=dims, columns=cols, with_stats=True)


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
