"""An independent PointPillars forward for tests: plain torch ops on the raw state_dict, no Numba, no ONNX,
no project stage code. Voxelization is vectorised (unique / scatter_reduce / stable sort) instead of a
point loop, the networks are torch.nn.functional calls on the checkpoint's tensors, the rotated IoU of
NMS comes from shapely. Formulas follow OpenPCDet (pointpillar.yaml) as DESIGN.md spells them out.
"""
from __future__ import annotations

import math

import numpy as np
import shapely
import torch
import torch.nn.functional as F

from pointpillars_trt.model.config import PointPillarsConfig


def voxelize(points: np.ndarray, cfg: PointPillarsConfig):
    """-> features [P,32,10] float32, coords [P,4] int (b,z,y,x), npoints [P]."""
    pts = torch.from_numpy(np.ascontiguousarray(points, np.float32))
    r = torch.tensor(cfg.point_cloud_range, dtype=torch.float32)
    v = torch.tensor(cfg.voxel_size, dtype=torch.float32)
    nx, ny, nz = cfg.grid_size
    m = (pts[:, 0] >= r[0]) & (pts[:, 0] <= r[3]) & (pts[:, 1] >= r[1]) & (pts[:, 1] <= r[4])
    pts = pts[m]
    cell = torch.floor((pts[:, :3] - r[:3]) / v)
    ok = (cell >= 0).all(1) & (cell[:, 0] < nx) & (cell[:, 1] < ny) & (cell[:, 2] < nz)
    pts, cell = pts[ok], cell[ok].long()
    n = len(pts)
    lin = (cell[:, 2] * ny + cell[:, 1]) * nx + cell[:, 0]
    uniq, inv = torch.unique(lin, return_inverse=True)
    first = torch.full((len(uniq),), n, dtype=torch.long).scatter_reduce(0, inv, torch.arange(n), "amin")
    number = torch.empty_like(first)
    number[torch.argsort(first)] = torch.arange(len(first))
    pid = number[inv]
    order = torch.sort(pid, stable=True).indices
    counts = torch.bincount(pid, minlength=len(uniq))
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(pid)
    rank[order] = torch.arange(n) - starts[pid[order]]
    keep = (pid < cfg.max_pillars) & (rank < cfg.max_points_per_pillar)
    P = min(len(uniq), cfg.max_pillars)
    raw = torch.zeros(P, cfg.max_points_per_pillar, 4)
    raw[pid[keep], rank[keep]] = pts[keep, :4]
    npoints = torch.bincount(pid[keep], minlength=P)[:P]
    cfirst = cell[first[torch.argsort(first)][:P]]  # the cell of each pillar, by pillar number
    coords = torch.stack([torch.zeros(P, dtype=torch.long), cfirst[:, 2], cfirst[:, 1], cfirst[:, 0]], 1)
    # PillarVFE decoration
    mask = (torch.arange(cfg.max_points_per_pillar)[None, :] < npoints[:, None]).float()[..., None]
    # float32 sum in slot order, vectorised over pillars (the summation order is part of the contract:
    # this random-init model turns a 1-ulp feature change into ~2e-4 at the head outputs)
    acc = torch.zeros(P, 3)
    for k in range(cfg.max_points_per_pillar):
        acc = acc + raw[:, k, :3]
    mean = (acc / npoints.float().view(-1, 1))[:, None, :]
    f_cluster = raw[:, :, :3] - mean
    vx, vy, vz = cfg.voxel_size
    centre = torch.stack([coords[:, 3].float() * vx + (vx / 2 + cfg.point_cloud_range[0]),
                          coords[:, 2].float() * vy + (vy / 2 + cfg.point_cloud_range[1]),
                          coords[:, 1].float() * vz + (vz / 2 + cfg.point_cloud_range[2])], 1)
    f_center = raw[:, :, :3] - centre[:, None, :]
    feats = torch.cat([raw, f_cluster, f_center], dim=-1) * mask
    return feats, coords, npoints


def _bn(x, sd, prefix, eps):
    return F.batch_norm(x, sd[prefix + ".running_mean"], sd[prefix + ".running_var"], sd[prefix + ".weight"],
                        sd[prefix + ".bias"], False, 0.0, eps)


def pfn(feats, sd, cfg):
    x = F.linear(feats, sd["vfe.pfn_layers.0.linear.weight"])
    x = _bn(x.permute(0, 2, 1), sd, "vfe.pfn_layers.0.norm", cfg.bn_eps).permute(0, 2, 1)
    return F.relu(x).max(dim=1).values


def scatter(pf, coords, cfg):
    nx, ny, _ = cfg.grid_size
    canvas = torch.zeros(cfg.pfn_filters, ny * nx)
    canvas[:, coords[:, 2] * nx + coords[:, 3]] = pf.t()
    return canvas.view(1, cfg.pfn_filters, ny, nx)


def rpn(x, sd, cfg):
    ups = []
    for i, n in enumerate(cfg.layer_nums):
        p = f"backbone_2d.blocks.{i}"
        x = F.relu(_bn(F.conv2d(F.pad(x, (1, 1, 1, 1)), sd[f"{p}.1.weight"], stride=cfg.layer_strides[i]), sd, f"{p}.2", cfg.bn_eps))
        for k in range(n):
            x = F.relu(_bn(F.conv2d(x, sd[f"{p}.{4 + 3 * k}.weight"], padding=1), sd, f"{p}.{5 + 3 * k}", cfg.bn_eps))
        d = f"backbone_2d.deblocks.{i}"
        s = cfg.upsample_strides[i]
        ups.append(F.relu(_bn(F.conv_transpose2d(x, sd[f"{d}.0.weight"], stride=s), sd, f"{d}.1", cfg.bn_eps)))
    x = torch.cat(ups, 1)
    outs = [F.conv2d(x, sd[f"dense_head.{n}.weight"], sd[f"dense_head.{n}.bias"]) for n in ("conv_cls", "conv_box", "conv_dir_cls")]
    return [o.permute(0, 2, 3, 1).contiguous() for o in outs]


def anchors(cfg):
    fx, fy = cfg.feature_map_size
    r = cfg.point_cloud_range
    xs = torch.arange(r[0], r[3] + 1e-5, step=(r[3] - r[0]) / (fx - 1), dtype=torch.float32)
    ys = torch.arange(r[1], r[4] + 1e-5, step=(r[4] - r[1]) / (fy - 1), dtype=torch.float32)
    assert len(xs) == fx and len(ys) == fy
    per_class = []
    for a in cfg.anchors:
        rot = torch.tensor(a.rotations, dtype=torch.float32)
        yy, xx, rr = torch.meshgrid(ys, xs, rot, indexing="ij")  # [fy, fx, nrot]
        t = torch.zeros(*yy.shape, 7)
        t[..., 0], t[..., 1], t[..., 6] = xx, yy, rr
        t[..., 2] = a.bottom_z + a.size[2] / 2
        t[..., 3], t[..., 4], t[..., 5] = a.size
        per_class.append(t[:, :, None])  # [fy, fx, 1, nrot, 7]
    return torch.cat(per_class, dim=2).reshape(-1, 7)


def decode(cls, box, dirc, anc, cfg):
    ncls = cfg.num_classes
    sc = torch.sigmoid(cls.reshape(-1, ncls))
    scores, labels = sc.max(dim=1)
    t = box.reshape(-1, 7)
    d = torch.sqrt(anc[:, 3] ** 2 + anc[:, 4] ** 2)
    out = torch.stack([t[:, 0] * d + anc[:, 0], t[:, 1] * d + anc[:, 1], t[:, 2] * anc[:, 5] + anc[:, 2],
                       torch.exp(t[:, 3]) * anc[:, 3], torch.exp(t[:, 4]) * anc[:, 4], torch.exp(t[:, 5]) * anc[:, 5],
                       t[:, 6] + anc[:, 6]], 1)
    bins = dirc.reshape(-1, cfg.num_dir_bins).argmax(1)
    period = 2 * math.pi / cfg.num_dir_bins
    v = out[:, 6] - cfg.dir_offset
    rot = v - torch.floor(v / period + cfg.dir_limit_offset) * period
    out[:, 6] = rot + cfg.dir_offset + period * bins.to(out.dtype)
    return out, scores, labels + 1


def _polygon(b):
    c, s = math.cos(b[6]), math.sin(b[6])
    pts = [(sx * b[3] / 2, sy * b[4] / 2) for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return shapely.Polygon([(b[0] + x * c - y * s, b[1] + x * s + y * c) for x, y in pts])


def nms(boxes: np.ndarray, thresh: float, max_keep: int) -> list[int]:
    """Greedy NMS with shapely polygons (boxes sorted by score)."""
    polys = [_polygon(b) for b in boxes.astype(np.float64)]
    areas = boxes[:, 3].astype(np.float64) * boxes[:, 4]
    keep: list[int] = []
    for i in range(len(boxes)):
        if len(keep) >= max_keep:
            break
        if keep:
            k = np.array(keep)
            inter = shapely.area(shapely.intersection(polys[i], np.array([polys[j] for j in k], dtype=object)))
            iou = inter / np.maximum(areas[i] + areas[k] - inter, 1e-8)
            if (iou > thresh).any():
                continue
        keep.append(i)
    return keep


def forward(points: np.ndarray, state_dict: dict, cfg: PointPillarsConfig) -> dict:
    """The whole reference pipeline; returns every intermediate and the final detections as numpy."""
    sd = {k: v.float() for k, v in state_dict.items() if v.is_floating_point()}
    with torch.no_grad():
        feats, coords, npoints = voxelize(points, cfg)
        pf = pfn(feats, sd, cfg)
        canvas = scatter(pf, coords, cfg)
        cls, box, dirc = rpn(canvas, sd, cfg)
        dec, scores, labels = decode(cls, box, dirc, anchors(cfg), cfg)
    cand = torch.nonzero(scores >= cfg.score_thresh).squeeze(1)
    order = torch.sort(scores[cand], descending=True, stable=True).indices[: cfg.nms_pre]
    idx = cand[order]
    keep = nms(dec[idx].numpy(), cfg.nms_thresh, cfg.max_det) if len(idx) else []
    sel = idx[keep] if len(idx) else idx
    return {"features": feats.numpy(), "coords": coords.numpy().astype(np.int32), "npoints": npoints.numpy().astype(np.int32),
            "pillar_features": pf.numpy(), "cls": cls[0].numpy(), "box": box[0].numpy(), "dir": dirc[0].numpy(),
            "boxes": dec[sel].numpy(), "scores": scores[sel].numpy(), "labels": labels[sel].numpy().astype(np.int32)}
