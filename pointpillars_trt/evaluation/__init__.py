"""KITTI object evaluation (OpenPCDet's kitti_object_eval_python protocol by default, or the devkit's): AP for 2D bbox, BEV, 3D and AOS at R11 and R40."""
from pointpillars_trt.evaluation.core import DEFAULT_CLASSES, evaluate
from pointpillars_trt.evaluation.files import EvalWarning, evaluate_dirs, read_ids
from pointpillars_trt.evaluation.plots import save_pr_curves
from pointpillars_trt.evaluation.protocol import PROTOCOLS
from pointpillars_trt.evaluation.report import format_table
from pointpillars_trt.evaluation.result import EvalResult

__all__ = ["DEFAULT_CLASSES", "PROTOCOLS", "EvalResult", "EvalWarning", "evaluate", "evaluate_dirs", "format_table", "read_ids",
           "save_pr_curves"]
