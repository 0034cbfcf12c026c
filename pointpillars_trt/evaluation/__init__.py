"""KITTI object evaluation (OpenPCDet's kitti_object_eval_python protocol by default, or the devkit's): AP for 2D bbox, BEV, 3D and AOS at R11 and R40."""
from .core import DEFAULT_CLASSES, evaluate
from .files import EvalWarning, evaluate_dirs, read_ids
from .plots import save_pr_curves
from .protocol import PROTOCOLS
from .report import format_table
from .result import EvalResult

__all__ = ["DEFAULT_CLASSES", "PROTOCOLS", "EvalResult", "EvalWarning", "evaluate", "evaluate_dirs", "format_table", "read_ids",
           "save_pr_curves"]
