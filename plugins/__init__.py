"""Custom ops that TensorRT lacks, as Numba CUDA kernels (the pillar scatter), importable from the package."""
