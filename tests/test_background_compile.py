"""When the RPN compiles (backends/inductor_compile.py): the compile= values, the record of tuned shapes, the worker
threads (CPU, real threads), and on a GPU the pipeline that serves its first scans uncompiled, captures no graph while
Inductor works on the other thread, then captures the compiled RPN, which gives the same heads as compiling first."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CHECKPOINT as CKPT, SHARED, gpu_stack_reason
from pointpillars_trt.backends.inductor_compile import (SWITCH_INTERVAL_S, TUNED_FILE, BackgroundCompiles, TunedShapes,
                                                        compile_mode, first_call_plan)
from pointpillars_trt.errors import UserError


def test_compile_values() -> None:
    assert [compile_mode(v) for v in (True, False, None, "auto", "now", "off")] == \
        ["now", "off", "off", "auto", "now", "off"]
    for bad in ("yes", 1, "Auto", "background"):
        with pytest.raises(UserError, match="compile must be one of auto, now, off"):
            compile_mode(bad)


def test_auto_never_compiles_before_an_answer() -> None:
    """compile='auto' answers every first call uncompiled: from this cache's tuning in the background, or (never
    tuned here) a tuning in a child process once the run is long; only 'now' compiles (and tunes) first."""
    assert [first_call_plan("auto", t) for t in (True, False)] == ["background", "tune"]
    assert [first_call_plan(m, t) for m in ("now", "off") for t in (True, False)] == ["now", "now", "off", "off"]


def _tuner(tmp_path: Path, code: str) -> tuple[subprocess.Popen, Path]:
    """A real child process standing in for inductor_tune.py (its own session, as spawn() starts it)."""
    log = tmp_path / f"tune{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True), log


def test_a_tuning_waits_for_a_long_run_then_its_compile_follows(tmp_path: Path) -> None:
    """A short run never starts its tuning process; once the run is long (replays and seconds) it starts, runs beside
    the replays (nothing is 'running' that would block a new shape), and when it ends well the compile job runs."""
    bc, spawned, compiled, logs = BackgroundCompiles(tune_after=5, tune_after_s=0.3), [], [], []
    bc._log = logs.append

    def spawn() -> tuple[subprocess.Popen, Path]:
        spawned.append(1)
        return _tuner(tmp_path, "import time; time.sleep(0.5); print('tuned')")

    bc.request_tuning((1, 64), spawn, lambda: compiled.append(threading.get_ident()))
    bc.request_tuning((1, 64), spawn, lambda: compiled.append(0))  # asked again: still one
    assert bc.queued and bc.pending and bc.listening and not bc.running
    for _ in range(10):
        bc.note_replay()  # ten quick replays: enough of them, not long enough
    assert not spawned
    time.sleep(0.35)
    bc.note_replay()
    assert spawned == [1] and bc.tuning and not bc.running and not bc.queued and bc.pending
    assert "tuning the RPN for shape [1, 64]" in logs[-1] and "background process" in logs[-1]
    t0 = time.monotonic()
    while bc.pending and time.monotonic() - t0 < 20:
        bc.note_replay()
        time.sleep(0.05)
    assert bc.ready == {(1, 64)} and len(compiled) == 1 and compiled[0] != threading.get_ident()
    assert any("tuned shape [1, 64]" in m for m in logs) and "compiled in the background" in logs[-1]
    assert not list(tmp_path.glob("*.log"))  # a tuning that ended well leaves no log


def test_a_failed_tuning_keeps_the_uncompiled_module_and_its_output(tmp_path: Path) -> None:
    bc, logs, compiled = BackgroundCompiles(), [], []
    bc._log = logs.append
    bc.request_tuning("s", lambda: _tuner(tmp_path, "import sys; print('no Triton here'); sys.exit(3)"),
                      lambda: compiled.append(1))
    assert bc.wait(20)  # wait() starts the tuning at once and waits for it
    log = next(tmp_path.glob("*.log"))
    assert bc.failed == {"s": f"the tuning process ended with exit status 3; its output: {log}"} and not compiled
    assert "no Triton here" in log.read_text() and "uncompiled network keeps running" in logs[-1]
    bc.request_tuning("s", lambda: _tuner(tmp_path, ""), lambda: None)
    assert not bc.pending  # given up on: never retried
    bc.request_tuning("t", lambda: (_ for _ in ()).throw(OSError("no fork")), lambda: None)
    assert bc.wait(5) and bc.failed["t"] == "the tuning process did not start (OSError: no fork)"


def test_close_stops_a_running_tuning_and_its_workers(tmp_path: Path) -> None:
    """The run ends first: the tuning process and the workers it started (its process group) are stopped, at once."""
    bc, logs = BackgroundCompiles(), []
    bc._log = logs.append
    pids = tmp_path / "pids"
    code = "\n".join(["import os, subprocess, sys, time",
                      "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])",
                      f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{p.pid}}')",
                      "time.sleep(120)"])
    bc.request_tuning("s", lambda: _tuner(tmp_path, code), lambda: None)
    bc.start_tuning()
    t0 = time.monotonic()
    while not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() - t0 < 20:
        time.sleep(0.05)
    tuner, worker = map(int, pids.read_text().split())
    t0 = time.monotonic()
    bc.close()
    assert time.monotonic() - t0 < 8 and "stopping the RPN's background tuning" in logs[-1]
    for pid in (tuner, worker):
        for _ in range(100):  # give the signal a moment
            if not _alive(pid):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"process {pid} still runs after close()")
    assert not bc.pending and not list(tmp_path.glob("*.log"))


def _alive(pid: int) -> bool:
    """Running (a zombie, killed but not yet reaped by whoever adopted it, counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_tuned_shapes_persist_and_survive_a_bad_file(tmp_path: Path) -> None:
    tuned = TunedShapes(tmp_path / "inductor")
    assert "a|1x64" not in tuned  # no folder yet
    tuned.add("a|1x64")
    tuned.add("b|4x64")
    again = TunedShapes(tmp_path / "inductor")  # another process reading the same cache
    assert "a|1x64" in again and "b|4x64" in again and "c" not in again
    assert sorted(p.name for p in (tmp_path / "inductor").iterdir()) == [TUNED_FILE]  # no temporary file left
    (tmp_path / "inductor" / TUNED_FILE).write_text("{not json")
    assert "a|1x64" not in again  # a damaged record only means tuning in the foreground again
    again.add("c")
    assert "c" in again and "a|1x64" not in again
    assert "x" not in TunedShapes(None)
    TunedShapes(None).add("x")  # no cache folder known: nothing recorded, no error


def test_tuned_shapes_unwritable_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    TunedShapes(blocker / "inductor").add("k")  # the folder cannot be made: no error, nothing recorded
    assert "k" not in TunedShapes(blocker / "inductor")


def test_background_job_queued_then_started_on_a_worker_thread() -> None:
    bc, ran, logs = BackgroundCompiles(), [], []
    bc._log = logs.append
    gate = threading.Event()

    def job() -> None:
        ran.append(threading.get_ident())
        gate.wait(10)

    bc.request((1, 64), job)
    bc.request((1, 64), job)  # asked again before it started: still one job
    assert bc.queued and bc.pending and not bc.running and not ran  # a process that runs one scan never compiles
    bc.start()
    for _ in range(200):
        if ran:
            break
        time.sleep(0.01)
    assert ran and ran[0] != threading.get_ident()  # on a worker thread, not the caller's
    assert bc.running and not bc.queued and (1, 64) not in bc.ready and bc.version == 0
    bc.request((1, 64), job)  # running: not queued again
    assert not bc.queued
    gate.set()
    assert bc.wait(10) and not bc.pending
    assert bc.ready == {(1, 64)} and len(ran) == 1 and bc.version == 1
    assert logs and "compiled in the background" in logs[-1] and "[1, 64]" in logs[-1]
    bc.request((1, 64), job)  # ready: nothing queued again
    assert not bc.pending


def test_queued_jobs_start_after_enough_replays() -> None:
    """A short run never starts its compile (nor waits for it at exit); the start_after-th replay starts it."""
    bc, ran = BackgroundCompiles(start_after=3), []
    bc.request("s", lambda: ran.append(1))
    bc.note_replay()
    bc.note_replay()
    bc.close()  # closing after two replays: the queued job is dropped, nothing waited for
    assert not ran and not bc.pending
    bc.request("t", lambda: ran.append(2))
    bc.note_replay()  # the third replay of this object: start
    assert bc.wait(10) and ran == [2] and bc.ready == {"t"}


def test_background_job_failure_keeps_the_uncompiled_module() -> None:
    bc, logs = BackgroundCompiles(), []
    bc._log = logs.append

    def job() -> None:
        raise RuntimeError("no Triton here\nsecond line")

    bc.request("s", job)
    assert bc.wait(10)  # wait() starts what is queued
    assert bc.failed == {"s": "RuntimeError: no Triton here"} and not bc.ready and not bc.pending
    assert bc.version == 0  # nothing to recapture
    assert "failed (RuntimeError: no Triton here)" in logs[-1] and "uncompiled network keeps running" in logs[-1]
    bc.request("s", job)
    assert not bc.pending  # given up on: never retried


def test_close_drops_queued_jobs_and_waits_for_running_ones() -> None:
    bc, done = BackgroundCompiles(), []
    bc.request("slow", lambda: (time.sleep(0.3), done.append("slow")))
    bc.start()
    bc.request("never", lambda: done.append("never"))
    bc.close()
    assert done == ["slow"] and not bc.pending


def test_short_thread_switches_while_a_job_runs_then_restored() -> None:
    """Scans between compile steps wait less for the GIL; the process gets its own interval back afterwards, and an
    interval changed meanwhile by someone else is left as they set it."""
    before, seen = sys.getswitchinterval(), []
    try:
        sys.setswitchinterval(0.005)
        bc = BackgroundCompiles()
        bc.request("a", lambda: seen.append(sys.getswitchinterval()))
        assert bc.wait(10)
        assert seen == [pytest.approx(SWITCH_INTERVAL_S)] and sys.getswitchinterval() == pytest.approx(0.005)

        sys.setswitchinterval(0.0001)  # already shorter: kept
        bc.request("b", lambda: seen.append(sys.getswitchinterval()))
        assert bc.wait(10)
        assert seen[-1] == pytest.approx(0.0001) and sys.getswitchinterval() == pytest.approx(0.0001)

        sys.setswitchinterval(0.005)
        bc.request("c", lambda: sys.setswitchinterval(0.002))  # the user's own change during the job
        assert bc.wait(10)
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)


# ---- on a GPU ---------------------------------------------------------------------------------------------------
REASON = gpu_stack_reason()
SCANS = sorted((SHARED / "kitti").glob("scans/*.bin"))[:4]


@pytest.fixture(scope="module")
def inductor_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Inductor cache folder for this module's GPU tests, empty at first: the first tunes into it (a child
    process), the second reads that tuning (or, run alone, tunes in the foreground)."""
    return tmp_path_factory.mktemp("inductor")


def _heads(p) -> list:
    from pointpillars_trt.model import tensor_names as tn

    snap = p.snapshot()
    return [snap[n] for n in tn.RPN_OUTPUTS]


@pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")
def test_auto_answers_at_once_on_an_untuned_cache_and_tunes_in_a_child(inductor_cache: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """compile='auto' where the cache never tuned the shape: the first scans run and capture the uncompiled RPN (heads
    as an uncompiled pipeline's), a short run starts no tuning and imports no Dynamo; wait_compiled() starts the
    tuning process, which records the shape as tuned in the same cache; a worker thread then compiles from it, the
    pipeline recaptures, and its heads are those of a pipeline compiling first from that cache (the same kernels)."""
    from pointpillars_trt.model.config import PointPillarsConfig
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache))
    had_dynamo = "torch._dynamo" in sys.modules
    cfg, logs = PointPillarsConfig(), []
    pts = [np.fromfile(p, np.float32).reshape(-1, 4) for p in SCANS]
    shape = (1, cfg.pfn_filters, *cfg.grid_size[1::-1])
    plain = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile=False)
    auto = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile="auto", log=logs.append)
    with plain, auto:
        for x in pts:
            rp, ra = plain.run(x), auto.run(x)
            for a, b in zip(_heads(auto), _heads(plain)):
                assert float(np.abs(a - b).max()) < 1e-3
            assert len(ra.detections) == len(rp.detections)
        assert auto.rpn._mode(shape) == "tune" and auto.compiling
        for _ in range(300):  # a short run: well under a minute of replays
            auto.run(pts[0])
        bg = auto.rpn.background
        assert not bg.tuning and not bg.running and not bg.ready and auto.replays >= 300
        assert had_dynamo or "torch._dynamo" not in sys.modules
        t0 = time.perf_counter()
        assert auto.wait_compiled(900), logs
        assert shape in bg.ready and not bg.failed, logs
        assert any("tuning the RPN for shape [1, 64, 496, 432]" in m for m in logs)
        assert any("tuned shape [1, 64, 496, 432]" in m for m in logs), logs
        assert auto.rpn._tuned_key(shape) in TunedShapes(inductor_cache)
        assert not list(inductor_cache.glob("pointpillars_trt_tune_*"))  # its network file and log are gone
        took = time.perf_counter() - t0
        captures = auto.captures
        auto.run(pts[0])
        assert auto.captures == captures + 1  # recaptured with the compiled RPN
        now = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile="now", log=logs.append)
        with now:
            t0 = time.perf_counter()
            now.run(pts[0])
            assert time.perf_counter() - t0 < max(30.0, took / 2)  # from the child's tuning, not tuned again
            for x in pts:
                ra, rn = auto.run(x), now.run(x)
                for a, b in zip(_heads(auto), _heads(now)):
                    assert float(np.abs(a - b).max()) < 1e-3
                assert len(ra.detections) == len(rn.detections)


@pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")
def test_auto_compiles_in_the_background_once_tuned(inductor_cache: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """compile='auto': a shape this cache never tuned is planned for a tuning (resolved without compiling anything).
    Once tuned, a new pipeline's first scan runs the uncompiled RPN and captures it (heads as an uncompiled
    pipeline's); the compile starts after 100 replays of that graph, replays go on meanwhile, then the graph is
    captured again with the compiled RPN, whose heads are those of a pipeline that compiled first."""
    from pointpillars_trt.model.config import PointPillarsConfig
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline

    cfg = PointPillarsConfig()
    pts = [np.fromfile(p, np.float32).reshape(-1, 4) for p in SCANS]
    shape = (1, cfg.pfn_filters, *cfg.grid_size[1::-1])
    untuned = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile="auto")
    with monkeypatch.context() as m, untuned:
        m.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "empty"))
        assert untuned.rpn._mode(shape) == "tune"  # resolved without compiling anything
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache))
    now = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile="now", graph=True)
    plain = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile=False, graph=True)
    heads = _heads
    with now, plain:
        for x in pts:  # every torch module call of this test before the background compile starts
            now.run(x)  # tunes in the foreground (or loads the cache's tuning) and records it
            plain.run(x)
        bg = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile="auto", graph=True)
        with bg:
            x = pts[0]
            bg.run(x)
            assert bg.rpn._mode(shape) == "background" and bg.compiling and not bg.rpn.background.running
            assert bg.captures == 1  # the uncompiled RPN, captured
            during, t0 = 0, time.perf_counter()
            while bg.compiling:
                bg.run(x)  # the 100th replay starts the compile
                ref = plain if bg.captures == 1 else now  # recaptured, compiled, if the compile just ended
                ref.run(x)
                for a, b in zip(heads(bg), heads(ref)):
                    assert float(np.abs(a - b).max()) < 1e-3
                during += 1
                assert time.perf_counter() - t0 < 300, "the background compile took over 5 minutes"
            assert during >= 100 and bg.replays >= during - 1 and bg.captures <= 2
            assert not bg.rpn.background.failed and shape in bg.rpn.background.ready
            bg.run(pts[1])  # another bucket after the compile: the compiled RPN straight away
            for x in pts:
                bg.run(x)
                rb, rn = bg.run(x), now.run(x)  # graph replays
                for a, b in zip(heads(bg), heads(now)):
                    assert float(np.abs(a - b).max()) < 1e-3  # the same compiled kernels from the same cache
                assert len(rb.detections) == len(rn.detections)
            assert bg.captures >= 2 and not bg.compiling
        again = make_gpu_pipeline(cfg, "torch", "fp16", checkpoint=CKPT, compile="auto", graph=True)
        with again:
            again.run(pts[0])
            assert again.compiling and not again.rpn.background.running  # queued: one scan never waits for Inductor
        assert not again.compiling  # closing dropped the queued job
