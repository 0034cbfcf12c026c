"""torch backend: the PFN or RPN as a torch module on the GPU, reading and writing the pipeline's device buffers.

With compile on, the module goes through ``torch.compile(mode="max-autotune-no-cudagraphs", dynamic=False)``:
Inductor's autotuned Triton convolutions, captured inside the pipeline's own CUDA graph (hence no cudagraphs of
Inductor's). Tuning takes about a minute per input shape the first time on a machine and a few seconds afterwards,
from TORCHINDUCTOR_CACHE_DIR (set to the project's cache folder unless the user set it). When it compiles (now, or
auto: never before an answer; from this cache's tuning on a worker thread, or after a tuning in a child process,
inductor_tune.py, once the run is long) is inductor_compile.py's business.

No copies besides writing the outputs: inputs and outputs are wrapped with
``torch.as_tensor`` over their ``__cuda_array_interface__`` (cached per address
and shape), and the module runs on the pipeline's stream through
``torch.cuda.ExternalStream``. FP16 is ``module.half()`` with casts at the edges,
as export.py's _HalfCompute, so the buffers stay FP32 whatever the precision.
FP32 uses TF32 tensor cores by default, as TensorRT's FP32 engines do on Ampere and later
(``tf32=False`` is strict FP32, within float32 rounding of the CPU; the agreement tests use it). The TF32 switch is
torch's process-wide setting: the last runner activated decides it. The RPN runs channels-last
in FP16 and asks for its input in that format (``input_format``): the pipeline's scatter writes an FP16 NHWC canvas,
so no conversion pass reads the FP32 canvas first (64 x 496 x 432 floats per scan); cuDNN autotunes.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from pointpillars_trt import phases
from pointpillars_trt.errors import UserError
from pointpillars_trt.backends.base import Runner, ViewCache
from pointpillars_trt.backends.inductor_compile import (START_AFTER_REPLAYS, TUNE_AFTER_S, BackgroundCompiles,
                                                        TunedShapes, compile_mode, first_call_plan)


def set_tf32(torch: Any, on: bool) -> None:
    """TF32 (on) or full-precision (off) FP32 matmul/conv. Through the legacy flags only: Inductor reads the
    precision back with torch.get_float32_matmul_precision(), which refuses a mix of the legacy and the new
    per-backend API (seen with torch 2.11 on an H200)."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    torch.set_float32_matmul_precision("high" if on else "highest")


def _torch_view(buf: Any, cai: dict) -> Any:
    """torch view of a device buffer (no copy)."""
    import torch

    return torch.as_tensor(buf, device="cuda")


class TorchRunner(Runner):
    """One network (torch.nn.Module) on the GPU; infer(feed, out, stream) on device buffers."""

    name = "torch"
    device = "cuda"
    graph_capture = "torch"  # the pipeline captures through torch.cuda.graph (torch allocates during capture)
    reentrant = True  # scratch from torch's allocator, per stream (per graph pool inside a graph)

    def __init__(self, module: Any, input_name: str, output_names: tuple[str, ...], precision: str = "fp32", *,
                 compile: bool | str = False, tf32: bool = True, cache_dir: str | Path | None = None,
                 log: Callable[[str], None] | None = None, native_input: bool = True) -> None:
        super().__init__()
        if precision not in ("fp32", "fp16"):
            raise UserError(f"precision must be fp32 or fp16, got {precision!r}")
        self._cpu_module = module
        self._in = input_name
        self._outs = tuple(output_names)
        self.precision = precision
        self.module: Any = None
        self._tensor = ViewCache(_torch_view)  # no-copy torch views of the pipeline's buffers
        self._channels_last = False
        if native_input and precision == "fp16" and self._is_conv_net(module):
            self.input_format = ("float16", "nhwc")  # given [B, H, W, C]; seen as NCHW with channels-last strides
        self._streams: dict[int, Any] = {}
        self.compile_mode = compile_mode(compile)  # auto | now | off
        self.tf32 = bool(tf32)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._log = log or (lambda msg: None)
        self._compiled: Any = None  # torch.compile's wrapper of self.module, made on first need (imports Dynamo)
        self._compile_lock = threading.Lock()
        self._compiled_shapes: set[tuple] = set()
        self._modes: dict[tuple, str] = {}  # per shape: now | background | tune (auto resolved on its first call)
        self._native_input = bool(native_input)
        #: only with compile='auto' (the GPU pipeline follows it on every scan)
        self.background = BackgroundCompiles(self._log) if self.compile_mode == "auto" else None
        self._arch = ""

    @property
    def compile(self) -> bool:
        """True unless compile='off'."""
        return self.compile_mode != "off"

    def activate(self) -> None:
        try:
            import torch
        except ImportError:
            raise UserError("the torch backend needs PyTorch with CUDA") from None
        if not torch.cuda.is_available():
            raise UserError("the torch backend needs a CUDA GPU; torch.cuda.is_available() is False")
        if self.precision == "fp32":
            set_tf32(torch, self.tf32)
        torch.backends.cudnn.benchmark = True  # fixed shapes per run: let cuDNN pick its fastest convolutions once
        m = self._cpu_module.to("cuda").eval()
        m = m.half() if self.precision == "fp16" else m
        self._channels_last = self.precision == "fp16" and self._is_conv_net(m)
        self.module = m.to(memory_format=torch.channels_last) if self._channels_last else m
        if self.compile and self.cache_dir is not None and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(self.cache_dir / "inductor")
        self._arch = hashlib.sha256(repr(self.module).encode()).hexdigest()[:16]  # the layers, not the weights
        self.is_active = True

    @staticmethod
    def _is_conv_net(m: Any) -> bool:
        """The FP16 RPN runs channels-last: tensor cores want NHWC (H200: RPN 3.35 -> 1.58 ms). FP32 without TF32
        is slower channels-last (3.49 -> 4.74 ms), so it stays NCHW (bench/results/2026-11-22_h200_channels-last.md)."""
        import torch

        return any(isinstance(x, torch.nn.Conv2d) for x in m.modules())

    def deactivate(self) -> None:
        if self.background is not None:
            self.background.close()
        self.module = self._compiled = None
        self._tensor.clear()
        self._streams.clear()
        super().deactivate()

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self._in,)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outs

    def infer(self, feed: Mapping[str, Any], out: Mapping[str, Any], stream: int = 0) -> None:
        import torch

        if self.module is None:
            raise RuntimeError("TorchRunner: call activate() first")
        s = self._streams.get(stream)
        if s is None:
            s = self._streams[stream] = torch.cuda.ExternalStream(stream) if stream else torch.cuda.current_stream()
        with torch.cuda.stream(s), torch.inference_mode():
            x = self._tensor(feed[self._in])
            if self.input_format[1] == "nhwc":
                x = x.permute(0, 3, 1, 2)
            dtype = torch.float16 if self.precision == "fp16" else torch.float32
            if self._channels_last:  # a no-op on an FP16 NHWC input
                x = x.to(dtype=dtype, memory_format=torch.channels_last)
            elif dtype != x.dtype:
                x = x.to(dtype)
            y = self._forward(x)
            ys = y if isinstance(y, tuple) else (y,)
            for name, t in zip(self._outs, ys):
                self._tensor(out[name]).copy_(t)  # copy_ casts FP16 -> FP32 on the fly

    # ---- compiling (inductor_compile.py: now, or auto: never before an answer) ----------------------------------
    def _forward(self, x: Any) -> Any:
        """The module for x's shape: compiled once it is (compiling it now if that is the shape's mode), else the
        uncompiled one until a background compile is ready (the pipeline starts and follows it; a tuning process
        first where this cache never tuned the shape), or after one failed."""
        shape, bg = tuple(x.shape), self.background
        if not self.compile or (bg is not None and shape in bg.failed):
            return self.module(x)
        if shape in self._compiled_shapes or (bg is not None and shape in bg.ready):
            return self._compiled(x)
        mode = self._mode(shape)
        if mode == "now":
            return self._first_compiled_call(x, shape)
        meta = (tuple(x.shape), tuple(x.stride()), x.dtype, x.device)
        if mode == "tune":
            bg.request_tuning(shape, lambda: self._spawn_tuning(*meta), lambda: self._compile_like(*meta))
        else:
            bg.request(shape, lambda: self._compile_like(*meta))
        return self.module(x)

    def _mode(self, shape: tuple) -> str:
        mode = self._modes.get(shape)
        if mode is None:
            tuned = self.compile_mode == "auto" and self._tuned_key(shape) in self._tuned()
            mode = self._modes[shape] = first_call_plan(self.compile_mode, tuned)
            phases.note(f"{self._in} {list(shape)} Inductor", {
                "now": "compiled (and tuned where needed) before the first answer",
                "background": f"uncompiled first; compiled from this machine's tuning after {START_AFTER_REPLAYS} "
                              "replays",
                "tune": f"uncompiled; tuned in a background process once a run lasts {TUNE_AFTER_S:.0f} s",
                "off": "uncompiled"}.get(mode, mode))
        return mode

    def _tuned(self) -> TunedShapes:
        return TunedShapes(os.environ.get("TORCHINDUCTOR_CACHE_DIR"))

    def _tuned_key(self, shape: tuple) -> str:
        import torch

        return "|".join((torch.__version__, torch.cuda.get_device_name(), self._in, self.precision,
                         f"tf32={self.tf32}", self._arch, "x".join(map(str, shape))))

    def _compiled_module(self) -> Any:
        """torch.compile's wrapper (one for every shape; dynamic=False recompiles per shape)."""
        with self._compile_lock:
            if self._compiled is None:
                import torch
                import torch._inductor.config as inductor_config

                inductor_config.autotune_num_choices_displayed = 0  # no per-convolution tuning tables on the console
                self._compiled = torch.compile(self.module, mode="max-autotune-no-cudagraphs", dynamic=False)
            return self._compiled

    def _compile_like(self, shape: tuple, stride: tuple, dtype: Any, device: Any) -> None:
        """The background job: compile for an input laid out as the pipeline's, on a stream of its own (the
        inference-mode zeros match the pipeline's views, so Dynamo's guards accept them later)."""
        import torch

        compiled = self._compiled_module()
        with torch.cuda.device(device):
            side = torch.cuda.Stream()
            with torch.cuda.stream(side), torch.inference_mode():
                compiled(torch.empty_strided(shape, stride, dtype=dtype, device=device).zero_())
            side.synchronize()
        self._tuned().add(self._tuned_key(shape))

    def _spawn_tuning(self, shape: tuple, stride: tuple, dtype: Any, device: Any) -> Any:
        """Start the tuning of this network for an input laid out as the pipeline's in a child process
        (inductor_tune.py) that writes into this process's Inductor cache; returns (process, its log file)."""
        import tempfile

        import torch
        from pointpillars_trt.backends import inductor_tune

        folder = Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        spec = folder / f"pointpillars_trt_tune_{os.getpid()}_{'x'.join(map(str, shape))}.pt"
        torch.save({"module": self.module, "input": self._in, "outputs": self._outs, "precision": self.precision,
                    "tf32": self.tf32, "native_input": self._native_input, "shape": shape, "stride": stride,
                    "dtype": dtype, "device": str(device), "key": self._tuned_key(shape)}, spec)
        return inductor_tune.spawn(spec)

    def _first_compiled_call(self, x: Any, shape: tuple) -> Any:
        """The first call of a shape compiles and autotunes: say so, and how long it took."""
        where = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "torch's default cache")
        self._log(f"compiling the {self.precision} {self._in} network for shape {list(shape)} with Inductor "
                  f"max-autotune (about a minute the first time on this machine, seconds later; cache: {where})")
        t0 = time.perf_counter()
        y = self._compiled_module()(x)
        self._compiled_shapes.add(shape)
        self._tuned().add(self._tuned_key(shape))
        self._log(f"compiled in {time.perf_counter() - t0:.1f} s")
        return y
