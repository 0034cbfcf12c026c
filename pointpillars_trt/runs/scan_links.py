"""A folder of N scans made of a few: hard links cycling through them, so that a folder run can be measured or
tested at a data set's size (7481 names, KITTI's training set) without its disk space."""
from __future__ import annotations

import os
from pathlib import Path


def linked_scans(scans: list[Path], n: int, where: Path) -> list[Path]:
    """n names <i:06d>.bin in `where` for the scans, cycling through them (symlinks where the file system refuses
    hard links); names already there are kept."""
    where.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = where / f"{i:06d}.bin"
        if not p.exists():
            try:
                os.link(scans[i % len(scans)], p)
            except OSError:
                p.symlink_to(scans[i % len(scans)].resolve())
        out.append(p)
    return out
