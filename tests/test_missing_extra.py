"""Installed without the `export` extra (no torch): commands that need torch end in one line naming the extra, and
an exported model (--onnx-dir) still runs. torch is blocked in the child (sys.modules['torch'] = None), so every
`import torch` raises ModuleNotFoundError as on a machine without it."""
from __future__ import annotations

import subprocess
import sys

from conftest import ALL_SCANS, REPO

BLOCK_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv[0] = 'pointpillars_trt'; "
               "runpy.run_module('pointpillars_trt', run_name='__main__')")


def _without_torch(*args, cwd=REPO):
    r = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       timeout=600)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_torch_missing_names_the_export_extra(tmp_path, onnx_dir):
    for args in (("infer", ALL_SCANS[0], "--cache-dir", tmp_path / "empty", "--device", "cpu"),
                 ("train", "--out", tmp_path / "m.pth", "--frames", "2", "--batch-size", "1")):
        r = _without_torch(*args)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.returncode == 2 and len(errors) == 1, r.stderr
        assert 'pip install "pointpillars_trt[export]"' in errors[0] and "--onnx-dir" in errors[0]
    r = _without_torch("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--show", "0")
    assert r.returncode == 0 and "detections" in r.stdout, r.stderr  # the advice works: ONNX needs no torch
