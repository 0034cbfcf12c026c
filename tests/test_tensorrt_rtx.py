"""Real TensorRT on every CI run: TensorRT-RTX builds the project's four engines from its exported ONNX, no GPU needed.

Runs wherever `tensorrt-rtx` is installed (CI installs it: `.[tensorrt-rtx]`). What needs a GPU that RTX
supports (executing the engines) is not here; the refusal of an unsupported GPU is, with the GPU injected.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pointpillars_trt.backends.tensorrt import flavour as fl
from pointpillars_trt.backends.tensorrt.builder import build_engines, build_serialized_engine, profiles_for
from pointpillars_trt.backends.tensorrt.cache import check_fits, read_sidecar, sidecar_path
from pointpillars_trt.backends.tensorrt.gpu import GpuInfo
from pointpillars_trt.backends.tensorrt.report import summarize
from pointpillars_trt.backends.tensorrt.runner import TensorRTRunner
from pointpillars_trt.cli import main
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.tensor_names import NETWORKS, PFN_INPUT, PFN_OUTPUT, PRECISIONS, RPN_INPUT, RPN_OUTPUTS

RTX = fl.load(fl.RTX)
pytestmark = pytest.mark.skipif(RTX is None, reason="tensorrt-rtx not installed (pip install -e '.[tensorrt-rtx]')")

H200 = GpuInfo(0, "NVIDIA H200", (9, 0), 1)
#: DESIGN.md: PFN pillars [P,32,10] -> [P,64]; RPN bev [B,64,496,432] -> NHWC heads; float32 I/O in both precisions
IO = {
    "pfn": ({PFN_INPUT: (-1, 32, 10)}, {PFN_OUTPUT: (-1, 64)}),
    "rpn": ({RPN_INPUT: (-1, 64, 496, 432)},
            dict(zip(RPN_OUTPUTS, [(-1, 248, 216, 18), (-1, 248, 216, 42), (-1, 248, 216, 12)]))),
}
PROFILES = profiles_for(40000, 12000, 2)


@pytest.fixture(scope="session")
def rtx_engines(tmp_path_factory, onnx_dir):
    """All four engines, built once per test run from its export, for RTX's default targets."""
    engines, logs = tmp_path_factory.mktemp("rtx_engines"), []
    results = build_engines(onnx_dir, engines, list(PRECISIONS), PROFILES, flavour=RTX,
                            targets=fl.RTX_DEFAULT_CCS, log=logs.append)
    return {(r.key.network, r.key.precision): r for r in results}, logs


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("network", NETWORKS)
def test_engine_built_from_the_project_onnx(rtx_engines, onnx_dir, network, precision):
    results, logs = rtx_engines
    r = results[(network, precision)]
    assert r.action == "built" and r.path.stat().st_size > 100_000
    side = read_sidecar(r.path)
    assert side["key"]["flavour"] == "tensorrt_rtx" and side["key"]["trt_version"] == RTX.version
    assert side["key"]["compute_capability"] == "8.0,8.6,8.9,12.0,12.1" and "_rtx1.7" in r.path.name
    assert "_sm80-86-89-120-121_" in r.path.name and side["engine"]["bytes"] == r.path.stat().st_size
    assert any(re.match(rf"\[\d/4\] {network} {precision}: built in \d+\.\d\d s, \d+\.\d\d MiB", m) for m in logs)
    s = summarize(RTX, onnx_dir / f"{network}_{precision}.onnx", r.key.profile)
    want_in, want_out = IO[network]
    assert {t.name: t.shape for t in s.inputs} == want_in and {t.name: t.shape for t in s.outputs} == want_out
    assert {t.dtype for t in s.inputs + s.outputs} == {"float32"}
    (inp,) = s.inputs
    p = PROFILES[network]
    assert inp.profile == tuple((n, *inp.shape[1:]) for n in (p.min, p.opt, p.max))
    mine, other = ("float16", "float32") if precision == "fp16" else ("float32", "float16")
    assert s.convs.get(mine, 0) >= (22 if network == "rpn" else 1) and s.convs.get(other, 0) == 0
    assert s.layers.get(mine, 0) > 0 and s.layers.get(other, 0) == 0  # strongly typed: the graph's precision


def _copy_onnx(onnx_dir: Path, dest: Path, precision: str = "fp32") -> Path:
    dest.mkdir()
    for n in NETWORKS:
        shutil.copy(onnx_dir / f"{n}_{precision}.onnx", dest)
    return dest


def _build(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["build", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_builds_reuses_and_rebuilds_on_change(tmp_path, onnx_dir, capsys):
    import onnx

    src, eng = _copy_onnx(onnx_dir, tmp_path / "onnx"), tmp_path / "engines"
    argv = ["--onnx-dir", str(src), "--engines-dir", str(eng), "--precision", "fp32", "--compute-capability", "8.6"]
    rc, out, _ = _build(capsys, *argv)
    assert rc == 0 and "TensorRT-RTX 1.7" in out and "compute capability 8.6" in out and "2 built, 0 up to date" in out
    assert re.search(r"\[1/2\] pfn fp32: built in \d+\.\d\d s, \d+\.\d\d MiB", out)
    rc, out, _ = _build(capsys, *argv)
    assert rc == 0 and "0 built, 2 up to date" in out
    model = onnx.load(src / "pfn_fp32.onnx")
    model.doc_string = "changed"
    onnx.save(model, src / "pfn_fp32.onnx")
    rc, out, _ = _build(capsys, *argv)
    assert rc == 0 and "ONNX changed" in out and "1 built, 1 up to date" in out
    rpn = next(eng.glob("rpn_fp32_*.engine"))
    side = json.loads(sidecar_path(rpn).read_text())
    side["key"].update(trt_version="1.6.0.0")
    sidecar_path(rpn).write_text(json.dumps(side))
    rc, out, _ = _build(capsys, *argv)
    assert rc == 0 and "TensorRT changed (1.6.0.0 -> 1.7" in out
    side["key"].update(trt_version=RTX.version, flavour="tensorrt")
    sidecar_path(rpn).write_text(json.dumps(side))
    rc, out, _ = _build(capsys, *argv)
    assert "TensorRT flavour changed (tensorrt -> tensorrt_rtx)" in out
    rc, out, _ = _build(capsys, *argv[:-1], "8.9")
    assert "compute capability 8.9" in out and "GPU changed (sm86 -> sm89)" in out and "2 built" in out


def test_cli_report_shows_io_profiles_and_fp16_layers(tmp_path, onnx_dir, capsys):
    src = _copy_onnx(onnx_dir, tmp_path / "onnx", "fp16")
    rc, out, _ = _build(capsys, "--onnx-dir", str(src), "--engines-dir", str(tmp_path / "e"), "--precision", "fp16",
                        "--report")
    assert rc == 0
    assert re.search(r"input  pillars \[-1, 32, 10\] float32  profile min/opt/max \[1, 32, 10\] / "
                     r"\[12000, 32, 10\] / \[40000, 32, 10\]", out)
    assert "output dir_cls_preds [-1, 248, 216, 12] float32" in out
    assert len(re.findall(r"layers computing in FP16: [1-9]\d*, FP32: 0 \(conv/deconv/matmul FP16 [1-9]\d*, FP32 0\)",
                          out)) == 2


def test_corrupt_onnx_is_one_line_error(tmp_path, onnx_dir, capsys):
    src = _copy_onnx(onnx_dir, tmp_path / "onnx")
    (src / "pfn_fp32.onnx").write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(UserError) as e:
        build_serialized_engine(src / "pfn_fp32.onnx", PROFILES["pfn"], flavour=RTX, targets=("8.6",))
    assert "ONNX parser rejected" in str(e.value) and "\n" not in str(e.value)
    rc, _, err = _build(capsys, "--onnx-dir", str(src), "--engines-dir", str(tmp_path / "e"), "--precision", "fp32")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and "pfn_fp32.onnx" in errors[0]


def test_out_of_profile_shapes_are_refused(tmp_path, onnx_dir, capsys):
    rc, _, err = _build(capsys, "--onnx-dir", str(onnx_dir), "--max-pillars", "100", "--engines-dir", str(tmp_path))
    assert rc == 2 and "--opt-pillars 12000 is larger than --max-pillars 100" in err
    results = build_engines(onnx_dir, tmp_path / "small", ["fp32"], profiles_for(100, 50, 1), flavour=RTX,
                            targets=("8.6",), log=lambda m: None)
    check_fits(results[0].path, 100)
    with pytest.raises(UserError, match=r"takes at most 100 pillars but 40000 are needed; .*--max-pillars 40000"):
        check_fits(results[0].path, 40000)
    with pytest.raises(UserError, match=r"takes at most 1 scans per batch .*--max-batch 4"):
        check_fits(results[1].path, 4)


class Boom:
    """A TensorRT module that fails the test if anything touches it."""

    def __getattr__(self, name):
        raise AssertionError(f"TensorRT touched before the GPU check: {name}")


def test_unsupported_gpu_is_refused_before_deserializing(rtx_engines):
    path = rtx_engines[0][("rpn", "fp16")].path
    runner = TensorRTRunner(path, flavour=fl.Flavour(fl.RTX, Boom()), gpu_check=lambda i: H200)
    with pytest.raises(UserError) as e:
        runner.activate()
    msg = str(e.value)
    assert "compute capability 9.0" in msg and "NVIDIA H200" in msg and "\n" not in msg
    assert "--backend torch" in msg and "full `tensorrt` package" in msg and "8.0 8.6 8.9 12.0 12.1" in msg
    ada = GpuInfo(0, "RTX 4090", (8, 9), 1)
    with pytest.raises(UserError, match=r"compute capability 8.9; TensorRT-RTX engines built for 8.6 only"):
        fl.check_can_run(RTX, ada.cc, ada.name, ["8.6"])
    fl.check_can_run(RTX, ada.cc, ada.name)  # the default targets include 8.9


def test_auto_skips_rtx_on_hopper_and_says_why(monkeypatch, capsys):
    ok, why = fl.auto_usable(RTX, "9.0", "NVIDIA H200")
    assert not ok and "NVIDIA H200 (compute capability 9.0" in why and "full `tensorrt`" in why
    assert fl.auto_usable(RTX, "8.6", "RTX 3090") == (True, "")
    from pointpillars_trt import api

    monkeypatch.setattr(fl, "auto_usable", lambda: (False, why))
    assert api._tensorrt_available() is False
    assert f"auto: not using TensorRT: {why}" in capsys.readouterr().err


def test_build_targets_and_flavour_choice():
    logs = []
    assert fl.build_targets(RTX, [], None) == fl.RTX_DEFAULT_CCS
    assert fl.build_targets(RTX, [], "8.6") == ("8.6",)
    assert fl.build_targets(RTX, [], "9.0", logs.append) == fl.RTX_DEFAULT_CCS and "9.0" in logs[0]
    assert fl.build_targets(RTX, ["sm86", "12.0,8.6"], None) == ("8.6", "12.0")
    assert fl.build_targets(RTX, ["all"], None) == fl.RTX_DEFAULT_CCS
    with pytest.raises(UserError, match="cannot target compute capability 9.0"):
        fl.build_targets(RTX, ["9.0"], None)
    full = fl.Flavour(fl.FULL, SimpleNamespace(__version__="10.13.0.35", Builder=object))
    assert fl.build_targets(full, [], "9.0") == ("9.0",)
    with pytest.raises(UserError, match="builds on the GPU it targets"):
        fl.build_targets(full, [], None)
    with pytest.raises(UserError, match="not 8.6"):
        fl.build_targets(full, ["8.6"], "9.0")
    assert fl.select(modules=[(fl.FULL, ("no_such_tensorrt",)), (fl.RTX, ("tensorrt_rtx",))]).name == fl.RTX
    assert fl.for_engine({"flavour": "tensorrt_rtx"}).name == fl.RTX
    with pytest.raises(UserError, match="cannot make them"):
        build_serialized_engine(Path("x.onnx"), PROFILES["pfn"], flavour=RTX, version_compatible=True)


def test_runtime_config_loads_cache_and_sets_graph_strategy(tmp_path):
    """RTX runtime config calls, with a fake engine (creating a real one needs a supported GPU)."""
    seen = {}
    cache = SimpleNamespace(deserialize=lambda blob: seen.setdefault("blob", blob) == b"old")
    config = SimpleNamespace(create_runtime_cache=lambda: cache,
                             set_runtime_cache=lambda c: seen.setdefault("set", c) is cache)
    engine = SimpleNamespace(create_runtime_config=lambda: config)
    rtx = fl.Flavour(fl.RTX, SimpleNamespace(CudaGraphStrategy=RTX.module.CudaGraphStrategy, __version__="1.7.1.116"))
    path = fl.runtime_cache_path(tmp_path, rtx, "8.6")
    assert path.name == "runtime_rtx1.7.1_sm86.cache"
    path.write_bytes(b"old")
    got, got_cache = fl.make_runtime_config(rtx, engine, path, cuda_graphs=True, log=print)
    assert got is config and got_cache is cache and seen == {"blob": b"old", "set": cache}
    assert config.cuda_graph_strategy == RTX.module.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
    full = fl.Flavour(fl.FULL, SimpleNamespace())
    assert fl.make_runtime_config(full, engine, path, cuda_graphs=False, log=print) == (None, None)
    with pytest.raises(UserError, match="TensorRT-RTX setting"):
        fl.make_runtime_config(full, engine, path, cuda_graphs=True, log=print)


def test_build_with_cache_dir_writes_only_there(tmp_path, onnx_dir, cfg):
    """`build --checkpoint CKPT --cache-dir D` as a user runs it: the export it reuses and the engines it builds are in
    D, and the default cache (HOME, XDG_CACHE_HOME, POINTPILLARS_TRT_CACHE all pointed at an empty folder) stays empty."""
    import os
    import subprocess
    import sys

    from conftest import CHECKPOINT, REPO
    from pointpillars_trt.model.hashing import file_sha256

    d, elsewhere = tmp_path / "D", tmp_path / "elsewhere"
    (d / "onnx").mkdir(parents=True)
    elsewhere.mkdir()
    (d / "onnx" / f"{file_sha256(CHECKPOINT)[:12]}_{cfg.digest()}").symlink_to(onnx_dir)  # this run's export: no re-export
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(elsewhere), "XDG_CACHE_HOME": str(elsewhere / "xdg"),
           "POINTPILLARS_TRT_CACHE": str(elsewhere / "ppc")}
    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", "build", "--checkpoint", str(CHECKPOINT),
                        "--cache-dir", str(d), "--precision", "fp32", "--compute-capability", "8.6"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "exporting" not in r.stderr and f"-> {d}/" in r.stdout
    assert sorted(p.name.split("_")[0] for p in d.glob("*.engine")) == ["pfn", "rpn"]
    assert all(sidecar_path(p).exists() for p in d.glob("*.engine"))
    assert [p for p in elsewhere.rglob("*")] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D", "elsewhere"]
