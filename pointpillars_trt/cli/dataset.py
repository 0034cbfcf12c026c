"""Detector-driven modes of other commands: `eval --data KITTI_ROOT` (run, write results, evaluate) and
`view --checkpoint ...` (run on the scan, then draw). Adds the shared model options to those parsers."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.cli.model_options import add_model_args, make_detector
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.cli.point_options import point_reader
from pointpillars_trt.io.kitti import Calib, detections_to_kitti, scan_image_shape, write_labels
from pointpillars_trt.io.points import read_bin


def extend(sub: argparse._SubParsersAction) -> None:
    """Give `eval` its --data mode and `view` its detector options."""
    ev = sub.choices["eval"]
    g = ev.add_argument_group("run the detector over a KITTI-layout dataset first")
    g.add_argument("--data", type=Path, metavar="KITTI_ROOT",
                   help="dataset root with training/{velodyne,calib,label_2[,image_2]}; results go to OUT/results/")
    g.add_argument("--split", type=Path, metavar="FILE", help="frame ids (default ROOT/ImageSets/val.txt, else every scan)")
    g.add_argument("--no-fov-crop", action="store_true",
                   help="keep points outside the camera's field of view (OpenPCDet's KITTI eval crops them)")
    add_model_args(ev, required=False)
    plain_eval = ev.get_default("func")
    ev.set_defaults(func=lambda a: run_eval_data(a) if a.data else plain_eval(a))

    vw = sub.choices["view"]
    add_model_args(vw, required=False)
    vw.add_argument("--no-detect", action="store_true",
                    help="draw the points (and --labels / --detections) without running a model")
    plain_view = vw.get_default("func")
    vw.set_defaults(func=lambda a: run_view(a, plain_view))


def fov_mask(points: np.ndarray, calib: Calib, shape: tuple[int, int]) -> np.ndarray:
    """Points that project inside the image with non-negative depth (OpenPCDet's get_fov_flag)."""
    uv, depth = calib.rect_to_image(calib.lidar_to_rect(points[:, :3].astype(np.float64)))
    h, w = shape
    return (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h) & (depth >= 0)


def _has_model(a: argparse.Namespace) -> bool:
    return bool(a.checkpoint or a.onnx_dir or a.random_init)


def _warn_trained_frames(args: argparse.Namespace, ids: list[str]) -> None:
    """Say so when the model's checkpoint records some of these frames as its training data."""
    from pointpillars_trt.model import store

    if args.onnx_dir or args.random_init:
        return
    seen = sorted(set(ids) & set(store.trained_real_frames(args.checkpoint or store.DEFAULT_CHECKPOINT)))
    if seen:
        log.warn(f"frame(s) {' '.join(seen)} trained this model (its checkpoint's train_args.real_ids): AP over them "
                 "is not a held-out measurement")


def run_eval_data(args: argparse.Namespace) -> int:

    from pointpillars_trt.cli.eval import check_outputs, evaluate_and_report
    from pointpillars_trt.evaluation.files import read_ids

    root = args.data / "training"
    for d in ("velodyne", "calib", "label_2"):
        if not (root / d).is_dir():
            raise UserError(f"--data {args.data}: no {root / d}/ (expected KITTI's layout)")
    if args.results:
        raise UserError("--data writes its own results to OUT/results; drop --results")
    if not args.out:
        raise UserError("--data needs --out DIR for the results and the evaluation")
    split = args.split or (args.data / "ImageSets" / "val.txt")
    if split.is_file() or args.split:
        ids = read_ids(split)
    else:
        ids = sorted(p.stem for p in (root / "velodyne").glob("*.bin"))
    missing = [str(p) for fid in ids for p in (root / "velodyne" / f"{fid}.bin", root / "calib" / f"{fid}.txt",
                                               root / "label_2" / f"{fid}.txt") if not p.is_file()]
    if missing:
        raise UserError(f"--data {args.data}: {len(missing)} file(s) of the split are missing, e.g. {missing[0]}")
    calibs = {fid: Calib.read(root / "calib" / f"{fid}.txt") for fid in ids}  # bad calibs fail before any work
    res_dir = args.out / "results"
    if res_dir.exists() and any(res_dir.iterdir()) and not args.force:
        raise UserError(f"{res_dir} already holds results; pass --force to overwrite")
    check_outputs(args.out, args.force)
    res_dir.mkdir(parents=True, exist_ok=True)
    _warn_trained_frames(args, ids)
    with make_detector(args) as det:
        log.info(det.description)
        if det.untrained:
            log.warn("UNTRAINED random-init model: expect AP near 0")
        for fid in log.progress(ids, unit="frame", desc="detect"):
            scan = root / "velodyne" / f"{fid}.bin"
            calib = calibs[fid]
            shape = scan_image_shape(scan)
            pts = read_bin(scan)
            if not args.no_fov_crop:
                pts = pts[fov_mask(pts, calib, shape)]
            d = det.run(pts).detections if len(pts) else Detections.empty()  # nothing in view: no boxes
            write_labels(res_dir / f"{fid}.txt", detections_to_kitti(d.boxes, d.scores, d.labels, det.cfg.class_names, calib, shape))
    return evaluate_and_report(res_dir, root / "label_2", ids, args.out, args.force, protocol=args.protocol)


def run_view(args: argparse.Namespace, plain_view) -> int:
    if args.no_detect and _has_model(args):
        raise UserError("--no-detect runs no model; drop --checkpoint/--onnx-dir/--random-init")
    if args.detections and _has_model(args):
        raise UserError("give either --detections FILE or a model (--checkpoint/--onnx-dir/--random-init), not both")
    if args.no_detect or args.detections:  # draw what was given; no model (the default one neither)
        return plain_view(args)
    from pointpillars_trt.cli.view import check_args

    check_args(args)  # output files, --labels/--calib, Open3D and a display: before minutes of export and inference
    points, _ = point_reader(args)(args.scan)  # a bad scan fails before the model loads
    with make_detector(args) as det:
        log.info(det.description)
        if det.untrained:
            log.warn("UNTRAINED random-init model: the boxes drawn are meaningless; pass --checkpoint with trained weights")
        res = det.run(points)
    dets, drawn = res.detections, res.detections.above(args.score_thresh)  # what the pictures show (viz: >= thresh)
    print(f"{args.scan}: {len(dets)} detections" + ("" if len(drawn) == len(dets) else
          f" (score >= {det.cfg.score_thresh:g}), {len(drawn)} drawn (--score-thresh {args.score_thresh:g})"))
    return plain_view(args, detections=res.detections, class_names=det.cfg.class_names, untrained=det.untrained)
