"""PointPillars LiDAR 3D detection as a chain of GPU stages (TensorRT + Numba CUDA), with CPU fallbacks."""
from pointpillars_trt.model.config import AnchorClass, PointPillarsConfig
from pointpillars_trt.errors import UserError

__version__ = "0.1.0"
__all__ = ["AnchorClass", "PointPillarsConfig", "UserError", "__version__"]
