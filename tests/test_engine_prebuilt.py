"""Prebuilt engines for runtimes that cannot build (the lean runtime): stale or foreign ones are never used."""
from __future__ import annotations

from pointpillars_trt.backends.tensorrt.cache import EngineKey, Profile, check_prebuilt, write_engine

SHA = "a" * 64


def _engine(tmp_path, name="pfn_fp16.engine", **kw):
    key = dict(network="pfn", precision="fp16", onnx_sha256=SHA, profile=Profile("pillars", 1, 12000, 40000),
               trt_version="11.4.0.106", compute_capability="9.0")
    key.update(kw)
    path = tmp_path / name
    write_engine(path, b"plan bytes" * 10, EngineKey(**key))
    return path


def test_matching_engine_is_usable(tmp_path):
    assert check_prebuilt(_engine(tmp_path), SHA, "9.0", "11.4.0.106") is None


def test_other_onnx_gpu_or_version_is_refused(tmp_path):
    p = _engine(tmp_path)
    assert "stale" in check_prebuilt(p, "b" * 64, "9.0", "11.4.0.106")
    assert "stale" in check_prebuilt(p, SHA, "8.9", "11.4.0.106")
    assert "stale" in check_prebuilt(p, SHA, "9.0", "11.5.0.1")  # not version-compatible: exact version only


def test_version_compatible_engine_runs_on_a_later_runtime(tmp_path):
    p = _engine(tmp_path, version_compatible=True)
    assert check_prebuilt(p, SHA, "9.0", "11.5.0.1") is None


def test_corrupt_or_unexplained_engine_is_refused(tmp_path):
    p = _engine(tmp_path)
    p.write_bytes(b"something else")
    assert "corrupt" in check_prebuilt(p, SHA, "9.0", "11.4.0.106")
    orphan = tmp_path / "rpn_fp16_orphan.engine"
    orphan.write_bytes(b"x")
    assert "sidecar" in check_prebuilt(orphan, SHA, "9.0", "11.4.0.106")
