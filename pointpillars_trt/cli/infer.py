"""`infer`: detect objects in one or more scans, print a table, write KITTI / JSON result files."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from pointpillars_trt import log
from pointpillars_trt.api import Detector
from pointpillars_trt.cli.model_options import add_model_args, detector_spec
from pointpillars_trt.errors import UserError
from pointpillars_trt.cli.point_options import add_point_args, collect_scans, point_checker, point_reader
from pointpillars_trt.io.rosbag import is_bag
from pointpillars_trt.model import store
from pointpillars_trt.runs.folder import infer_folder
from pointpillars_trt.runs.result_writers import WRITERS
from pointpillars_trt.runs.single import READERS, Done


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "infer", help="detect cars, pedestrians and cyclists in velodyne scans",
        description="Detect objects in LiDAR scans: KITTI .bin (N x 4 float32: x, y, z, intensity, lidar frame), "
                    ".npy/.npz, .pcd, .ply (--point-dims/--columns for other .bin layouts). Every input is checked "
                    "before the model loads; a scan that fails is reported and skipped (exit 1 at the end). "
                    "Prints a line (and a table) per scan; with --out writes <scan>.json (lidar frame) and, when a calib "
                    "is known, <scan>.txt in KITTI's 16-column result format (camera frame). A folder runs at the "
                    "GPU's pace with --batch 32: files are read by reader processes and results written by writer "
                    "processes while the GPU runs; with --out it shows progress (a bar on a terminal, else a line every 5 s) "
                    "and a summary instead of a line per scan (-v prints them).\n\n"
                    "Runs resume: run the same command again after Ctrl-C or a kill and it skips the scans whose "
                    "results are there (each file is written whole, under a temporary name first), and says how many "
                    "it skipped. Each JSON records the model, precision, score threshold and point options it was "
                    "made with; results of other settings in --out are refused (--force recomputes everything). "
                    "Ctrl-C finishes and writes the scans in flight, prints the summary and exits with 130.",
        epilog="examples:\n"
               "  python -m pointpillars_trt infer data/sample/training/velodyne/000000.bin --random-init\n"
               "  python -m pointpillars_trt infer scans/ --checkpoint pointpillar_7728.pth --out results/ --precision fp16\n"
               "  python -m pointpillars_trt infer scans/ --out results/ --precision fp16 --batch 32   # GPU: a folder at speed\n"
               "  python -m pointpillars_trt infer drive_bag/ --topic /velodyne_points --out results/ --mcap drive.mcap\n"
               "calib: --calib FILE or DIR; by default a scan in KITTI's layout (…/velodyne/ID.bin) uses …/calib/ID.txt.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scans", nargs="+", type=Path,
                   help="scans (.bin .npy .npz .pcd .ply) and/or folders of them, or one ROS bag (see below)")
    add_model_args(p)
    add_point_args(p)
    p.add_argument("--calib", type=Path, help="KITTI calib file (all scans) or folder of <id>.txt")
    p.add_argument("--out", type=Path, help="folder for result files (created); a rerun skips the scans already done")
    p.add_argument("--force", action="store_true",
                   help="recompute every scan and overwrite its result files, whatever made them")
    p.add_argument("--score-thresh", type=float, default=None, metavar="S",
                   help="keep detections scoring at least S (the model itself keeps >= its config's score_thresh, 0.1)")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first scan that fails (default: report it, go on, exit 1 at the end)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run over a Ray cluster (needs the cluster extra): ADDRESS, else $RAY_ADDRESS, else a local "
                        "cluster of this machine; one detector actor per GPU, the same files and resuming as without")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="a line per scan also for several scans with --out (points, pillars, detections, time)")
    p.add_argument("--writers", choices=WRITERS, default="auto",
                   help="how --out files are written: in writer processes, on threads of this process (the GIL's "
                        "way), or auto (processes for 256+ scans on 4+ cores; default)")
    p.add_argument("--readers", choices=READERS, default="auto",
                   help="how scan files are read ahead: in reader processes, on threads of this process (the GIL's "
                        "way), or auto (processes for 256+ scan files on 4+ cores; default)")
    p.add_argument("--show", type=int, default=None,
                   help="detections to print per scan (default 10; 0 with --out and several scans: the files hold them)")
    from pointpillars_trt.cli.infer_bag import add_bag_args

    add_bag_args(p)
    p.set_defaults(func=run)
    return p


def format_table(dets, class_names: tuple[str, ...], limit: int) -> str:
    """A fixed-width table of the top detections."""
    head = f"  {'#':>3} {'class':<10} {'score':>6} {'x':>7} {'y':>7} {'z':>6} {'dx':>5} {'dy':>5} {'dz':>5} {'yaw':>6}"
    rows = [head]
    for i in range(min(limit, len(dets))):
        b = dets.boxes[i]
        rows.append(f"  {i:>3} {class_names[dets.labels[i] - 1]:<10} {dets.scores[i]:6.3f} {b[0]:7.2f} {b[1]:7.2f} "
                    f"{b[2]:6.2f} {b[3]:5.2f} {b[4]:5.2f} {b[5]:5.2f} {b[6]:6.2f}")
    if len(dets) > limit:
        rows.append(f"  ... {len(dets) - limit} more")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    """Check every input and the results already in --out, then infer_folder: the model loads once, batches run while
    files are read and written on threads (or over a Ray cluster with --ray); print the summary."""
    if args.show is not None and args.show < 0:
        raise UserError(f"--show must be 0 or more, got {args.show}")
    if args.score_thresh is not None and not 0.0 <= args.score_thresh <= 1.0:
        raise UserError(f"--score-thresh must be in [0, 1], got {args.score_thresh}")
    from pointpillars_trt.cli import infer_bag

    if any(is_bag(s) for s in args.scans):
        return infer_bag.run_bag(args)
    if args.topic or args.intensity_field:
        raise UserError("--topic / --intensity-field are for ROS bags; the inputs are scan files")
    infer_bag.check_viewer_outputs(args)
    if args.ray is not None and (args.mcap or args.rerun):
        raise UserError("--mcap / --rerun record one process's scans in order: run them without --ray")
    read, check = point_reader(args), point_checker(args)
    scans = collect_scans(args.scans)
    if args.out and args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder")
    if args.ray is not None and not args.out:
        raise UserError("--ray writes result files: give --out")
    if args.show is None:  # with --out the files hold the detections
        args.show = 0 if args.out and len(scans) > 1 else 10
    # a line per scan where it is the output; a folder run with --out shows progress (7481 lines at 2500 scans/s
    # cost the loop 0.05 ms a scan: bench/tools.py folder-loop --lines)
    lines = args.verbose or not (args.out and len(scans) > 1)

    def vet(i: int, scan: Path) -> None:
        """The first scan read whole (a wrong --columns fails once, here), the others checked by size and header:
        reading a KITTI folder twice would take seconds before the GPU starts. What only a full read finds (NaN-only
        points, a bad .npy body) is reported in the scan's turn."""
        read(scan) if i == 0 else check(scan)

    def start(det: Detector) -> None:
        log.info(det.description)
        if det.untrained:
            log.warn("UNTRAINED random-init model: boxes are meaningless; pass --checkpoint with trained OpenPCDet weights")

    reader = {k: getattr(args, k) for k in ("point_dims", "columns", "intensity", "intensity_scale") if getattr(args, k, None) is not None}
    names = store.load_config(args.config).class_names
    with infer_bag.open_viewer_sinks(args, names, stamped=False) as sinks:
        def result(done: Done) -> None:
            _report_one(done, args, lines)
            if sinks:  # the viewers' point clouds: the scan read again (only when --mcap / --rerun ask for them)
                got = read(done.job.source)
                sinks.write(done.index, None, "lidar", got[0] if isinstance(got, tuple) else got, done.detections)

        summary = infer_folder(detector_spec(args), scans, args.out, calib=args.calib, score_thresh=args.score_thresh,
                               force=args.force, read=read, reader=reader, check=vet, fail_fast=args.fail_fast,
                               ray=(args.ray or True) if args.ray is not None else None, writers=args.writers,
                               readers=args.readers,
                               on_start=start,
                               on_result=result)
    for line in summary.lines():
        log.info(line)
    return 130 if summary.interrupted else 1 if summary.failed else 0


def _report_one(done: Done, args: argparse.Namespace, line: bool = True) -> None:
    """Warnings about what a scan lost, then (line) its line and table: its counts, the pipeline's time."""
    det = done.detector
    scan, rd, st, dets, names = done.job.source, done.read_info, done.result.stats, done.detections, det.cfg.class_names
    if rd is not None and rd.num_nonfinite:
        log.warn(f"{scan}: dropped {rd.num_nonfinite} point(s) with NaN/Inf coordinates")
    if st.dropped_max_pillars:
        log.warn(f"{scan}: more than max_pillars={det.cfg.max_pillars} pillars; {st.dropped_max_pillars} point(s) "
                 "that would open further pillars were dropped (as OpenPCDet does)")
    if st.num_pillars == 0:
        log.warn(f"{scan}: no point inside the point cloud range {det.cfg.point_cloud_range}: no detections")
    if not line:
        return
    per_class = Counter(names[l - 1] for l in dets.labels)
    points = f"{rd.num_points} points, " if rd is not None else ""
    print(f"{scan}: {points}{st.num_pillars} pillars, {len(dets)} detections "
          f"({', '.join(f'{n} {per_class.get(n, 0)}' for n in names)}) in {1000 * done.result.times['total']:.0f} ms"
          + (" (first scan: includes warm-up and JIT compilation)" if done.index == 0 else ""))
    if args.show and len(dets):
        print(format_table(dets, names, args.show))
