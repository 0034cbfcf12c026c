"""Fixed names and file names of the two networks' tensors and ONNX files (the backends' shared vocabulary)."""
from __future__ import annotations

PFN_INPUT = "pillars"  # [P, max_points, 10] float32, P dynamic
PFN_OUTPUT = "pillar_features"  # [P, 64] float32
RPN_INPUT = "bev"  # [B, 64, ny, nx] float32, B dynamic
RPN_OUTPUTS = ("cls_preds", "box_preds", "dir_cls_preds")  # [B, fy, fx, C] float32 (NHWC)

NETWORKS = ("pfn", "rpn")
PRECISIONS = ("fp32", "fp16")
MANIFEST = "manifest.json"


def onnx_filename(network: str, precision: str) -> str:
    """e.g. pfn_fp16.onnx"""
    assert network in NETWORKS and precision in PRECISIONS, (network, precision)
    return f"{network}_{precision}.onnx"
