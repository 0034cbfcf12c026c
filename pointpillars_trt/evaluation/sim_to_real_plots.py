"""PNG plots of the sim-to-real comparison (matplotlib, Agg backend, no pyplot state)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pointpillars_trt.evaluation.scan_stats import (BACKGROUND, CLASSES, GROUND, HEIGHT_BINS, RANGE_BINS)
from pointpillars_trt.evaluation.sim_to_real import FrameSet

COLOURS = ("tab:red", "tab:blue")


def _figure(w: float, h: float, rows: int, cols: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def points_vs_distance(real: FrameSet, syn: FrameSet, path: Path) -> None:
    fig, ax = _figure(13, 3.8, 1, 3)
    for k, cls in enumerate(CLASSES):
        a = ax[0, k]
        for fs, col, size in ((syn, COLOURS[1], 5), (real, COLOURS[0], 22)):
            c, d, n, _ = fs.objects()
            m = (c == k) & (n > 0)
            a.scatter(d[m], n[m], s=size, c=col, alpha=0.35 if fs is syn else 0.9, label=f"{fs.name} ({m.sum()})")
        a.set_yscale("log")
        a.set_xlabel("distance (m)")
        a.set_ylabel("points in the box")
        a.set_title(cls)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.savefig(path)


def intensity_by_range(real: FrameSet, syn: FrameSet, path: Path) -> None:
    fig, ax = _figure(11, 6.5, 2, 2)
    centres = 0.5 * (np.array(RANGE_BINS[:-1]) + np.array(RANGE_BINS[1:]))
    tables = [(fs, fs.table()) for fs in (real, syn)]
    for row, key in enumerate(("ground", "background")):
        for col, (j, what) in enumerate(((1, "zero fraction"), (3, "nonzero median intensity"))):
            a = ax[row, col]
            for (fs, t), c in zip(tables, COLOURS):
                a.plot(centres, t[key][:, j], "o-", c=c, label=fs.name)
            a.set_title(f"{key}: {what}")
            a.set_xlabel("range (m)")
            a.set_ylim(0, 1 if j == 1 else 0.6)
            a.grid(alpha=0.3)
            a.legend(fontsize=8)
    fig.savefig(path)


def intensity_histograms(real: FrameSet, syn: FrameSet, path: Path) -> None:
    fig, ax = _figure(13, 3.6, 1, 4)
    bins = np.linspace(0, 1, 51)

    def values(fs: FrameSet, which: str) -> np.ndarray:
        out = []
        for c, inten in zip(fs.cats, fs.intensity):
            if which in ("ground", "background"):
                out.append(inten[(c.cat == (GROUND if which == "ground" else BACKGROUND)) & (c.range_m < 40)])
            else:
                ks = [0] if which == "Car" else [1, 2]
                out += [inten[m] for k, m in zip(c.obj_class, c.obj_members) if k in ks]
        return np.concatenate(out) if out else np.zeros(0)

    for a, which in zip(ax[0], ("ground", "background", "Car", "Pedestrian + Cyclist")):
        for fs, c in zip((real, syn), COLOURS):
            v = values(fs, which)
            a.hist(v, bins=bins, density=True, histtype="step", lw=2, color=c, label=f"{fs.name} (zero {np.mean(v == 0):.2f})")
        a.set_title(which + (" (< 40 m)" if which in ("ground", "background") else ""))
        a.set_xlabel("intensity")
        a.legend(fontsize=8)
    fig.savefig(path)


def beam_pattern(real: FrameSet, syn: FrameSet, path: Path) -> None:
    fig, ax = _figure(11, 3.8, 1, 2)
    for fs, c in zip((real, syn), COLOURS):
        for i, r in enumerate(fs.rings[:5]):
            ax[0, 0].plot(r.elevation, ".", c=c, ms=4, label=fs.name if i == 0 else None)
            ax[0, 1].plot(r.elevation, r.fill, ".", c=c, ms=4, label=fs.name if i == 0 else None)
    ax[0, 0].set(xlabel="ring (in storage order)", ylabel="median elevation (deg)", title="rings in the camera's view")
    ax[0, 1].set(xlabel="elevation (deg)", ylabel="points / azimuth steps", title="ring fill (returns per step)")
    for a in ax[0]:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.savefig(path)


def clutter_heights(real: FrameSet, syn: FrameSet, path: Path) -> None:
    fig, ax = _figure(7, 3.6, 1, 1)
    x = np.arange(len(HEIGHT_BINS) - 1)
    for j, (fs, c) in enumerate(zip((real, syn), COLOURS)):
        ax[0, 0].bar(x + (j - 0.5) * 0.38, np.mean(fs.heights, axis=0), 0.38, color=c, label=fs.name)
    ax[0, 0].set_xticks(x, [f"{lo:g}-{hi:g}" for lo, hi in zip(HEIGHT_BINS[:-1], HEIGHT_BINS[1:])])
    ax[0, 0].set(xlabel="height above the ground (m)", ylabel="background points per frame (< 40 m)")
    ax[0, 0].legend(fontsize=8)
    fig.savefig(path)


def object_sizes(real: FrameSet, syn: FrameSet, path: Path) -> None:
    fig, ax = _figure(13, 3.6, 1, 3)
    for k, cls in enumerate(CLASSES):
        for fs, c, s in ((syn, COLOURS[1], 6), (real, COLOURS[0], 24)):
            cl, _, _, size = fs.objects()
            m = cl == k
            ax[0, k].scatter(size[m, 0], size[m, 1], s=s, c=c, alpha=0.5, label=fs.name)
        ax[0, k].set(xlabel="length (m)", ylabel="width (m)", title=cls)
        ax[0, k].legend(fontsize=8)
    fig.savefig(path)


PLOTS = {"points_vs_distance.png": points_vs_distance, "intensity_by_range.png": intensity_by_range,
         "intensity_histograms.png": intensity_histograms, "beam_pattern.png": beam_pattern,
         "clutter_heights.png": clutter_heights, "object_sizes.png": object_sizes}


def save_plots(real: FrameSet, syn: FrameSet, out_dir: str | Path) -> list[str]:
    """Write every plot into out_dir; returns the file names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, fn in PLOTS.items():
        fn(real, syn, out / name)
    return list(PLOTS)
