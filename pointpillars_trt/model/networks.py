"""The two networks in PyTorch (OpenPCDet's PillarVFE PFN and BaseBEVBackbone + AnchorHeadSingle) and checkpoint loading.

Module and parameter names match OpenPCDet's state_dict (``vfe.pfn_layers.0.*``,
``backbone_2d.*``, ``dense_head.*``) so checkpoints load without renaming.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError


class PFNLayer(nn.Module):
    """Linear(10->64, no bias) + BatchNorm1d + ReLU, then max over a pillar's points."""

    def __init__(self, cin: int, cout: int, eps: float) -> None:
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=False)
        self.norm = nn.BatchNorm1d(cout, eps=eps, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [P, M, C] -> [P, 64]
        if self.training:
            x = self.linear(x)
            x = self.norm(x.permute(0, 2, 1)).permute(0, 2, 1)
            return torch.relu(x).amax(dim=1)
        # Inference: BN folded into the weights (W' = s*W, t = beta - mean*s), and since ReLU is monotonic and t
        # is constant over the points, max_k ReLU(W'x_k + t) = ReLU(max_k(W'x_k) + t): one matmul and one
        # reduction instead of five passes over the [P, 32, 64] tensor (the same ONNX graph, cheaper everywhere).
        n = self.norm
        scale = n.weight / torch.sqrt(n.running_var + n.eps)
        shift = n.bias - n.running_mean * scale
        y = torch.matmul(x, (self.linear.weight * scale[:, None]).t())
        return torch.relu(y.amax(dim=1) + shift)


class PillarFeatureNet(nn.Module):
    """The PFN on already decorated pillars [P, 32, 10] (padded slots zero) -> [P, 64]."""

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        self.pfn_layers = nn.ModuleList([PFNLayer(cfg.pfn_in_features, cfg.pfn_filters, cfg.bn_eps)])

    def forward(self, pillars: torch.Tensor) -> torch.Tensor:
        return self.pfn_layers[0](pillars)


class BaseBEVBackbone(nn.Module):
    """OpenPCDet's BaseBEVBackbone: strided conv blocks + transposed-conv deblocks, concatenated."""

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        eps = cfg.bn_eps
        cins = [cfg.pfn_filters, *cfg.num_filters[:-1]]
        self.blocks = nn.ModuleList()
        self.deblocks = nn.ModuleList()
        for i, (cin, cout, n, s) in enumerate(zip(cins, cfg.num_filters, cfg.layer_nums, cfg.layer_strides)):
            layers: list[nn.Module] = [nn.ZeroPad2d(1), nn.Conv2d(cin, cout, 3, stride=s, bias=False),
                                       nn.BatchNorm2d(cout, eps=eps, momentum=0.01), nn.ReLU()]
            for _ in range(n):
                layers += [nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, eps=eps, momentum=0.01), nn.ReLU()]
            self.blocks.append(nn.Sequential(*layers))
            up, nup = cfg.upsample_strides[i], cfg.num_upsample_filters[i]
            if up < 1:
                raise UserError("config: fractional UPSAMPLE_STRIDES are not supported")
            self.deblocks.append(nn.Sequential(nn.ConvTranspose2d(cout, nup, up, stride=up, bias=False),
                                               nn.BatchNorm2d(nup, eps=eps, momentum=0.01), nn.ReLU()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ups = []
        for block, deblock in zip(self.blocks, self.deblocks):
            x = block(x)
            ups.append(deblock(x))
        return torch.cat(ups, dim=1)


class AnchorHeadSingle(nn.Module):
    """1x1 conv heads for class logits, box residuals and direction bins, outputs NHWC."""

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        cin = sum(cfg.num_upsample_filters)
        ch = cfg.head_channels
        self.conv_cls = nn.Conv2d(cin, ch["cls"], 1)
        self.conv_box = nn.Conv2d(cin, ch["box"], 1)
        self.conv_dir_cls = nn.Conv2d(cin, ch["dir"], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        nhwc = lambda t: t.permute(0, 2, 3, 1).contiguous()  # noqa: E731
        return nhwc(self.conv_cls(x)), nhwc(self.conv_box(x)), nhwc(self.conv_dir_cls(x))


class RPN(nn.Module):
    """BEV canvas [B, 64, 496, 432] -> (cls [B,248,216,18], box [B,248,216,42], dir [B,248,216,12])."""

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        self.backbone_2d = BaseBEVBackbone(cfg)
        self.dense_head = AnchorHeadSingle(cfg)

    def forward(self, bev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.dense_head(self.backbone_2d(bev))


class PointPillarsNets(nn.Module):
    """Both networks under OpenPCDet's top-level names (vfe, backbone_2d, dense_head)."""

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vfe = PillarFeatureNet(cfg)
        rpn = RPN(cfg)
        self.backbone_2d = rpn.backbone_2d
        self.dense_head = rpn.dense_head
        self.rpn = rpn

    def state_dict_keys(self) -> dict[str, tuple[int, ...]]:
        """Expected checkpoint keys and shapes (OpenPCDet names; the rpn alias excluded)."""
        return {k: tuple(v.shape) for k, v in self.state_dict().items() if not k.startswith("rpn.")}


# OpenPCDet bookkeeping entries that carry no weights
_IGNORED_KEYS = ("global_step",)


def load_checkpoint(path: str | Path, cfg: PointPillarsConfig) -> PointPillarsNets:
    """Load an OpenPCDet checkpoint ({'model_state': state_dict}) into eval-mode networks.

    Missing, unexpected or misshaped keys are refused with a UserError naming them.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign/corrupt files
        raise UserError(f"checkpoint {path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    state = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"checkpoint {path}: no 'model_state' state_dict of tensors (expected OpenPCDet's format)")
    state = {k.removeprefix("module."): v for k, v in state.items() if k not in _IGNORED_KEYS}
    nets = PointPillarsNets(cfg)
    want = nets.state_dict_keys()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    bad = sorted(k for k in set(want) & set(state) if tuple(state[k].shape) != want[k])
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {_names(missing)}")
    if extra:
        problems.append(f"unexpected {len(extra)} key(s): {_names(extra)}")
    if bad:
        problems.append("misshaped: " + _names([f"{k} {tuple(state[k].shape)} != {want[k]}" for k in bad]))
    if problems:
        raise UserError(f"checkpoint {path} does not match the PointPillars config: " + "; ".join(problems))
    nets.load_state_dict({**state, **{f"rpn.{k}": v for k, v in state.items() if not k.startswith("vfe.")}}, strict=True)
    return nets.eval()


def _names(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n})" if len(items) > n else "")


def random_checkpoint(path: str | Path, cfg: PointPillarsConfig, seed: int = 0) -> None:
    """Write a seeded random-init OpenPCDet-format checkpoint (UNTRAINED: for demos and tests only)."""
    g = torch.Generator().manual_seed(seed)
    nets = PointPillarsNets(cfg)
    state = {}
    for k, v in nets.state_dict().items():
        if k.startswith("rpn."):
            continue
        if k.endswith("num_batches_tracked"):
            state[k] = torch.zeros((), dtype=torch.int64)
        elif k.endswith("running_var"):
            state[k] = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("running_mean"):
            state[k] = 0.1 * torch.randn(v.shape, generator=g)
        elif v.ndim >= 2:
            fan_in = v[0].numel() if "deblocks" not in k else v.shape[0] * v.shape[2] * v.shape[3]
            state[k] = torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif k.endswith("norm.weight") or (k.endswith(".weight") and v.ndim == 1):  # BatchNorm scale
            state[k] = 1.0 + 0.1 * torch.randn(v.shape, generator=g)
        else:  # BatchNorm shift and head conv biases
            state[k] = 0.1 * torch.randn(v.shape, generator=g)
    # keep the untrained demo readable: boxes near anchor size, few scores above the threshold
    state["dense_head.conv_box.weight"] *= 0.02
    state["dense_head.conv_box.bias"].zero_()
    state["dense_head.conv_cls.weight"] *= 0.1
    state["dense_head.conv_cls.bias"].fill_(-3.0)
    torch.save({"model_state": state, "epoch": 0, "version": "pointpillars_trt-random-init"}, path)
