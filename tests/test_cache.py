"""The per-user model cache: where it is, that runs from any folder use it and leave nothing behind, the cache command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ALL_SCANS, CHECKPOINT, REPO
from pointpillars_trt.cache_dir import default_cache_dir
from pointpillars_trt.cli import main


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("POINTPILLARS_TRT_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("POINTPILLARS_TRT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg/pointpillars_trt"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec says to ignore relative paths
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home/.cache/pointpillars_trt"


def test_run_from_another_folder_uses_the_cache_and_leaves_nothing(tmp_path, onnx_dir, cfg):
    """The checkpoint's export sits in the cache (the test run's export, linked in): no re-export, no ./engines/."""
    from pointpillars_trt.model.hashing import file_sha256

    cache, work = tmp_path / "cache", tmp_path / "work"
    (cache / "onnx").mkdir(parents=True)
    work.mkdir()
    (cache / "onnx" / f"{file_sha256(CHECKPOINT)[:12]}_{cfg.digest()}").symlink_to(onnx_dir)
    env = {**os.environ, "POINTPILLARS_TRT_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", "infer", str(ALL_SCANS[0]), "--checkpoint", str(CHECKPOINT)],
                       cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "exporting" not in r.stderr and "detections" in r.stdout
    assert list(work.iterdir()) == []


def test_cache_command_lists_and_clears(tmp_path, capsys):
    c = tmp_path / "cache"
    (c / "onnx/0123456789ab_cafe0123").mkdir(parents=True)
    (c / "onnx/0123456789ab_cafe0123/pfn_fp32.onnx").write_bytes(b"x" * 2000)
    (c / "random-init-seed0_cafe0123.pth").write_bytes(b"x" * 500)
    (c / "inductor/fxgraph").mkdir(parents=True)  # the compiled RPN's tuned kernels (torch_runner points Inductor here)
    (c / "inductor/fxgraph/entry").write_bytes(b"x" * 1000)
    (c / "notes.txt").write_text("mine")
    assert main(["cache", "--cache-dir", str(c)]) == 0
    out = capsys.readouterr().out
    assert "3 cached item(s), 3.5 kB" in out and "inductor/" in out and "onnx/0123456789ab_cafe0123/" in out and "notes.txt  (not written" in out
    assert main(["cache", "--cache-dir", str(c), "--clear"]) == 2
    assert "add --yes" in capsys.readouterr().err and (c / "random-init-seed0_cafe0123.pth").exists()
    assert main(["cache", "--cache-dir", str(c), "--clear", "--yes"]) == 0
    assert sorted(p.name for p in c.iterdir()) == ["notes.txt"]
    assert main(["cache", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "not created yet" in capsys.readouterr().out
