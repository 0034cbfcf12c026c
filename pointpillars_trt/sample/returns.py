"""The lidar's return model: which rays come back, and the intensity KITTI's HDL-64E reports for them, per material.

A return's strength goes as rho * cos(incidence)^k * (r0 / range)^2 (rho: the surface's reflectivity, k: how glossy
it is), times a log-normal spread. Below the sensor's threshold (strength 1) KITTI reports intensity 0: 38 % of the
points on labelled objects and 64 % of the ground at 30-35 m read exactly 0 in the real frames. Above it the value
is about rho at 15 m, fading with range. Glass, foliage and fences also lose rays outright (`drop`).
The numbers are fitted to real KITTI frames by `sim2real --fit` (evaluation/return_fit.py); docs/sim_to_real/.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Material:
    """A surface kind: its reflectivity range (each surface draws a shade in [0, 1] within it), gloss and ray drop."""

    rho: tuple[float, float]
    k: float = 0.2  # incidence exponent of the return strength: ~0 matte ... 3+ glossy paint
    drop: float = 0.0  # fraction of rays that never come back


# fitted by `sim2real --split data/splits/kitti_train.txt --frames 40 --fit` (the two frames that train the default
# model); distance to their intensity table 274 -> 156 (evaluation/return_fit.py)
MATERIALS: dict[str, Material] = {
    "ground": Material((0.174, 0.263), 0.2),  # asphalt
    "sidewalk": Material((0.259, 0.478), 0.2),  # concrete, kerbs
    "grass": Material((0.2, 0.5), 0.3, 0.05),
    "wall": Material((0.149, 0.529), 0.2),
    "vegetation": Material((0.234, 0.533), 0.3, 0.25),
    "fence": Material((0.2, 0.5), 0.2, 0.6),
    "pole": Material((0.2, 0.6), 0.2),
    "sign": Material((0.8, 0.99), 0.0),  # retro-reflective
    "paint": Material((0.373, 0.475), 5.89),  # car bodies: glossy, zeros away from normal incidence
    "glass": Material((0.05, 0.25), 3.16, 0.5),
    "tyre": Material((0.03, 0.12), 0.5),
    "plate": Material((0.8, 0.99), 0.0),  # number plates, reflectors
    "cloth": Material((0.208, 0.508), 0.3),
    "bike": Material((0.15, 0.5), 0.5, 0.2),
}
MATERIAL_NAMES: tuple[str, ...] = tuple(MATERIALS)


def material_index(name: str) -> int:
    """Index of a material name in MATERIAL_NAMES (what the renderer stores per ray)."""
    return MATERIAL_NAMES.index(name)


@dataclass(frozen=True)
class ReturnModel:
    """The sensor's return threshold and intensity scale, and the materials' parameters."""

    r0: float = 92.4  # metres at which a rho-1 surface at normal incidence is at the threshold
    spread: float = 0.716  # log-normal sigma of the return strength
    falloff: float = 89.9  # the reported value fades as (1 - range / falloff) beyond 15 m
    noise: float = 0.0595  # 1-sigma noise of the reported value
    dropout: float = 0.005  # rays lost whatever they hit
    materials: tuple[Material, ...] = tuple(MATERIALS.values())

    def with_material(self, name: str, **changes) -> "ReturnModel":
        """A copy with one material's fields replaced (the fit's step)."""
        mats = list(self.materials)
        i = material_index(name)
        mats[i] = dataclasses.replace(mats[i], **changes)
        return dataclasses.replace(self, materials=tuple(mats))

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per material index: rho low, rho high, gloss k, drop."""
        m = self.materials
        return (np.array([x.rho[0] for x in m]), np.array([x.rho[1] for x in m]), np.array([x.k for x in m]),
                np.array([x.drop for x in m]))

    def kept(self, material: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Which rays come back at all (before the intensity threshold): material drop and the global dropout."""
        drop = self.table()[3][material]
        return rng.random(len(material)) >= 1.0 - (1.0 - drop) * (1.0 - self.dropout)

    def intensity(self, material: np.ndarray, shade: np.ndarray, cos_inc: np.ndarray, rng_m: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
        """KITTI-style intensity in [0, 0.99], 0.01 steps, 0 below the return threshold."""
        lo, hi, k, _ = self.table()
        rho = lo[material] + shade * (hi[material] - lo[material])
        c = np.clip(cos_inc, 1e-3, 1.0)
        r = np.maximum(rng_m, 0.5)
        strength = rho * c ** k[material] * (self.r0 / r) ** 2 * np.exp(self.spread * rng.standard_normal(len(r)))
        fade = np.clip((1.0 - r / self.falloff) / (1.0 - 15.0 / self.falloff), 0.05, 1.0)  # 1 up to 15 m
        value = rho * fade + self.noise * rng.standard_normal(len(r))
        value = np.round(np.clip(value, 0.01, 0.99), 2)
        return np.where(strength >= 1.0, value, 0.0).astype(np.float32)
