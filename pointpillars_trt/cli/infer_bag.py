"""`infer BAG`: detect in every PointCloud2 message of a ROS bag's topic; `--out` JSON per message, `--mcap` /
`--rerun` viewer files. Also the viewer options `infer DIR` shares (`--mcap` / `--rerun` with the scan index as time)."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from pointpillars_trt import log
from pointpillars_trt.cli.model_options import make_detector
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.result_files import write_atomic
from pointpillars_trt.io.rosbag import BagScan, open_bag
from pointpillars_trt.model import store
from pointpillars_trt.viz.sinks import ViewerSinks, check_output


def add_bag_args(p: argparse.ArgumentParser) -> None:
    """--topic / --intensity-field for bags; --mcap / --rerun for bags and scan folders alike."""
    g = p.add_argument_group("ROS bags (a rosbag2 folder, .mcap, .db3 or ROS 1 .bag of sensor_msgs/PointCloud2)")
    g.add_argument("--topic", help="the PointCloud2 topic to read (default: the bag's only one)")
    g.add_argument("--intensity-field", metavar="NAME",
                   help="the PointCloud2 field to read as intensity (default: intensity, i, reflectance or remission)")
    v = p.add_argument_group("viewer files (bags: at the message stamps; scan files: scan i at i seconds)")
    v.add_argument("--mcap", type=Path, metavar="FILE.mcap",
                   help="write a Foxglove MCAP: foxglove.SceneUpdate boxes on /detections, foxglove.PointCloud on /points")
    v.add_argument("--rerun", type=Path, metavar="FILE.rrd", help="write a Rerun recording: Points3D + Boxes3D by class")


def check_viewer_outputs(args: argparse.Namespace) -> None:
    """--mcap / --rerun: right suffix, folder exists, no overwrite without --force, extra installed (before any reading)."""
    check_output(args.mcap, ".mcap", "--mcap", args.force)
    check_output(args.rerun, ".rrd", "--rerun", args.force)
    if args.mcap is not None:
        from pointpillars_trt.viz.foxglove_mcap import require_foxglove

        require_foxglove()
    if args.rerun is not None:
        from pointpillars_trt.viz.rerun_rrd import import_rerun

        import_rerun()


def open_viewer_sinks(args: argparse.Namespace, class_names: tuple[str, ...], *, stamped: bool) -> ViewerSinks:
    return ViewerSinks(class_names, mcap=args.mcap, rerun=args.rerun, stamped=stamped)


def run_bag(args: argparse.Namespace) -> int:
    """Open the bag and pick its topic, check outputs, then detect message by message (decoded ahead on threads)."""
    from pointpillars_trt.cli.infer import format_table

    if len(args.scans) != 1:
        raise UserError("give one ROS bag at a time (or scan files and folders without a bag)")
    for flag in ("calib", "point_dims", "columns"):
        if getattr(args, flag, None) is not None:
            raise UserError(f"--{flag.replace('_', '-')} is for scan files; a bag's PointCloud2 names its fields")
    check_viewer_outputs(args)
    with open_bag(args.scans[0]) as bag:
        topic = bag.resolve_topic(args.topic)
        count = bag.topic_infos[topic].count
        log.info(f"{bag.path}: {bag.how}, topic {topic} ({count if count is not None else 'unknown number of'} messages)")
        _check_out(args)
        names = store.load_config(args.config).class_names
        with open_viewer_sinks(args, names, stamped=True) as sinks, make_detector(args) as det:  # extras checked first
            log.info(det.description)
            if det.untrained:
                log.warn("UNTRAINED random-init model: boxes are meaningless; pass --checkpoint with trained OpenPCDet weights")
            done, failed, dropped, no_intensity = 0, [], Counter(), 0
            items = det.stream(bag.scans(topic, args.intensity_field), prefetch=2 * max(1, det.max_batch))
            for scan, res in _progress(items, count):
                if isinstance(res, Exception):
                    if args.fail_fast:
                        raise res if isinstance(res, UserError) else UserError(f"{scan.name}: {res}")
                    failed.append(f"{scan.name}: {res}")
                    log.warn(f"failed, skipped: {failed[-1]}")
                    continue
                dropped[scan.name] = scan.stats.num_nonfinite if scan.stats else 0
                no_intensity += scan.stats is not None and scan.stats.intensity is None
                _report(det, scan, res, args, sinks, first=not done, table=format_table)
                done += 1
    return _summary(bag.problem, done, failed, sum(dropped.values()), sum(1 for v in dropped.values() if v),
                    no_intensity, args.out)


def _check_out(args: argparse.Namespace) -> None:
    if not args.out:
        return
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder")
    clash = sorted(args.out.glob("[0-9][0-9][0-9][0-9][0-9][0-9].json")) if args.out.is_dir() else []
    if clash and not args.force:
        raise UserError(f"{clash[0]} exists ({len(clash)} result file(s) may be overwritten); pass --force or another --out")
    args.out.mkdir(parents=True, exist_ok=True)


def _report(det, scan: BagScan, res, args: argparse.Namespace, sinks: ViewerSinks, *, first: bool, table) -> None:
    """Print one message's line (and table), write its JSON and its viewer frames."""
    names, st, dets = det.cfg.class_names, res.stats, res.detections
    if args.score_thresh is not None:
        dets = dets.above(args.score_thresh)
    per_class = Counter(names[l - 1] for l in dets.labels)
    print(f"{scan.name} (stamp {scan.stamp / 1e9:.3f}, frame {scan.frame_id or '-'}): {len(scan.points)} points, "
          f"{st.num_pillars} pillars, {len(dets)} detections ({', '.join(f'{n} {per_class.get(n, 0)}' for n in names)}) "
          f"in {1000 * res.times['total']:.0f} ms" + (" (first: includes warm-up)" if first else ""))
    if args.show and len(dets):
        print(table(dets, names, args.show))
    if args.out:
        meta = {"topic": scan.topic, "index": scan.index, "stamp_ns": scan.stamp, "stamp": scan.stamp / 1e9,
                "frame_id": scan.frame_id, "model": det.description, "untrained": det.untrained}
        write_atomic(args.out / f"{scan.index:06d}.json", dets.to_json(names, meta))  # never half-written
    sinks.write(scan.index, scan.stamp, scan.frame_id, scan.points, dets)


def _summary(problem: str | None, done: int, failed: list[str], dropped: int, clouds: int, no_intensity: int,
             out: Path | None) -> int:
    """What was done, dropped, skipped, and where the bag stopped being readable; 1 if anything was lost."""
    if dropped:
        log.info(f"{dropped} NaN/Inf point(s) dropped in {clouds} message(s) (organised clouds mark missing returns so)")
    if no_intensity:
        log.warn(f"{no_intensity} message(s) have no intensity field; used 0 (pass --intensity-field NAME to pick one)")
    log.info(f"{done} message(s) detected" + (f"; results in {out}/" if out else ""))
    if problem:
        log.warn(f"{problem}; the messages before it were processed")
    for why in failed:
        log.info(f"  skipped: {why}")
    return 1 if failed or problem else 0


def _progress(items, total: int | None):
    """A progress bar (in messages) for long bags on a terminal."""
    if total is not None and total > 20 and sys.stderr.isatty():
        yield from log.progress(items, total=total, unit="msg")
    else:
        yield from items
