"""ONNX export of the PFN (dynamic pillar count) and RPN (dynamic batch), each in FP32 and FP16.

Precision lives in the graph (DESIGN.md "Precision"): the FP16 files hold FP16
weights and compute, with Cast nodes at the edges so every file has the same
FP32 inputs and outputs, and the pipeline's buffers never change with precision.
A manifest.json beside the files records config, checkpoint hash and I/O specs.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable

import onnx
import torch
from torch import nn

from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.hashing import file_sha256
from pointpillars_trt.model.networks import PointPillarsNets
from pointpillars_trt.model.manifest import FORMAT

OPSET = 17


class _HalfCompute(nn.Module):
    """Runs a module in FP16 between FP32 inputs and outputs (so the ONNX graph itself is FP16)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = module.half()

    def forward(self, x: torch.Tensor):
        y = self.inner(x.half())
        return tuple(t.float() for t in y) if isinstance(y, tuple) else y.float()


def io_specs(cfg: PointPillarsConfig) -> dict[str, dict[str, dict]]:
    """Names, symbolic shapes and dtypes of both networks' inputs and outputs."""
    nx, ny, _ = cfg.grid_size
    fx, fy = cfg.feature_map_size
    ch = cfg.head_channels
    f32 = "float32"
    return {
        "pfn": {"inputs": {tn.PFN_INPUT: {"shape": ["P", cfg.max_points_per_pillar, cfg.pfn_in_features], "dtype": f32}},
                "outputs": {tn.PFN_OUTPUT: {"shape": ["P", cfg.pfn_filters], "dtype": f32}}},
        "rpn": {"inputs": {tn.RPN_INPUT: {"shape": ["B", cfg.pfn_filters, ny, nx], "dtype": f32}},
                "outputs": {name: {"shape": ["B", fy, fx, ch[k]], "dtype": f32}
                            for name, k in zip(tn.RPN_OUTPUTS, ("cls", "box", "dir"))}},
    }


def _export_one(module: nn.Module, example: torch.Tensor, path: Path, in_name: str, out_names: list[str],
                dyn: str) -> None:
    axes = {in_name: {0: dyn}, **{n: {0: dyn} for n in out_names}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=[in_name], output_names=out_names,
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)


def export_onnx(nets: PointPillarsNets, out_dir: str | Path, *, checkpoint: str | Path | None = None,
                precisions: tuple[str, ...] = tn.PRECISIONS, force: bool = False,
                progress: Callable[[str], None] = lambda s: None) -> dict:
    """Write {pfn,rpn}_{fp32,fp16}.onnx and manifest.json into out_dir; returns the manifest."""
    cfg = nets.cfg
    out = Path(out_dir)
    targets = [out / tn.onnx_filename(n, p) for n in tn.NETWORKS for p in precisions] + [out / tn.MANIFEST]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} exists; pass --force to overwrite the export in {out}")
    out.mkdir(parents=True, exist_ok=True)
    specs = io_specs(cfg)
    nx, ny, _ = cfg.grid_size
    g = torch.Generator().manual_seed(0)
    examples = {"pfn": torch.randn(64, cfg.max_points_per_pillar, cfg.pfn_in_features, generator=g),
                "rpn": torch.zeros(1, cfg.pfn_filters, ny, nx)}
    files = {}
    for net_name in tn.NETWORKS:
        for prec in precisions:
            base = nets.vfe if net_name == "pfn" else nets.rpn
            module = _clone(base, cfg, net_name)
            module = _HalfCompute(module) if prec == "fp16" else module
            path = out / tn.onnx_filename(net_name, prec)
            progress(f"exporting {path.name}")
            spec = specs[net_name]
            _export_one(module.eval(), examples[net_name], path, next(iter(spec["inputs"])), list(spec["outputs"]),
                        "P" if net_name == "pfn" else "B")
            files[path.name] = {"network": net_name, "precision": prec, "sha256": file_sha256(path)}
    manifest = {
        "format": FORMAT,
        "config": cfg.inference_dict(),
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "sha256": file_sha256(checkpoint)} if checkpoint else None,
        "opset": OPSET,
        "torch": torch.__version__,
        "io": specs,
        "files": files,
    }
    (out / tn.MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _clone(module: nn.Module, cfg: PointPillarsConfig, net_name: str) -> nn.Module:
    """A fresh copy (the FP16 wrapper converts in place)."""
    from pointpillars_trt.model.networks import RPN, PillarFeatureNet

    m = PillarFeatureNet(cfg) if net_name == "pfn" else RPN(cfg)
    m.load_state_dict(module.state_dict())
    return m.eval()
