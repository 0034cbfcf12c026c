"""`sim2real`: measure the generator's scans against real labelled KITTI frames; tables, plots, and the fit of the
generator's return model (ray drop / intensity) to the real frames."""
from __future__ import annotations

import argparse
from pathlib import Path

from pointpillars_trt.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `sim2real --real KITTI_ROOT --out DIR [--split FILE] [--frames N] [--seed S] [--fit] [--force]`."""
    p = subparsers.add_parser(
        "sim2real", help="compare the synthetic generator's scans with real labelled KITTI frames (tables + plots)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure real KITTI frames and the generator's frames the same way: points on labelled objects "
                    "against distance, intensity (zero fraction, nonzero quartiles) on the ground, the background and "
                    "each class by range, the beam pattern (rings, azimuth step, fill), the clutter's height profile and "
                    "object sizes. Writes OUT/sim_to_real.md and PNG plots. --fit also fits the generator's return "
                    "model (sample/returns.py) to the real frames and writes the fitted numbers to OUT/fitted_returns.txt.",
        epilog="Example (the model card's comparison; the fit uses only the frames that train the default model):\n"
               "  python -m pointpillars_trt sim2real --real ../shared/kitti --out docs/sim_to_real --frames 60\n"
               "  python -m pointpillars_trt sim2real --real ../shared/kitti --split data/splits/kitti_train.txt "
               "--out /tmp/fit --fit")
    p.add_argument("--real", required=True, type=Path, metavar="KITTI_ROOT",
                   help="dataset root with training/{velodyne,calib,label_2}")
    p.add_argument("--split", type=Path, metavar="FILE", help="real frame ids, one per line (default: every scan)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="where the tables and plots go")
    p.add_argument("--frames", type=int, default=40, help="synthetic frames to measure (default 40)")
    p.add_argument("--seed", type=int, default=0, help="their make-sample seed (default 0)")
    p.add_argument("--synthetic", type=Path, metavar="DIR",
                   help="measure the generated frames already in this KITTI-layout directory (e.g. an older generator's "
                        "`make-sample` output) instead of generating --frames now; not with --fit")
    p.add_argument("--fit", action="store_true", help="fit the return model to the real frames; print and save it")
    p.add_argument("--force", action="store_true", help="overwrite files already in --out")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Measure, write the report and plots, optionally fit."""
    from pointpillars_trt.evaluation.files import read_ids

    if args.frames < 1 or args.seed < 0:
        raise UserError("--frames must be at least 1 and --seed not negative")
    scans = args.real / "training" / "velodyne"
    if not scans.is_dir():
        raise UserError(f"--real {args.real}: no {scans}/ (expected KITTI's layout)")
    ids = read_ids(args.split) if args.split else sorted(p.stem for p in scans.glob("*.bin"))
    if not ids:
        raise UserError(f"--real {args.real}: no frames to measure")
    report = args.out / "sim_to_real.md"
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is not a directory")
    if report.exists() and not args.force:
        raise UserError(f"{report} exists; pass --force to overwrite")
    if args.synthetic is not None and (args.fit or not (args.synthetic / "training" / "velodyne").is_dir()):
        raise UserError(f"--synthetic {args.synthetic}: " + ("--fit needs frames generated now, drop one of them"
                                                              if args.fit else "no training/velodyne/ in it"))
    from pointpillars_trt.evaluation.sim_to_real import measure_real, measure_synthetic, report_md
    from pointpillars_trt.evaluation.sim_to_real_plots import save_plots

    real = measure_real(args.real, ids)
    if args.synthetic is not None:
        syn_ids = sorted(p.stem for p in (args.synthetic / "training" / "velodyne").glob("*.bin"))
        syn, sample = measure_real(args.synthetic, syn_ids, name="synthetic"), None
    else:
        syn, sample = measure_synthetic(args.frames, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = save_plots(real, syn, args.out)
    report.write_text(report_md(real, syn, plots))
    print(f"wrote {report} and {len(plots)} plots ({len(ids)} real frames, {len(syn.cats)} synthetic)")
    if args.fit:
        from pointpillars_trt.evaluation.return_fit import fit_returns, model_source

        model, start, end = fit_returns(real.table(), sample)
        text = model_source(model)
        (args.out / "fitted_returns.txt").write_text(f"# fitted on frames {' '.join(ids)}; distance {start:.1f} -> {end:.1f}\n"
                                                     + text)
        print(f"return model fit: distance {start:.1f} -> {end:.1f}\n{text}", end="")
    return 0
