"""Reading an export's manifest.json without importing torch (inference needs only onnxruntime)."""
from __future__ import annotations

import json
from pathlib import Path

from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.errors import UserError

FORMAT = "pointpillars_trt-onnx/1"


def read_manifest(onnx_dir: str | Path) -> dict:
    """Load and sanity-check an export's manifest.json."""
    path = Path(onnx_dir) / tn.MANIFEST
    if not Path(onnx_dir).is_dir():
        raise UserError(f"ONNX folder not found: {onnx_dir}")
    if not path.is_file():
        raise UserError(f"{onnx_dir}: no {tn.MANIFEST}; is this a folder written by `python -m pointpillars_trt export`?")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise UserError(f"{path}: unknown manifest format {m.get('format') if isinstance(m, dict) else m!r}")
    return m
