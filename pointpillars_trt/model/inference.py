"""Inference-time rewrites of the RPN: BatchNorm folded into the convolutions, ZeroPad into their padding, and the
three 1x1 heads fused into one conv. Exact up to float rounding; the training modules and the ONNX export are untouched.

Why: eager BatchNorm and ZeroPad are separate kernels over the 64x496x432 canvas and its feature maps; folded, the
RPN is only convolutions + ReLU, which cuDNN or Inductor (max-autotune) then fuse further (H200 FP16: 1.33 ms eager
-> 0.61 ms folded, shared/DESIGN.md).
"""
from __future__ import annotations

import torch
from torch import nn

from pointpillars_trt.model.networks import RPN


def _fold_bn(weight: torch.Tensor, bn: nn.BatchNorm2d, out_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight * s, beta - mean * s) with s = gamma / sqrt(var + eps), s applied along the output-channel dim."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [1] * weight.dim()
    shape[out_dim] = -1
    return weight * s.reshape(shape), bn.bias - bn.running_mean * s


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d, pad: int) -> nn.Conv2d:
    """Conv2d(no bias) + BN (+ a preceding ZeroPad2d(pad)) as one biased Conv2d."""
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=pad + conv.padding[0], bias=True)
    w, b = _fold_bn(conv.weight, bn, 0)
    out.weight.data.copy_(w)
    out.bias.data.copy_(b)
    return out


def _folded_deconv(deconv: nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.ConvTranspose2d:
    """ConvTranspose2d(no bias) + BN as one biased ConvTranspose2d (its weight is [Cin, Cout, k, k])."""
    out = nn.ConvTranspose2d(deconv.in_channels, deconv.out_channels, deconv.kernel_size, stride=deconv.stride,
                             bias=True)
    w, b = _fold_bn(deconv.weight, bn, 1)
    out.weight.data.copy_(w)
    out.bias.data.copy_(b)
    return out


def _fold_sequential(seq: nn.Sequential) -> nn.Sequential:
    """Walk [ZeroPad2d?] Conv BN ReLU ... and emit folded convs + ReLUs."""
    mods = list(seq)
    out: list[nn.Module] = []
    pad = 0
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.ZeroPad2d):
            p = m.padding
            if len(set(p)) != 1:
                raise ValueError(f"asymmetric padding {p} cannot be folded")
            pad = p[0]
        elif isinstance(m, nn.Conv2d) and isinstance(mods[i + 1], nn.BatchNorm2d):
            out.append(_folded_conv(m, mods[i + 1], pad))
            pad = 0
            i += 1
        elif isinstance(m, nn.ConvTranspose2d) and isinstance(mods[i + 1], nn.BatchNorm2d):
            out.append(_folded_deconv(m, mods[i + 1]))
            i += 1
        elif isinstance(m, nn.ReLU):
            out.append(nn.ReLU(inplace=True))
        else:
            raise ValueError(f"cannot fold {type(m).__name__} in {seq}")
        i += 1
    return nn.Sequential(*out)


class FoldedRPN(nn.Module):
    """The RPN with BN folded, pads folded and one fused 1x1 head conv; same inputs and NHWC outputs as RPN."""

    def __init__(self, rpn: RPN) -> None:
        super().__init__()
        bb, head = rpn.backbone_2d, rpn.dense_head
        self.blocks = nn.ModuleList(_fold_sequential(b) for b in bb.blocks)
        self.deblocks = nn.ModuleList(_fold_sequential(d) for d in bb.deblocks)
        convs = (head.conv_cls, head.conv_box, head.conv_dir_cls)
        self.splits = [c.out_channels for c in convs]
        self.head = nn.Conv2d(convs[0].in_channels, sum(self.splits), 1)
        self.head.weight.data.copy_(torch.cat([c.weight for c in convs]))
        self.head.bias.data.copy_(torch.cat([c.bias for c in convs]))

    def forward(self, bev: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, ups = bev, []
        for block, deblock in zip(self.blocks, self.deblocks):
            x = block(x)
            ups.append(deblock(x))
        y = self.head(torch.cat(ups, dim=1)).permute(0, 2, 3, 1)  # NHWC (free when the maps are channels-last)
        return tuple(t.contiguous() for t in torch.split(y, self.splits, dim=-1))


@torch.no_grad()
def fold_rpn(rpn: RPN) -> FoldedRPN:
    """An eval-mode FoldedRPN computing what ``rpn.eval()`` computes."""
    if rpn.training:
        raise ValueError("fold_rpn needs an eval-mode RPN (BatchNorm running statistics)")
    return FoldedRPN(rpn).eval()
