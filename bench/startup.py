"""Time to the first detection of a fresh process, phase by phase (issue 11's start-up target): importing the
package and torch, making the default detector (model files, pipeline, Numba kernels, Inductor), the first scan
and the second. Run twice on the device against the same cache folders: cold, then warm.
python bench/startup.py SCAN [--no-compile | --compile-now] [--why] [--switch-interval MS] [--stall-ms MS FILE]
With compile='auto' (the default), a process whose Inductor cache already tuned the RPN detects with the uncompiled
RPN first and compiles in the background: then it also reports the scans run meanwhile and when the compiled RPN
took over.
--why: profile the detector's set-up and first scan (the package's own calls, then Inductor's and Dynamo's) and
print the compile caches' hit and miss counters, to see what a warm process still computes.
--stall-ms MS FILE: during the background compile, write every thread's Python stack to FILE whenever a scan takes
longer than MS (faulthandler's watchdog, which needs no GIL), to see what the compiling thread does meanwhile.
--switch-interval MS: the thread switch interval while the background compile runs (the package's default 0.5 ms;
5 is Python's own), to see how long the scans run meanwhile wait for the GIL held by the compiling thread.
"""
from __future__ import annotations

import sys
import time

T0 = time.perf_counter()
MARKS: list[tuple[str, float]] = []


def mark(what: str) -> None:
    MARKS.append((what, time.perf_counter()))


def main() -> int:
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np

    mark("python + numpy")
    import torch  # noqa: F401

    mark("import torch")
    import pointpillars_trt as pp

    mark("import pointpillars_trt")
    from numba import cuda

    cuda.current_context()
    mark("CUDA context (numba)")
    compile_ = False if "--no-compile" in sys.argv else "now" if "--compile-now" in sys.argv else "auto"
    why = "--why" in sys.argv
    if "--switch-interval" in sys.argv:
        from pointpillars_trt.backends import inductor_compile

        inductor_compile.SWITCH_INTERVAL_S = float(sys.argv[sys.argv.index("--switch-interval") + 1]) / 1e3
        mark(f"switch interval while compiling {inductor_compile.SWITCH_INTERVAL_S * 1e3:g} ms")
    if why:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    det = pp.Detector.default(device="cuda", precision="fp16", compile=compile_)
    mark("Detector.default (model files, pipeline, runners)")
    pts = np.fromfile(sys.argv[1], np.float32).reshape(-1, 4)
    d = det(pts)
    mark(f"first scan ({len(d)} detections)")
    if why:
        prof.disable()
        _explain(prof)
    first = MARKS[-1][1]
    det(pts)
    mark("second scan")
    during = _until_compiled(det, pts)
    det.close()
    prev = T0
    for what, t in MARKS:
        print(f"{(t - prev) * 1e3:10.1f} ms  {what}")
        prev = t
    print(f"{(first - T0) * 1e3:10.1f} ms  to the first detection (compile={compile_})")
    if during:
        print(during)
    return 0


def _until_compiled(det, pts) -> str:
    """With a background compile: scans run meanwhile (their wall times: the GIL is shared with Dynamo), when the
    compiled RPN took over, and the scan time after it did."""
    import numpy as np

    if not det.pipeline.compiling:
        return ""
    import faulthandler

    stall = None
    if "--stall-ms" in sys.argv:
        i = sys.argv.index("--stall-ms")
        stall = (float(sys.argv[i + 1]) / 1e3, open(sys.argv[i + 2], "w"))
    t0, walls = time.perf_counter(), []
    while det.pipeline.compiling and time.perf_counter() - t0 < 300:
        t = time.perf_counter()
        if stall:
            faulthandler.dump_traceback_later(stall[0], file=stall[1])
        det(pts)
        if stall:
            faulthandler.cancel_dump_traceback_later()
        walls.append(time.perf_counter() - t)
    if stall:
        stall[1].close()
    mark(f"scans until the compiled RPN took over ({len(walls)} scans)")
    det(pts)  # the first after the switch: eager once, then captured
    mark("first scan with the compiled RPN (captures its graph)")
    after = []
    for _ in range(200):
        t = time.perf_counter()
        det(pts)
        after.append(time.perf_counter() - t)
    raw = []
    for _ in range(200):  # the pipeline without the Detector's input checks
        t = time.perf_counter()
        det.pipeline.run(pts)
        raw.append(time.perf_counter() - t)
    w, a, r = np.array(walls) * 1e3, np.array(after) * 1e3, np.array(raw) * 1e3
    return (f"while compiling: {len(w)} scans, wall p50 {np.median(w):.2f} ms, p99 {np.percentile(w, 99):.2f} ms, "
            f"max {w.max():.2f} ms\ncompiled (graph replays): detector(points) p50 {np.median(a):.3f} ms, p99 "
            f"{np.percentile(a, 99):.3f} ms; pipeline.run p50 {np.median(r):.3f} ms, p99 {np.percentile(r, 99):.3f} ms")


def _explain(prof) -> None:
    """Where the set-up and first scan went, and whether the compile caches were hit."""
    import io
    import pstats

    out = io.StringIO()
    st = pstats.Stats(prof, stream=out).sort_stats("cumulative")
    st.print_stats("pointpillars_trt", 30)
    st.print_stats("_inductor|_dynamo|numba", 30)
    print("\n".join(line[:170] for line in out.getvalue().splitlines() if line.strip()))
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return
    for group in ("inductor", "aot_autograd", "dynamo_cache", "stats"):
        if counters.get(group):
            print(group, dict(counters[group]))


if __name__ == "__main__":
    raise SystemExit(main())
