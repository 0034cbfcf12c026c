"""Viewers for scans, detections and ground truth: a bird's-eye-view PNG (PIL only) and an Open3D 3D view.

Open3D is optional and imported only by open3d_view when used.
"""
from pointpillars_trt.viz.bev import BevView, render_bev

__all__ = ["BevView", "render_bev"]
