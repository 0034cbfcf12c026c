"""`export` (checkpoint -> four ONNX files + manifest) and `config` (print the model contract)."""
from __future__ import annotations

import argparse
from pathlib import Path

from pointpillars_trt import log
from pointpillars_trt.model.config import PointPillarsConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export an OpenPCDet checkpoint to ONNX (PFN + RPN, FP32 + FP16)",
        description="Write pfn_fp32.onnx, pfn_fp16.onnx (input 'pillars' [P,32,10] -> 'pillar_features' [P,64], P dynamic), "
                    "rpn_fp32.onnx, rpn_fp16.onnx (input 'bev' [B,64,496,432] -> 'cls_preds' [B,248,216,18], "
                    "'box_preds' [B,248,216,42], 'dir_cls_preds' [B,248,216,12], B dynamic) and manifest.json. "
                    "FP16 graphs compute in FP16 with FP32 inputs/outputs.")
    p.add_argument("--checkpoint", type=Path, required=True, help="OpenPCDet checkpoint (.pth)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, help="OpenPCDet model YAML (default: KITTI PointPillars)")
    p.add_argument("--force", action="store_true", help="overwrite an existing export")
    p.set_defaults(func=run_export)

    c = sub.add_parser("config", help="print the model contract (default or from an OpenPCDet YAML)",
                       description="Print the configuration every stage uses, as JSON.")
    c.add_argument("--config", type=Path, help="OpenPCDet model YAML")
    c.set_defaults(func=run_config)


def run_export(args: argparse.Namespace) -> int:
    from pointpillars_trt.model.export import export_onnx
    from pointpillars_trt.model.networks import load_checkpoint

    cfg = PointPillarsConfig.from_openpcdet_yaml(args.config) if args.config else PointPillarsConfig()
    nets = load_checkpoint(args.checkpoint, cfg)
    m = export_onnx(nets, args.out, checkpoint=args.checkpoint, force=args.force, progress=log.info)
    for name, f in m["files"].items():
        print(f"{args.out / name}  sha256 {f['sha256'][:16]}")
    return 0


def run_config(args: argparse.Namespace) -> int:
    cfg = PointPillarsConfig.from_openpcdet_yaml(args.config) if args.config else PointPillarsConfig()
    print(cfg)
    return 0
