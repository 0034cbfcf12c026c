"""The `eval` subcommand: KITTI AP of result files against labels, written as eval.json, table.txt and PR plots."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from pointpillars_trt.errors import UserError
from pointpillars_trt.evaluation.protocol import PROTOCOLS

OUTPUT_NAMES = ("eval.json", "table.txt", "pr_curves")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `eval` on an argparse subparsers object and return its parser (others may add options to it).

    --results/--labels are not required at argparse level so that other modes (e.g. --data/--checkpoint,
    which produce the results first) can share the parser; run() checks them.
    """
    p = subparsers.add_parser(
        "eval", help="KITTI AP (bbox/BEV/3D/AOS, R11 and R40) of result files against labels",
        description="Evaluate KITTI result files (<id>.txt, 16 columns with score) against label_2 files with "
                    "the KITTI object protocol (AP 2D/BEV/3D/AOS, R11 and R40). --protocol openpcdet (default) gives "
                    "the numbers OpenPCDet and mmdetection3d publish; --protocol devkit the C++ devkit's reading.")
    p.add_argument("--results", type=Path, metavar="DIR", help="directory of <id>.txt result files")
    p.add_argument("--labels", type=Path, metavar="DIR", help="KITTI label_2 directory")
    p.add_argument("--ids", type=Path, metavar="FILE",
                   help="split file listing frame ids (default: every label file)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write eval.json, table.txt and pr_curves/ here")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs in --out")
    p.add_argument("--protocol", choices=PROTOCOLS, default=PROTOCOLS[0],
                   help="where DontCare regions remove false positives: openpcdet (default) = the 2D bbox metric only, "
                        "as OpenPCDet's kitti_object_eval_python; devkit = every metric, as the C++ evaluate_object")
    p.set_defaults(func=run)
    return p


def check_outputs(out: Path | None, force: bool) -> None:
    """UserError if --out already holds evaluation outputs and --force was not given."""
    if out is None or force:
        return
    existing = [n for n in OUTPUT_NAMES if (out / n).exists()]
    if existing:
        raise UserError(f"{out} already holds {', '.join(existing)}; pass --force to overwrite")


def evaluate_and_report(results: Path, labels: Path, ids: list[str] | None, out: Path | None, force: bool,
                        progress: bool = True, protocol: str = PROTOCOLS[0]) -> int:
    """Evaluate, print the table (warnings as 'warning: ...' lines on stderr) and write outputs; returns 0."""
    from pointpillars_trt.evaluation import evaluate_dirs, format_table, save_pr_curves

    check_outputs(out, force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_dirs(results, labels, ids, progress=progress, protocol=protocol)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    table = format_table(result)
    print(table, end="")
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create output directory {out}: {e.strerror}") from None
        (out / "eval.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
        (out / "table.txt").write_text(table)
        save_pr_curves(result, out / "pr_curves")
        print(f"wrote {out / 'eval.json'}, {out / 'table.txt'}, {out / 'pr_curves'}/", file=sys.stderr)
    return 0


def check_results_dir(results: Path) -> None:
    """UserError for a results folder holding only infer's .json files: KITTI's evaluation needs the camera-frame .txt."""
    if results.is_dir() and not any(results.glob("*.txt")) and any(results.glob("*.json")):
        raise UserError(f"{results} holds only .json results (lidar frame), no KITTI <id>.txt (camera frame); "
                        "re-run infer with --calib FILE|DIR (or on scans in KITTI's training/velodyne/ layout) to write them, "
                        "or use eval --data KITTI_ROOT")


def run(args: argparse.Namespace) -> int:
    """Run `eval --results DIR --labels DIR [--ids FILE] [--out DIR] [--force] [--protocol P]`."""
    from pointpillars_trt.evaluation.files import read_ids

    if args.results is None or args.labels is None:
        raise UserError("eval needs --results DIR and --labels DIR")
    check_results_dir(args.results)
    ids = read_ids(args.ids) if args.ids is not None else None
    return evaluate_and_report(args.results, args.labels, ids, args.out, args.force,
                               progress=getattr(args, "progress", True), protocol=args.protocol)
