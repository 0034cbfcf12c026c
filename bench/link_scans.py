"""A folder of N scans made of a few: hard links (symlinks where the file system refuses) cycling through them, as the
folder-run measurements use (7481 names, KITTI's training set size).

    python bench/link_scans.py ../shared/kitti/scans /tmp/f7481 --n 7481
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def linked(scans: list[Path], n: int, where: Path) -> list[Path]:
    """n names <i:06d>.bin in `where` for the scans, cycling through them; names already there are kept."""
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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scans", type=Path, help="folder of .bin scans")
    ap.add_argument("out", type=Path, help="folder to fill")
    ap.add_argument("--n", type=int, default=7481)
    a = ap.parse_args()
    src = sorted(a.scans.glob("*.bin"))
    linked(src, a.n, a.out)
    print(f"{len(os.listdir(a.out))} scans in {a.out} (links to the {len(src)} scans of {a.scans})")
