"""AP of the networks on the held-apart validation frames (make-sample seed cfg.val_seed), with the project's
own CPU post-processing and KITTI evaluator (OpenPCDet's protocol): the numbers `eval --data` gives on them."""
from __future__ import annotations


import torch

from pointpillars_trt import log
from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.evaluation import EvalResult, evaluate
from pointpillars_trt.io.kitti import detections_to_kitti
from pointpillars_trt.model.networks import PointPillarsNets
from pointpillars_trt.stages.postprocess import postprocess
from pointpillars_trt.sample.dataset import frame_seed
from pointpillars_trt.sample.scene import generate_scene
from pointpillars_trt.stages.voxelize import Voxelizer
from pointpillars_trt.training.trainer import scatter_to_canvas


@torch.no_grad()
def validate(nets: PointPillarsNets, cfg: PointPillarsConfig, n_frames: int, device: torch.device) -> EvalResult:
    """Detect on validation frames 0..n_frames-1 with the eval-mode networks and evaluate against their labels."""

    was_training = nets.training
    nets.eval()
    anchors = make_anchors(cfg)
    vox = Voxelizer(cfg)
    gts, dts = [], []
    for i in log.progress(range(n_frames), desc="validate", unit="frame", leave=False):
        sc = generate_scene(frame_seed(cfg.val_seed, i), cfg)
        p = vox(sc.points).num_pillars
        gts.append(sc.kitti_objects())
        feats = nets.vfe(torch.from_numpy(vox.features[:p]).to(device))
        coords = torch.from_numpy(vox.coords[:p]).long().to(device)
        cls, box, dirs = (t[0].float().cpu().numpy() for t in nets.rpn(scatter_to_canvas(feats, coords, 1, cfg)))
        d = postprocess(cls, box, dirs, anchors, cfg)
        dts.append(detections_to_kitti(d.boxes, d.scores, d.labels, cfg.class_names, sc.calib, sc.image_shape))
    nets.train(was_training)
    return evaluate(gts, dts, protocol="openpcdet")
