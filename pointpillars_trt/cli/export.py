"""`export` (checkpoint -> four ONNX files + manifest) and `config` (print the model contract)."""
from __future__ import annotations

import argparse
from pathlib import Path

from pointpillars_trt import log
from pointpillars_trt.cache_dir import default_cache_dir
from pointpillars_trt.errors import UserError
from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.model.config import PointPillarsConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export an OpenPCDet checkpoint to ONNX (PFN + RPN, FP32 + FP16)",
        description="Write pfn_fp32.onnx, pfn_fp16.onnx (input 'pillars' [P,32,10] -> 'pillar_features' [P,64], P dynamic), "
                    "rpn_fp32.onnx, rpn_fp16.onnx (input 'bev' [B,64,496,432] -> 'cls_preds' [B,248,216,18], "
                    "'box_preds' [B,248,216,42], 'dir_cls_preds' [B,248,216,12], B dynamic) and manifest.json. "
                    "FP16 graphs compute in FP16 with FP32 inputs/outputs.")
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--checkpoint", type=Path, help="OpenPCDet checkpoint (.pth)")
    m.add_argument("--random-init", action="store_true",
                   help="the seeded random-init model the other commands' --random-init use: UNTRAINED, for trying the tool")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, help="OpenPCDet model YAML (default: KITTI PointPillars)")
    p.add_argument("--force", action="store_true", help="overwrite an existing export")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                   help="with --random-init: the cache its export is made in once and copied from (default: %(default)s)")
    p.set_defaults(func=run_export)

    c = sub.add_parser("config", help="print the model contract (default or from an OpenPCDet YAML)",
                       description="Print the configuration every stage uses, as JSON.")
    c.add_argument("--config", type=Path, help="OpenPCDet model YAML")
    c.set_defaults(func=run_config)


def run_export(args: argparse.Namespace) -> int:
    """Export a checkpoint to --out; --random-init copies the demo model's cached export (made once) instead."""
    from pointpillars_trt.model.export import export_onnx
    from pointpillars_trt.model.networks import load_checkpoint

    cfg = PointPillarsConfig.from_openpcdet_yaml(args.config) if args.config else PointPillarsConfig()
    if args.random_init:
        m = _copy_random_init(args, cfg)
    else:
        nets = load_checkpoint(args.checkpoint, cfg)
        m = export_onnx(nets, args.out, checkpoint=args.checkpoint, force=args.force, progress=log.info)
    for name, f in m["files"].items():
        print(f"{args.out / name}  sha256 {f['sha256'][:16]}")
    return 0


def _copy_random_init(args: argparse.Namespace, cfg: PointPillarsConfig) -> dict:
    """The random-init model's export from the cache (exported there once, as infer --random-init does), copied to --out."""
    import shutil

    from pointpillars_trt.model import store
    from pointpillars_trt.model.manifest import read_manifest

    names = [tn.onnx_filename(n, p) for n in tn.NETWORKS for p in tn.PRECISIONS] + [tn.MANIFEST]
    existing = [args.out / n for n in names if (args.out / n).exists()]
    if existing and not args.force:
        raise UserError(f"{existing[0]} exists; pass --force to overwrite the export in {args.out}")
    src = store.random_init(cfg, Path(args.cache_dir)).onnx()
    log.warn("UNTRAINED random-init model: for trying the tool only")
    args.out.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copyfile(src / n, args.out / n)
    return read_manifest(args.out)


def run_config(args: argparse.Namespace) -> int:
    cfg = PointPillarsConfig.from_openpcdet_yaml(args.config) if args.config else PointPillarsConfig()
    print(cfg)
    return 0
