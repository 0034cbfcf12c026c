"""TensorRT backend, engine cache and `build` CLI.

Three tiers, each skipping with its reason where the machine lacks what it needs:
* everywhere (no GPU, no TensorRT): engine naming/keys/staleness with a fake
  builder and real files, the `build` CLI's errors, the GPU check, the runner's
  binding/validation logic against a fake TensorRT module;
* a TensorRT Python module importable (the lean runtime installs without a GPU):
  the API surface the runner calls exists; without a GPU the runner refuses
  before creating a Runtime (checked in a child process: TensorRT segfaults there);
* GPU + TensorRT runtime (the device): a real Runtime refuses corrupt and foreign
  plans with a UserError (in a child process, so a crash fails one test, not the run);
* GPU + full `tensorrt` (builder): build a tiny engine and run it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pointpillars_trt.cli import build as build_cli
from pointpillars_trt.backends.tensorrt import builder, flavour as fl
from pointpillars_trt.backends.tensorrt import runner as tr
from pointpillars_trt.backends.tensorrt.cache import (
    EngineKey, Profile, describe_differences, find_or_build, read_sidecar, sidecar_path, trt_version_accepts,
)
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.tensor_names import PFN_INPUT, PFN_OUTPUT, RPN_INPUT

REPO = Path(__file__).resolve().parents[1]
TRT = tr.import_tensorrt()
HAS_BUILDER = TRT is not None and not tr.is_lean(TRT)
GPU, GPU_WHY = tr.probe_gpu()
NO_BUILDER = "TensorRT builder not installed (tensorrt package absent)"

PFN_PROFILE = Profile(PFN_INPUT, 1, 12000, 40000)
RPN_PROFILE = Profile(RPN_INPUT, 1, 1, 4)


# ---------------------------------------------------------------------------- engine cache (pure Python)
class FakeBuilder:
    """Stands in for TensorRT: records calls and returns a distinct fake plan per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, EngineKey]] = []

    def __call__(self, onnx_path: Path, key: EngineKey) -> bytes:
        self.calls.append((onnx_path, key))
        return b"FAKEPLAN" + key.filename().encode() + bytes([len(self.calls)])


def _onnx(tmp_path: Path, content: bytes = b"onnx-v1", name: str = "pfn_fp16.onnx") -> Path:
    p = tmp_path / "onnx" / name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(content)
    return p


def _fob(onnx: Path, engines: Path, builder, logs: list, **kw):
    args = dict(network="pfn", precision="fp16", profile=PFN_PROFILE, trt_version="10.13.0.35",
                compute_capability="9.0", engines_dir=engines, builder_fn=builder, log=logs.append)
    args.update(kw)
    return find_or_build(onnx, **args)


def test_engine_filename_carries_the_key():
    sha = "3f2a9c0d1e4b" + "0" * 52
    pfn = EngineKey("pfn", "fp16", sha, PFN_PROFILE, "10.13.0.35", "9.0")
    assert pfn.filename() == "pfn_fp16_p1-12000-40000_trt10.13.0_sm90_3f2a9c0d1e4b.engine"
    rpn = EngineKey("rpn", "fp16", sha, RPN_PROFILE, "10.13.0.35", "9.0")
    assert rpn.filename() == "rpn_fp16_b1-4_trt10.13.0_sm90_3f2a9c0d1e4b.engine"
    rpn_opt = EngineKey("rpn", "fp32", sha, Profile(RPN_INPUT, 1, 2, 4), "11.4.0.106", "8.6", version_compatible=True)
    assert rpn_opt.filename() == "rpn_fp32_b1-2-4_trt11.4.0_sm86_vc_3f2a9c0d1e4b.engine"
    vcx = EngineKey("pfn", "fp32", sha, PFN_PROFILE, "11.4.0.106", "9.0", True, True)
    assert "_vcx_" in vcx.filename()
    assert EngineKey.from_dict(json.loads(json.dumps(vcx.to_dict()))) == vcx


def test_bad_profile_and_key_values_are_refused():
    with pytest.raises(UserError, match="min <= opt <= max"):
        Profile(PFN_INPUT, 1, 50000, 40000)
    with pytest.raises(ValueError):
        EngineKey("vfe", "fp16", "0" * 64, PFN_PROFILE, "10.0.0", "9.0")


def test_trt_version_rules():
    assert trt_version_accepts("10.13.0.35", "10.13.0.35", False, False)
    assert not trt_version_accepts("10.13.0.35", "10.13.1.1", False, False)
    assert trt_version_accepts("10.13.0.35", "11.4.0.106", True, False)  # VC plans run on later versions
    assert not trt_version_accepts("11.4.0.106", "11.3.0.1", True, False)  # never on older ones
    assert not trt_version_accepts("11.3.0.1", "11.4.0.106", True, True)  # lean runtime excluded: same version


def test_build_then_reuse(tmp_path):
    onnx, engines, b, logs = _onnx(tmp_path), tmp_path / "engines", FakeBuilder(), []
    r1 = _fob(onnx, engines, b, logs)
    assert r1.action == "built" and len(b.calls) == 1 and r1.path.is_file()
    side = read_sidecar(r1.path)
    assert side["key"]["onnx_sha256"] == r1.key.onnx_sha256 and side["engine"]["bytes"] == r1.path.stat().st_size
    assert sidecar_path(r1.path).name == r1.path.name + ".json"
    r2 = _fob(onnx, engines, b, logs)
    assert r2.action == "cached" and r2.path == r1.path and len(b.calls) == 1
    assert any("using" in m for m in logs)


@pytest.mark.parametrize("change, expect", [
    (dict(trt_version="10.14.1.48"), "TensorRT changed (10.13.0.35 -> 10.14.1.48)"),
    (dict(compute_capability="8.0"), "GPU changed (sm90 -> sm80)"),
    (dict(profile=Profile(PFN_INPUT, 1, 12000, 30000)), "profile pillars min/opt/max 1/12000/40000 -> 1/12000/30000"),
    (dict(version_compatible=True), "version-compatible=False"),
])
def test_stale_engine_is_reported_and_rebuilt(tmp_path, change, expect):
    onnx, engines, b, logs = _onnx(tmp_path), tmp_path / "engines", FakeBuilder(), []
    old = _fob(onnx, engines, b, logs)
    new = _fob(onnx, engines, b, logs, **change)
    assert new.action == "rebuilt" and len(b.calls) == 2 and new.path != old.path
    assert any(expect in r for r in new.reasons), new.reasons
    assert any(old.path.name in m and expect in m for m in logs), logs


def test_changed_onnx_is_stale(tmp_path):
    engines, b, logs = tmp_path / "engines", FakeBuilder(), []
    onnx = _onnx(tmp_path, b"onnx-v1")
    old = _fob(onnx, engines, b, logs)
    onnx.write_bytes(b"onnx-v2")
    new = _fob(onnx, engines, b, logs)
    assert new.action == "rebuilt" and "ONNX changed" in new.reasons[0]
    assert old.key.onnx_sha256[:12] in new.reasons[0] and new.key.onnx_sha256[:12] in new.reasons[0]


@pytest.mark.parametrize("damage, expect", [
    (lambda p: p.write_bytes(p.read_bytes()[:-3] + b"xyz"), "corrupt"),
    (lambda p: p.write_bytes(b""), "corrupt"),
    (lambda p: sidecar_path(p).unlink(), "no sidecar"),
    (lambda p: sidecar_path(p).write_text("{not json"), "unreadable"),
    (lambda p: sidecar_path(p).write_text('{"key": {"network": "pfn"}}'), "malformed"),
])
def test_damaged_engine_is_rebuilt_in_place(tmp_path, damage, expect):
    onnx, engines, b, logs = _onnx(tmp_path), tmp_path / "engines", FakeBuilder(), []
    first = _fob(onnx, engines, b, logs)
    damage(first.path)
    again = _fob(onnx, engines, b, logs)
    assert again.action == "rebuilt" and again.path == first.path and len(b.calls) == 2
    assert expect in again.reasons[0], again.reasons
    assert read_sidecar(again.path)["engine"]["bytes"] == again.path.stat().st_size


def test_engine_that_tensorrt_refuses_is_rebuilt(tmp_path):
    onnx, engines, b, logs = _onnx(tmp_path), tmp_path / "engines", FakeBuilder(), []
    _fob(onnx, engines, b, logs)

    def refuse(path):
        raise UserError(f"{path}: TensorRT cannot load this engine")

    r = _fob(onnx, engines, b, logs, check_fn=refuse)
    assert r.action == "rebuilt" and "cannot be loaded" in r.reasons[0]


def test_force_rebuilds(tmp_path):
    onnx, engines, b, logs = _onnx(tmp_path), tmp_path / "engines", FakeBuilder(), []
    _fob(onnx, engines, b, logs)
    r = _fob(onnx, engines, b, logs, force=True)
    assert r.action == "rebuilt" and len(b.calls) == 2


def test_without_builder_a_stale_engine_is_an_error_not_used(tmp_path):
    onnx, engines, b, logs = _onnx(tmp_path), tmp_path / "engines", FakeBuilder(), []
    _fob(onnx, engines, b, logs)
    with pytest.raises(UserError, match=r"no usable TensorRT engine for pfn fp16 .*GPU changed"):
        _fob(onnx, engines, None, logs, compute_capability="8.9")
    with pytest.raises(UserError, match="no engine in"):
        _fob(onnx, tmp_path / "empty", None, logs)
    with pytest.raises(UserError, match="ONNX file not found"):
        _fob(tmp_path / "nope.onnx", engines, b, logs)


def test_version_compatible_engine_serves_a_newer_runtime(tmp_path):
    onnx, engines, b, logs = _onnx(tmp_path), tmp_path / "engines", FakeBuilder(), []
    vc = _fob(onnx, engines, b, logs, trt_version="11.3.0.1", version_compatible=True)
    r = _fob(onnx, engines, None, logs, trt_version="11.3.0.1", version_compatible=True,
             runtime_trt_version="11.4.0.106")
    assert r.action == "cached" and r.path == vc.path
    old = EngineKey.from_dict(read_sidecar(vc.path)["key"])
    assert describe_differences(old, old, runtime_trt_version="11.2.0") == ["TensorRT changed (11.3.0.1 -> 11.2.0)"]


def test_builder_producing_nothing_is_an_error(tmp_path):
    with pytest.raises(UserError, match="produced no engine"):
        _fob(_onnx(tmp_path), tmp_path / "engines", lambda o, k: b"", [])


# ---------------------------------------------------------------------------- build CLI
def _parse(argv):
    parser = argparse.ArgumentParser(prog="pointpillars-trt")
    build_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_parses_all_options(tmp_path):
    a = _parse(["build", "--onnx-dir", str(tmp_path), "--precision", "fp16", "--max-pillars", "30000",
                "--opt-pillars", "8000", "--max-batch", "4", "--version-compatible", "--workspace-mb", "2048",
                "--force", "--engines-dir", str(tmp_path / "e")])
    assert a.func is build_cli.run and a.precision == ["fp16"] and a.max_pillars == 30000
    assert (a.opt_pillars, a.max_batch, a.version_compatible, a.workspace_mb, a.force) == (8000, 4, True, 2048, True)
    from pointpillars_trt.cache_dir import default_cache_dir

    d = _parse(["build", "--onnx-dir", str(tmp_path)])
    assert d.precision == ["fp32", "fp16"] and d.max_pillars == 40000 and d.opt_pillars == 12000
    assert d.cache_dir == default_cache_dir() and d.max_batch == 1 and d.engines_dir is None and not d.version_compatible  # None: --cache-dir's folder


def test_cli_without_any_builder_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(fl, "select", lambda **kw: None)  # as on a machine with neither tensorrt nor tensorrt-rtx
    with pytest.raises(UserError) as e:
        build_cli.run(_parse(["build", "--onnx-dir", str(tmp_path)]))
    msg = str(e.value)
    assert "no TensorRT builder is installed" in msg and "pip install tensorrt-rtx" in msg
    assert "full `tensorrt` package" in msg and "--backend torch (GPU)" in msg and "\n" not in msg


@pytest.mark.parametrize("argv, expect", [
    (["--opt-pillars", "50000"], "larger than --max-pillars"),
    (["--max-batch", "0"], "--max-batch must be at least 1"),
    (["--exclude-lean-runtime"], "only applies with --version-compatible"),
])
def test_cli_rejects_bad_options_before_touching_tensorrt(tmp_path, argv, expect):
    with pytest.raises(UserError, match=expect):
        build_cli.run(_parse(["build", "--onnx-dir", str(tmp_path)] + argv))


def test_build_all_builds_four_engines_with_progress(tmp_path):
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    for n in ("pfn", "rpn"):
        for p in ("fp32", "fp16"):
            (onnx_dir / f"{n}_{p}.onnx").write_bytes(f"{n}{p}".encode())
    b, logs = FakeBuilder(), []
    kw = dict(trt_version="11.4.0.106", compute_capability="9.0", builder_fn=b, log=logs.append)
    res = builder.build_all(onnx_dir, tmp_path / "eng", ["fp32", "fp16"], builder.profiles_for(40000, 12000, 2), **kw)
    assert [(r.key.network, r.key.precision, r.action) for r in res] == [
        ("pfn", "fp32", "built"), ("rpn", "fp32", "built"), ("pfn", "fp16", "built"), ("rpn", "fp16", "built")]
    assert logs[0].startswith("[1/4] pfn fp32") and any(m.startswith("[4/4] rpn fp16") for m in logs)
    assert len(list((tmp_path / "eng").glob("*.engine"))) == 4
    again = builder.build_all(onnx_dir, tmp_path / "eng", ["fp16"], builder.profiles_for(40000, 12000, 2), **kw)
    assert [r.action for r in again] == ["cached", "cached"] and len(b.calls) == 4
    (onnx_dir / "rpn_fp32.onnx").unlink()
    with pytest.raises(UserError, match="ONNX files missing: .*rpn_fp32.onnx"):
        builder.build_all(onnx_dir, tmp_path / "eng", ["fp32"], builder.profiles_for(40000, 12000, 2), **kw)


# ---------------------------------------------------------------------------- GPU check
def test_probe_gpu_without_driver_library():
    info, why = tr.probe_gpu(lib_names=("libdefinitely_not_cuda.so.9",))
    assert info is None and "libcuda" in why


@pytest.mark.skipif(GPU is not None, reason=f"a GPU is present ({GPU})")
def test_no_gpu_is_a_user_error_before_any_runtime(tmp_path):
    with pytest.raises(UserError, match="needs an NVIDIA GPU"):
        tr.require_gpu()

    class Boom:
        def __getattr__(self, name):
            raise AssertionError(f"TensorRT touched without a GPU: {name}")

    eng = tmp_path / "x.engine"
    eng.write_bytes(b"whatever")
    with pytest.raises(UserError, match="needs an NVIDIA GPU"):
        tr.TensorRTRunner(eng, trt_module=Boom()).activate()


_CHILD = textwrap.dedent("""
    import sys
    from pointpillars_trt.backends.tensorrt.runner import TensorRTRunner
    from pointpillars_trt.errors import UserError
    try:
        TensorRTRunner(sys.argv[1], allow_host_code=sys.argv[2] == "1").activate()
    except UserError as e:
        print("USERERROR:", e)
    else:
        print("LOADED")
""")


def _child_activate(engine: Path, allow_host_code: bool = False) -> subprocess.CompletedProcess:
    """Activate a runner in a child process so a TensorRT crash (segfault) fails the test, not the run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", _CHILD, str(engine), "1" if allow_host_code else "0"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


@pytest.mark.skipif(TRT is None, reason="no TensorRT Python module (tensorrt / tensorrt_lean) importable")
@pytest.mark.skipif(GPU is not None, reason="a GPU is present")
def test_real_trt_module_without_gpu_does_not_crash(tmp_path):
    eng = tmp_path / "garbage.engine"
    eng.write_bytes(os.urandom(4096))
    p = _child_activate(eng)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "USERERROR:" in p.stdout and "needs an NVIDIA GPU" in p.stdout


# ---------------------------------------------------------------------------- runner logic on a fake TensorRT
class FakeDev:
    """A device-array stand-in exposing only __cuda_array_interface__."""

    def __init__(self, shape, dtype=np.float32, ptr=0x7F0000000000):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": np.dtype(dtype).str,
                                         "data": (ptr, False), "version": 3, "strides": None}


class _Mode:
    INPUT, OUTPUT = "IN", "OUT"


class _DT:
    def __init__(self, name):
        self.name = name


class FakeEngine:
    """PFN-shaped engine: pillars [-1,32,10] -> pillar_features [-1,64], profile 1/12000/40000."""

    num_optimization_profiles = 1

    def __init__(self, in_dtype="FLOAT"):
        self.t = {PFN_INPUT: (_Mode.INPUT, in_dtype, (-1, 32, 10)), PFN_OUTPUT: (_Mode.OUTPUT, "FLOAT", (-1, 64))}
        self.num_io_tensors = 2

    def get_tensor_name(self, i):
        return list(self.t)[i]

    def get_tensor_mode(self, n):
        return self.t[n][0]

    def get_tensor_dtype(self, n):
        return _DT(self.t[n][1])

    def get_tensor_shape(self, n):
        return self.t[n][2]

    def get_tensor_profile_shape(self, n, profile):
        assert profile == 0
        return [(1, 32, 10), (12000, 32, 10), (40000, 32, 10)]

    def create_execution_context(self):
        return FakeContext()


class FakeContext:
    def __init__(self):
        self.calls, self.shape = [], None

    def set_input_shape(self, n, s):
        self.calls.append(("shape", n, tuple(s)))
        self.shape = tuple(s)
        return True

    def get_tensor_shape(self, n):
        return (self.shape[0], 64)

    def set_tensor_address(self, n, p):
        self.calls.append(("addr", n, p))
        return True

    def execute_async_v3(self, stream):
        self.calls.append(("exec", stream))
        return True


def _fake_trt(engine=None, version="10.13.0.35"):
    made = {}

    class Runtime:
        def __init__(self, logger):
            self.engine_host_code_allowed = False
            made["runtime"] = self

        def deserialize_cuda_engine(self, plan):
            return engine

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    return SimpleNamespace(Runtime=Runtime, Logger=Logger, TensorIOMode=_Mode, __version__=version), made


def _runner(tmp_path, engine, **kw):
    eng = tmp_path / "pfn.engine"
    eng.write_bytes(b"plan")
    trt, made = _fake_trt(engine)
    r = tr.TensorRTRunner(eng, trt_module=trt, gpu_check=lambda i: None, **kw)
    return r, made


def test_runner_binds_by_name_and_enqueues(tmp_path):
    r, _ = _runner(tmp_path, FakeEngine())
    with r:
        assert r.input_names == (PFN_INPUT,) and r.output_names == (PFN_OUTPUT,)
        assert r.max_shape(PFN_INPUT) == (40000, 32, 10)
        assert r.tensors[PFN_INPUT].dtype == np.float32
        ctx = r._context
        r.infer({PFN_INPUT: FakeDev((5000, 32, 10), ptr=0x1000)}, {PFN_OUTPUT: FakeDev((5000, 64), ptr=0x2000)}, 77)
        assert ctx.calls == [("shape", PFN_INPUT, (5000, 32, 10)), ("addr", PFN_INPUT, 0x1000),
                             ("addr", PFN_OUTPUT, 0x2000), ("exec", 77)]
        ctx.calls.clear()
        r.infer({PFN_INPUT: FakeDev((5000, 32, 10), ptr=0x1000)}, {PFN_OUTPUT: FakeDev((5000, 64), ptr=0x2000)}, 77)
        assert ctx.calls == [("exec", 77)]  # same shapes and addresses: nothing rebound


def test_runner_rejects_too_many_pillars_with_rebuild_hint(tmp_path):
    r, _ = _runner(tmp_path, FakeEngine())
    with r, pytest.raises(UserError, match=r"40001 pillars exceeds .* 40000.*--max-pillars"):
        r.infer({PFN_INPUT: FakeDev((40001, 32, 10))}, {PFN_OUTPUT: FakeDev((40001, 64))})


def test_runner_rejects_wrong_dtype_shape_and_buffers(tmp_path):
    r, _ = _runner(tmp_path, FakeEngine(in_dtype="HALF"))
    with r:
        with pytest.raises(UserError, match="float16 in the engine but the buffer is float32"):
            r.infer({PFN_INPUT: FakeDev((10, 32, 10))}, {PFN_OUTPUT: FakeDev((10, 64))})
        with pytest.raises(UserError, match="built for another model configuration"):
            r.infer({PFN_INPUT: FakeDev((10, 20, 10), np.float16)}, {PFN_OUTPUT: FakeDev((10, 64))})
        with pytest.raises(ValueError, match="below the profile minimum"):
            r.infer({PFN_INPUT: FakeDev((0, 32, 10), np.float16)}, {PFN_OUTPUT: FakeDev((0, 64))})
        with pytest.raises(ValueError, match="the engine writes float32\\[10, 64\\]"):
            r.infer({PFN_INPUT: FakeDev((10, 32, 10), np.float16)}, {PFN_OUTPUT: FakeDev((12, 64))})
        with pytest.raises(ValueError, match="missing tensors"):
            r.infer({PFN_INPUT: FakeDev((10, 32, 10), np.float16)}, {})
        with pytest.raises(TypeError, match="__cuda_array_interface__"):
            r.infer({PFN_INPUT: np.zeros((10, 32, 10), np.float16)}, {PFN_OUTPUT: FakeDev((10, 64))})


def test_runner_reports_unloadable_plan(tmp_path):
    r, _ = _runner(tmp_path, None)
    with pytest.raises(UserError, match="cannot load this engine: corrupt, not a TensorRT plan"):
        r.activate()
    with pytest.raises(UserError, match="engine file not found"):
        tr.TensorRTRunner(tmp_path / "missing.engine", trt_module=_fake_trt()[0], gpu_check=lambda i: None).activate()


def test_host_code_only_for_self_built_version_compatible_plans(tmp_path):
    r, made = _runner(tmp_path, FakeEngine())
    r.activate()
    assert made["runtime"].engine_host_code_allowed is False  # no sidecar: untrusted
    key = EngineKey("pfn", "fp16", "0" * 64, PFN_PROFILE, "11.4.0.106", "9.0", version_compatible=True)
    sidecar_path(r.engine_path).write_text(json.dumps({"key": key.to_dict()}))
    r.activate()
    assert made["runtime"].engine_host_code_allowed is True
    r2, made2 = _runner(tmp_path, FakeEngine(), allow_host_code=False)
    r2.activate()
    assert made2["runtime"].engine_host_code_allowed is False


# ---------------------------------------------------------------------------- the real TensorRT module's API
@pytest.mark.skipif(TRT is None, reason="no TensorRT Python module (tensorrt / tensorrt_lean) importable")
def test_trt_module_has_the_api_the_runner_uses():
    """Every attribute the runner calls exists (checked here against the lean 11.4 bindings, no GPU needed)."""
    for attr in ("deserialize_cuda_engine", "engine_host_code_allowed"):
        assert hasattr(TRT.Runtime, attr), attr
    for attr in ("num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype", "get_tensor_shape",
                 "get_tensor_profile_shape", "num_optimization_profiles", "create_execution_context"):
        assert hasattr(TRT.ICudaEngine, attr), attr
    for attr in ("set_input_shape", "get_tensor_shape", "set_tensor_address", "execute_async_v3"):
        assert hasattr(TRT.IExecutionContext, attr), attr
    assert hasattr(TRT.TensorIOMode, "INPUT") and hasattr(TRT.Logger, "WARNING")
    assert tr.np_dtype(TRT.DataType.FLOAT) == np.float32 and tr.np_dtype(TRT.DataType.HALF) == np.float16
    for flag in ("VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"):
        assert hasattr(TRT.BuilderFlag, flag)
    assert not hasattr(TRT.BuilderFlag, "FP16") or str(TRT.__version__).startswith("10.")  # removed in 11.x


# ---------------------------------------------------------------------------- device: GPU + TensorRT runtime
needs_gpu_trt = pytest.mark.skipif(GPU is None or TRT is None,
                                   reason=f"needs a GPU and a TensorRT runtime (gpu: {GPU_WHY or 'ok'}; "
                                          f"trt: {'ok' if TRT else 'absent'})")


@needs_gpu_trt
def test_gpu_probe_reports_compute_capability():
    assert GPU.compute_capability[0] >= 5 and GPU.sm.startswith("sm") and GPU.name


@needs_gpu_trt
@pytest.mark.parametrize("kind", ["random", "foreign", "empty", "truncated_header"])
@pytest.mark.parametrize("allow_host_code", [False, True])
def test_corrupt_or_foreign_plan_is_a_user_error(tmp_path, kind, allow_host_code):
    data = {
        "random": os.urandom(64 * 1024),
        "foreign": b"\x08\x07\x12\x07pytorch\x1a\x032.1" + os.urandom(2048),  # an ONNX-like protobuf header
        "empty": b"",
        "truncated_header": b"ftrt" + b"\x00" * 12,
    }[kind]
    eng = tmp_path / f"{kind}.engine"
    eng.write_bytes(data)
    p = _child_activate(eng, allow_host_code)
    assert p.returncode == 0, f"child crashed (rc {p.returncode}): {p.stdout}\n{p.stderr[-2000:]}"
    assert "USERERROR:" in p.stdout, p.stdout + p.stderr[-2000:]
    assert ("rebuild" in p.stdout) or ("empty" in p.stdout)


@needs_gpu_trt
def test_runtime_accepts_host_code_flag():
    rt = TRT.Runtime(TRT.Logger(TRT.Logger.WARNING))
    rt.engine_host_code_allowed = True
    assert rt.engine_host_code_allowed is True


# ---------------------------------------------------------------------------- device: full builder
BUILDER = fl.select(need_builder=True)
needs_builder = pytest.mark.skipif(
    BUILDER is None or GPU is None or fl.unsupported(BUILDER, GPU.cc) is not None,
    reason=NO_BUILDER if BUILDER is None else GPU_WHY or f"{BUILDER.label} cannot run on this GPU ({GPU})")


def _tiny_pfn_onnx(path: Path, dtype=np.float32) -> None:
    """pillars [P,32,10] -> MatMul(10x64) -> ReduceMax over points -> pillar_features [P,64]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    et = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((10, 64)).astype(dtype), "w")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    g = helper.make_graph(
        [helper.make_node("MatMul", [PFN_INPUT, "w"], ["h"]),
         helper.make_node("ReduceMax", ["h", "axes"], [PFN_OUTPUT], keepdims=0)],
        "tiny_pfn", [helper.make_tensor_value_info(PFN_INPUT, et, ["P", 32, 10])],
        [helper.make_tensor_value_info(PFN_OUTPUT, et, ["P", 64])], [w, axes])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), path)


@needs_builder
def test_build_and_run_tiny_engine(tmp_path):
    import torch

    from pointpillars_trt.backends.tensorrt.builder import build_serialized_engine

    onnx_path = tmp_path / "pfn_fp32.onnx"
    _tiny_pfn_onnx(onnx_path)
    prof = Profile(PFN_INPUT, 1, 64, 128)
    plan = build_serialized_engine(onnx_path, prof, flavour=BUILDER, targets=(GPU.cc,), workspace_mb=256,
                                   timing_cache=tmp_path / "t.cache")
    assert (tmp_path / "t.cache").is_file() == BUILDER.has_timing_cache  # RTX: timing caches are no-ops
    eng = tmp_path / "pfn.engine"
    eng.write_bytes(plan)
    x = torch.randn(100, 32, 10, device="cuda")
    y = torch.empty(100, 64, device="cuda")
    s = torch.cuda.Stream()
    with tr.TensorRTRunner(eng) as r:
        r.infer({PFN_INPUT: x}, {PFN_OUTPUT: y}, s.cuda_stream)
        s.synchronize()
        with pytest.raises(UserError, match="--max-pillars"):
            r.infer({PFN_INPUT: torch.empty(129, 32, 10, device="cuda")}, {PFN_OUTPUT: torch.empty(129, 64, device="cuda")})
    import onnx.numpy_helper as nh
    import onnx as _onnx_mod

    w = nh.to_array(_onnx_mod.load(onnx_path).graph.initializer[0])
    ref = (x.cpu().numpy() @ w).max(axis=1)
    np.testing.assert_allclose(y.cpu().numpy(), ref, rtol=1e-2, atol=1e-2)
