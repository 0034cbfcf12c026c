"""Fit the generator's return model (sample/returns.py) to real frames: re-shade the points of rendered synthetic
frames under candidate parameters until their intensity table (zero fraction and nonzero quartiles per category and
range, evaluation/scan_stats.intensity_table) is closest to the real frames'. Coordinate descent over a few
multiplicative steps per parameter; the points themselves (geometry, ray drop) stay fixed."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.evaluation.scan_stats import Categories, intensity_table
from pointpillars_trt.sample.returns import MATERIAL_NAMES, ReturnModel

# what the fit may change, within physical bounds: global fields, or (material, 'rho' centre | 'spread' | 'k')
PARAMS: dict[tuple[str, str], tuple[float, float]] = {
    ("", "r0"): (20.0, 200.0), ("", "spread"): (0.1, 1.0), ("", "falloff"): (50.0, 300.0), ("", "noise"): (0.01, 0.1),
    ("ground", "rho"): (0.1, 0.5), ("ground", "spread"): (0.02, 0.2), ("sidewalk", "rho"): (0.1, 0.6),
    ("wall", "rho"): (0.1, 0.6), ("vegetation", "rho"): (0.1, 0.6), ("paint", "rho"): (0.05, 0.7),
    ("paint", "spread"): (0.05, 0.35), ("paint", "k"): (0.5, 6.0), ("glass", "k"): (0.5, 6.0), ("cloth", "rho"): (0.1, 0.6),
}
STEPS = (0.5, 0.7, 0.85, 0.93, 1.07, 1.18, 1.4, 2.0)


@dataclass
class SyntheticSample:
    """Rendered frames' categories and per-point surface records, re-shaded for every candidate model."""

    cats: list[Categories]
    material: list[np.ndarray]
    shade: list[np.ndarray]
    cos_inc: list[np.ndarray]
    range_m: list[np.ndarray]


def get(model: ReturnModel, param: tuple[str, str]) -> float:
    mat, field = param
    if not mat:
        return float(getattr(model, field))
    m = model.materials[MATERIAL_NAMES.index(mat)]
    lo, hi = m.rho
    return {"rho": (lo + hi) / 2, "spread": (hi - lo) / 2, "k": m.k}[field]


def scaled(model: ReturnModel, param: tuple[str, str], factor: float) -> ReturnModel:
    """The model with one parameter multiplied by factor (a reflectivity range keeps its width or its centre)."""
    mat, field = param
    if not mat:
        return dataclasses.replace(model, **{field: getattr(model, field) * factor})
    m = model.materials[MATERIAL_NAMES.index(mat)]
    if field == "k":
        return model.with_material(mat, k=m.k * factor)
    c, w = get(model, (mat, "rho")), get(model, (mat, "spread"))
    c, w = (c * factor, w) if field == "rho" else (c, w * factor)
    lo, hi = max(c - w, 0.0), min(c + w, 0.99)
    return model.with_material(mat, rho=(round(lo, 4), round(hi, 4)))


def table_distance(syn: dict[str, np.ndarray], real: dict[str, np.ndarray], min_count: int = 100) -> float:
    """Squared differences of zero fractions (in units of 0.05) and nonzero quartiles (units of 0.03), over the
    category/range cells where the real frames have at least min_count points (objects rows: 5 objects)."""
    total = 0.0
    for key, r in real.items():
        s = syn[key]
        least = 5 if key.endswith(" means") else min_count
        for rr, ss in zip(r, s):
            if rr[0] < least or ss[0] < min(20, least):
                continue
            total += ((ss[1] - rr[1]) / 0.05) ** 2
            total += float(np.nansum(((ss[2:] - rr[2:]) / 0.03) ** 2))
    return total


def shade_table(model: ReturnModel, sample: SyntheticSample, seed: int = 0) -> dict[str, np.ndarray]:
    """The intensity table of the sample's points re-shaded by model (same random draws for every model)."""
    rng = np.random.default_rng(seed)
    frames = []
    for c, mat, sh, cos, r in zip(sample.cats, sample.material, sample.shade, sample.cos_inc, sample.range_m):
        frames.append((c, model.intensity(mat, sh, cos, r, rng)))
    return intensity_table(frames)


def fit_returns(real: dict[str, np.ndarray], sample: SyntheticSample, model: ReturnModel | None = None,
                rounds: int = 4) -> tuple[ReturnModel, float, float]:
    """Coordinate descent from model (default: the generator's); returns (fitted model, start and end distance)."""
    model = model or ReturnModel()
    start = best = table_distance(shade_table(model, sample), real)
    for rnd in range(rounds):
        for param in log.progress(PARAMS, desc=f"fit round {rnd + 1}/{rounds}", unit="param", leave=False):
            lo, hi = PARAMS[param]
            for f in STEPS:
                if not lo <= get(model, param) * f <= hi:
                    continue
                cand = scaled(model, param, f)
                d = table_distance(shade_table(cand, sample), real)
                if d < best - 1e-9:
                    best, model = d, cand
    return model, start, best


def model_source(model: ReturnModel) -> str:
    """The fitted numbers as the Python that sample/returns.py holds."""
    glob = ", ".join(f"{f.name}={getattr(model, f.name):.4g}" for f in dataclasses.fields(model) if f.name != "materials")
    mats = "\n".join(f'    "{n}": Material(({m.rho[0]:.3f}, {m.rho[1]:.3f}), {m.k:.3g}, {m.drop:.3g}),'
                     for n, m in zip(MATERIAL_NAMES, model.materials))
    return f"ReturnModel({glob})\nMATERIALS = {{\n{mats}\n}}\n"
