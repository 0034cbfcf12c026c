"""The inference-time RPN rewrite (BN + pad folding, fused heads) against the checkpoint's own eval-mode RPN."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.model.inference import fold_rpn
from pointpillars_trt.model.networks import load_checkpoint

CKPT = Path(__file__).resolve().parents[2] / "shared" / "checkpoints" / "pointpillar_kitti_random_seed0.pth"


@pytest.mark.skipif(not CKPT.is_file(), reason=f"shared checkpoint not found at {CKPT}")
def test_folded_rpn_matches_eval_rpn() -> None:
    cfg = PointPillarsConfig()
    nets = load_checkpoint(CKPT, cfg)
    # the shared checkpoint's BN statistics are the init ones (mean 0, var 1): give them real values so the fold
    # is really tested
    g = torch.Generator().manual_seed(0)
    for m in nets.rpn.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    rpn = nets.rpn.eval()
    folded = fold_rpn(rpn)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    n_pad = sum(isinstance(m, torch.nn.ZeroPad2d) for m in folded.modules())
    assert n_bn == 0 and n_pad == 0
    # a sparse canvas like a real one: 8000 random pillars
    nx, ny, _ = cfg.grid_size
    x = torch.zeros(1, cfg.pfn_filters, ny, nx)
    idx = torch.randint(0, nx * ny, (8000,), generator=g)
    x.view(1, cfg.pfn_filters, -1)[:, :, idx] = torch.rand(cfg.pfn_filters, 8000, generator=g) * 3
    with torch.no_grad():
        ref, got = rpn(x), folded(x)
    for r, y in zip(ref, got):
        assert r.shape == y.shape and y.is_contiguous()
        assert torch.allclose(r, y, atol=1e-4, rtol=1e-4), (r - y).abs().max()
