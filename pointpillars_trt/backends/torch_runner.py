"""torch backend: the PFN or RPN as a torch module on the GPU, reading and writing the pipeline's device buffers.

No copies besides writing the outputs: inputs and outputs are wrapped with
``torch.as_tensor`` over their ``__cuda_array_interface__`` (cached per address
and shape), and the module runs on the pipeline's stream through
``torch.cuda.ExternalStream``. FP16 is ``module.half()`` with casts at the edges,
as export.py's _HalfCompute, so the buffers stay FP32 whatever the precision.
FP32 turns TF32 off (torch enables it for cuDNN convolutions by default), so
FP32 results stay within float32 rounding of the CPU.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import UserError
from .base import Runner


def _disable_tf32(torch: Any) -> None:
    """Full-precision FP32 matmul/conv (new per-backend API where present, else the old flags)."""
    try:
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    except AttributeError:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


class TorchRunner(Runner):
    """One network (torch.nn.Module) on the GPU; infer(feed, out, stream) on device buffers."""

    name = "torch"
    device = "cuda"

    def __init__(self, module: Any, input_name: str, output_names: tuple[str, ...], precision: str = "fp32") -> None:
        super().__init__()
        if precision not in ("fp32", "fp16"):
            raise UserError(f"precision must be fp32 or fp16, got {precision!r}")
        self._cpu_module = module
        self._in = input_name
        self._outs = tuple(output_names)
        self.precision = precision
        self.module: Any = None
        self._views: dict[tuple, Any] = {}
        self._streams: dict[int, Any] = {}

    def activate(self) -> None:
        try:
            import torch
        except ImportError:
            raise UserError("the torch backend needs PyTorch with CUDA") from None
        if not torch.cuda.is_available():
            raise UserError("the torch backend needs a CUDA GPU; torch.cuda.is_available() is False")
        if self.precision == "fp32":
            _disable_tf32(torch)
        m = self._cpu_module.to("cuda").eval()
        self.module = m.half() if self.precision == "fp16" else m
        self.is_active = True

    def deactivate(self) -> None:
        self.module = None
        self._views.clear()
        self._streams.clear()
        super().deactivate()

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self._in,)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outs

    def _tensor(self, buf: Any) -> Any:
        """torch view of a device buffer (no copy), cached by (pointer, shape, dtype)."""
        import torch

        cai = buf.__cuda_array_interface__
        key = (cai["data"][0], tuple(cai["shape"]), cai["typestr"])
        t = self._views.get(key)
        if t is None:
            t = self._views[key] = torch.as_tensor(buf, device="cuda")
        return t

    def infer(self, feed: Mapping[str, Any], out: Mapping[str, Any], stream: int = 0) -> None:
        import torch

        if self.module is None:
            raise RuntimeError("TorchRunner: call activate() first")
        s = self._streams.get(stream)
        if s is None:
            s = self._streams[stream] = torch.cuda.ExternalStream(stream) if stream else torch.cuda.current_stream()
        with torch.cuda.stream(s), torch.inference_mode():
            x = self._tensor(feed[self._in])
            if self.precision == "fp16":
                x = x.half()
            y = self.module(x)
            ys = y if isinstance(y, tuple) else (y,)
            for name, t in zip(self._outs, ys):
                self._tensor(out[name]).copy_(t)  # copy_ casts FP16 -> FP32 on the fly
