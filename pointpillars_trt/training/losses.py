"""OpenPCDet's AnchorHeadTemplate losses: sigmoid focal (classes), smooth-L1 with the sin difference (boxes),
cross-entropy (direction bins); each normalised by the frame's positive count, summed, divided by the batch size."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pointpillars_trt.model.config import PointPillarsConfig


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Element-wise focal loss of logits against {0,1} targets (OpenPCDet's SigmoidFocalClassificationLoss, unweighted)."""
    p = torch.sigmoid(logits)
    alpha_w = targets * alpha + (1 - targets) * (1 - alpha)
    pt = targets * (1 - p) + (1 - targets) * p
    bce = torch.clamp(logits, min=0) - logits * targets + torch.log1p(torch.exp(-torch.abs(logits)))
    return alpha_w * pt.pow(gamma) * bce


def smooth_l1(diff: torch.Tensor, beta: float) -> torch.Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (OpenPCDet's WeightedSmoothL1Loss, element-wise)."""
    n = torch.abs(diff)
    return torch.where(n < beta, 0.5 * n * n / beta, n - 0.5 * beta)


def add_sin_difference(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the yaw column by sin(a)cos(b) and cos(a)sin(b): their difference is sin(a - b), blind to pi flips."""
    a, b = pred[..., 6:7], target[..., 6:7]
    return (torch.cat([pred[..., :6], torch.sin(a) * torch.cos(b)], dim=-1),
            torch.cat([target[..., :6], torch.cos(a) * torch.sin(b)], dim=-1))


def detection_losses(cls_preds: torch.Tensor, box_preds: torch.Tensor, dir_preds: torch.Tensor, labels: torch.Tensor,
                     pos_batch: torch.Tensor, pos_idx: torch.Tensor, box_targets: torch.Tensor,
                     dir_targets: torch.Tensor, cfg: PointPillarsConfig) -> dict[str, torch.Tensor]:
    """Weighted cls / loc / dir losses and their sum ("loss") of a batch.

    cls_preds [B, A, C], box_preds [B, A, 7], dir_preds [B, A, bins] (head outputs reshaped per anchor);
    labels [B, A] (-1 ignore, 0 background, k class); positives as (pos_batch, pos_idx) [K] with their
    box_targets [K, 7] and dir_targets [K].
    """
    B = cls_preds.shape[0]
    labels = labels.long()
    positives = labels > 0
    norm = torch.clamp(positives.sum(dim=1, keepdim=True).float(), min=1.0)  # [B, 1]
    cls_w = ((labels >= 0).float()) / norm  # positives and negatives weigh 1, ignored 0
    onehot = F.one_hot(torch.clamp(labels, min=0), cfg.num_classes + 1)[..., 1:].to(cls_preds.dtype)
    cls_loss = (sigmoid_focal_loss(cls_preds, onehot, cfg.focal_alpha, cfg.focal_gamma) * cls_w[..., None]).sum() / B

    pos_w = 1.0 / norm[pos_batch, 0]  # [K]
    pred, tgt = add_sin_difference(box_preds[pos_batch, pos_idx], box_targets)
    code_w = torch.as_tensor(cfg.code_weights, dtype=pred.dtype, device=pred.device)
    loc_loss = (smooth_l1((pred - tgt) * code_w, cfg.smooth_l1_beta) * pos_w[:, None]).sum() / B

    ce = F.cross_entropy(dir_preds[pos_batch, pos_idx], dir_targets, reduction="none")
    dir_loss = (ce * pos_w).sum() / B

    out = {"cls": cls_loss * cfg.cls_weight, "loc": loc_loss * cfg.loc_weight, "dir": dir_loss * cfg.dir_weight}
    out["loss"] = out["cls"] + out["loc"] + out["dir"]
    return out
