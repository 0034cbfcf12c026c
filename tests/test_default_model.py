"""The shipped default model (data/models, trained by `train` on the project's synthetic scenes): what it is, that
every command uses it when no model is given, and that it detects: AP on held-apart validation frames, measured with
the project's evaluator through a path other than training's own validation (ONNX export + onnxruntime)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from pointpillars_trt import Detector
from pointpillars_trt.model import store

SAMPLE = REPO / "data/sample/training"


@pytest.fixture(scope="module")
def default_detector():
    with Detector.default(device="cpu", precision="fp32") as det:
        yield det


def test_the_default_checkpoint_is_the_cross_validated_fine_tune_in_fp16_storage(cfg):
    """The checkpoint is the `top-all` model of bench/results/2026-12-06_h100_crossval.log (call 1): the `top`
    fine-tune of 2026-12-06_h100_finetune.log (itself the model of 2026-12-06_h100_train.log fine-tuned with taller
    car boxes) fine-tuned again on all 11 real frames; its iteration, options, real frames and losses
    (2026-12-06_h100_ft-top-all.jsonl) are the record's, and the record's folds trained on the splits' files."""
    from pointpillars_trt.model.networks import load_checkpoint

    assert store.DEFAULT_CHECKPOINT.resolve() == (REPO / "data/models/pointpillars_synthetic.pth").resolve()
    ck = torch.load(store.DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)
    log = (REPO / "bench/results/2026-12-06_h100_crossval.log").read_text()
    call1 = log.split("## call 1:")[1].split("## call 2:")[0]
    final = call1.split("\n== top-all: ")[1]  # the final fine-tune's command and output
    last = re.search(r"wrote /tmp/ft/top-all.pth: iteration (\d+) of \1", final)
    assert last and ck["it"] == int(last.group(1)) and ck["train_args"]["seed"] != cfg.val_seed
    args = ck["train_args"]
    assert f"--init {args['init']} " in final and args["init"] == "data/models/pointpillars_synthetic.pth"
    assert f"--synthetic-car-top {args['synthetic_car_top']:g}" in final and args["synthetic_car_top"] == 0.04
    assert f"--lr {args['lr']:g} --frames {args['frames']} --epochs {args['epochs']} " in final
    assert "--real-split data/splits/kitti_all.txt " in final
    real = re.search(r"real frames ([\d ]+) \(", final).group(1).split()
    assert args["real_ids"] == real == Path(REPO / "data/splits/kitti_all.txt").read_text().split()
    for k in range(3):  # each fold trained on its split file's frames and scored the others
        fold = call1.split(f"\n== top-all-cv{k}: ")[1].split("\n== top-all")[0]
        ids = Path(REPO / f"data/splits/kitti_cv{k}_train.txt").read_text().split()
        assert re.search(r"real frames ([\d ]+) \(", fold).group(1).split() == ids
        assert f"--split data/splits/kitti_cv{k}_eval.txt" in fold
    losses = (REPO / "bench/results/2026-12-06_h100_ft-top-all.jsonl").read_text().splitlines()
    assert '"what": "ft-top-all"' in losses[0] and json.loads(losses[-1])["it"] == ck["it"]
    top = (REPO / "bench/results/2026-12-06_h100_finetune.log").read_text()  # the model it started from
    assert re.search(r"wrote /tmp/ft/top.pth: iteration (\d+) of \1", top) and "real frames 000008 000134" in top
    base = (REPO / "bench/results/2026-12-06_h100_train.log").read_text()  # and the one that started from
    assert re.search(r"wrote \S+: iteration (\d+) of \1", base) and "real frames 000008 000134" in base
    floats = [v for v in ck["model_state"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    nets = load_checkpoint(store.DEFAULT_CHECKPOINT, cfg)  # loads upcast into the FP32 networks
    assert all(p.dtype == torch.float32 for p in nets.parameters())
    w = ck["model_state"]["backbone_2d.blocks.0.1.weight"]
    assert torch.equal(nets.state_dict()["backbone_2d.blocks.0.1.weight"], w.float())


def test_default_model_detects_the_validation_frames(default_detector, cfg):
    """50 held-apart validation frames (make-sample --seed cfg.val_seed): 3D AP R40 at moderate above the model's
    targets (Car >= 85, Pedestrian and Cyclist >= 60; on 300 such frames the fine-tune's record,
    bench/results/2026-12-06_h100_crossval.log, has 99.6 / 90.4 / 99.6) with the KITTI evaluator, OpenPCDet protocol. Fewer frames do
    not do: with a handful of moderate cyclists KITTI's AP is a coarse step function (the same detections score
    Cyclist 27.5 on 12 frames, 94.9 on 50, 99.8 on 300)."""
    from pointpillars_trt.evaluation import evaluate
    from pointpillars_trt.io.kitti import detections_to_kitti
    from pointpillars_trt.sample.dataset import frame_seed
    from pointpillars_trt.sample.scene import generate_scene

    assert not default_detector.untrained
    gts, dts = [], []
    for i in range(50):
        sc = generate_scene(frame_seed(cfg.val_seed, i), cfg)
        d = default_detector(sc.points)
        gts.append(sc.kitti_objects())
        dts.append(detections_to_kitti(d.boxes, d.scores, d.labels, cfg.class_names, sc.calib, sc.image_shape))
    res = evaluate(gts, dts, protocol="openpcdet")
    ap = {c: res.get("3d", c, "moderate", "R40") for c in cfg.class_names}
    assert ap["Car"] >= 85 and ap["Pedestrian"] >= 60 and ap["Cyclist"] >= 60, ap


def test_commands_use_the_default_model_when_none_is_given(tmp_path):
    """`infer` with no model option runs the trained model (no UNTRAINED warning) and finds the sample scene's cars."""
    from pointpillars_trt.io.kitti import read_labels

    out = tmp_path / "res"
    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", "infer", SAMPLE / "velodyne/000000.bin", "--out", out],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "UNTRAINED" not in r.stderr and "pointpillars_synthetic" in r.stderr + r.stdout
    dets = json.loads((out / "000000.json").read_text())["detections"]
    cars = sum(1 for d in dets if d["label"] == "Car" and d["score"] >= 0.5)
    gt_cars = int(np.sum(read_labels(SAMPLE / "label_2/000000.txt").name == "Car"))
    assert gt_cars > 0 and abs(cars - gt_cars) <= max(2, gt_cars // 4), (cars, gt_cars)


def test_view_no_detect_refuses_a_model():
    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", "view", SAMPLE / "velodyne/000000.bin", "--no-detect",
                        "--random-init", "--bev", "x.png"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--no-detect runs no model" in r.stderr and "Traceback" not in r.stderr
