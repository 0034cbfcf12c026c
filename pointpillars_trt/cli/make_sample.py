"""`make-sample`: write a synthetic KITTI-layout dataset (see sample/scene.py) to a directory."""
from __future__ import annotations

import argparse
from pathlib import Path

from pointpillars_trt.errors import UserError

BAG_START_NS = 1_704_067_200_000_000_000  # 2024-01-01 00:00 UTC: the bag's first stamp


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `make-sample --out DIR [--frames N] [--seed S] [--force]`."""
    p = subparsers.add_parser(
        "make-sample", help="generate synthetic KITTI-layout sample data (scans, labels, calib)",
        description="Ray-cast seeded synthetic street scenes with a 64-beam lidar model and write them in KITTI's "
                    "layout: training/{velodyne,label_2,calib}/<id>.* and ImageSets/val.txt.")
    p.add_argument("--out", required=True, type=Path, help="output root directory")
    p.add_argument("--frames", type=int, default=1, help="number of frames (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical files (default 0)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out directory, overwriting its files")
    p.add_argument("--bag", type=Path, metavar="PATH",
                   help="also write the frames as a ROS bag of sensor_msgs/PointCloud2 on /points, 10 Hz, frame "
                        "'lidar': PATH ending in .bag is ROS 1, anything else a rosbag2 folder (MCAP); needs the ros extra")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Generate the frames; refuses a non-empty output directory unless --force."""
    from pointpillars_trt.sample.dataset import write_dataset

    out: Path = args.out
    if args.frames < 1:
        raise UserError(f"--frames must be at least 1, got {args.frames}")
    if args.seed < 0:
        raise UserError(f"--seed must be non-negative, got {args.seed}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UserError(f"--out {out} is not empty; pass --force to overwrite its files")
    if args.bag is not None:
        from pointpillars_trt.io.rosbag import require_rosbags

        require_rosbags()
        if args.bag.exists():
            raise UserError(f"--bag {args.bag} already exists; a bag is never overwritten, name another")
    ids = write_dataset(out, args.frames, seed=args.seed, progress=True)
    print(f"wrote {len(ids)} synthetic frame(s) to {out} (seed {args.seed}); ids listed in {out / 'ImageSets' / 'val.txt'}")
    if args.bag is not None:
        from pointpillars_trt.io.points import read_bin
        from pointpillars_trt.io.rosbag_write import write_bag

        scans = ((BAG_START_NS + i * 100_000_000, read_bin(out / "training" / "velodyne" / f"{fid}.bin"))
                 for i, fid in enumerate(ids))
        print(f"wrote {write_bag(args.bag, scans)} PointCloud2 message(s) on /points to {args.bag}")
    return 0
