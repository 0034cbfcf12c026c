"""`build --report`: what TensorRT sees in each ONNX file: I/O, profile ranges, and layers computing in FP16 vs FP32.

Read from the parsed, strongly typed network (INetworkDefinition), so it shows
that the FP16 graph reaches TensorRT in FP16 without any precision flag. Works
without a GPU with TensorRT-RTX.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pointpillars_trt.backends.tensorrt.builder import parse_onnx
from pointpillars_trt.backends.tensorrt.cache import Profile
from pointpillars_trt.backends.tensorrt.flavour import Flavour

#: layers that compute nothing (weights, shape arithmetic): not counted as FP16/FP32 compute
_NOT_COMPUTE = {"CONSTANT", "SHAPE", "CAST"}
_CONV = {"CONVOLUTION", "DECONVOLUTION", "MATRIX_MULTIPLY"}
_DTYPE = {"FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT64": "int64", "BOOL": "bool"}


@dataclass
class TensorSummary:
    """A network input or output: name, shape (-1 dynamic), dtype, and (inputs) the profile's min/opt/max."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None


@dataclass
class NetworkSummary:
    """Inputs, outputs and the count of compute layers per floating type (and of convolutions) in one network."""

    inputs: list[TensorSummary] = field(default_factory=list)
    outputs: list[TensorSummary] = field(default_factory=list)
    layers: dict[str, int] = field(default_factory=dict)  # "float16" / "float32" -> compute layers
    convs: dict[str, int] = field(default_factory=dict)  # the same for (de)convolutions and matmuls


def _dtype(t) -> str:
    return _DTYPE.get(t.name, t.name.lower())


def summarize(flavour: Flavour, onnx_path: Path, profile: Profile) -> NetworkSummary:
    """Parse ``onnx_path`` (ITensor.name/shape/dtype, ILayer.type/get_output_type) and count layer precisions."""
    _builder, net, _parser = parse_onnx(flavour, onnx_path)
    out = NetworkSummary()
    for i in range(net.num_inputs):
        t = net.get_input(i)
        shape = tuple(int(d) for d in t.shape)
        prof = None
        if t.name == profile.input_name:
            prof = tuple((n, *shape[1:]) for n in (profile.min, profile.opt, profile.max))
        out.inputs.append(TensorSummary(t.name, shape, _dtype(t.dtype), prof))
    for i in range(net.num_outputs):
        t = net.get_output(i)
        out.outputs.append(TensorSummary(t.name, tuple(int(d) for d in t.shape), _dtype(t.dtype)))
    for i in range(net.num_layers):
        layer = net.get_layer(i)
        kind = layer.type.name
        types = {_dtype(layer.get_output_type(j)) for j in range(layer.num_outputs)}
        if kind in _NOT_COMPUTE or len(types) != 1 or not types <= {"float16", "float32"}:
            continue
        (dt,) = types
        out.layers[dt] = out.layers.get(dt, 0) + 1
        if kind in _CONV:
            out.convs[dt] = out.convs.get(dt, 0) + 1
    return out


def format_summary(label: str, s: NetworkSummary) -> list[str]:
    """The report's lines for one engine."""
    lines = [f"{label}:"]
    for t in s.inputs:
        rng = "" if t.profile is None else "  profile min/opt/max " + " / ".join(str(list(p)) for p in t.profile)
        lines.append(f"  input  {t.name} {list(t.shape)} {t.dtype}{rng}")
    lines += [f"  output {t.name} {list(t.shape)} {t.dtype}" for t in s.outputs]
    lines.append(f"  layers computing in FP16: {s.layers.get('float16', 0)}, FP32: {s.layers.get('float32', 0)} "
                 f"(conv/deconv/matmul FP16 {s.convs.get('float16', 0)}, FP32 {s.convs.get('float32', 0)})")
    return lines
