"""Time to the first detection of a fresh process, phase by phase (issue 11's start-up target): importing the
package and torch, making the default detector (model files, pipeline, Numba kernels, Inductor), the first scan
and the second. Run twice on the device against the same cache folders: cold, then warm.
python bench/startup.py SCAN [--no-compile] [--why]
--why: profile the detector's set-up and first scan (the package's own calls, then Inductor's and Dynamo's) and
print the compile caches' hit and miss counters, to see what a warm process still computes.
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
    compile_ = "--no-compile" not in sys.argv
    why = "--why" in sys.argv
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
    det(pts)
    mark("second scan")
    det.close()
    prev = T0
    for what, t in MARKS:
        print(f"{(t - prev) * 1e3:10.1f} ms  {what}")
        prev = t
    print(f"{(MARKS[-2][1] - T0) * 1e3:10.1f} ms  to the first detection (compile={compile_})")
    return 0


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
