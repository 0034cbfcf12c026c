"""`train`: train PointPillars on the project's synthetic scenes (and optionally real labelled frames) and write an
OpenPCDet-format checkpoint."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pointpillars_trt.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `train --out CKPT [--frames N] [--epochs E] [--batch-size B] [--resume CKPT] ...`."""
    p = subparsers.add_parser(
        "train", help="train the model on seeded synthetic scenes; writes an OpenPCDet-format checkpoint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train KITTI PointPillars (OpenPCDet's pointpillar.yaml recipe: per-class anchor targets, focal + "
                    "smooth-L1 + direction losses, AdamW with a one-cycle LR, flip/rotation/scaling augmentation) on "
                    "frames from the project's scene generator. Training frame i of --seed S is `make-sample --seed S` "
                    "frame i, generated on the fly. The checkpoint ({'model_state', 'optimizer_state', 'epoch', 'it'}) "
                    "loads unchanged in infer / view / eval / export via --checkpoint.",
        epilog="iterations = epochs * (frames // batch-size). Examples:\n"
               "  python -m pointpillars_trt train --out ckpt.pth --frames 4000 --epochs 8 --batch-size 8\n"
               "  python -m pointpillars_trt train --out ckpt.pth --resume ckpt.pth --frames 4000 --epochs 8 --batch-size 8\n"
               "Fine-tune the default model on your own labelled frames (a KITTI-layout root and the ids that may "
               "train; keep others apart to evaluate), with KITTI-style car boxes, as its last step was made:\n"
               "  python -m pointpillars_trt train --out ft.pth --init data/models/pointpillars_synthetic.pth --lr 0.001 "
               "--frames 2400 --epochs 4 --batch-size 8 --real KITTI_ROOT --real-split train_ids.txt "
               "--synthetic-car-top 0.04\n"
               "The validation frames (--val-frames) are `make-sample --seed VAL_SEED` (VAL_SEED from the config, "
               "never a training seed), so `eval --data` reproduces the printed AP.")
    p.add_argument("--out", required=True, type=Path, metavar="CKPT", help="checkpoint to write (also every --save-every iterations)")
    p.add_argument("--frames", type=int, default=3712, help="training frames per epoch (default 3712, KITTI's train split size)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the frames, each with a new augmentation draw (default 10)")
    p.add_argument("--batch-size", type=int, default=4, help="scans per step (default 4, OpenPCDet's per-GPU batch)")
    p.add_argument("--lr", type=float, default=None, help="one-cycle maximum learning rate (default: the config's, 0.003)")
    p.add_argument("--seed", type=int, default=0, help="training frames' generator seed; also shuffling and augmentation (default 0)")
    p.add_argument("--val-frames", type=int, default=0,
                   help="after training, evaluate on this many held-apart validation frames (default 0: skip)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader worker processes (default: CPU cores - 1)")
    p.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda if available, else cpu")
    p.add_argument("--resume", type=Path, metavar="CKPT", help="continue from a checkpoint written by train (same --frames/--batch-size)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--config", type=Path, help="OpenPCDet model YAML (pointpillar.yaml layout); default: KITTI PointPillars")
    p.add_argument("--save-every", type=int, default=500, metavar="N", help="also save every N iterations (default 500)")
    p.add_argument("--time-limit", type=float, default=0, metavar="SEC",
                   help="stop after SEC seconds, save, and print the --resume command (default: none)")
    p.add_argument("--cache-dir", type=Path, help="keep generated frames here as .npz and reuse them")
    p.add_argument("--log", type=Path, help="append one JSON line of losses every 20 iterations to this file")
    p.add_argument("--init", type=Path, metavar="CKPT",
                   help="start from this OpenPCDet-format checkpoint's weights with a fresh optimizer and schedule "
                        "(fine-tuning; --resume continues a run instead)")
    g = p.add_argument_group("ground-truth sampling and real frames (OpenPCDet's gt_sampling; sample/ and training/)")
    g.add_argument("--no-gt-sampling", dest="gt_sampling", action="store_false",
                   help="do not paste database objects into training frames (default: paste, filling each frame up to "
                        "15 cars, 10 pedestrians, 10 cyclists)")
    g.add_argument("--db-frames", type=int, default=400, metavar="N",
                   help="generated training frames whose objects fill the ground-truth database (default 400)")
    g.add_argument("--real", type=Path, metavar="KITTI_ROOT",
                   help="also train on real labelled frames of this KITTI root (training/{velodyne,calib,label_2}): "
                        "they are training items and their objects join the database; needs --real-split")
    g.add_argument("--real-split", type=Path, metavar="FILE",
                   help="ids of the real frames that may train the model, one per line (recorded in the checkpoint; "
                        "`eval --data` warns when it scores a model on frames it trained on)")
    g.add_argument("--real-fraction", type=float, default=0.2, metavar="F",
                   help="share of training items that are a real frame (default 0.2)")
    g.add_argument("--real-paste-share", type=float, default=0.25, metavar="F",
                   help="chance that an object pasted by gt_sampling comes from a real frame rather than a generated "
                        "one, when the database holds real objects (default 0.25); higher shows the model real "
                        "objects' scan patterns more often, on generated and real backgrounds")
    g.add_argument("--synthetic-car-top", type=float, default=0.0, metavar="M",
                   help="raise the top of every generated car's label box by M metres, its bottom kept (default 0). "
                        "KITTI's labels sit about 6.6 cm above a car's highest return (real training frames), the "
                        "generator's 2.4 cm: 0.04 teaches real-frame box heights (training/labels.py)")
    p.set_defaults(func=run)
    return p


def _check(args: argparse.Namespace) -> None:
    """One-line errors for bad arguments, before any work."""
    for name in ("frames", "epochs", "batch_size", "save_every"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.frames < args.batch_size:
        raise UserError(f"--frames ({args.frames}) must be at least --batch-size ({args.batch_size})")
    if args.seed < 0 or args.val_frames < 0 or args.time_limit < 0 or (args.workers is not None and args.workers < 0):
        raise UserError("--seed, --val-frames, --time-limit and --workers must not be negative")
    if args.lr is not None and not args.lr > 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if args.resume is not None and not args.resume.is_file():
        raise UserError(f"--resume {args.resume}: no such file")
    if args.init is not None and (args.resume is not None or not args.init.is_file()):
        raise UserError(f"--init {args.init}: " + ("give --init or --resume, not both" if args.resume else "no such file"))
    if args.db_frames < 0 or not 0 <= args.real_fraction <= 1 or not 0 <= args.real_paste_share <= 1:
        raise UserError("--db-frames must not be negative; --real-fraction and --real-paste-share must lie in [0, 1]")
    if not 0 <= args.synthetic_car_top <= 0.5:
        raise UserError(f"--synthetic-car-top must lie in [0, 0.5] metres, got {args.synthetic_car_top}")
    if (args.real is None) != (args.real_split is None):
        raise UserError("--real and --real-split go together: the root of the real frames and the ids that may train")
    if args.real is not None and not (args.real / "training" / "velodyne").is_dir():
        raise UserError(f"--real {args.real}: no {args.real / 'training' / 'velodyne'}/ (expected KITTI's layout)")
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a directory; give a checkpoint file name")
    same = args.resume is not None and args.out.resolve() == args.resume.resolve()
    if args.out.exists() and not (args.force or same):
        raise UserError(f"--out {args.out} exists; pass --force to overwrite it (or --resume {args.out} to continue it)")
    if args.out.parent.exists() and not args.out.parent.is_dir():
        raise UserError(f"--out {args.out}: {args.out.parent} is not a directory")


def run(args: argparse.Namespace) -> int:
    """Train, save, optionally validate; prints where the checkpoint went and how to use it."""
    _check(args)
    import torch

    from pointpillars_trt.model.config import PointPillarsConfig
    from pointpillars_trt.training.trainer import TrainOptions, train

    cfg = PointPillarsConfig.from_openpcdet_yaml(args.config) if args.config else PointPillarsConfig()
    if args.seed == cfg.val_seed:
        raise UserError(f"--seed {args.seed} is the validation seed; pick another")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA GPU")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = args.workers if args.workers is not None else max((os.cpu_count() or 1) - 1, 0)
    real_ids = []
    if args.real_split is not None:
        from pointpillars_trt.evaluation.files import read_ids

        real_ids = read_ids(args.real_split)
    opts = TrainOptions(out=str(args.out), frames=args.frames, epochs=args.epochs, batch_size=args.batch_size,
                        seed=args.seed, workers=workers, device=device, resume=str(args.resume) if args.resume else None,
                        save_every=args.save_every, time_limit=args.time_limit,
                        cache_dir=str(args.cache_dir) if args.cache_dir else None,
                        log=str(args.log) if args.log else None, lr=args.lr, init=str(args.init) if args.init else None,
                        gt_sampling=args.gt_sampling, db_frames=args.db_frames,
                        real_root=str(args.real) if args.real else None, real_ids=real_ids,
                        real_fraction=args.real_fraction, real_paste_share=args.real_paste_share,
                        synthetic_car_top=args.synthetic_car_top)
    real = f", real frames {' '.join(real_ids)} ({args.real_fraction:.0%} of items)" if real_ids else ""
    print(f"train: {args.frames} frames x {args.epochs} epochs, batch {args.batch_size}, on {device}, "
          f"{workers} workers, gt_sampling {'on' if args.gt_sampling else 'off'}{real}", file=sys.stderr)
    s = train(opts, cfg)
    last = s["losses"][-1] if s["losses"] else {}
    print(f"wrote {args.out}: iteration {s['it']} of {s['total']}, {s['seconds']:.0f} s, "
          f"{s['frames_per_s']:.1f} frames/s, last loss {last.get('loss', float('nan')):.4f}")
    if s["stopped_early"]:
        print(f"stopped at --time-limit; continue with: --resume {args.out} --out {args.out} (same other options)")
    if args.val_frames:
        from pointpillars_trt.evaluation import format_table
        from pointpillars_trt.model.networks import load_checkpoint
        from pointpillars_trt.training.validate import validate

        res = validate(load_checkpoint(args.out, cfg).to(device), cfg, args.val_frames, torch.device(device))
        table = format_table(res)
        print(table, end="")
        ap = ", ".join(f"{c} {res.get('3d', c, 'moderate', 'R40'):.2f}" for c in cfg.class_names)
        part = f" (after iteration {s['it']} of {s['total']})" if s["stopped_early"] else ""
        print(f"validation{part} ({args.val_frames} frames of make-sample --seed {cfg.val_seed}), 3D AP R40 moderate: {ap}")
        Path(str(args.out) + ".val_eval.json").write_text(json.dumps(res.to_json(), indent=1) + "\n")
        Path(str(args.out) + ".val_table.txt").write_text(table)
    return 0
