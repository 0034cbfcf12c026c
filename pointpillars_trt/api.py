"""The public Python API: a Detector built once (from a checkpoint, an `export` folder or the default model) and
called per scan, per batch, or over a stream of files. The commands make their detectors through it too.
"""
from __future__ import annotations

import os
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from pointpillars_trt import log, phases
from pointpillars_trt.cache_dir import default_cache_dir
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.model import identity as model_identity
from pointpillars_trt.model import store
from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.model.config import PointPillarsConfig, with_intensity
from pointpillars_trt.pipelines.cpu import ScanResult
from pointpillars_trt.pipelines.inputs import as_scan
from pointpillars_trt.pipelines.intensity import IntensityCheck
from pointpillars_trt.pipelines.prefetch import Checked, checked_reader, prefetched, read_scan

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")
DEVICES = ("auto", "cuda", "cpu")
Config = PointPillarsConfig | str | os.PathLike | None


def _cuda_available() -> bool:
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # numba without CUDA support, broken driver...
        return False


def _tensorrt_available() -> bool:
    """A TensorRT builder that runs on this GPU is importable, so `auto` can build engines (the lean runtime only runs
    prebuilt engines: it is used when --backend tensorrt is asked for explicitly). TensorRT-RTX on a GPU it does not
    support (Hopper, ...) is skipped, saying why."""
    try:
        from pointpillars_trt.backends.tensorrt.flavour import auto_usable

        ok, why = auto_usable()
    except Exception:  # a broken install must not break `auto`
        return False
    if why:
        log.info(f"auto: not using TensorRT: {why}")
    return ok


def choose_backend(backend: str, device: str) -> tuple[str, str]:
    """(backend, device) after resolving 'auto' and checking that the choice can run here."""
    has_gpu = _cuda_available() if device != "cpu" else False
    if device == "cuda" and not has_gpu:
        raise UserError("--device cuda: no usable CUDA GPU found (numba.cuda.is_available() is False); use --device cpu")
    if backend == "auto":
        if has_gpu and _tensorrt_available():
            backend = "tensorrt"
        elif has_gpu:
            backend = "torch"
        else:
            backend = "onnxruntime"
    if backend == "tensorrt":
        from pointpillars_trt.backends.tensorrt.runner import import_tensorrt

        if import_tensorrt() is None:
            raise UserError("--backend tensorrt: no TensorRT Python module (tensorrt 10.x/11.x, or the lean runtime "
                            "for prebuilt engines) is installed; use --backend torch or onnxruntime")
    if backend == "onnxruntime" and device == "cuda":
        raise UserError("--backend onnxruntime runs on the CPU here (onnxruntime's CPU build); use --device cpu, "
                        "or --backend torch/tensorrt on the GPU")
    if backend in ("tensorrt", "torch"):
        if device == "cpu":
            raise UserError(f"--backend {backend} runs on the GPU; use --backend onnxruntime with --device cpu")
        if not has_gpu:
            raise UserError(f"--backend {backend} needs a CUDA GPU and none was found; use --backend onnxruntime")
        return backend, "cuda"
    return backend, "cpu"


class Detector:
    """PointPillars on one pipeline: build once, then ``detector(points)`` per scan.

    Points: a float32 [N, C>=4] NumPy array (x, y, z, intensity first), a CPU tensor (DLPack), or on a GPU
    detector a CUDA array (torch, CuPy, Numba: ``__cuda_array_interface__``), read in place with no host trip.
    Threads: one detector is one CUDA stream and one set of buffers, so it is NOT thread-safe; use one detector per
    thread. Reading files on other threads is fine (``stream`` does it for you). ``close()`` (or leaving a ``with``
    block) frees the pipeline; a closed detector refuses further calls.
    """

    def __init__(self, pipeline: Any, *, cfg: PointPillarsConfig, model: store.ModelFiles, backend: str, device: str,
                 precision: str, description: str, max_batch: int = 1,
                 identity: Callable[[], str] | None = None) -> None:
        """Wrap a pipeline that is already entered (runners loaded); prefer the from_* constructors."""
        self._pipeline, self._cfg, self._model = pipeline, cfg, model
        self._identity, self._model_id = identity, None
        self._backend, self._device, self._precision = backend, device, precision
        self._description, self._max_batch = description, max_batch
        self._device_id = int(getattr(pipeline, "device_id", 0))
        self._check_intensity = IntensityCheck(cfg)
        self._closed = False

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, config: Config = None, precision: str = "fp32",
                        backend: str = "auto", device: str = "auto", cache_dir: str | os.PathLike | None = None,
                        threads: int | None = None, max_batch: int = 1, intensity_scale: float | None = None,
                        intensity_range: tuple[float, float] | None = None, **gpu_options: Any) -> "Detector":
        """An OpenPCDet checkpoint (.pth with 'model_state'); exported to ONNX once and cached under cache_dir
        (default: the per-user cache, cache_dir.default_cache_dir; built engines go there too). config: a
        PointPillarsConfig or an OpenPCDet model YAML (default: KITTI PointPillars).
        backend: auto | tensorrt | torch | onnxruntime; device: auto | cuda | cpu; threads: onnxruntime's CPU
        threads; max_batch: scans per GPU batch; intensity_scale multiplies every point's intensity (0..255 data on
        a model trained on 0..1: 1/255); intensity_range: what the model was trained on (default the config's,
        KITTI's 0..1), for the warning about scans far outside it; gpu_options go to the GPU pipeline."""
        return cls._build(lambda cfg, cache: store.from_checkpoint(path, cfg, cache), config=config, precision=precision,
                          backend=backend, device=device, cache_dir=cache_dir, threads=threads, max_batch=max_batch,
                          identity=lambda cfg: model_identity.of_checkpoint(path, cfg),
                          intensity_scale=intensity_scale, intensity_range=intensity_range, **gpu_options)

    @classmethod
    def from_onnx(cls, onnx_dir: str | os.PathLike, **options: Any) -> "Detector":
        """A folder written by `export` (pfn/rpn_fp32/fp16.onnx + manifest.json); options as from_checkpoint. The
        manifest's config must match ``config``; the torch backend needs the checkpoint the manifest names."""
        given = options.get("config")
        name = "the default" if given is None else "the given config" if isinstance(given, PointPillarsConfig) else str(given)
        return cls._build(lambda cfg, cache: store.from_onnx_dir(onnx_dir, cfg, name),
                          identity=lambda cfg: model_identity.of_onnx(onnx_dir, cfg), **options)

    @classmethod
    def default(cls, **options: Any) -> "Detector":
        """The project's default model (store.default_model): KITTI PointPillars trained on the project's synthetic
        scenes, shipped with the package (data/models/MODEL_CARD.md); options as from_checkpoint."""
        return cls._build(store.default_model, identity=lambda cfg: model_identity.of_checkpoint(store.DEFAULT_CHECKPOINT, cfg),
                          **options)

    @classmethod
    def random_init(cls, *, seed: int = 0, **options: Any) -> "Detector":
        """The seeded random-init model the project makes itself (UNTRAINED; for trying the tool); options as
        from_checkpoint."""
        return cls._build(lambda cfg, cache: store.random_init(cfg, cache, seed),
                          identity=lambda cfg: model_identity.of_random_init(seed, cfg), **options)

    @classmethod
    def _build(cls, resolve: Callable[[PointPillarsConfig, Path], store.ModelFiles], *, config: Config = None,
               precision: str = "fp32", backend: str = "auto", device: str = "auto",
               cache_dir: str | os.PathLike | None = None, threads: int | None = None, max_batch: int = 1,
               identity: Callable[[PointPillarsConfig], str] | None = None,
               intensity_scale: float | None = None, intensity_range: tuple[float, float] | None = None,
               **gpu_options: Any) -> "Detector":
        from pointpillars_trt.pipelines.factory import make_pipeline

        for name, value, choices in (("precision", precision, tn.PRECISIONS), ("backend", backend, BACKENDS),
                                     ("device", device, DEVICES)):
            if value not in choices:
                raise UserError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        for name, value in (("threads", threads), ("max_batch", max_batch)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        phases.mark("until the detector is asked for (imports, the command's checks)")
        cfg = with_intensity(store.load_config(config), intensity_scale, intensity_range)
        be, dev = choose_backend(backend, device)
        phases.mark("backend chosen (Numba, the CUDA driver)")
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        model = resolve(cfg, cache)
        phases.mark("model files found")
        if dev == "cuda":
            gpu_options.setdefault("log", log.info)  # e.g. the first Inductor tuning says what it does and how long
        pipe = make_pipeline(cfg, model, be, dev, precision, threads=threads, max_batch=max_batch, engines_dir=cache,
                             **gpu_options)
        onnx = f" (ONNX {model.onnx_dir})" if model.onnx_dir else ""  # exported only for the backends that run it
        what = f"{model.checkpoint}{onnx}" if model.checkpoint else str(model.onnx_dir)
        desc = f"backend {be} ({dev}), {precision}, model {what}" + ("  [auto-selected]" if backend == "auto" else "")
        pipe.__enter__()
        phases.mark("pipeline entered (networks on the device)")
        return cls(pipe, cfg=cfg, model=model, backend=be, device=dev, precision=precision, description=desc,
                   max_batch=max_batch, identity=None if identity is None else lambda: identity(cfg))

    # ---- what runs -----------------------------------------------------------------------------------------
    @property
    def description(self) -> str:
        """One line: backend (device), precision, model folder, and whether 'auto' picked the backend."""
        return self._description

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def device(self) -> str:
        """'cuda' or 'cpu'."""
        return self._device

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def max_batch(self) -> int:
        return self._max_batch

    @property
    def model_id(self) -> str:
        """The weights' sha256 (16 hex) and the config's digest: what result files record to tell models apart (an
        export and its checkpoint are one model)."""
        if self._model_id is None:
            m = self._model
            self._model_id = (self._identity() if self._identity is not None else
                              model_identity.of_checkpoint(m.checkpoint, self._cfg) if m.checkpoint else
                              model_identity.of_onnx(m.onnx_dir, self._cfg))
        return self._model_id

    @property
    def untrained(self) -> bool:
        """True for the seeded random-init model: its boxes mean nothing."""
        return self._model.untrained

    @property
    def cfg(self) -> PointPillarsConfig:
        """The model contract every stage runs with (class_names, point_cloud_range, max_pillars, ...)."""
        return self._cfg

    @property
    def pipeline(self) -> Any:
        """The CpuPipeline or GpuPipeline underneath (internal; bench times it directly)."""
        return self._live()

    def wait_for_compile(self, timeout: float | None = None) -> bool:
        """Wait (at most timeout seconds) until the compiled RPN serves every shape run so far; True when it does.
        With compile='auto' (the default) the first scans run the uncompiled RPN: Inductor compiles on a worker thread
        where this machine's cache tuned the RPN, and otherwise tunes in a background process only once a run proves
        long. This starts both now and waits (a first tuning: about a minute); call it before timing the steady
        state."""
        pipe = self._live()
        return pipe.wait_compiled(timeout) if hasattr(pipe, "wait_compiled") else True

    def warm_up(self, batch_sizes: Sequence[int] = (1,), points: int = 20_000, seed: int = 0) -> dict[int, float]:
        """Fill this machine's caches ahead of a run: a batch of each size of random scans (`points` points in the
        range) compiles or loads the CUDA kernels, then the compiled RPN is waited for (torch backend, compile='auto':
        tuned in a background process where this machine never tuned that batch size). Later processes start from
        the caches. Returns the seconds each batch size took."""
        import time

        sizes = [int(b) for b in batch_sizes]
        if not sizes or any(b < 1 or b > self._max_batch for b in sizes):
            raise UserError(f"warm-up batch sizes must be 1 to max_batch={self._max_batch}, got {list(batch_sizes)}")
        r = np.asarray(self._cfg.point_cloud_range, np.float32)
        rng = np.random.default_rng(seed)
        scan = np.concatenate([rng.uniform(r[:3], r[3:], (points, 3)), rng.uniform(0, 1, (points, 1))], 1)
        out = {}
        for b in sizes:
            t0 = time.perf_counter()
            self.detect_batch([scan.astype(np.float32)] * b)
            self.wait_for_compile()
            out[b] = time.perf_counter() - t0
        return out

    # ---- detecting -------------------------------------------------------------------------------------------
    def __call__(self, points: Any, *, on_device: bool = False) -> Detections:
        """Detections for one scan. on_device=True (GPU): also leave the rows on the GPU as Detections.device."""
        return self.run(points, on_device=on_device).detections

    def run(self, points: Any, *, on_device: bool = False) -> ScanResult:
        """Detections plus the voxelizer's counts (VoxelStats) and per-stage seconds for one scan."""
        pipe = self._live()
        scan = self._scan(points)
        if not on_device:
            return pipe.run(scan)
        if self._device != "cuda":
            raise UserError("on_device=True keeps the boxes on the GPU, but this detector runs on the CPU")
        res = pipe.run(scan, keep_on_device=True)
        res.detections.device = res.device_rows
        return res

    def run_batch(self, scans: Sequence[Any]) -> list[ScanResult]:
        """ScanResults for a list of scans, in order (GPU: up to max_batch scans per captured-graph replay)."""
        self._live()
        return self._run_many([self._scan(s) for s in scans])

    def detect_batch(self, scans: Sequence[Any]) -> list[Detections]:
        """Detections for each scan of a list, in order (GPU: up to max_batch scans per pipeline run)."""
        self._live()
        return [r.detections for r in self._run_many([self._scan(s) for s in scans])]

    def stream(self, sources: Iterable[Any], prefetch: int = 4,
               read: Callable[[Any], Any] | None = None) -> Iterator[tuple[Any, ScanResult | Exception]]:
        """(source, ScanResult) for each file path, bag message or array, in input order, batched by max_batch; the
        next `prefetch` files or messages are read on a thread pool while the current batch runs (`read(path)` gives
        the points; default: a KITTI velodyne .bin, and a bag message's own `read_points()`, io.rosbag.BagScan). A source that cannot be read or is refused (a truncated file, a wrong
        dtype...) is yielded with its exception instead of a ScanResult, and the stream goes on."""
        self._live()
        if not isinstance(prefetch, int) or prefetch < 0:
            raise UserError(f"prefetch must be 0 or more, got {prefetch!r}")
        return self._stream(prefetched(sources, checked_reader(read or read_scan, self._checked), prefetch))

    def _stream(self, items: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, ScanResult | Exception]]:
        """Chunks of max_batch sources; on the GPU the next chunk is staged and queued while the current one runs
        (GpuPipeline.run_batches). Scans are validated before they are queued, so a bad one never stops the rest."""
        pipe = self._live()
        queued: deque[tuple[list[Any], list[Any], list[int]]] = deque()  # (chunk, results so far, runnable indices)

        def batches() -> Iterator[list[Any]]:
            while chunk := list(islice(items, self._max_batch)):
                out: list[Any] = [pts for _, pts in chunk]
                good, scans = [], []
                for i, pts in enumerate(out):
                    if not isinstance(pts, BaseException):
                        try:  # read on a reader thread: checked there (prefetch.checked_reader)
                            scans.append(pts.scan if isinstance(pts, Checked) else self._checked(pts))
                            good.append(i)
                        except UserError as e:
                            out[i] = e
                queued.append((chunk, out, good))
                if scans:
                    yield scans

        runs = self._run_batches(pipe, batches()) if hasattr(pipe, "run_batches") else map(self._run_reporting, batches())
        # (a pipeline without run_batches, e.g. the CPU one, runs each chunk as it comes)
        for results in runs:
            while not queued[0][2]:  # chunks with nothing to run, in their place
                yield from self._emit(queued.popleft())
            chunk, out, good = queued.popleft()
            for i, res in zip(good, results):
                out[i] = res
            yield from self._emit((chunk, out, good))
        while queued:
            yield from self._emit(queued.popleft())

    @staticmethod
    def _emit(item: tuple[list[Any], list[Any], list[int]]) -> Iterator[tuple[Any, Any]]:
        chunk, out, _ = item
        return zip((src for src, _ in chunk), out)

    def _run_reporting(self, scans: list[Any]) -> list[ScanResult | Exception]:
        """Run a batch; when the pipeline refuses it (UserError), run scan by scan so the error names its scan."""
        try:
            return list(self._run_many(scans))
        except UserError as e:
            if len(scans) == 1:
                return [e]
            return [r for s in scans for r in self._run_reporting([s])]

    def _run_many(self, scans: list[Any]) -> list[ScanResult]:
        pipe = self._live()
        if not hasattr(pipe, "run_batch"):
            return [pipe.run(s) for s in scans]
        b = self._max_batch
        chunks = (scans[k:k + b] for k in range(0, len(scans), b))
        runs = self._run_batches(pipe, chunks) if hasattr(pipe, "run_batches") else map(pipe.run_batch, chunks)
        return [r for rs in runs for r in rs]

    def _run_batches(self, pipe: Any, chunks: Iterable[list[Any]]) -> Iterator[list[ScanResult]]:
        """pipe.run_batches, with a short chunk after a full one padded to max_batch with its first scan (those
        results dropped): a folder's last batch, or one with a bad file taken out, then replays the full batch's
        graph and compiled RPN instead of capturing a new batch shape (on the torch backend: compiling it, which
        is a minute of Inductor tuning on a fresh machine). Costs the padded scans' GPU time, once."""
        sizes: deque[int] = deque()

        def padded() -> Iterator[list[Any]]:
            full = False
            for chunk in chunks:
                sizes.append(len(chunk))
                full = full or len(chunk) == self._max_batch
                yield chunk + [chunk[0]] * (self._max_batch - len(chunk)) if full else chunk

        for results in pipe.run_batches(padded()):
            yield results[:sizes.popleft()]

    def _checked(self, points: Any) -> Any:
        """The scan as the pipeline takes it (_scan, then the pipeline's own check); UserError if refused."""
        scan = self._scan(points)
        check = getattr(self._pipeline, "check", None)
        if check is not None:
            check(scan)
        return scan

    def _scan(self, points: Any) -> Any:
        scan = as_scan(points, gpu=self._device == "cuda", device_id=self._device_id)
        if isinstance(scan, np.ndarray):
            self._check_intensity(scan)
        return scan

    # ---- lifetime ----------------------------------------------------------------------------------------------
    def _live(self) -> Any:
        if self._closed:
            raise UserError("this Detector is closed; make a new one (e.g. Detector.from_checkpoint(...))")
        return self._pipeline

    def close(self) -> None:
        """Free the pipeline (runners, engines, device buffers); calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._pipeline.__exit__(None, None, None)

    def __enter__(self) -> "Detector":
        self._live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Detector({self._description}{', closed' if self._closed else ''})"
