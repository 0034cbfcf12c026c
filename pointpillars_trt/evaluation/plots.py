"""PNG precision-recall plots of an EvalResult (matplotlib, Agg backend, no pyplot state)."""
from __future__ import annotations

import os
from pathlib import Path

from pointpillars_trt.evaluation.protocol import DIFFICULTIES, METRICS
from pointpillars_trt.evaluation.result import EvalResult


def save_pr_curves(result: EvalResult, out_dir: str | os.PathLike, overlap: str = "strict") -> list[Path]:
    """Write pr_<class>_<metric>.png (easy/moderate/hard curves) for one overlap set; returns the paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = result.overlap_sets.index(overlap)
    paths = []
    for c, cls in enumerate(result.classes):
        for m, metric in enumerate(METRICS):
            fig = Figure(figsize=(5, 3.6), dpi=100, layout="constrained")
            FigureCanvasAgg(fig)
            ax = fig.add_subplot(1, 1, 1)
            for d, dname in enumerate(DIFFICULTIES):
                n = int(result.num_thresholds[s, m, c, d])
                if n == 0:
                    continue
                ap = result.ap[s, m, c, d, 1]
                ax.plot(result.recall[s, m, c, d, :n], result.precision[s, m, c, d, :n],
                        label=f"{dname} (AP_R40 {ap:.2f})", lw=2)
            ov = result.min_overlaps[s, c, 0 if metric == "aos" else m]
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("Recall")
            ax.set_ylabel("Orientation similarity" if metric == "aos" else "Precision")
            ax.set_title(f"{cls} {metric} (min overlap {ov:.2f})")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(loc="lower left", fontsize=8)
            path = out / f"pr_{cls}_{metric}.png"
            fig.savefig(path)
            paths.append(path)
    return paths
