"""`infer`: detect objects in one or more scans, print a table, write KITTI / JSON result files."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.api import Detector
from pointpillars_trt.cli.model_options import add_model_args, make_detector
from pointpillars_trt.errors import UserError
from pointpillars_trt.cli.point_options import add_point_args, collect_scans, point_checker, point_reader
from pointpillars_trt.io.rosbag import is_bag
from pointpillars_trt.model import store
from pointpillars_trt.io.kitti import KITTI_IMAGE_SHAPE, Calib, detections_to_json, detections_to_kitti, write_labels

DEFAULT_IMAGE_SHAPE = KITTI_IMAGE_SHAPE  # used to clip 2D boxes when no image_2 file is found


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "infer", help="detect cars, pedestrians and cyclists in velodyne scans",
        description="Detect objects in LiDAR scans: KITTI .bin (N x 4 float32: x, y, z, intensity, lidar frame), "
                    ".npy/.npz, .pcd, .ply (--point-dims/--columns for other .bin layouts). Every input is checked "
                    "before the model loads; a scan that fails is reported and skipped (exit 1 at the end). "
                    "Prints a table per scan; with --out writes <scan>.json (lidar frame) and, when a calib is known, "
                    "<scan>.txt in KITTI's 16-column result format (camera frame).",
        epilog="examples:\n"
               "  python -m pointpillars_trt infer data/sample/training/velodyne/000000.bin --random-init\n"
               "  python -m pointpillars_trt infer scans/ --checkpoint pointpillar_7728.pth --out results/ --precision fp16\n"
               "  python -m pointpillars_trt infer drive_bag/ --topic /velodyne_points --out results/ --mcap drive.mcap\n"
               "calib: --calib FILE or DIR; by default a scan in KITTI's layout (…/velodyne/ID.bin) uses …/calib/ID.txt.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scans", nargs="+", type=Path,
                   help="scans (.bin .npy .npz .pcd .ply) and/or folders of them, or one ROS bag (see below)")
    add_model_args(p)
    add_point_args(p)
    p.add_argument("--calib", type=Path, help="KITTI calib file (all scans) or folder of <id>.txt")
    p.add_argument("--out", type=Path, help="folder for result files (created); existing files need --force")
    p.add_argument("--force", action="store_true", help="overwrite existing result files")
    p.add_argument("--score-thresh", type=float, default=None, metavar="S",
                   help="keep detections scoring at least S (the model itself keeps >= its config's score_thresh, 0.1)")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first scan that fails (default: report it, go on, exit 1 at the end)")
    p.add_argument("--show", type=int, default=10, help="detections to print per scan (default 10, 0 = none)")
    from pointpillars_trt.cli.infer_bag import add_bag_args

    add_bag_args(p)
    p.set_defaults(func=run)
    return p


def find_calib(scan: Path, calib: Path | None) -> Path | None:
    """The calib for a scan: --calib file/folder, else KITTI layout's sibling calib/<id>.txt, else None."""
    if calib is not None:
        c = calib / f"{scan.stem}.txt" if calib.is_dir() else calib
        if not c.is_file():
            raise UserError(f"calib not found: {c}")
        return c
    c = scan.parent.parent / "calib" / f"{scan.stem}.txt"
    return c if scan.parent.name == "velodyne" and c.is_file() else None


def image_shape(scan: Path) -> tuple[int, int]:
    """(height, width) of the KITTI image_2 beside the scan, for clipping 2D boxes; KITTI's usual size otherwise."""
    img = scan.parent.parent / "image_2" / f"{scan.stem}.png"
    if scan.parent.name == "velodyne" and img.is_file():
        from PIL import Image

        with Image.open(img) as im:
            return im.size[1], im.size[0]
    return DEFAULT_IMAGE_SHAPE


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
    """Check every input, load the model once, detect scan by scan (skipping failures unless --fail-fast), summarise."""
    if args.show < 0:
        raise UserError(f"--show must be 0 or more, got {args.show}")
    if args.score_thresh is not None and not 0.0 <= args.score_thresh <= 1.0:
        raise UserError(f"--score-thresh must be in [0, 1], got {args.score_thresh}")
    from pointpillars_trt.cli import infer_bag

    if any(is_bag(s) for s in args.scans):
        return infer_bag.run_bag(args)
    if args.topic or args.intensity_field:
        raise UserError("--topic / --intensity-field are for ROS bags; the inputs are scan files")
    infer_bag.check_viewer_outputs(args)
    read = point_reader(args)
    scans = collect_scans(args.scans)
    if args.out and args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder")
    stems = Counter(s.stem for s in scans)
    if args.out and max(stems.values()) > 1:
        raise UserError(f"two scans named {stems.most_common(1)[0][0]} would write the same result file; use separate --out folders")
    failed: list[tuple[Path, str]] = []
    calibs = _check_inputs(scans, args, read, point_checker(args), failed)  # before the model loads
    if not calibs:
        raise UserError(failed[0][1] if len(failed) == 1 else f"none of the {len(scans)} scans can be read (first: {failed[0][1]})")
    if args.out:
        targets = [args.out / f"{s.stem}.json" for s in calibs] + [args.out / f"{s.stem}.txt" for s, c in calibs.items() if c]
        clash = [t for t in targets if t.exists()]
        if clash and not args.force:
            raise UserError(f"{clash[0]} exists ({len(clash)} result file(s) would be overwritten); pass --force or another --out")
        args.out.mkdir(parents=True, exist_ok=True)
    totals = []
    names = store.load_config(args.config).class_names
    with infer_bag.open_viewer_sinks(args, names, stamped=False) as sinks, make_detector(args) as det:
        log.info(det.description)
        if det.untrained:
            log.warn("UNTRAINED random-init model: boxes are meaningless; pass --checkpoint with trained OpenPCDet weights")
        for i, (scan, got) in enumerate(_batches(det, list(calibs), read)):
            try:
                if isinstance(got, Exception):
                    raise got
                totals.append(_report_one(det, scan, *got, calibs[scan], args, first=not totals))
                sinks.write(i, None, "lidar", got[0], got[2].detections.above(args.score_thresh or 0.0))
            except Exception as e:  # noqa: BLE001  one bad scan must not end a folder run
                if args.fail_fast:  # a user error names its scan; anything else keeps its traceback
                    raise (UserError(_named(scan, str(e))) if isinstance(e, UserError) else e) from None
                failed.append((scan, _named(scan, _reason(e))))
                log.warn(f"failed, skipped: {failed[-1][1]}")
    return _summary(scans, totals, failed, args.out)


def _batches(det: Detector, scans: list[Path], read):
    """(scan, (points, read stats, ScanResult) or the exception) in order, through Detector.stream: files are read
    on threads two batches ahead, and on the GPU batch i+1 is staged and queued while batch i runs."""
    kept: dict[Path, list] = {}  # (points, read stats) of the scans read and not yet reported (a path given twice: two)

    def read_keep(scan: Path) -> np.ndarray:
        got = read(scan)
        kept.setdefault(scan, []).append(got)
        return got[0]

    b = max(1, det.max_batch)
    for scan, res in _progress(det.stream(scans, prefetch=2 * b, read=read_keep), len(scans)):
        got = kept[scan].pop() if kept.get(scan) else None
        yield scan, (res if isinstance(res, Exception) else (*got, res))


def _check_inputs(scans: list[Path], args: argparse.Namespace, read, check,
                  failed: list[tuple[Path, str]]) -> dict[Path, Calib | None]:
    """{scan: calib} of the scans that pass; the others go to `failed` (raise with --fail-fast). The first scan is
    read whole (a wrong --columns fails once, here); the others get the checks their size and header allow (missing,
    empty, truncated, wrong format), since reading a KITTI folder here too would take seconds before the GPU starts.
    What only a full read finds (NaN-only points, a bad .npy body) is reported when the scan's turn comes."""
    ok: dict[Path, Calib | None] = {}
    for i, scan in enumerate(scans):
        try:
            read(scan) if i == 0 else check(scan)
            c = find_calib(scan, args.calib)
            ok[scan] = Calib.read(c) if c else None
        except UserError as e:
            if args.fail_fast or len(scans) == 1:
                raise
            failed.append((scan, _named(scan, str(e))))
            log.warn(f"skipped: {failed[-1][1]}")
    return ok


def _reason(e: Exception) -> str:
    """One line for the summary: a UserError's message, else the exception type and its first line."""
    text = str(e).splitlines()[0] if str(e) else ""
    return text if isinstance(e, UserError) else f"{type(e).__name__}: {text}"


def _named(scan: Path, why: str) -> str:
    """The reason, prefixed with the scan's path unless it already names it."""
    return why if str(scan) in why else f"{scan}: {why}"


def _summary(scans: list[Path], totals: list[float], failed: list[tuple[Path, str]], out: Path | None) -> int:
    """Timing line, where the results are, and what failed and why; 1 if anything failed."""
    if len(totals) > 2:  # the first scan carries JIT compilation and warm-up: leave it out of the summary
        t = np.array(totals[1:]) * 1000
        log.info(f"{len(totals)} scans: {np.median(t):.1f} ms median per scan after the first ({totals[0] * 1000:.0f} ms, warm-up)")
    if out:
        log.info(f"results in {out}/")
    if not failed:
        return 0
    log.info(f"{len(totals)} of {len(scans)} scans done; {len(failed)} failed:")
    for _, why in failed:
        log.info(f"  {why}")
    return 1


def _progress(items, n_scans: int):
    """A progress bar (in scans) for long runs on a terminal."""
    if n_scans > 20 and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=n_scans, unit="scan")
        for item in items:
            yield item
            bar.update(1)
        bar.close()
    else:
        yield from items


def _report_one(det: Detector, scan: Path, points: np.ndarray, rd, res, calib: Calib | None,
                args: argparse.Namespace, first: bool) -> float:
    """Report and write one scan's result; returns the pipeline's seconds."""
    if rd.num_nonfinite:
        log.warn(f"{scan}: dropped {rd.num_nonfinite} point(s) with NaN/Inf coordinates")
    st, dets, names = res.stats, res.detections, det.cfg.class_names
    if args.score_thresh is not None:
        dets = dets.above(args.score_thresh)
    if st.dropped_max_pillars:
        log.warn(f"{scan}: more than max_pillars={det.cfg.max_pillars} pillars; {st.dropped_max_pillars} point(s) "
                 "that would open further pillars were dropped (as OpenPCDet does)")
    if st.num_pillars == 0:
        log.warn(f"{scan}: no point inside the point cloud range {det.cfg.point_cloud_range}: no detections")
    per_class = Counter(names[l - 1] for l in dets.labels)
    ms = 1000 * res.times["total"]
    print(f"{scan}: {len(points)} points, {st.num_pillars} pillars, {len(dets)} detections "
          f"({', '.join(f'{n} {per_class.get(n, 0)}' for n in names)}) in {ms:.0f} ms"
          + (" (first scan: includes warm-up and JIT compilation)" if first else ""))
    if args.show and len(dets):
        print(format_table(dets, names, args.show))
    if args.out:
        meta = {"scan": str(scan), "model": det.description, "untrained": det.untrained}
        (args.out / f"{scan.stem}.json").write_text(detections_to_json(dets.boxes, dets.scores, dets.labels, names, meta))
        if calib is not None:
            write_labels(args.out / f"{scan.stem}.txt",
                         detections_to_kitti(dets.boxes, dets.scores, dets.labels, names, calib, image_shape(scan)))
    return res.times["total"]
