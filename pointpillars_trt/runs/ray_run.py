"""A folder run over a Ray cluster with Ray Data: tasks read the scans (with the reader a single process uses), a pool
of detector actors (one per GPU, num_gpus=1; CPU actors where the cluster has no GPU) detects them in batches, and
tasks write the result files a single process writes (io.result_files, whole files only). The plan (what is finished,
what is refused) is made before, by the caller, exactly as for one process. An actor that dies is restarted by Ray
Data and its batch run again (actors' max_restarts and max_task_retries default to -1 there), so no result is lost.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.io.kitti import Calib
from pointpillars_trt.io.result_files import ResultFolder, ScanJob
from pointpillars_trt.runs.interrupt import stop_on_interrupt
from pointpillars_trt.runs.ray_cluster import actor_pool, connect, worker_name
from pointpillars_trt.runs.spec import DetectorSpec
from pointpillars_trt.runs.single import read_default
from pointpillars_trt.runs.summary import FolderSummary, named, reason

#: batches of --batch per actor call: between two calls the GPU waits for Ray (a few ms), paid once per this many
CALL_BATCHES = 4
_CALIB = 33  # P2 (12) + R0_rect (9) + Tr_velo_to_cam (12), flattened into one row column


def run_jobs_ray(spec: DetectorSpec, jobs: Sequence[ScanJob], folder: ResultFolder, *, address: str | None = None,
                 read: Callable[[Any], Any] | None = None, score_thresh: float | None = None, fail_fast: bool = False,
                 progress: bool = True, on_warning: Callable[[str], None] = log.warn) -> FolderSummary:
    """Detect every job's scan on the cluster at `address` (else RAY_ADDRESS, else a new local one) and write its
    files into `folder`; `read` must be picklable by cloudpickle (a closure is). Scans that fail are counted with
    their reason (fail_fast: the first one is raised). The first Ctrl-C stops waiting for results: what workers
    finished is written whole, the rest is left for a rerun."""
    summary = FolderSummary(total=len(jobs), out=folder.out)
    if not jobs:
        return summary
    ray = connect(address)
    import ray.data

    spec = spec.absolute()  # workers do not run in this folder, nor with this process's environment
    model = spec.prepare()
    pool = actor_pool(ray, spec)
    if pool.gpus == 0 or spec.options.get("backend") in ("onnxruntime", "tensorrt"):
        model.onnx()  # actors that run ONNX find it exported once, here, instead of each exporting it at once
    log.info(f"model files ready: {model.onnx_dir or model.checkpoint}")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    b = max(1, spec.max_batch)
    rows = [{"k": k, "path": str(j.source), "file": os.path.abspath(j.source), "stem": j.stem,
             "has_calib": j.calib is not None, "calib": _flat_calib(j.calib)} for k, j in enumerate(jobs)]
    ds = (ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // b)))
          .map_batches(_read_batch, batch_size=b, fn_kwargs={"read": read}, num_cpus=pool.task_cpus)
          .map_batches(DetectScans, batch_size=b * CALL_BATCHES, compute=pool.strategy, num_gpus=pool.gpus,
                       num_cpus=pool.cpus, fn_constructor_kwargs={"spec": pool.spec, "score_thresh": score_thresh})
          .map_batches(_write_batch, batch_size=b, num_cpus=pool.task_cpus,
                       fn_kwargs={"out": os.path.abspath(folder.out), "settings": folder.settings}))
    log.info(f"Ray: {pool.describe()}, batches of {b}")
    bar = log.progress(total=len(jobs), unit="scan", desc="infer --ray", smoothing=0.05) if progress and _tty() else None
    ready = first = float("inf")  # when the first actor had its model loaded; when the first results came back
    with stop_on_interrupt() as stop:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                now = time.time()
                ready = min(ready, float(np.min(batch["ready"])))
                if first == float("inf"):
                    first, summary.warmup_scans = now, len(batch["k"])
                _count(batch, jobs, summary, fail_fast, on_warning)
                summary.seconds, summary.warmup_seconds = now - ready, first - ready
                if bar is not None:
                    bar.update(len(batch["k"]))
                if stop.is_set():
                    log.warn("interrupted: stopping; the files finished are kept, a rerun does the rest")
                    break
        finally:
            summary.interrupted = stop.is_set()
            summary.warmup_scans = min(summary.warmup_scans, summary.done)
            if bar is not None:
                bar.close()
    return summary


def _count(batch: dict[str, np.ndarray], jobs: Sequence[ScanJob], summary: FolderSummary, fail_fast: bool,
           on_warning: Callable[[str], None]) -> None:
    """Add a batch of results to the summary: done per worker, failures with their reasons, dropped points."""
    for k, err, worker, nonfinite in zip(batch["k"], batch["error"], batch["worker"], batch["nonfinite"]):
        job = jobs[int(k)]
        if err:
            if fail_fast:
                raise UserError(str(err))
            summary.failed.append((job.source, str(err)))
            on_warning(f"failed, skipped: {err}")
            continue
        if nonfinite:
            on_warning(f"{job.source}: dropped {nonfinite} point(s) with NaN/Inf coordinates")
        summary.done += 1
        summary.workers[str(worker)] = summary.workers.get(str(worker), 0) + 1


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()


def _flat_calib(calib: Calib | None) -> np.ndarray:
    if calib is None:
        return np.zeros(_CALIB)
    return np.concatenate([calib.P2.ravel(), calib.R0.ravel(), calib.V2C.ravel()])


def _calib(flat: np.ndarray) -> Calib:
    return Calib(flat[:12].reshape(3, 4).copy(), flat[12:21].reshape(3, 3).copy(), flat[21:].reshape(3, 4).copy())


def _read_batch(batch: dict[str, np.ndarray], read: Callable[[Any], Any] | None) -> dict[str, np.ndarray]:
    """Ray Data task: read each row's scan (as one process reads it) into float32 bytes; a failure is the row's error."""
    points, errors, nonfinite = [], [], []
    for path, file in zip(batch["path"], batch["file"]):
        try:
            got = (read or read_default)(Path(file))
            pts, info = got if isinstance(got, tuple) else (got, None)
            points.append(np.ascontiguousarray(pts, np.float32).tobytes())
            errors.append("")
            nonfinite.append(int(getattr(info, "num_nonfinite", 0)))
        except Exception as e:  # noqa: BLE001  one bad file must not end the run
            points.append(b"")
            errors.append(named(path, reason(e)))
            nonfinite.append(0)
    return {**batch, "points": np.array(points, dtype=object), "error": np.array(errors, dtype=object),
            "nonfinite": np.array(nonfinite, dtype=np.int64)}


class DetectScans:
    """Ray Data actor: builds its detector once (from the spec, on the GPU Ray gave it), then detects the rows it is
    handed, in batches with the GPU overlapped (Detector.stream); returns each row's detections as [D, 9] bytes."""

    def __init__(self, spec: DetectorSpec, score_thresh: float | None) -> None:
        self.det = spec.build()
        self.score_thresh = score_thresh
        self.worker = worker_name()
        self.ready = time.time()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["k"])
        todo = [i for i in range(n) if not batch["error"][i]]
        arrays = [np.frombuffer(batch["points"][i], np.float32).reshape(-1, 4) for i in todo]
        b = self.det.max_batch
        pad = (-len(arrays)) % b if self.det.device == "cuda" and 0 < len(arrays) < b else 0
        rows, errors = [b""] * n, list(batch["error"])  # a short call runs as a full batch: no new batch shape
        results = [res for _, res in self.det.stream(arrays + arrays[:1] * pad, prefetch=0)]  # all: the GPU's done
        for i, res in zip(todo, results):
            if isinstance(res, Exception):
                errors[i] = named(batch["path"][i], reason(res))
                continue
            dets = res.detections if self.score_thresh is None else res.detections.above(self.score_thresh)
            rows[i] = dets.as_array().tobytes()
        out = {k: v for k, v in batch.items() if k != "points"}
        return {**out, "rows": np.array(rows, dtype=object), "error": np.array(errors, dtype=object),
                "model": np.array([self.det.description] * n, dtype=object), "untrained": np.full(n, self.det.untrained),
                "names": np.array(["\t".join(self.det.cfg.class_names)] * n, dtype=object),
                "worker": np.array([self.worker] * n, dtype=object), "ready": np.full(n, self.ready)}


def _write_batch(batch: dict[str, np.ndarray], out: str, settings: dict) -> dict[str, np.ndarray]:
    """Ray Data task: write each detected row's files (the single process's writer); a failed write is the row's error."""
    folder = ResultFolder(out, settings)
    errors = list(batch["error"])
    for i, path in enumerate(batch["path"]):
        if errors[i]:
            continue
        job = ScanJob(Path(batch["file"][i]), str(batch["stem"][i]),
                      _calib(batch["calib"][i]) if batch["has_calib"][i] else None)
        try:
            folder.write(job, Detections.from_array(np.frombuffer(batch["rows"][i], np.float32)),
                         str(batch["names"][i]).split("\t"),
                         {"scan": path, "model": str(batch["model"][i]), "untrained": bool(batch["untrained"][i])})
        except Exception as e:  # noqa: BLE001  a file that cannot be written fails its scan, not the run
            errors[i] = named(path, reason(e))
    keep = ("k", "worker", "nonfinite", "ready")
    return {**{k: batch[k] for k in keep}, "error": np.array(errors, dtype=object)}
