"""The generator's scans against real KITTI frames, measured the same way (evaluation/scan_stats.py): points on
objects by distance, intensity by category and range, beam pattern, clutter heights, object sizes. Markdown
tables here; plots in sim_to_real_plots.py; the command is `sim2real`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.evaluation.return_fit import SyntheticSample
from pointpillars_trt.evaluation.scan_stats import (CLASSES, HEIGHT_BINS, OBJECT_BINS, RANGE_BINS, Categories, Rings,
                                                    categorize, height_profile, intensity_table, rings)
from pointpillars_trt.io.kitti_frames import read_labelled_frame
from pointpillars_trt.model.config import PointPillarsConfig

DIST_BINS = (0.0, 10.0, 20.0, 30.0, 40.0, 80.0)


@dataclass
class FrameSet:
    """Measurements of a set of frames: per frame categories, intensities, rings and clutter height profile."""

    name: str
    cats: list[Categories] = field(default_factory=list)
    intensity: list[np.ndarray] = field(default_factory=list)
    rings: list[Rings] = field(default_factory=list)
    heights: list[np.ndarray] = field(default_factory=list)
    cars: list[np.ndarray] = field(default_factory=list)  # per frame: the labelled cars' boxes

    def add(self, points: np.ndarray, boxes: np.ndarray, names: np.ndarray) -> Categories:
        c = categorize(points, boxes, names)
        self.cars.append(np.asarray(boxes)[np.asarray(names) == "Car"].reshape(-1, 7))
        self.cats.append(c)
        self.intensity.append(points[:, 3].copy())
        self.rings.append(rings(points))
        self.heights.append(height_profile(c))
        return c

    def table(self) -> dict[str, np.ndarray]:
        return intensity_table(list(zip(self.cats, self.intensity)))

    def objects(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All frames' labelled objects: class index, distance, points in the box, size [M, 3]."""
        cat = lambda f: np.concatenate([f(c) for c in self.cats]) if self.cats else np.zeros(0)  # noqa: E731
        return (cat(lambda c: c.obj_class).astype(int), cat(lambda c: c.obj_dist), cat(lambda c: c.obj_points),
                np.concatenate([c.obj_size for c in self.cats]) if self.cats else np.zeros((0, 3)))


def measure_real(root: str | Path, ids: list[str], name: str = "KITTI") -> FrameSet:
    """Measure real labelled frames root/training/... with the given ids."""
    fs = FrameSet(name)
    for fid in ids:
        fr = read_labelled_frame(root, fid)
        fs.add(fr.points, fr.boxes, fr.names)
    return fs


def measure_synthetic(n_frames: int, seed: int, cfg: PointPillarsConfig | None = None) -> tuple[FrameSet, SyntheticSample]:
    """Measure generated frames (make-sample --seed seed); also keep their surfaces for the return model's fit."""
    from pointpillars_trt.sample.dataset import frame_seed
    from pointpillars_trt.sample.scene import generate_scene

    fs = FrameSet("synthetic")
    smp = SyntheticSample([], [], [], [], [])
    for i in log.progress(range(n_frames), desc="synthetic frames", unit="frame", leave=False):
        sc = generate_scene(frame_seed(seed, i), cfg)
        smp.cats.append(fs.add(sc.points, sc.boxes, sc.names))
        s = sc.surface
        smp.material.append(s.material)
        smp.shade.append(s.shade)
        smp.cos_inc.append(s.cos_inc)
        smp.range_m.append(s.range_m)
    return fs, smp


def _f(v: float, digits: int = 2) -> str:
    return "-" if not np.isfinite(v) else f"{v:.{digits}f}"


def _bins(bins: tuple[float, ...]) -> list[str]:
    return [f"{lo:g}-{hi:g} m" for lo, hi in zip(bins[:-1], bins[1:])]


def points_table(real: FrameSet, syn: FrameSet) -> str:
    """Median points inside a labelled box by class and distance (number of objects in brackets)."""
    rows = ["| class | " + " | ".join(_bins(DIST_BINS)) + " |", "|---|" + "---|" * (len(DIST_BINS) - 1)]
    for k, cls in enumerate(CLASSES):
        cells = []
        for lo, hi in zip(DIST_BINS[:-1], DIST_BINS[1:]):
            vals = []
            for fs in (real, syn):
                c, d, n, _ = fs.objects()
                m = (c == k) & (d >= lo) & (d < hi)
                vals.append(f"{np.median(n[m]):.0f} ({m.sum()})" if m.any() else "-")
            cells.append(" / ".join(vals))
        rows.append(f"| {cls} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def intensity_md(real: FrameSet, syn: FrameSet) -> str:
    """Zero fraction and nonzero median intensity by category and range: real / synthetic."""
    tr, ts = real.table(), syn.table()
    out = []
    for key in tr:
        if key.endswith(" means"):
            continue
        bins = RANGE_BINS if key in ("ground", "background") else OBJECT_BINS
        out.append(f"| {key} | " + " | ".join(_bins(bins)) + " |")
        out.append("|---|" + "---|" * (len(bins) - 1))
        for j, what in ((1, "zero fraction"), (3, "nonzero median")):
            cells = [f"{_f(r[j])} / {_f(s[j])}" if r[0] else f"- / {_f(s[j])}" for r, s in zip(tr[key], ts[key])]
            out.append(f"| {what} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["| per-object mean intensity (>= 30 points) | objects | dark (< 0.1) | p25 | median | p75 |",
            "|---|---|---|---|---|---|"]
    for cls in CLASSES:
        for fs, t in ((real, tr), (syn, ts)):
            r = t[cls + " means"][0]
            out.append(f"| {cls}, {fs.name} | {r[0]:.0f} | " + " | ".join(_f(v) for v in r[1:]) + " |")
    return "\n".join(out) + "\n"


def beam_md(real: FrameSet, syn: FrameSet) -> str:
    """Azimuth step, rings in the camera's view, their elevation span, fill of the ground-hitting rings."""
    rows = ["| | " + real.name + " | synthetic |", "|---|---|---|"]
    vals = []
    for fs in (real, syn):
        el = [r.elevation for r in fs.rings]
        fill = np.concatenate([r.fill[(r.elevation < -2) & (r.elevation > -14)] for r in fs.rings])
        vals.append((np.median([r.az_step for r in fs.rings]), np.median([len(e) for e in el]),
                     np.median([e.max() for e in el]), np.median([e.min() for e in el]), np.median(fill),
                     np.mean([len(i) for i in fs.intensity])))
    for j, what in enumerate(("azimuth step (deg)", "rings in view", "top ring elevation (deg)",
                              "bottom ring elevation (deg)", "fill of rings -2..-14 deg", "points per frame")):
        rows.append(f"| {what} | {_f(vals[0][j], 3 if j == 0 else 2)} | {_f(vals[1][j], 3 if j == 0 else 2)} |")
    return "\n".join(rows) + "\n"


def clutter_md(real: FrameSet, syn: FrameSet) -> str:
    """Background points per frame within 40 m, per height band above the ground."""
    bands = [f"{lo:g}-{hi:g} m" for lo, hi in zip(HEIGHT_BINS[:-1], HEIGHT_BINS[1:])]
    rows = ["| | " + " | ".join(bands) + " |", "|---|" + "---|" * len(bands)]
    for fs in (real, syn):
        rows.append(f"| {fs.name} | " + " | ".join(f"{v:.0f}" for v in np.mean(fs.heights, axis=0)) + " |")
    return "\n".join(rows) + "\n"


def in_rows(cars: np.ndarray, gap: float = 2.5) -> np.ndarray:
    """Cars parked or queued in a row: another car heading the same way (or opposite) lies end to end with it,
    less than gap metres between their ends and less than a metre to the side."""
    row = np.zeros(len(cars), bool)
    for i, a in enumerate(cars):
        for j, b in enumerate(cars):
            d = b[:2] - a[:2]
            along = abs(d[0] * np.cos(a[6]) + d[1] * np.sin(a[6]))
            side = abs(-d[0] * np.sin(a[6]) + d[1] * np.cos(a[6]))
            turn = abs((b[6] - a[6] + np.pi / 2) % np.pi - np.pi / 2)
            row[i] |= i != j and turn < 0.3 and side < 1.0 and along < (a[3] + b[3]) / 2 + gap
    return row


def rows_md(real: FrameSet, syn: FrameSet) -> str:
    """Labelled cars per frame and the share of them standing in a row (parked or queued)."""
    rows = ["| | cars per frame | in a row |", "|---|---|---|"]
    for fs in (real, syn):
        n = np.array([len(c) for c in fs.cars])
        share = np.concatenate([in_rows(c) for c in fs.cars]).mean() if n.sum() else np.nan
        rows.append(f"| {fs.name} | {n.mean():.1f} | {share:.0%} |")
    return "\n".join(rows) + "\n"


def sizes_md(real: FrameSet, syn: FrameSet) -> str:
    """Mean and standard deviation of labelled boxes' length, width, height per class."""
    rows = ["| class | " + real.name + " l / w / h (m) | synthetic l / w / h (m) |", "|---|---|---|"]
    for k, cls in enumerate(CLASSES):
        cells = []
        for fs in (real, syn):
            c, _, _, size = fs.objects()
            s = size[c == k]
            cells.append(" / ".join(f"{m:.2f} ± {d:.2f}" for m, d in zip(s.mean(0), s.std(0))) + f" ({len(s)})"
                         if len(s) else "-")
        rows.append(f"| {cls} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def report_md(real: FrameSet, syn: FrameSet, plots: list[str]) -> str:
    """The whole comparison as markdown: every table, then the plots."""
    parts = [f"# {real.name} ({len(real.cats)} frames) against the generator ({len(syn.cats)} frames)\n",
             "Cells read real / synthetic.\n",
             "## Points inside a labelled box: median (objects)\n", points_table(real, syn),
             "## Intensity: zero fraction and nonzero median\n", intensity_md(real, syn),
             "## Beam pattern\n", beam_md(real, syn),
             "## Clutter: background points per frame within 40 m, by height above the ground\n", clutter_md(real, syn),
             "## Cars in rows\n", rows_md(real, syn),
             "## Object sizes\n", sizes_md(real, syn), "## Plots\n"]
    parts += [f"![{p}]({p})\n" for p in plots]
    return "\n".join(parts)
