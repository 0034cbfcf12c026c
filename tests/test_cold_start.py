"""A new process's way to its first detection, on the CPU: the torch route needs no ONNX export and imports neither
the exporter nor Dynamo (onnxruntime still gets its export), the CUDA kernels' side-by-side compile (launches
recorded without running, Numba's disk cache filled by a child and asked for what it lacks: NVVM compiles for real,
the CUDA driver is faked since there is no GPU here), the phase marks and `bench --startup`'s table of them.
On a GPU: a fresh process compiles its kernels in child processes, loads every kernel from Numba's cache, and detects
what a process compiling them one by one detects."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CHECKPOINT, REPO, SHARED, gpu_stack_reason
from test_cuda_compile import _nvvm_reason
from pointpillars_trt.errors import UserError
from pointpillars_trt.model import store
from pointpillars_trt.model.config import PointPillarsConfig


def _pythonpath() -> str:
    """This tree first, then whatever the caller's PYTHONPATH holds (on the GPU machine: the carried numpy)."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def _child(code: str, env: dict | None = None, args: tuple = (), timeout: int = 300) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=_pythonpath(), **(env or {}))
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=full,
                          timeout=timeout)


# ---- the model store: an export only for the backends that run ONNX ---------------------------------------------
def test_checkpoint_route_exports_nothing_until_onnx_is_asked_for(tmp_path: Path) -> None:
    cfg = PointPillarsConfig()
    m = store.from_checkpoint(CHECKPOINT, cfg, tmp_path)
    assert m.checkpoint == CHECKPOINT and m.onnx_dir is None and not m.untrained
    assert not (tmp_path / "onnx").exists()  # what the torch backend gets: the checkpoint, nothing written
    with pytest.raises(UserError, match="checkpoint not found"):
        store.from_checkpoint(tmp_path / "missing.pth", cfg, tmp_path)  # still refused before any pipeline


def test_onnxruntime_still_gets_its_export(tmp_path: Path) -> None:
    """The CPU detector exports the checkpoint on its way (a real export, onnxruntime runs it), once."""
    from pointpillars_trt import Detector

    scan = np.fromfile(SHARED / "kitti" / "scans" / "000000.bin", np.float32).reshape(-1, 4)
    with Detector.from_checkpoint(CHECKPOINT, device="cpu", cache_dir=tmp_path) as det:
        exported = sorted((tmp_path / "onnx").glob("*/*.onnx"))
        assert [p.name for p in exported] == ["pfn_fp16.onnx", "pfn_fp32.onnx", "rpn_fp16.onnx", "rpn_fp32.onnx"]
        assert f"(ONNX {exported[0].parent})" in det.description
        n = len(det(scan))
    m = store.from_checkpoint(CHECKPOINT, PointPillarsConfig(), tmp_path)
    assert m.onnx() == exported[0].parent and m.onnx_dir == m.onnx()  # the cached export, not a new one
    assert n >= 0


def test_torch_route_imports_no_exporter_and_no_dynamo() -> None:
    """What make_gpu_pipeline's torch route imports on its way to a pipeline (checkpoint, folded RPN, runners):
    neither torch.onnx / onnx (the export's) nor torch._dynamo / torch._inductor (a compile's), in a fresh process."""
    r = _child(f"""
import sys
from pathlib import Path
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.model import store, tensor_names as tn
from pointpillars_trt.model.networks import load_checkpoint
from pointpillars_trt.model.inference import fold_rpn
from pointpillars_trt.backends.torch_runner import TorchRunner
from pointpillars_trt.backends.numba_pfn import NumbaPfnRunner
from pointpillars_trt.pipelines import factory, gpu
cfg = PointPillarsConfig()
m = store.default_model(cfg, Path({str(REPO / 'no-such-cache')!r}))
nets = load_checkpoint(m.checkpoint, cfg)
TorchRunner(fold_rpn(nets.rpn), tn.RPN_INPUT, tn.RPN_OUTPUTS, "fp16", compile="auto")
NumbaPfnRunner(nets.vfe, tn.PFN_INPUT, tn.PFN_OUTPUT)
print(sorted({{k.split(".")[0] + "." + k.split(".")[1] if k.startswith("torch.") else k.split(".")[0]
               for k in sys.modules if k.split(".")[0] in ("torch", "onnx")}}))
""")
    assert r.returncode == 0, r.stderr
    loaded = set(eval(r.stdout.strip().splitlines()[-1]))
    assert "torch.nn" in loaded  # the route ran
    assert not loaded & {"onnx", "torch.onnx", "torch._dynamo", "torch._inductor"}, loaded
    assert not (REPO / "no-such-cache").exists()


# ---- CUDA kernels: recorded launches, Numba's cache filled by a child and asked what it lacks ----------------------
def test_recording_keeps_the_launch_types_and_runs_nothing() -> None:
    from pointpillars_trt.pipelines import kernel_cache as kc
    from pointpillars_trt.stages import upload_cuda as uc

    counts, pts = np.zeros(3, np.int32), np.zeros((8, 4), np.float32)
    with kc.recording() as calls:
        for _ in range(2):
            uc._upload[256, 32](counts, pts, 5, counts, pts)  # without a GPU a real launch would fail
    assert len(calls) == 2 and len(kc.unique(calls)) == 1
    disp, sig = calls[0]
    assert disp is uc._upload and [str(t) for t in sig][2] == "int64" and sig[1].dtype.name == "float32"
    from numba.cuda.dispatcher import CUDADispatcher

    assert CUDADispatcher.call.__name__ == "call" and CUDADispatcher.call.__qualname__.startswith("CUDADispatcher")
    shares = kc._shares(calls + [(disp, sig[:4])], 4)  # one kernel, two signatures: one share
    assert shares == [[("pointpillars_trt.stages.upload_cuda", "_upload", [sig, sig, sig[:4]])]]


def test_process_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from pointpillars_trt.pipelines import kernel_cache as kc

    monkeypatch.setenv(kc.ENV_VAR, "0")
    assert kc.processes(17) == 0  # the slower path: every kernel compiles in the process
    monkeypatch.setenv(kc.ENV_VAR, "32")
    assert kc.processes(5) == 5
    monkeypatch.setenv(kc.ENV_VAR, "many")
    with pytest.raises(UserError, match="POINTPILLARS_TRT_KERNEL_PROCESSES must be a whole number"):
        kc.processes(3)
    monkeypatch.delenv(kc.ENV_VAR)
    assert kc.processes(17) == (min(kc.MAX_PROCESSES, os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 0)


FAKE_DRIVER = r'''
import sys
from numba import cuda
import numba.cuda.api as api, numba.cuda.dispatcher as disp
from numba.cuda.cudadrv import devices

class Device:
    compute_capability = (9, 0)

class Context:
    device = Device()

api.get_current_device = disp.get_current_device = lambda: Device()
devices.get_context = lambda *a: Context()
cuda.current_context = lambda *a: Context()
disp._Kernel.bind = lambda self: None  # loading into a context needs the driver: the PTX is cached without it
'''


@pytest.mark.skipif(_nvvm_reason() is not None, reason=str(_nvvm_reason()))
def test_a_child_fills_numbas_cache_and_the_parent_finds_what_it_lacks(tmp_path: Path) -> None:
    """kernel_cache.main (the child) compiles a share of real kernels with NVVM into NUMBA_CACHE_DIR; a later process
    asking `missing` finds them cached and names only the signature nobody compiled."""
    from numba import types as T

    A = lambda t, n: T.Array(t, n, "C")  # noqa: E731
    sig = (A(T.int32, 1), A(T.float32, 2), T.int64, A(T.int32, 1), A(T.float32, 2))
    other = (A(T.int32, 1), A(T.float64, 2), T.int64, A(T.int32, 1), A(T.float64, 2))
    share = tmp_path / "share.pkl"
    share.write_bytes(pickle.dumps([("pointpillars_trt.stages.upload_cuda", "_upload", [sig])]))
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    r = _child(FAKE_DRIVER + f"from pointpillars_trt.pipelines import kernel_cache as kc\n"
                             f"sys.exit(kc.main([{str(share)!r}]))", env)
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "numba").rglob("upload_cuda._upload-*.nbi"))  # the kernel's cache index
    probe = FAKE_DRIVER + f"""
import pickle
from pointpillars_trt.pipelines import kernel_cache as kc
from pointpillars_trt.stages import upload_cuda as uc
sig, other = pickle.loads({pickle.dumps((sig, other))!r})
print([s is other for _, s in kc.missing([(uc._upload, sig), (uc._upload, other), (uc._upload, sig)])])
"""
    r = _child(probe, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[True]"  # only the signature no child compiled
    r = _child(probe, {"NUMBA_CACHE_DIR": str(tmp_path / "empty")})
    assert r.stdout.strip().splitlines()[-1] == "[False, True]"  # an empty cache lacks both


# ---- phases and bench --startup ---------------------------------------------------------------------------------
def test_phase_marks_reach_the_file_and_the_startup_table(tmp_path: Path) -> None:
    """A real child process marks phases (one twice: summed); run_once adds the interpreter's exit so that the rows
    add up to the whole process, and table() lays cold and warm side by side."""
    from pointpillars_trt import phases
    from pointpillars_trt.pipelines import startup_timing as st

    code = ("import time\nfrom pointpillars_trt import phases\nphases.mark('start')\ntime.sleep(0.2)\n"
            "phases.mark('work')\ntime.sleep(0.1)\nphases.mark('work')\nphases.note('kernels', '3 loaded')\n"
            "print('scan: 7 detections')")
    env = st.child_env(tmp_path)
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "numba") and "PYTHONDONTWRITEBYTECODE" not in env
    assert st.child_env(tmp_path, fresh_bytecode=True)["PYTHONPYCACHEPREFIX"] == str(tmp_path / "bytecode")
    assert st.torch_bytecode_cached(st.child_env(tmp_path, fresh_bytecode=True)) is False
    runs = [st.run_once(label, [sys.executable, "-c", code], env, tmp_path) for label in ("cold", "warm")]
    for r in runs:
        rows = dict(r["phases"])
        assert list(rows) == ["start", "work", "rest of the run, until exit", st.EXIT_ROW]
        assert 0.28 < rows["work"] < 2.0 and rows["start"] > 0.0
        assert sum(rows.values()) == pytest.approx(r["wall_s"], abs=0.02)
        assert r["notes"] == {"kernels": "3 loaded"} and r["report"] == "scan: 7 detections"
    md = st.table({"runs": runs, "caches": ["NUMBA_CACHE_DIR"], "torch_bytecode_before_cold": False})
    assert md.splitlines()[0] == "| phase | cold s | warm s |" and "| **whole process** |" in md
    assert "Empty at the cold start: NUMBA_CACHE_DIR. torch's bytecode before it: absent" in md
    assert json.loads((tmp_path / "cold.phases.json").read_text())["notes"] == {"kernels": "3 loaded"}
    assert not phases.enabled()  # this process marks nothing
    assert phases.without({phases.ENV_VAR: "f", phases.T0_VAR: "1", "A": "1"}) == {"A": "1"}  # helpers' env
    with pytest.raises(UserError, match="the cold process failed"):
        st.run_once("cold", [sys.executable, "-c", "raise SystemExit(3)"], env, tmp_path)


def test_startup_refuses_a_folder_without_scans_and_a_used_cache(tmp_path: Path) -> None:
    from pointpillars_trt.pipelines import startup_timing as st

    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", "bench", str(tmp_path), "--startup"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=_pythonpath()), timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: --startup needs a scan file or a folder holding .bin scans, got {tmp_path}"]
    (tmp_path / "numba").mkdir()
    with pytest.raises(UserError, match="already holds caches"):
        st.measure(SHARED / "kitti" / "scans" / "000000.bin", [], folder=tmp_path)


def test_tune_command_and_warm_up(tmp_path: Path) -> None:
    """`tune` on the CPU (onnxruntime: nothing to tune, the scans still run); warm_up refuses batch sizes the
    detector cannot run."""
    from pointpillars_trt import Detector

    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", "tune", "--random-init", "--device", "cpu"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=_pythonpath()), timeout=600)
    assert r.returncode == 0, r.stderr
    assert "batch size 1: ready in" in r.stderr and "later runs with these options start from" in r.stderr
    with Detector.random_init(device="cpu") as det:
        assert list(det.warm_up([1], points=2000)) == [1]
        for bad in ([], [0], [2]):
            with pytest.raises(UserError, match="warm-up batch sizes must be 1 to max_batch=1"):
                det.warm_up(bad)


# ---- on a GPU -----------------------------------------------------------------------------------------------------
REASON = gpu_stack_reason()

GPU_CHILD = r'''
import json, sys
import numpy as np
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.pipelines.factory import make_gpu_pipeline
logs = []
pipe = make_gpu_pipeline(PointPillarsConfig(), "torch", "fp16", checkpoint=sys.argv[1], compile="off", log=logs.append)
with pipe:
    results = [pipe.run(np.fromfile(p, np.float32).reshape(-1, 4)) for p in sys.argv[2:]]
dets = [r.detections.as_array().tolist() for r in results]
stats = [[r.stats.num_pillars, r.stats.points_in_range, r.stats.points_kept] for r in results]
from numba.cuda.dispatcher import CUDADispatcher
import gc
disps = [o for o in gc.get_objects() if isinstance(o, CUDADispatcher) and o.py_func.__module__.startswith("pointpillars")]
print(json.dumps({"logs": logs, "dets": dets, "stats": stats, "compiled_here": sum(sum(d._cache_misses.values()) for d in disps),
                  "loaded": sum(sum(d._cache_hits.values()) for d in disps)}))
'''


@pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")
def test_fresh_process_compiles_kernels_in_children_then_loads_them(tmp_path: Path) -> None:
    scans = sorted((SHARED / "kitti" / "scans").glob("*.bin"))[:2]

    def run(cache: str, procs: str | None) -> dict:
        env = {"NUMBA_CACHE_DIR": str(tmp_path / cache)} | ({"POINTPILLARS_TRT_KERNEL_PROCESSES": procs} if procs else {})
        r = _child(GPU_CHILD, env, (CHECKPOINT, *scans))
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    cold = run("a", "4")
    assert any(ln.startswith("compiling ") and " CUDA kernels in 4 processes" in ln for ln in cold["logs"]), cold
    assert cold["compiled_here"] == 0 and cold["loaded"] >= 15  # every kernel from the cache the children filled
    warm = run("a", "4")
    assert not any("CUDA kernels in" in ln for ln in warm["logs"]) and warm["compiled_here"] == 0
    serial = run("b", "0")  # the slower path: each kernel compiled in the process on its first launch
    assert serial["compiled_here"] >= 15 and not any("CUDA kernels in" in ln for ln in serial["logs"])
    # the kernels, compiled in children, loaded, or compiled here, give the same voxels; the detections of the
    # untrained model (200-odd boxes crowding the 0.1 threshold and each other) differ only where FP16 in the RPN
    # (cuDNN may pick other algorithms per process) flips a tie: 3 of 209 boxes, NMS winners among near-twins, on an H100
    assert cold["stats"] == warm["stats"] == serial["stats"] and all(s[0] > 0 for s in cold["stats"])
    for a, b, c in zip(cold["dets"], warm["dets"], serial["dets"]):
        assert len(a) > 0 and abs(len(b) - len(a)) <= len(a) // 20 and abs(len(c) - len(a)) <= len(a) // 20
