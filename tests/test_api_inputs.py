"""Points input without a GPU: the __cuda_array_interface__ parser on small fake device arrays (shapes, strides,
typestr, the v3 stream key, the device), and a Detector on a stand-in GPU pipeline (what reaches run / run_batch)."""
from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt import Detections, Detector, DevicePoints, UserError
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.model.store import ModelFiles
from pointpillars_trt.pipelines.cpu import ScanResult
from pointpillars_trt.pipelines.inputs import as_scan
from pointpillars_trt.stages.voxelize import VoxelStats

PTR = 0x7F0000000000


class FakeDeviceArray:
    """What CuPy / Numba / torch expose for a device array: a CAI dict and, optionally, __dlpack_device__."""

    def __init__(self, shape=(1000, 4), typestr="<f4", strides=None, device: int | None = 0, **extra):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "strides": strides, "data": (PTR, False),
                                         "version": 3, **extra}
        if device is not None:
            self.__dlpack_device__ = lambda: (2, device)


def refused(obj, *fragments, gpu=True, device_id=0) -> str:
    with pytest.raises(UserError) as e:
        as_scan(obj, gpu=gpu, device_id=device_id)
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_device_array_becomes_device_points():
    a = FakeDeviceArray((1000, 5), stream=1234)
    p = as_scan(a, gpu=True)
    assert p == DevicePoints(PTR, 1000, 20, 0, 1234, a)
    assert as_scan(FakeDeviceArray(strides=(16, 4), stream=None), gpu=True).stream is None  # v3: no sync needed
    assert as_scan(FakeDeviceArray(), gpu=True).stream is None  # v2: no stream key, not torch: unknown
    assert as_scan(FakeDeviceArray(device=None), gpu=True, device_id=3).device_id == 3  # Numba: current device
    assert as_scan(FakeDeviceArray(device=2), gpu=True, device_id=2).device_id == 2
    assert as_scan(p, gpu=True) is p
    single = as_scan(FakeDeviceArray((1, 4), strides=(999, 4)), gpu=True)  # one row: its stride does not matter
    assert single.n == 1 and single.row_stride_bytes == 16


@pytest.mark.parametrize("array, fragments", [
    (FakeDeviceArray(typestr="<f8"), ("float64", "float32")),
    (FakeDeviceArray(typestr="<f2"), ("float16",)),
    (FakeDeviceArray((1000, 3)), ("shape (1000, 3)",)),
    (FakeDeviceArray((4000,)), ("shape (4000,)", "reshape(-1, 4)")),
    (FakeDeviceArray((2, 1000, 4)), ("2-D",)),
    (FakeDeviceArray((0, 4)), ("empty scan",)),
    (FakeDeviceArray(strides=(4, 4000)), ("not C-contiguous", "(16, 4)")),  # transposed [4, N] storage
    (FakeDeviceArray(strides=(32, 4)), ("not C-contiguous",)),  # every other row
    (FakeDeviceArray(device=1), ("on GPU 1 but this detector runs on GPU 0",)),
    (FakeDeviceArray(mask=(1, False)), ("mask",)),
])
def test_bad_device_arrays_are_refused(array, fragments):
    refused(array, *fragments)


def test_device_points_on_a_cpu_detector_are_refused():
    refused(FakeDeviceArray(), "points are on the GPU but this detector runs on the CPU", gpu=False)
    refused(DevicePoints(PTR, 10, 16, 0, None, None), "runs on the CPU", gpu=False)
    refused(DevicePoints(PTR, 10, 16, 1, None, None), "on GPU 1")


def test_cuda_dlpack_without_cai_on_a_cpu_detector_is_refused():
    class CudaDlpack:
        def __dlpack__(self, stream=None):
            raise AssertionError("must not be read")

        def __dlpack_device__(self):
            return (2, 0)

    refused(CudaDlpack(), "runs on the CPU", gpu=False)


def test_numpy_points_are_checked_not_copied(capsys):
    a = np.arange(40, dtype=np.float32).reshape(10, 4)
    assert as_scan(a, gpu=False) is a and as_scan(a, gpu=True) is a  # host input on a GPU detector: uploaded by it
    a[3, 1] = np.inf
    b = as_scan(a, gpu=False)
    assert len(b) == 9 and "dropped 1 point(s) with NaN/Inf" in capsys.readouterr().err
    wide = np.zeros((10, 6), np.float32)
    assert as_scan(wide, gpu=False) is wide
    refused(wide[:, :4], "not C-contiguous", "np.ascontiguousarray", gpu=False)
    refused(np.zeros((10, 4), ">f4"), "float32", gpu=False)


def test_torch_cpu_tensor_is_read_in_place():
    torch = pytest.importorskip("torch")
    t = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    a = as_scan(t, gpu=False)
    assert isinstance(a, np.ndarray) and np.shares_memory(a, t.numpy())


# ---------------------------------------------------------------------------- a Detector on a stand-in GPU pipeline
class StandInGpuPipeline:
    """Records what the Detector hands a GPU pipeline (the names the real GpuPipeline offers)."""

    device_id = 0

    def __init__(self):
        self.calls: list = []
        self.transfers = {"h2d": 0, "d2d": 0, "d2h": 0}
        self.exited = 0

    def _result(self, scan):
        rows = np.zeros((1, 9), np.float32)
        rows[0, 8] = 1
        return ScanResult(Detections.from_array(rows), VoxelStats(1, 1, 1, 0, 0), {"total": 0.0})

    def run(self, scan, keep_on_device=False):
        self.calls.append(("run", scan, keep_on_device))
        r = self._result(scan)
        r.device_rows = "rows on the GPU" if keep_on_device else None
        return r

    def run_batch(self, scans):
        self.calls.append(("run_batch", list(scans)))
        return [self._result(s) for s in scans]

    def __exit__(self, *exc):
        self.exited += 1


@pytest.fixture
def gpu_detector():
    pipe = StandInGpuPipeline()
    det = Detector(pipe, cfg=PointPillarsConfig(), model=ModelFiles(None, None, False), backend="torch", device="cuda",
                   precision="fp16", description="stand-in", max_batch=2)
    return det, pipe


def test_device_points_reach_the_gpu_pipeline(gpu_detector):
    det, pipe = gpu_detector
    a = FakeDeviceArray(stream=99)
    det(a)
    (_, scan, keep), = pipe.calls
    assert isinstance(scan, DevicePoints) and scan.ptr == PTR and scan.stream == 99 and not keep
    d = det(a, on_device=True)
    assert pipe.calls[-1][2] is True and d.device == "rows on the GPU"
    with pytest.raises(UserError, match="on GPU 1 but this detector runs on GPU 0"):
        det(FakeDeviceArray(device=1))


def test_batches_go_to_run_batch_in_max_batch_chunks(gpu_detector):
    det, pipe = gpu_detector
    scans = [FakeDeviceArray() for _ in range(5)]
    assert len(det.detect_batch(scans)) == 5
    assert [len(c[1]) for c in pipe.calls] == [2, 2, 1]
    pipe.calls.clear()
    out = list(det.stream([scans[0], FakeDeviceArray(typestr="<f8"), scans[1], scans[2]], prefetch=1))
    assert [isinstance(r, UserError) for _, r in out] == [False, True, False, False]
    assert [len(c[1]) for c in pipe.calls] == [1, 2]  # the refused one leaves a batch of one, then two
    det.close()
    det.close()
    assert pipe.exited == 1


class StandInOverlappingGpuPipeline(StandInGpuPipeline):
    """Also offers run_batches as GpuPipeline does: it takes batch i+1 from the iterator before yielding batch i's
    results (the overlap), and refuses what check() refuses."""

    def check(self, scan):
        if getattr(scan, "n", 0) > 1000:
            raise UserError("scan has 5000 points; the GPU pipeline was sized for 1000 (pass max_points)")
        return scan.n

    def run_batches(self, batches):
        it = iter(batches)
        pending = next(it, None)
        while pending is not None:
            self.calls.append(("launch", list(pending)))
            nxt = next(it, None)  # the next batch is taken (and queued) before this one's results come back
            yield [self._result(s) for s in pending]
            pending = nxt


def test_stream_overlaps_batches_and_keeps_order_around_refused_scans():
    pipe = StandInOverlappingGpuPipeline()
    det = Detector(pipe, cfg=PointPillarsConfig(), model=ModelFiles(None, None, False), backend="torch", device="cuda",
                   precision="fp16", description="stand-in", max_batch=2)
    good = [FakeDeviceArray() for _ in range(4)]
    big = FakeDeviceArray(shape=(5000, 4))
    wrong = FakeDeviceArray(typestr="<f8")
    sources = [good[0], wrong, big, wrong, good[1], good[2], big, good[3]]  # chunks: [g, x] [x, x] [g, g] [x, g]
    out = list(det.stream(sources, prefetch=0))
    assert [src is s for (src, _), s in zip(out, sources)] == [True] * 8  # every source, in input order
    kinds = ["ok" if isinstance(r, ScanResult) else "max_points" if "sized for" in str(r) else "dtype" for _, r in out]
    assert kinds == ["ok", "dtype", "max_points", "dtype", "ok", "ok", "max_points", "ok"]
    # the all-refused chunk queues nothing; the last chunk's one scan follows a full chunk, so it is padded to
    # max_batch (its padding's result dropped) to replay the full batch's graph instead of capturing a new shape
    assert [len(c[1]) for c in pipe.calls] == [1, 2, 2]
    assert [len(d) for d in det.detect_batch(good)] == [1] * 4
    assert [len(c[1]) for c in pipe.calls[3:]] == [2, 2]
