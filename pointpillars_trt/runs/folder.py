"""infer_folder: detect objects in many scans and write their result files, resuming what a killed or interrupted run
left, in one process (runs.single) or over a Ray cluster (runs.ray_run). `infer --out` is this function."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from pointpillars_trt import log
from pointpillars_trt.api import Detector
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import Calib, find_calib
from pointpillars_trt.io.points import SCAN_SUFFIXES
from pointpillars_trt.io.result_files import ResultFolder, ResultPlan, ScanJob
from pointpillars_trt.runs.single import Done, run_jobs, run_settings
from pointpillars_trt.runs.spec import DetectorSpec
from pointpillars_trt.runs.summary import FolderSummary, named

PathLike = str | os.PathLike


def infer_folder(model: Detector | DetectorSpec, scans: PathLike | Sequence[PathLike], out: PathLike | None = None, *,
                 calib: PathLike | None = None, score_thresh: float | None = None, force: bool = False,
                 read: Callable[[Path], Any] | None = None, reader: dict[str, Any] | None = None,
                 check: Callable[[int, Path], Any] | None = None, fail_fast: bool = False, progress: bool = True,
                 ray: bool | str | None = None, writers: str = "auto", readers: str = "auto",
                 on_start: Callable[[Detector], None] | None = None,
                 on_result: Callable[[Done], None] | None = None) -> FolderSummary:
    """Detect every scan (files, or a folder's scan files) and write <stem>.json, and <stem>.txt where a calib is
    known (`calib`: a file or a folder of <id>.txt; else KITTI's layout), into `out`. Finished results there are
    skipped; results of other settings (model, precision, threshold, `reader` options) are refused unless force.

    model: a Detector (one process), or a DetectorSpec (built here; needed for ray). read(path) gives points or
    (points, ScanStats); check(i, path) vets scan i before anything loads (default: none); a scan that fails is
    counted with its reason in the summary (fail_fast: raised). writers: how one process writes its files, on
    "threads" or in "processes" ("auto": processes for long runs on 4+ cores; they are spawned, so a script calling
    this guards its top level with `if __name__ == "__main__":`); readers: the same for reading the scans (runs.single.
    reader_kind: processes for long runs of files read with an io.points.PointReader, or the default reader). ray: True joins $RAY_ADDRESS or starts a local
    cluster, a string is the address. Ctrl-C finishes what is in flight; the summary says interrupted."""
    paths = _expand(scans)
    summary = FolderSummary(total=len(paths), out=Path(out) if out is not None else None)
    jobs = _jobs(paths, Path(calib) if calib is not None else None, check, summary.failed, fail_fast, out is not None)
    if not jobs:
        why = summary.failed[0][1]
        raise UserError(why if len(summary.failed) == 1 else f"none of the {len(paths)} scans can be read (first: {why})")
    plan, folder = ResultPlan(jobs, []), None
    if out is not None:
        spec_cfg = model.cfg if isinstance(model, Detector) else None
        thresh = max(score_thresh or 0.0, (spec_cfg or _cfg(model)).score_thresh)
        ident = model.model_id if isinstance(model, Detector) else model.identity()
        folder = ResultFolder(out, run_settings(ident, model.precision, thresh, reader))
        plan = folder.plan(jobs, force=force)
        folder.out.mkdir(parents=True, exist_ok=True)
        folder.remove_temps()  # a killed run's; its finished files are kept
        summary.skipped = len(plan.skipped)
        if plan.skipped:
            log.info(f"{len(plan.skipped)} of {len(jobs)} scans have their results in {folder.out}/ already: skipped "
                     "(force / --force recomputes them)")
    if not plan.todo:
        return summary
    if ray:
        if not isinstance(model, DetectorSpec) or folder is None:
            raise UserError("a Ray run needs a DetectorSpec (each worker builds its own detector) and an out folder")
        from pointpillars_trt.runs.ray_run import run_jobs_ray

        ran = run_jobs_ray(model, plan.todo, folder, address=ray if isinstance(ray, str) else None, read=read,
                           score_thresh=score_thresh, fail_fast=fail_fast, progress=progress)
    elif isinstance(model, Detector):
        ran = _run_one(model, plan.todo, folder, read, score_thresh, fail_fast, progress, writers, readers, on_start, on_result)
    else:
        with model.build() as det:
            ran = _run_one(det, plan.todo, folder, read, score_thresh, fail_fast, progress, writers, readers, on_start, on_result)
    summary.done, summary.failed = ran.done, summary.failed + ran.failed
    summary.seconds, summary.warmup_seconds, summary.warmup_scans = ran.seconds, ran.warmup_seconds, ran.warmup_scans
    summary.interrupted, summary.workers = ran.interrupted, ran.workers
    return summary


def _run_one(det: Detector, jobs: list[ScanJob], folder: ResultFolder | None, read, score_thresh, fail_fast, progress,
             writers, readers, on_start, on_result) -> FolderSummary:
    if on_start is not None:
        on_start(det)
    return run_jobs(det, jobs, folder, read=read, score_thresh=score_thresh, on_result=on_result, fail_fast=fail_fast,
                    progress=progress, writers=writers, readers=readers)


def _cfg(spec: DetectorSpec):
    from pointpillars_trt.model.store import load_config

    return load_config(spec.options.get("config"))


def _expand(scans: PathLike | Sequence[PathLike]) -> list[Path]:
    """The scan files: a folder's (sorted, by SCAN_SUFFIXES), or the paths given."""
    if isinstance(scans, (str, os.PathLike)):
        p = Path(scans)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SCAN_SUFFIXES and f.is_file())
            if not found:
                raise UserError(f"{p}: folder has no point files ({' '.join(SCAN_SUFFIXES)})")
            return found
        return [p]
    return [Path(s) for s in scans]


def _jobs(paths: list[Path], calib: Path | None, check: Callable[[int, Path], Any] | None,
          failed: list[tuple[Any, str]], fail_fast: bool, unique: bool) -> list[ScanJob]:
    """The jobs of the scans that pass `check` and whose calib (if any) reads; the others go to `failed` (raised
    with fail_fast or a single scan). With `unique`, two scans of one stem (they would write the same files) are
    refused."""
    stems: dict[str, Path] = {}
    for p in paths if unique else ():
        if p.stem in stems:
            raise UserError(f"two scans named {p.stem} would write the same result file ({stems[p.stem]}, {p}); "
                            "use separate --out folders")
        stems[p.stem] = p
    jobs: list[ScanJob] = []
    for i, scan in enumerate(paths):
        try:
            if check is not None:
                check(i, scan)
            c = find_calib(scan, calib)
            jobs.append(ScanJob(scan, scan.stem, Calib.read(c) if c else None))
        except UserError as e:
            if fail_fast or len(paths) == 1:
                raise
            failed.append((scan, named(scan, str(e))))
            log.warn(f"skipped: {failed[-1][1]}")
    return jobs
