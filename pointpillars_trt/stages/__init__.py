"""The pipeline's stages, each once per device with the same semantics: `x.py` (NumPy/Numba CPU) beside `x_cuda.py`."""
