"""Training parts against independent computations: target assignment (shapely, brute force), the losses
(hand-computed values), augmentation (points stay in their boxes), encode = inverse of the project's decode,
the batched scatter, and a short overfit on one generated frame."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.stages.postprocess import decode_boxes
from pointpillars_trt.training.augment import augment, boxes_in_range, flip_x, rotate_z, scale
from pointpillars_trt.training.losses import add_sin_difference, detection_losses, sigmoid_focal_loss, smooth_l1
from pointpillars_trt.training.targets import anchor_classes, assign_targets, direction_bins, encode

CFG = PointPillarsConfig()
LN2 = math.log(2.0)


# ---------------------------------------------------------------- target assignment
def _shapely_nearest_iou(a: np.ndarray, b: np.ndarray) -> float:
    """BEV IoU of the two boxes each turned to its nearest multiple of 90 degrees (OpenPCDet's nearest BEV)."""
    from shapely import affinity
    from shapely.geometry import box as rect

    def poly(bx):
        r = rect(bx[0] - bx[3] / 2, bx[1] - bx[4] / 2, bx[0] + bx[3] / 2, bx[1] + bx[4] / 2)
        return affinity.rotate(r, round(bx[6] / (math.pi / 2)) * 90.0, origin=(bx[0], bx[1]))

    pa, pb = poly(a), poly(b)
    inter = pa.intersection(pb).area
    return inter / (pa.area + pb.area - inter)


def _brute_force_assign(anchors, acls, gts, glabels, cfg):
    """The assignment rules written out anchor by anchor, with shapely IoUs."""
    A = len(anchors)
    labels = np.full(A, -1)
    target_gt = np.full(A, -1)
    for c in range(cfg.num_classes):
        ai = [i for i in range(A) if acls[i] == c]
        gi = [g for g in range(len(gts)) if glabels[g] == c + 1]
        if not gi:
            labels[ai] = 0
            continue
        iou = np.array([[_shapely_nearest_iou(anchors[i], gts[g]) for g in gi] for i in ai])
        best_for_gt = iou.max(axis=0)
        for k, i in enumerate(ai):
            m = iou[k].max()
            forced = any(best_for_gt[j] > 0 and abs(iou[k, j] - best_for_gt[j]) < 1e-9 for j in range(len(gi)))
            if m >= cfg.matched_thresholds[c] or forced:
                labels[i] = c + 1
                target_gt[i] = gi[int(np.argmax(iou[k]))]
            elif m < cfg.unmatched_thresholds[c]:
                labels[i] = 0
    return labels, target_gt


def test_target_assignment_matches_brute_force():
    rng = np.random.default_rng(0)
    gts = np.array([[20.0, 3.0, -0.9, 4.1, 1.7, 1.5, 0.3],  # car, slightly rotated
                    [35.2, -10.0, -1.0, 3.8, 1.6, 1.5, 1.45],  # car, near 90 degrees
                    [12.0, 5.0, 0.3, 0.7, 0.6, 1.7, -2.8],  # pedestrian
                    [14.0, -6.0, 0.3, 1.8, 0.6, 1.7, 2.0],  # cyclist
                    [50.0, 20.0, -1.0, 0.2, 0.2, 1.5, 0.0]])  # a car far too small for any anchor: forced match only
    glabels = np.array([1, 1, 2, 3, 1])
    anchors_all = make_anchors(CFG)
    acls_all = anchor_classes(CFG)
    near = np.zeros(len(anchors_all), bool)
    for g in gts:
        near |= np.hypot(anchors_all[:, 0] - g[0], anchors_all[:, 1] - g[1]) < 3.0
    near |= rng.random(len(anchors_all)) < 0.0005  # and some far away background
    anchors, acls = anchors_all[near], acls_all[near]
    t = assign_targets(anchors, gts, glabels, CFG, acls)
    want_labels, want_gt = _brute_force_assign(anchors, acls, gts, glabels, CFG)
    np.testing.assert_array_equal(t.labels, want_labels)
    assert set(np.unique(t.labels)) == {-1, 0, 1, 2, 3}
    np.testing.assert_array_equal(t.pos_idx, np.flatnonzero(want_labels > 0))
    np.testing.assert_allclose(t.box_targets, encode(gts[want_gt[t.pos_idx]], anchors[t.pos_idx]), atol=1e-6)
    np.testing.assert_array_equal(t.dir_targets, direction_bins(gts[want_gt[t.pos_idx], 6], CFG))
    assert (want_gt[t.pos_idx] == 4).sum() >= 1  # the tiny car still gets its best anchor(s)
    # no boxes: every anchor is background
    empty = assign_targets(anchors, np.zeros((0, 7)), np.zeros(0, np.int64), CFG, acls)
    assert (empty.labels == 0).all() and len(empty.pos_idx) == 0


def test_anchor_classes_follow_the_anchor_layout():
    a = make_anchors(CFG)
    cls = anchor_classes(CFG)
    sizes = np.array([k.size for k in CFG.anchors], np.float32)
    np.testing.assert_array_equal(a[:, 3:6], sizes[cls])


# ---------------------------------------------------------------- encode / decode
def test_encode_is_the_exact_inverse_of_the_projects_decode():
    rng = np.random.default_rng(1)
    n = 2000
    anchors = make_anchors(CFG)[rng.integers(0, CFG.num_anchors, n)]
    boxes = np.column_stack([anchors[:, 0] + rng.normal(0, 1, n), anchors[:, 1] + rng.normal(0, 1, n),
                             anchors[:, 2] + rng.normal(0, 0.3, n), anchors[:, 3:6] * rng.uniform(0.5, 2, (n, 3)),
                             rng.uniform(-2 * np.pi, 2 * np.pi, n)])
    deltas = encode(boxes, anchors)
    bins = direction_bins(boxes[:, 6], CFG)
    dir_logits = np.eye(CFG.num_dir_bins, dtype=np.float32)[bins]  # the classifier agreeing with the target bin
    back = decode_boxes(deltas, anchors, dir_logits, CFG)
    np.testing.assert_allclose(back[:, :6], boxes[:, :6], rtol=1e-5, atol=2e-5)
    dyaw = (back[:, 6] - boxes[:, 6] + np.pi) % (2 * np.pi) - np.pi  # equal as angles (the decode limits the period)
    np.testing.assert_allclose(dyaw, 0, atol=2e-5)


# ---------------------------------------------------------------- losses
def test_focal_loss_hand_values():
    x = torch.tensor([0.0, 0.0, 2.0, -1.0])
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    s2, s_1 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))
    want = [0.25 * 0.25 * LN2,  # alpha 0.25, (1 - p)^2 = 0.25, BCE log 2
            0.75 * 0.25 * LN2,
            0.25 * (1 - s2) ** 2 * math.log(1 + math.exp(-2)),
            0.75 * s_1 ** 2 * math.log(1 + math.exp(-1))]
    np.testing.assert_allclose(sigmoid_focal_loss(x, t, 0.25, 2.0).numpy(), want, rtol=1e-6)


def test_smooth_l1_and_sin_difference_hand_values():
    d = torch.tensor([0.05, -0.05, 1.0, -2.0])
    np.testing.assert_allclose(smooth_l1(d, 1 / 9).numpy(), [0.5 * 0.0025 * 9, 0.5 * 0.0025 * 9, 1 - 0.5 / 9, 2 - 0.5 / 9],
                               rtol=1e-6)
    pred = torch.tensor([[0.0] * 6 + [0.3]])
    for tgt_yaw, diff in [(0.3, 0.0), (0.3 + math.pi, 0.0), (0.1, math.sin(0.2))]:
        p, t = add_sin_difference(pred, torch.tensor([[0.0] * 6 + [tgt_yaw]]))
        assert float(p[0, 6] - t[0, 6]) == pytest.approx(diff, abs=1e-6)


def test_detection_losses_hand_values():
    # one frame, 4 anchors: a Car positive, two background, one ignored; all logits 0
    A, C = 4, CFG.num_classes
    cls = torch.zeros(1, A, C)
    box = torch.zeros(1, A, 7)
    dirs = torch.zeros(1, A, 2)
    labels = torch.tensor([[1, 0, -1, 0]], dtype=torch.int8)
    pos_b, pos_i = torch.tensor([0]), torch.tensor([0])
    box_t = torch.tensor([[0.05, 0, 0, 0, 0, 0, 0]])
    dir_t = torch.tensor([1])
    out = detection_losses(cls, box, dirs, labels, pos_b, pos_i, box_t, dir_t, CFG)
    # positive: its own class 0.25*0.25*ln2, the two others 0.75*0.25*ln2; each negative 3 * 0.75*0.25*ln2; / 1 positive
    assert float(out["cls"]) == pytest.approx((0.0625 + 2 * 0.1875 + 2 * 3 * 0.1875) * LN2, rel=1e-6)
    assert float(out["loc"]) == pytest.approx(2.0 * 0.5 * 0.05 ** 2 * 9, rel=1e-5)  # loc weight 2
    assert float(out["dir"]) == pytest.approx(0.2 * LN2, rel=1e-6)  # dir weight 0.2, CE of equal logits
    assert float(out["loss"]) == pytest.approx(float(out["cls"] + out["loc"] + out["dir"]))
    # two frames, the second with 2 positives: each frame normalised by its own positives, summed, / batch
    cls2 = torch.zeros(2, A, C)
    labels2 = torch.tensor([[1, 0, -1, 0], [1, 1, 0, 0]], dtype=torch.int8)
    out2 = detection_losses(cls2, torch.zeros(2, A, 7), torch.zeros(2, A, 2), labels2, torch.tensor([0, 1, 1]),
                            torch.tensor([0, 0, 1]), box_t.repeat(3, 1), torch.tensor([1, 1, 1]), CFG)
    f0 = (0.0625 + 2 * 0.1875 + 2 * 3 * 0.1875) * LN2
    f1 = (2 * (0.0625 + 2 * 0.1875) + 2 * 3 * 0.1875) * LN2 / 2
    assert float(out2["cls"]) == pytest.approx((f0 + f1) / 2, rel=1e-6)
    assert float(out2["loc"]) == pytest.approx(2.0 * 0.5 * 0.05 ** 2 * 9, rel=1e-5)


# ---------------------------------------------------------------- augmentation
def _inside(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    c, s = math.cos(box[6]), math.sin(box[6])
    dx, dy = points[:, 0] - box[0], points[:, 1] - box[1]
    lx, ly = dx * c + dy * s, -dx * s + dy * c
    return (np.abs(lx) <= box[3] / 2 + 1e-4) & (np.abs(ly) <= box[4] / 2 + 1e-4) & (np.abs(points[:, 2] - box[2]) <= box[5] / 2 + 1e-4)


def test_augmentation_keeps_points_in_their_boxes():
    rng = np.random.default_rng(2)
    boxes = np.array([[20.0, 5.0, -0.8, 4.0, 1.7, 1.5, 0.7], [10.0, -4.0, 0.2, 0.8, 0.6, 1.7, -2.0]])
    pts = []
    for b in boxes:  # points strictly inside each box, built in its local frame
        loc = rng.uniform(-0.45, 0.45, (200, 3)) * b[3:6]
        c, s = math.cos(b[6]), math.sin(b[6])
        pts.append(np.column_stack([b[0] + loc[:, 0] * c - loc[:, 1] * s, b[1] + loc[:, 0] * s + loc[:, 1] * c,
                                    b[2] + loc[:, 2], rng.random(200)]))
    outside = np.array([[60.0, 30.0, 0.0, 0.5], [5.0, -30.0, -1.0, 0.5]])
    points = np.concatenate(pts + [outside]).astype(np.float32)
    owner = np.repeat([0, 1, -1], [200, 200, 2])
    for name, (p2, b2) in {"flip": flip_x(points, boxes), "rotate": rotate_z(points, boxes, 0.6),
                           "scale": scale(points, boxes, 1.05),
                           **{f"random{k}": augment(points, boxes, np.random.default_rng(k), CFG) for k in range(5)}}.items():
        assert p2.shape == points.shape and p2.dtype == points.dtype
        np.testing.assert_array_equal(p2[:, 3], points[:, 3])  # intensity untouched
        for k, b in enumerate(b2):
            np.testing.assert_array_equal(_inside(p2, b), owner == k, err_msg=name)
    assert boxes_in_range(boxes, CFG).all()
    far = boxes.copy()
    far[:, 0] = -10.0
    assert not boxes_in_range(far, CFG).any()


# ---------------------------------------------------------------- scatter and a short overfit
def test_batched_scatter_matches_the_cpu_scatter():
    from pointpillars_trt.stages.scatter import scatter_pillars
    from pointpillars_trt.training.trainer import scatter_to_canvas

    cfg = CFG
    nx, ny, _ = cfg.grid_size
    rng = np.random.default_rng(3)
    cells = rng.choice(nx * ny * 2, 300, replace=False)
    coords = np.column_stack([cells // (nx * ny), np.zeros(300), (cells % (nx * ny)) // nx, cells % nx]).astype(np.int32)
    feats = rng.normal(size=(300, 64)).astype(np.float32)
    want = np.zeros((2, 64, ny, nx), np.float32)
    scatter_pillars(feats, coords, 300, want)
    got = scatter_to_canvas(torch.from_numpy(feats), torch.from_numpy(coords).long(), 2, cfg)
    np.testing.assert_array_equal(got.numpy(), want)


def test_loss_falls_when_overfitting_one_frame():
    """20 steps (about 2 s each on 2 CPU cores) on one generated frame, the real config, no augmentation."""
    from pointpillars_trt.model.networks import PointPillarsNets
    from pointpillars_trt.training.data import TrainingFrames, collate
    from pointpillars_trt.training.trainer import forward, init_head, make_optimizer

    torch.manual_seed(0)
    batch = collate([TrainingFrames(CFG, 1, seed=5, train=False)[0]])
    assert int((batch["labels"] > 0).sum()) > 10
    nets = PointPillarsNets(CFG)
    init_head(nets)
    nets.train()
    steps = 20
    opt, sched = make_optimizer(nets, CFG, CFG.lr, steps, None, 0)
    hist = []
    for _ in range(steps):
        cls, box, dirs = forward(nets, batch)
        loss = detection_losses(cls, box, dirs, batch["labels"], batch["pos_batch"], batch["pos_idx"],
                                batch["box_targets"], batch["dir_targets"], CFG)
        opt.zero_grad()
        loss["loss"].backward()
        opt.step()
        sched.step()
        hist.append({k: float(v.detach()) for k, v in loss.items()})
    first, last = hist[0], hist[-1]
    print("overfit loss:", [round(h["loss"], 3) for h in hist])
    assert last["loss"] < 0.3 * first["loss"]
    assert last["cls"] < first["cls"] and last["loc"] < first["loc"] and last["dir"] < first["dir"]


def test_training_fields_come_from_the_yaml_and_stay_out_of_the_model_digest(tmp_path):
    import dataclasses

    from pointpillars_trt.model.config import TRAINING_FIELDS

    src = (Path(__file__).resolve().parents[1] / "pointpillars_trt/model/configs/pointpillar.yaml").read_text()
    (tmp_path / "same.yaml").write_text(src)
    assert PointPillarsConfig.from_openpcdet_yaml(tmp_path / "same.yaml") == CFG
    y = tmp_path / "pp.yaml"
    y.write_text(src.replace("'matched_threshold': 0.6", "'matched_threshold': 0.65").replace("LR: 0.003", "LR: 0.002"))
    cfg = PointPillarsConfig.from_openpcdet_yaml(y)
    assert cfg.matched_thresholds == (0.65, 0.5, 0.5) and cfg.unmatched_thresholds == (0.45, 0.35, 0.35)
    assert cfg.lr == 0.002 and cfg.max_pillars_train == 16000 and cfg.loc_weight == 2.0
    assert cfg.digest() == CFG.digest() and "lr" in TRAINING_FIELDS and "max_pillars" not in TRAINING_FIELDS
    assert dataclasses.replace(CFG, max_det=100).digest() != CFG.digest()
