"""Networks, checkpoint loading and ONNX export: key checking, onnx.checker, manifest, ORT vs torch, FP16 vs FP32."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from conftest import ALL_SCANS, CHECKPOINT, make_cpu_pipeline
from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.backends.onnxruntime_runner import OnnxRuntimeRunner
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import read_bin
from pointpillars_trt.model.hashing import file_sha256
from pointpillars_trt.model.networks import load_checkpoint


def test_checkpoint_keys_match_openpcdet_list(cfg):
    """Every key of ../shared/checkpoints/KEYS.txt is a network parameter, with that shape."""
    keys = {}
    for line in (CHECKPOINT.parent / "KEYS.txt").read_text().splitlines():
        if line and not line.startswith("#") and not line.startswith("global_step"):
            name, shape, _ = line.split("\t")
            keys[name] = tuple(json.loads(shape))
    nets = load_checkpoint(CHECKPOINT, cfg)
    assert nets.state_dict_keys() == keys


def test_checkpoint_extra_key_refused(tmp_path, cfg):
    ck = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    ck["model_state"]["dense_head.conv_extra.weight"] = torch.zeros(1)
    torch.save(ck, tmp_path / "x.pth")
    with pytest.raises(UserError, match="unexpected 1 key"):
        load_checkpoint(tmp_path / "x.pth", cfg)


def test_onnx_files_and_manifest(onnx_dir, cfg):
    m = json.loads((onnx_dir / tn.MANIFEST).read_text())
    assert m["checkpoint"]["sha256"] == file_sha256(CHECKPOINT)
    assert m["config"] == cfg.inference_dict()
    for net in tn.NETWORKS:
        for prec in tn.PRECISIONS:
            path = onnx_dir / tn.onnx_filename(net, prec)
            model = onnx.load(str(path))
            onnx.checker.check_model(model, full_check=True)
            assert m["files"][path.name]["sha256"] == file_sha256(path)
            ins = [i.name for i in model.graph.input]
            outs = [o.name for o in model.graph.output]
            assert ins == list(m["io"][net]["inputs"]) and outs == list(m["io"][net]["outputs"])
            for vi in list(model.graph.input) + list(model.graph.output):  # FP32 edges in both precisions
                assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            inits = {np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)) for t in model.graph.initializer}
            assert (np.dtype(np.float16) in inits) == (prec == "fp16")
    assert m["io"]["pfn"]["inputs"]["pillars"]["shape"] == ["P", 32, 10]
    assert m["io"]["rpn"]["outputs"]["box_preds"]["shape"] == ["B", 248, 216, 42]


def test_dynamic_shapes_run_in_onnxruntime(onnx_dir, cfg):
    """PFN with 1 and 7000 pillars, RPN with batch 2 whose items are the two batch-1 results."""
    nets = load_checkpoint(CHECKPOINT, cfg)
    rng = np.random.default_rng(0)
    with OnnxRuntimeRunner(onnx_dir / "pfn_fp32.onnx") as pfn:
        for p in (1, 7000):
            x = rng.normal(size=(p, 32, 10)).astype(np.float32)
            out = np.zeros((p, 64), np.float32)
            pfn.infer({"pillars": x}, {"pillar_features": out})
            with torch.no_grad():
                np.testing.assert_allclose(out, nets.vfe(torch.from_numpy(x)).numpy(), atol=1e-4)
    bev = np.zeros((2, 64, 496, 432), np.float32)
    bev[:, :, 100:140, 200:260] = rng.random((2, 64, 40, 60), dtype=np.float32)
    with OnnxRuntimeRunner(onnx_dir / "rpn_fp32.onnx") as rpn:
        outs = {n: np.zeros((2, 248, 216, c), np.float32) for n, c in zip(tn.RPN_OUTPUTS, (18, 42, 12))}
        rpn.infer({"bev": bev}, outs)
        one = {n: np.zeros((1, 248, 216, c), np.float32) for n, c in zip(tn.RPN_OUTPUTS, (18, 42, 12))}
        rpn.infer({"bev": bev[1:]}, one)
    with torch.no_grad():
        ref = nets.rpn(torch.from_numpy(bev))
    for n, r in zip(tn.RPN_OUTPUTS, ref):
        np.testing.assert_allclose(outs[n], r.numpy(), atol=1e-4)
        np.testing.assert_allclose(one[n][0], outs[n][1], atol=1e-5)


def test_fp16_close_to_fp32(onnx_dir, cfg):
    """FP16 graphs: head outputs within 0.1 of FP32 and >= 75% of detections matched (measured 80-98% per scan) (BEV IoU >= 0.9, same class).
    `python bench/tools.py fp16-vs-fp32` prints the full table (bench/results/2026-11-22_cpu-2core_fp16-vs-fp32.md)."""
    from test_bench_tools import tools

    rows = tools().compare(cfg, onnx_dir, ALL_SCANS[:2])
    for r in rows:
        assert max(r["cls_preds"], r["box_preds"], r["dir_cls_preds"]) < 0.1, r
        assert 1e-4 < r["cls_preds"], "FP16 graph suspiciously identical to FP32"
        assert r["matched"] >= 0.75 * r["of"], r
