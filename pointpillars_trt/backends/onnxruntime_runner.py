"""onnxruntime backend: runs the exported ONNX files on the CPU (the default where there is no GPU)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.backends.base import Runner


class OnnxRuntimeRunner(Runner):
    """One ONNX file in an onnxruntime CPU session; outputs are written into the caller's arrays via IO binding."""

    name = "onnxruntime"
    device = "cpu"

    def __init__(self, onnx_path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(onnx_path)
        self.threads = threads
        self.session = None

    def activate(self) -> None:
        import onnxruntime as ort

        if not self.path.is_file():
            raise UserError(f"ONNX file not found: {self.path}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise UserError(f"{self.path}: onnxruntime cannot load it ({str(e).splitlines()[0][:160]})") from None
        self.is_active = True

    def deactivate(self) -> None:
        self.session = None
        super().deactivate()

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.session.get_inputs())

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.session.get_outputs())

    def infer(self, feed: Mapping[str, Any], out: Mapping[str, Any], stream: int = 0) -> None:
        binding = self.session.io_binding()
        for name, arr in feed.items():
            a = np.ascontiguousarray(arr)
            binding.bind_cpu_input(name, a)
        for name, arr in out.items():
            if not arr.flags.c_contiguous:
                raise ValueError(f"output buffer {name} must be C-contiguous")
            binding.bind_output(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
        self.session.run_with_iobinding(binding)
