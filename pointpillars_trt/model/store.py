"""Where a detector's model files come from: a checkpoint (exported to ONNX on first need, cached), an `export`
folder, the seeded random-init model, or the project's default model (``default_model``, the one place that picks it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pointpillars_trt import log
from pointpillars_trt.errors import UserError
from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.model.config import PointPillarsConfig


@dataclass
class ModelFiles:
    """The ONNX folder a pipeline runs (None until onnx() exports the checkpoint), the checkpoint behind it when known (the
    torch backend runs it directly), whether the weights are the untrained random-init ones, and where a checkpoint
    would be exported to (config and cache folder)."""

    onnx_dir: Path | None
    checkpoint: Path | None
    untrained: bool
    cfg: PointPillarsConfig | None = None
    cache_dir: Path | None = None

    def onnx(self) -> Path:
        """The ONNX folder, exporting the checkpoint into the cache on first need (onnxruntime and TensorRT run ONNX;
        the torch backend never asks: a cold start without the export, whose import of torch.onnx and Dynamo alone
        took seconds)."""
        if self.onnx_dir is not None:
            return self.onnx_dir
        if self.checkpoint is None or self.cfg is None or self.cache_dir is None:
            raise UserError("this model has neither an ONNX folder nor a checkpoint to export one from")
        self.onnx_dir = export_cached(self.checkpoint, self.cfg, self.cache_dir)
        return self.onnx_dir


def load_config(config: PointPillarsConfig | str | Path | None) -> PointPillarsConfig:
    """A PointPillarsConfig as given, read from an OpenPCDet model YAML, or the default (KITTI PointPillars)."""
    if config is None:
        return PointPillarsConfig()
    if isinstance(config, PointPillarsConfig):
        return config
    if isinstance(config, (str, Path)):
        return PointPillarsConfig.from_openpcdet_yaml(config)
    raise UserError(f"config must be a PointPillarsConfig or a path to an OpenPCDet YAML, got {type(config).__name__}")


def export_cached(checkpoint: Path, cfg: PointPillarsConfig, cache_dir: Path) -> Path:
    """Export a checkpoint to cache_dir/onnx/<checkpoint sha12>_<config hash>/ once; later runs reuse it (without
    importing the exporter: onnx's import alone took 0.7 s of a warm start)."""
    from pointpillars_trt.model.hashing import file_sha256

    if not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")
    out = cache_dir / "onnx" / f"{file_sha256(checkpoint)[:12]}_{cfg.digest()}"
    mf = out / tn.MANIFEST
    if mf.is_file():
        try:
            if json.loads(mf.read_text()).get("config") == cfg.inference_dict():
                return out
            log.info(f"cached ONNX in {out} does not match the config: re-exporting")
        except json.JSONDecodeError:
            log.info(f"cached ONNX manifest {mf} is unreadable: re-exporting")
    from pointpillars_trt.model.export import export_onnx
    from pointpillars_trt.model.networks import load_checkpoint

    nets = load_checkpoint(checkpoint, cfg)
    log.info(f"exporting {checkpoint} to ONNX (FP32 + FP16) in {out} (once; ~30 s)")
    export_onnx(nets, out, checkpoint=checkpoint, force=True, progress=lambda s: log.info("  " + s))
    return out


def from_checkpoint(checkpoint: str | Path, cfg: PointPillarsConfig, cache_dir: Path) -> ModelFiles:
    """An OpenPCDet checkpoint, exported to ONNX when a backend first needs it (ModelFiles.onnx)."""
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise UserError(f"checkpoint not found: {ckpt}")
    return ModelFiles(None, ckpt, False, cfg, Path(cache_dir))


def from_onnx_dir(onnx_dir: str | Path, cfg: PointPillarsConfig, config_name: str = "the default") -> ModelFiles:
    """A folder written by `export`; its manifest must carry this config (and names the checkpoint, if it still exists)."""
    from pointpillars_trt.model.manifest import read_manifest

    m = read_manifest(onnx_dir)
    if m.get("config") != cfg.inference_dict():
        raise UserError(f"{onnx_dir} was exported with a different config than {config_name}; "
                        "pass the matching config (--config, or config= in the API)")
    ck = m.get("checkpoint") or {}
    ckpt = Path(ck["path"]) if ck.get("path") and Path(ck["path"]).is_file() else None
    return ModelFiles(Path(onnx_dir), ckpt, "random-init" in json.dumps(ck))


def random_init(cfg: PointPillarsConfig, cache_dir: Path, seed: int = 0) -> ModelFiles:
    """The seeded random-init model the project makes itself (UNTRAINED), written once into cache_dir."""
    from pointpillars_trt.model.networks import random_checkpoint

    ckpt = cache_dir / f"random-init-seed{seed}_{cfg.digest()}.pth"
    if not ckpt.is_file():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        random_checkpoint(ckpt, cfg, seed=seed)
    return ModelFiles(None, ckpt, True, cfg, Path(cache_dir))


DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "pointpillars_synthetic.pth"


def default_model(cfg: PointPillarsConfig, cache_dir: Path) -> ModelFiles:
    """The project's default model: KITTI PointPillars trained by `train` on the project's synthetic scenes
    (data/models/MODEL_CARD.md), shipped with the package."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise UserError(f"the default model {DEFAULT_CHECKPOINT} is missing from this installation; "
                        "pass --checkpoint (or --random-init for the untrained demo model)")
    return from_checkpoint(DEFAULT_CHECKPOINT, cfg, cache_dir)


def trained_real_frames(checkpoint: Path) -> list[str]:
    """The real frame ids a `train` checkpoint records as training data (train_args.real_ids); [] if none or unreadable."""
    import torch

    try:
        ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception:  # not ours to judge here: loading the model reports a bad file properly
        return []
    args = ck.get("train_args") if isinstance(ck, dict) else None
    return [str(i) for i in (args or {}).get("real_ids") or []]
