"""evaluate_dirs(): KITTI evaluation of a directory of result files against a label_2 directory."""
from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


from pointpillars_trt import log
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import KittiObjects, read_labels
from pointpillars_trt.evaluation.core import DEFAULT_CLASSES, evaluate
from pointpillars_trt.evaluation.protocol import KITTI_NAMES
from pointpillars_trt.evaluation.result import EvalResult

MAX_LISTED = 10


class EvalWarning(UserWarning):
    """Something about the inputs the user should know (missing result files, unknown class names)."""


def read_ids(path: str | os.PathLike) -> list[str]:
    """Frame ids of a split file (one per line, e.g. KITTI's val.txt); blank lines skipped."""
    path = Path(path)
    try:
        ids = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        raise UserError(f"ids file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise UserError(f"ids file {path} is not a text file of frame ids") from None
    if not ids:
        raise UserError(f"ids file {path} lists no frame ids")
    return ids


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", ... (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")


def _check_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{what} directory not found: {path}")
    if not path.is_dir():
        raise UserError(f"{what} path {path} is not a directory")


def evaluate_dirs(results_dir: str | os.PathLike, labels_dir: str | os.PathLike, ids: list[str] | None = None,
                  progress: bool = True, classes: Sequence[str] = DEFAULT_CLASSES, **kwargs) -> EvalResult:
    """Evaluate <results_dir>/<id>.txt (16-column KITTI with score) against <labels_dir>/<id>.txt.

    ids default to every label file. A missing result file means no detections (one EvalWarning
    names them); result class names that are not evaluated and not KITTI names are ignored with
    one EvalWarning. Extra keyword arguments go to evaluate().
    """
    results_dir, labels_dir = Path(results_dir), Path(labels_dir)
    _check_dir(labels_dir, "labels")
    _check_dir(results_dir, "results")
    if ids is None:
        ids = sorted(p.stem for p in labels_dir.glob("*.txt"))
        if not ids:
            raise UserError(f"no label files (*.txt) in {labels_dir}")
    if len(set(ids)) != len(ids):
        dup = sorted(k for k, n in Counter(ids).items() if n > 1)
        raise UserError(f"frame ids listed more than once: {_listing(dup)}")

    gts: list[KittiObjects] = []
    dts: list[KittiObjects] = []
    missing: list[str] = []
    unknown: Counter = Counter()
    known = {n.lower() for n in KITTI_NAMES} | {c.lower() for c in classes}
    for fid in log.progress(ids, desc="reading labels/results", unit="frame", disable=not progress, leave=False):
        gts.append(read_labels(labels_dir / f"{fid}.txt"))
        rpath = results_dir / f"{fid}.txt"
        if not rpath.is_file():
            missing.append(fid)
            dts.append(KittiObjects.empty(with_score=True))
            continue
        det = read_labels(rpath)
        if len(det) and det.score is None:
            raise UserError(f"{rpath}: result lines need a 16th score column")
        if det.score is None:
            det = KittiObjects.empty(with_score=True)
        unknown.update(n for n in det.name if n.lower() not in known)
        dts.append(det)
    if missing:
        warnings.warn(f"{len(missing)} of {len(ids)} result files missing in {results_dir}, counted as no "
                      f"detections: {_listing(missing)}", EvalWarning, stacklevel=2)
    if unknown:
        names = [f"{n} ({k})" for n, k in sorted(unknown.items())]
        warnings.warn(f"ignoring unknown class names in results: {_listing(names)}", EvalWarning, stacklevel=2)
    return evaluate(gts, dts, classes, **kwargs)
