"""PointPillars LiDAR 3D detection as a chain of GPU stages (TensorRT + Numba CUDA), with CPU fallbacks."""
from .config import AnchorClass, PointPillarsConfig
from .errors import UserError

__version__ = "0.1.0"
__all__ = ["AnchorClass", "PointPillarsConfig", "UserError", "__version__"]
