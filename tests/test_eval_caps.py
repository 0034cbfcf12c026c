"""`eval` says when a class has too few ground-truth boxes for its AP to reach 100: the KITTI evaluator picks at most
one score threshold per true positive, so perfect detections of n < 41 boxes score (n-1)/40 at R40."""
from __future__ import annotations

import math
import shutil

from conftest import KITTI
from test_cli_bad_input import cli

LABELS = KITTI / "training" / "label_2"


def _perfect_results(labels, out, copies=1):
    """Each label file's objects as detections scoring 0.9 (KITTI's 16th column), under `copies` frame ids each."""
    out.mkdir()
    gt = out.parent / f"{out.name}_labels"
    gt.mkdir()
    for f in sorted(labels.glob("*.txt")):
        lines = [ln for ln in f.read_text().splitlines() if ln.split() and ln.split()[0] != "DontCare"]
        for k in range(copies):
            (out / f"{k}{f.name}").write_text("".join(f"{ln} 0.9\n" for ln in lines))
            shutil.copy(f, gt / f"{k}{f.name}")
    return gt


def _ap(table: str, cls: str, tag: str, metric: str = "3d   AP") -> list[float]:
    """The strict-overlap row `metric` of `cls`'s `tag` (AP / AP_R40) block: easy, moderate, hard."""
    lines = table.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{cls} {tag}@") and "(loose)" not in ln)
    row = next(ln for ln in lines[start:] if ln.startswith(metric))
    return [float(v) for v in row.split(":")[1].split(",")]


def test_perfect_detections_of_few_boxes_reach_the_cap_the_note_names(tmp_path):
    gt = _perfect_results(LABELS, tmp_path / "res")
    r = cli("eval", "--results", tmp_path / "res", "--labels", gt)
    assert r.returncode == 0, r.stderr
    counts = {ln.split(":")[0]: [int(p.split()[1]) for p in ln.split(": ground truth ")[1].split(", ")]
              for ln in r.stdout.splitlines() if ": ground truth " in ln}
    notes = [ln for ln in r.stdout.splitlines() if ln.startswith("note: ")]
    assert len(notes) == 3, r.stdout  # 11 real frames: every class has fewer than 41 boxes at every difficulty
    for cls, ns in counts.items():
        r40 = [(n - 1) / 40 * 100 for n in ns]  # independent: the devkit's arithmetic for n < 41 boxes
        r11 = [sum(1 for i in range(0, 41, 4) if i < n) / 11 * 100 for n in ns]
        assert all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(_ap(r.stdout, cls, "AP_R40"), r40)), cls
        assert all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(_ap(r.stdout, cls, "AP"), r11)), cls
        note = next(n for n in notes if n.startswith(f"note: {cls} has {'/'.join(map(str, ns))} ground-truth"))
        assert " / ".join(f"{v:.2f}" for v in r40) + " (AP_R40)" in note, note


def test_no_note_where_enough_boxes_let_perfect_detections_score_100(tmp_path):
    gt = _perfect_results(LABELS, tmp_path / "res", copies=6)  # Car: 42 easy boxes and more
    r = cli("eval", "--results", tmp_path / "res", "--labels", gt)
    assert r.returncode == 0, r.stderr
    assert _ap(r.stdout, "Car", "AP_R40") == [100.0, 100.0, 100.0]
    assert not any(ln.startswith("note: Car ") for ln in r.stdout.splitlines())
    assert any(ln.startswith("note: Cyclist has 6/36/36 ") for ln in r.stdout.splitlines()), r.stdout
