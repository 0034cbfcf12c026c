"""torch backend: the PFN or RPN as a torch module on the GPU, reading and writing the pipeline's device buffers.

No copies besides writing the outputs: inputs and outputs are wrapped with
``torch.as_tensor`` over their ``__cuda_array_interface__`` (cached per address
and shape), and the module runs on the pipeline's stream through
``torch.cuda.ExternalStream``. FP16 is ``module.half()`` with casts at the edges,
as export.py's _HalfCompute, so the buffers stay FP32 whatever the precision.
FP32 turns TF32 off (torch enables it for cuDNN convolutions by default), so
FP32 results stay within float32 rounding of the CPU. The RPN runs channels-last
in FP16 (the canvas is converted in the one cast it needs anyway); cuDNN autotunes.
"""
from __future__ import annotations

from typing import Any, Mapping

from pointpillars_trt.errors import UserError
from pointpillars_trt.backends.base import Runner


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
        self._channels_last = False
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
        torch.backends.cudnn.benchmark = True  # fixed shapes per run: let cuDNN pick its fastest convolutions once
        m = self._cpu_module.to("cuda").eval()
        m = m.half() if self.precision == "fp16" else m
        self._channels_last = self.precision == "fp16" and self._is_conv_net(m)
        self.module = m.to(memory_format=torch.channels_last) if self._channels_last else m
        self.is_active = True

    @staticmethod
    def _is_conv_net(m: Any) -> bool:
        """The FP16 RPN runs channels-last: tensor cores want NHWC (H200: RPN 3.35 -> 1.58 ms). FP32 without TF32
        is slower channels-last (3.49 -> 4.74 ms), so it stays NCHW (bench/results/bench_torch_h200*.md)."""
        import torch

        return any(isinstance(x, torch.nn.Conv2d) for x in m.modules())

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
            if len(self._views) >= 64:  # the PFN's row count changes per scan: keep the cache bounded
                self._views.clear()
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
            dtype = torch.float16 if self.precision == "fp16" else torch.float32
            if self._channels_last:
                x = x.to(dtype=dtype, memory_format=torch.channels_last)
            elif dtype != x.dtype:
                x = x.to(dtype)
            y = self.module(x)
            ys = y if isinstance(y, tuple) else (y,)
            for name, t in zip(self._outs, ys):
                self._tensor(out[name]).copy_(t)  # copy_ casts FP16 -> FP32 on the fly
