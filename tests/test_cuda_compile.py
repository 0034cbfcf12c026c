"""Every CUDA kernel compiles to PTX for Hopper (sm_90) with the real Numba CUDA compiler (NVVM), no GPU needed.

The simulator tests run the kernels' Python; this catches what only the compiler sees (a shared-memory shape
that is not a compile-time constant, an unsupported atomic or dtype), which the simulator accepted twice on the
way to the H200. Runs in a child process: device functions ask the current device for its compute capability,
and the child answers (9, 0) without a driver.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, sys
from numba import cuda, types as T
import numba.cuda.api as api, numba.cuda.dispatcher as disp

class Device:
    compute_capability = (9, 0)

api.get_current_device = disp.get_current_device = lambda: Device()
from pointpillars_trt.stages import voxelize_cuda as vc, postprocess_cuda as pc, nms_cuda as nc
from pointpillars_trt.plugins import pillar_scatter as ps
from pointpillars_trt.backends import numba_pfn as nf
from pointpillars_trt.stages import upload_cuda as uc

f32, i32, i64, u32, u64, f64 = T.float32, T.int32, T.int64, T.uint32, T.uint64, T.float64
A = lambda t, n: T.Array(t, n, "C")
I1 = A(i32, 1)
I2 = A(i32, 2)
sigs = {
    vc._cells: (A(f32, 3), I1, f32, f32, f32, f32, f32, f32, f32, f32, i64, i64, i64, I2, I2, I2, I2, I2, I1),
    vc._count_openers: (I1, I2, I2, I2, I2),
    vc._number_pillars: (I1, i64, i64, i64, I2, I2, I2, I2, I2, A(i32, 3), I2, I2, I1, I2),
    vc._fill_buckets: (I1,) + (I2,) * 9,
    vc._place_points: (I1, I1, I2, I2, I2, I2, A(f32, 3), i64, f32, A(f32, 4), I2),
    vc._decorate: (I1, I1, I2, I2, I2, I2, A(i32, 3), I2, i64, i64, i64, f32, f32, f32, f32, f32, f32, A(f32, 4), I2,
                   I2),
    vc._zero_rows: (I2, I2, i64, i64, A(f32, 4)),
    pc._scores_hist: (A(f32, 2), I2, i64, f32, i64, A(f32, 2), I2, I2, I2, I2),
    pc._refine: (A(f32, 2), f32, i64, I2, I2, I2),
    pc._compact: (A(f32, 2), f32, I2, A(i64, 2), A(u32, 2), I2),
    pc._gather_ties: (I2, A(i64, 2), A(u32, 2), I2),
    pc._rank_decode: (I2, A(i64, 2), A(f32, 2), I2, A(f32, 2), A(f32, 2), A(f32, 2), i64, f32, f32, f32,
                      A(f32, 3), A(f32, 2), I2, I2),
    nc._nms_mask: (I2, A(f32, 3), f64, A(u64, 3)),
    # header and detection rows: strided views of the batch's result rows
    nc._nms_greedy: (I2, A(u64, 3), A(f32, 3), A(f32, 2), I2, I2, I2, i64, T.Array(i32, 2, "A"),
                     T.Array(f32, 3, "A")),
    # the FP16 channels-last canvas through a strided view (the default); FP32 NCHW compiled the same way before
    ps._scatter: (A(f32, 3), A(i32, 3), I2, T.Array(T.float16, 4, "A")),
    ps._clear: (A(i32, 3), I2, T.Array(T.float16, 4, "A")),
    nf.pfn_kernel: (A(f32, 2), i64, i64, I2, I2, T.boolean, A(f32, 2), A(f32, 1), A(f32, 3)),
    uc._upload: (I1, A(f32, 2), i64, I1, A(f32, 2)),
}
out = {}
for k, sig in sigs.items():
    try:
        ptx, _ = cuda.compile_ptx(k.py_func, sig, cc=(9, 0))
        out[k.py_func.__name__] = "ok" if ".entry" in ptx else "no kernel entry in the PTX"
    except Exception as e:
        out[k.py_func.__name__] = f"{type(e).__name__}: {str(e)[:500]}"
print(json.dumps(out))
'''


def _nvvm_reason() -> str | None:
    try:
        import numba_cuda  # noqa: F401  (the maintained CUDA target, as on the GPU machine)
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as e:  # noqa: BLE001
        return f"needs numba-cuda with NVVM (pip install 'numba-cuda[cu13]'): {type(e).__name__}: {str(e)[:120]}"
    return None


@pytest.fixture(scope="module")
def compiled() -> dict[str, str]:
    why = _nvvm_reason()
    if why:
        pytest.skip(why)
    r = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(Path.home())})
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert r.returncode == 0 and lines, r.stderr[-2000:]
    return json.loads(lines[-1])


def test_every_kernel_compiles_for_sm90(compiled: dict[str, str]) -> None:
    assert len(compiled) == 18
    failed = {k: v for k, v in compiled.items() if v != "ok"}
    assert not failed, failed
