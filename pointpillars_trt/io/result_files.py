"""The result files of a folder run: which files a scan gets, which are finished, and writing them whole.

A scan's results are <stem>.json (lidar frame) and, when its calib is known, <stem>.txt (KITTI, camera frame). Every
file is written under a temporary name in the same folder, then renamed over its target (os.replace), so a run killed
at any moment leaves whole files or none. The JSON is written first, then the txt: a scan is finished when all of its
files exist. Each JSON records the run's settings (model identity, precision, score threshold, how points were read)
under "run"; a rerun skips finished scans whose settings match, redoes unfinished ones, and refuses to mix results of
other settings (or files it did not write) into one folder unless forced.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.io.kitti import KITTI_IMAGE_SHAPE, Calib, detections_to_kitti, format_labels, scan_image_shape

#: the JSON key holding the settings a result was made with (one line, before "detections")
RUN_KEY = "run"
#: temporary files: ".<target name>.<pid>.part" beside the target (hidden; removed by the next run if left behind)
TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(r"^\..+\.(json|txt)\.\d+" + re.escape(TEMP_SUFFIX) + "$")
HEAD_BYTES = 1 << 16  # a result JSON's "run" record lies in its first lines


@dataclass(frozen=True)
class ScanJob:
    """One scan of a folder run: where its points come from, the stem its result files take, its calib (or None)."""

    source: Any
    stem: str
    calib: Calib | None = None


@dataclass
class ResultPlan:
    """The jobs to run and the jobs skipped because their results are finished with the same settings."""

    todo: list[ScanJob]
    skipped: list[ScanJob]


class ResultFolder:
    """The result files of one run in `out`, made with `settings` (a JSON-able dict that identifies the results)."""

    def __init__(self, out: str | os.PathLike, settings: dict[str, Any]) -> None:
        self.out = Path(out)
        self.settings = json.loads(json.dumps(settings))  # as a JSON file gives it back (tuples become lists, ...)

    def targets(self, job: ScanJob) -> list[Path]:
        """The files a finished job has: the JSON, and the KITTI txt when its calib is known."""
        base = self.out / job.stem
        return [base.with_name(job.stem + ".json")] + ([base.with_name(job.stem + ".txt")] if job.calib else [])

    def plan(self, jobs: Sequence[ScanJob], force: bool = False) -> ResultPlan:
        """Split jobs into todo and skipped (finished with these settings). Without force, a result of other
        settings, or a file this tool did not write, is a UserError naming it (nothing is overwritten); with force
        everything is todo and overwritten."""
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} is a file; give a folder")
        if force or not self.out.is_dir():
            return ResultPlan(list(jobs), [])
        present = set(os.listdir(self.out))
        todo, skipped = [], []
        for job in jobs:
            files = self.targets(job)
            have = [f for f in files if f.name in present]
            if not have:
                todo.append(job)
                continue
            record = read_run_record(files[0]) if files[0].name in present else None
            if record != self.settings:
                raise UserError(self._foreign(files[0] if files[0].name in present else have[0], record))
            (skipped if len(have) == len(files) else todo).append(job)
        return ResultPlan(todo, skipped)

    def _foreign(self, path: Path, record: dict | None) -> str:
        """The one-line refusal for an existing file this run must not overwrite or count as its own."""
        hint = "pass --force to recompute everything, or give another --out"
        if record is None:
            return f"{path} exists and was not written by infer --out (no \"{RUN_KEY}\" record); {hint}"
        diff = [k for k in sorted(set(record) | set(self.settings)) if record.get(k) != self.settings.get(k)]
        what = ", ".join(f"{k} {record.get(k)!r} there, {self.settings.get(k)!r} now" for k in diff[:2])
        return f"{path} holds results of other settings ({what}); {hint}"

    def remove_temps(self) -> int:
        """Delete temporary files a killed run left behind (only names this module makes); how many."""
        if not self.out.is_dir():
            return 0
        n = 0
        for name in os.listdir(self.out):
            if _TEMP_NAME.match(name):
                (self.out / name).unlink(missing_ok=True)
                n += 1
        return n

    def write(self, job: ScanJob, dets: Detections, class_names: Sequence[str], meta: dict[str, Any]) -> None:
        """Write the job's files whole: the JSON (meta, then this run's settings, then the detections), then the
        KITTI txt (2D boxes clipped to the image beside a scan in KITTI's layout, else to KITTI's usual size)."""
        files = self.targets(job)
        write_atomic(files[0], dets.to_json(class_names, {**meta, RUN_KEY: self.settings}))
        if job.calib is not None:
            shape = scan_image_shape(job.source) if isinstance(job.source, Path) else KITTI_IMAGE_SHAPE
            objs = detections_to_kitti(dets.boxes, dets.scores, dets.labels, tuple(class_names), job.calib, shape)
            write_atomic(files[1], format_labels(objs))


def write_atomic(path: Path, text: str) -> None:
    """Write text to a temporary name beside path, then rename it over path: readers (and a rerun after a kill)
    see the old file or the whole new one, never a part. (Not fsynced: a power cut may still lose recent files.)"""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_run_record(path: Path) -> dict | None:
    """The "run" record of a result JSON this tool wrote (read from the file's head), or None for any other file."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    prefix = f' "{RUN_KEY}": '
    for line in head.splitlines()[1:]:
        if line.startswith(' "detections"'):
            return None
        if line.startswith(prefix):
            try:
                record = json.loads(line[len(prefix):].rstrip(","))
            except ValueError:
                return None
            return record if isinstance(record, dict) else None
    return None
