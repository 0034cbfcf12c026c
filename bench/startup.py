"""Time to the first detection of a fresh process, phase by phase (issue 11's start-up target): importing the
package and torch, making the default detector (model files, pipeline, Numba kernels, Inductor), the first scan
and the second. Run twice on the device against the same cache folders: cold, then warm.
python bench/startup.py SCAN [--no-compile]
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
    det = pp.Detector.default(device="cuda", precision="fp16", compile=compile_)
    mark("Detector.default (model files, pipeline, runners)")
    pts = np.fromfile(sys.argv[1], np.float32).reshape(-1, 4)
    d = det(pts)
    mark(f"first scan ({len(d)} detections)")
    det(pts)
    mark("second scan")
    det.close()
    prev = T0
    for what, t in MARKS:
        print(f"{(t - prev) * 1e3:10.1f} ms  {what}")
        prev = t
    print(f"{(MARKS[-2][1] - T0) * 1e3:10.1f} ms  to the first detection (compile={compile_})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
