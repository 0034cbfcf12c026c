"""`view SCAN.bin`: show a scan with detections and/or ground truth (Open3D window, headless PNG or BEV PNG)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from pointpillars_trt.cli.point_options import add_point_args, point_reader
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `view SCAN.bin [--detections J] [--labels L --calib C] [--save P] [--bev P] [--color-by ...] [--force]`."""
    p = subparsers.add_parser(
        "view", help="show a scan with detections / ground truth (3D window, --save PNG, --bev PNG)",
        description="Show a KITTI .bin scan with predicted boxes (class colours, heading mark) and ground truth "
                    "(white). Without --save/--bev an Open3D window opens; with them PNGs are written instead.")
    p.add_argument("scan", type=Path, help="scan: KITTI .bin (N x 4 float32), .npy/.npz, .pcd or .ply")
    p.add_argument("--detections", type=Path, help="detections JSON (as written by `infer --out`)")
    p.add_argument("--labels", type=Path, help="KITTI label_2 file with ground truth (needs --calib)")
    p.add_argument("--calib", type=Path, help="KITTI calib file for --labels")
    p.add_argument("--save", type=Path, metavar="OUT.png", help="render the 3D view headless to this PNG (Open3D)")
    p.add_argument("--bev", type=Path, metavar="OUT.png", help="write a bird's-eye-view PNG (no Open3D needed)")
    p.add_argument("--rerun", type=Path, metavar="OUT.rrd",
                   help="write a Rerun recording (points, boxes labelled by class, ground truth; `rerun OUT.rrd` shows it)")
    p.add_argument("--color-by", choices=("height", "intensity"), default="height", help="point colouring")
    p.add_argument("--score-thresh", type=float, default=0.0, help="hide detections below this score (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing --save/--bev files")
    add_point_args(p)
    p.set_defaults(func=run)
    return p


def _check_output(path: Path | None, force: bool, flag: str) -> None:
    if path is None:
        return
    if path.suffix.lower() != ".png":
        raise UserError(f"{flag} {path}: expected a .png file name")
    if path.exists() and not force:
        raise UserError(f"{flag} {path} already exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise UserError(f"{flag} {path}: directory {path.parent} does not exist")


def check_args(args: argparse.Namespace) -> None:
    """UserError for output files that exist (without --force) or name the same file, and --labels without --calib."""
    _check_output(args.save, args.force, "--save")
    _check_output(args.bev, args.force, "--bev")
    from pointpillars_trt.viz.sinks import check_output

    check_output(args.rerun, ".rrd", "--rerun", args.force)
    if args.rerun is not None:
        from pointpillars_trt.viz.rerun_rrd import import_rerun

        import_rerun()
    if args.save is not None and args.bev is not None and args.save.resolve() == args.bev.resolve():
        raise UserError("--save and --bev name the same file")
    if (args.labels is None) != (args.calib is None):
        raise UserError("--labels and --calib go together (ground truth is camera-frame; calib converts it)")
    check_viewer(args)


def check_viewer(args: argparse.Namespace) -> None:
    """Open3D (and a display, or a Vulkan driver for --save) where the view needs them: before any model work."""
    if args.save is not None or (args.bev is None and getattr(args, "rerun", None) is None):
        from pointpillars_trt.viz.open3d_view import check_display, check_offscreen_support, import_open3d

        if args.save is None:
            check_display()
        import_open3d()
        if args.save is not None:
            check_offscreen_support()


def run(args: argparse.Namespace, detections: Detections | None = None,
        class_names: Sequence[str] | None = None, untrained: bool = False) -> int:
    """Load inputs and draw. `detections` lets a caller that ran the detector pass its result instead of a JSON."""
    from pointpillars_trt.model.config import PointPillarsConfig
    from pointpillars_trt.viz.inputs import load_detections_json, load_ground_truth

    names = tuple(class_names) if class_names else PointPillarsConfig().class_names
    check_args(args)
    if detections is not None and args.detections is not None:
        raise UserError("--detections given while detections were also computed; use one")
    points, _ = point_reader(args)(args.scan)
    if args.detections is not None:
        detections = load_detections_json(args.detections, names)
    gt_boxes, gt_names = (load_ground_truth(args.labels, args.calib) if args.labels is not None else (None, None))
    kw = dict(detections=detections, gt_boxes=gt_boxes, gt_names=gt_names, class_names=names, title=args.scan.name + ("  UNTRAINED random-init model" if untrained else ""),
              color_by=args.color_by, score_thresh=args.score_thresh)
    if args.rerun is not None:
        from pointpillars_trt.viz.rerun_rrd import SCAN_INDEX, RerunWriter

        shown = detections.above(args.score_thresh) if detections is not None else Detections.empty()
        writer = RerunWriter(args.rerun, names, SCAN_INDEX)
        writer.write(0, "lidar", points, shown, gt_boxes=gt_boxes)
        writer.close()
        print(f"wrote {args.rerun}")
    if args.bev is None and args.save is None and args.rerun is None:
        from pointpillars_trt.viz.open3d_view import show_window

        show_window(points, **kw)
        return 0
    if args.bev is not None:
        from pointpillars_trt.viz.bev import render_bev

        print(f"wrote {render_bev(points, args.bev, **kw)}")
    if args.save is not None:
        from pointpillars_trt.viz.open3d_view import save_png

        print(f"wrote {save_png(args.save, points, **kw)}")
    return 0
