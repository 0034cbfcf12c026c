"""The whole model contract in one frozen dataclass, readable from OpenPCDet's pointpillar.yaml.

Every stage (voxelize, networks, anchors, decode, NMS, export, engines) reads its
numbers from a :class:`PointPillarsConfig`; nothing else holds model constants.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pointpillars_trt.errors import UserError


@dataclass(frozen=True)
class AnchorClass:
    """One class's anchors: box size, bottom height and yaw rotations (OpenPCDet ANCHOR_GENERATOR_CONFIG)."""

    name: str
    size: tuple[float, float, float]  # dx (length), dy (width), dz (height)
    bottom_z: float
    rotations: tuple[float, ...] = (0.0, 1.57)


KITTI_ANCHORS = (
    AnchorClass("Car", (3.9, 1.6, 1.56), -1.78),
    AnchorClass("Pedestrian", (0.8, 0.6, 1.73), -0.6),
    AnchorClass("Cyclist", (1.76, 0.6, 1.73), -0.6),
)


@dataclass(frozen=True)
class PointPillarsConfig:
    """KITTI PointPillars as OpenPCDet's tools/cfgs/kitti_models/pointpillar.yaml defines it."""

    point_cloud_range: tuple[float, float, float, float, float, float] = (0.0, -39.68, -3.0, 69.12, 39.68, 1.0)
    voxel_size: tuple[float, float, float] = (0.16, 0.16, 4.0)
    max_points_per_pillar: int = 32
    max_pillars: int = 40000
    num_point_features: int = 4
    anchors: tuple[AnchorClass, ...] = KITTI_ANCHORS
    feature_stride: int = 2
    # networks
    pfn_filters: int = 64
    layer_nums: tuple[int, ...] = (3, 5, 5)
    layer_strides: tuple[int, ...] = (2, 2, 2)
    num_filters: tuple[int, ...] = (64, 128, 256)
    upsample_strides: tuple[int, ...] = (1, 2, 4)
    num_upsample_filters: tuple[int, ...] = (128, 128, 128)
    bn_eps: float = 1e-3
    # direction classifier
    num_dir_bins: int = 2
    dir_offset: float = 0.78539
    dir_limit_offset: float = 0.0
    # post-processing (class-agnostic)
    score_thresh: float = 0.1
    nms_pre: int = 4096
    nms_thresh: float = 0.01
    max_det: int = 500
    # ---- the scans' intensities (OpenPCDet's YAML has no such keys; the exported graphs do not depend on them:
    # excluded from inference_dict() and digest(), so they change no cache key or manifest)
    intensity_range: tuple[float, float] = (0.0, 1.0)  # what the model was trained on (KITTI's reflectance: 0..1)
    intensity_scale: float = 1.0  # multiplies every point's intensity before voxelization (0..255 data: 1/255)
    # ---- training only (OpenPCDet's TARGET_ASSIGNER_CONFIG, LOSS_CONFIG, OPTIMIZATION, DATA_AUGMENTOR);
    # not part of the exported model: excluded from inference_dict() and digest()
    matched_thresholds: tuple[float, ...] = (0.6, 0.5, 0.5)  # per anchor class: BEV IoU for a positive anchor
    unmatched_thresholds: tuple[float, ...] = (0.45, 0.35, 0.35)  # below it an anchor is background
    max_pillars_train: int = 16000
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smooth_l1_beta: float = 1.0 / 9.0
    cls_weight: float = 1.0
    loc_weight: float = 2.0
    dir_weight: float = 0.2
    code_weights: tuple[float, ...] = (1.0,) * 7
    lr: float = 0.003  # one-cycle maximum
    weight_decay: float = 0.01
    div_factor: float = 10.0
    moms: tuple[float, float] = (0.95, 0.85)
    pct_start: float = 0.4
    grad_norm_clip: float = 10.0
    aug_flip_x: bool = True
    aug_rotation: tuple[float, float] = (-0.78539816, 0.78539816)
    aug_scaling: tuple[float, float] = (0.95, 1.05)
    val_seed: int = 1_000_003  # `make-sample --seed` of the held-apart validation frames (training seeds must differ)

    # ---- derived ------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.anchors)

    @property
    def num_classes(self) -> int:
        return len(self.anchors)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """(nx, ny, nz) of the voxel grid, e.g. (432, 496, 1)."""
        r, v = self.point_cloud_range, self.voxel_size
        return tuple(int(round((r[i + 3] - r[i]) / v[i])) for i in range(3))  # type: ignore[return-value]

    @property
    def feature_map_size(self) -> tuple[int, int]:
        """(fx, fy) of the head output, e.g. (216, 248)."""
        nx, ny, _ = self.grid_size
        return nx // self.feature_stride, ny // self.feature_stride

    @property
    def anchors_per_cell(self) -> int:
        return sum(len(a.rotations) for a in self.anchors)

    @property
    def num_anchors(self) -> int:
        fx, fy = self.feature_map_size
        return fx * fy * self.anchors_per_cell

    @property
    def pfn_in_features(self) -> int:
        return self.num_point_features + 6

    @property
    def head_channels(self) -> dict[str, int]:
        """Channels of the three NHWC head outputs (cls, box, dir)."""
        a = self.anchors_per_cell
        return {"cls": a * self.num_classes, "box": a * 7, "dir": a * self.num_dir_bins}

    def __post_init__(self) -> None:
        rots = {len(a.rotations) for a in self.anchors}
        if len(rots) != 1:
            raise UserError("config: every anchor class must have the same number of rotations")
        nx, ny, nz = self.grid_size
        if nz != 1:
            raise UserError(f"config: PointPillars needs one voxel in z, got grid {self.grid_size}")
        if nx % self.feature_stride or ny % self.feature_stride:
            raise UserError(f"config: grid {nx}x{ny} is not divisible by feature stride {self.feature_stride}")
        if not len(self.matched_thresholds) == len(self.unmatched_thresholds) == self.num_classes:
            raise UserError("config: one matched and one unmatched threshold per anchor class are needed")
        lo_hi = tuple(self.intensity_range)
        if len(lo_hi) != 2 or not all(math.isfinite(v) for v in lo_hi) or not lo_hi[0] < lo_hi[1]:
            raise UserError(f"intensity range must be two finite numbers LO < HI, got {self.intensity_range}")
        if not (math.isfinite(self.intensity_scale) and self.intensity_scale > 0):
            raise UserError(f"intensity scale must be a positive number, got {self.intensity_scale}")

    # ---- I/O ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (lists, not tuples), so it compares equal to a manifest read back from JSON."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def inference_dict(self) -> dict[str, Any]:
        """to_dict() without the training-only and intensity fields: what exported models depend on (manifests,
        cache keys)."""
        return {k: v for k, v in self.to_dict().items() if k not in TRAINING_FIELDS | INTENSITY_FIELDS}

    def digest(self) -> str:
        """A short hash of the inference contract: cache keys of files that depend on it (ONNX exports, demo model)."""
        import hashlib

        return hashlib.sha256(json.dumps(self.inference_dict(), sort_keys=True).encode()).hexdigest()[:8]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PointPillarsConfig":
        d = dict(d)
        if "anchors" in d:
            d["anchors"] = tuple(
                AnchorClass(a["name"], tuple(a["size"]), float(a["bottom_z"]), tuple(a["rotations"])) for a in d["anchors"]
            )
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                v = d[f.name]
                kw[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)

    def __str__(self) -> str:
        d = self.to_dict()
        d["grid_size"] = self.grid_size
        d["feature_map_size"] = self.feature_map_size
        d["num_anchors"] = self.num_anchors
        return json.dumps(d, indent=2)

    @classmethod
    def from_openpcdet_yaml(cls, path: str | Path) -> "PointPillarsConfig":
        """Read the fields that matter from an OpenPCDet model YAML (pointpillar.yaml layout)."""
        path = Path(path)
        try:
            y = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise UserError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"config {path}: cannot be read ({type(e).__name__})") from None
        except yaml.YAMLError as e:
            raise UserError(f"config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(y, dict) or not isinstance(y.get("MODEL"), dict):
            raise UserError(f"config {path}: no MODEL section; expected OpenPCDet's pointpillar.yaml layout")
        try:
            return cls.from_dict(_openpcdet_fields(y, path))
        except KeyError as e:
            raise UserError(f"config {path}: missing key {e} (OpenPCDet's pointpillar.yaml layout expected)") from None
        except (TypeError, AttributeError, ValueError) as e:
            raise UserError(f"config {path}: a field has the wrong type or value ({e})") from None


_NAMES = [f.name for f in dataclasses.fields(PointPillarsConfig)]
TRAINING_FIELDS = frozenset(_NAMES[_NAMES.index("matched_thresholds"):])  # the fields after "training only"
INTENSITY_FIELDS = frozenset({"intensity_range", "intensity_scale"})


def _openpcdet_fields(y: dict[str, Any], path: Path) -> dict[str, Any]:
    """Map OpenPCDet's nested YAML keys onto PointPillarsConfig field names."""
    out: dict[str, Any] = {}
    data = y.get("DATA_CONFIG", {}) or {}
    if "POINT_CLOUD_RANGE" in data:
        out["point_cloud_range"] = [float(v) for v in data["POINT_CLOUD_RANGE"]]
    for proc in data.get("DATA_PROCESSOR", []) or []:
        if proc.get("NAME") == "transform_points_to_voxels":
            out["voxel_size"] = [float(v) for v in proc["VOXEL_SIZE"]]
            out["max_points_per_pillar"] = int(proc["MAX_POINTS_PER_VOXEL"])
            mv = proc.get("MAX_NUMBER_OF_VOXELS", {})
            out["max_pillars"] = int(mv.get("test", mv) if isinstance(mv, dict) else mv)
            if isinstance(mv, dict) and "train" in mv:
                out["max_pillars_train"] = int(mv["train"])
    _augmentation_fields(data, out)
    model = y["MODEL"]
    vfe = model.get("VFE", {}) or {}
    if "NUM_FILTERS" in vfe:
        if len(vfe["NUM_FILTERS"]) != 1:
            raise UserError(f"config {path}: only one PFN layer is supported, got VFE.NUM_FILTERS={vfe['NUM_FILTERS']}")
        out["pfn_filters"] = int(vfe["NUM_FILTERS"][0])
    bb = model.get("BACKBONE_2D", {}) or {}
    for key, name in [("LAYER_NUMS", "layer_nums"), ("LAYER_STRIDES", "layer_strides"), ("NUM_FILTERS", "num_filters"),
                      ("UPSAMPLE_STRIDES", "upsample_strides"), ("NUM_UPSAMPLE_FILTERS", "num_upsample_filters")]:
        if key in bb:
            out[name] = [int(v) for v in bb[key]]
    head = model.get("DENSE_HEAD", {}) or {}
    gens = head.get("ANCHOR_GENERATOR_CONFIG")
    if gens:
        anchors = []
        for g in gens:
            if len(g["anchor_sizes"]) != 1 or len(g["anchor_bottom_heights"]) != 1:
                raise UserError(f"config {path}: class {g['class_name']}: one anchor size and bottom height per class is supported")
            if g.get("align_center", False):
                raise UserError(f"config {path}: align_center=True anchors are not supported")
            if "matched_threshold" in g:
                out.setdefault("matched_thresholds", []).append(float(g["matched_threshold"]))
                out.setdefault("unmatched_thresholds", []).append(float(g["unmatched_threshold"]))
            anchors.append({"name": g["class_name"], "size": [float(v) for v in g["anchor_sizes"][0]],
                            "bottom_z": float(g["anchor_bottom_heights"][0]),
                            "rotations": [float(v) for v in g["anchor_rotations"]]})
            out["feature_stride"] = int(g.get("feature_map_stride", 2))
        out["anchors"] = anchors
        names = y.get("CLASS_NAMES")
        if names and list(names) != [a["name"] for a in anchors]:
            raise UserError(f"config {path}: CLASS_NAMES {names} do not match the anchor classes")
    for key, name, typ in [("NUM_DIR_BINS", "num_dir_bins", int), ("DIR_OFFSET", "dir_offset", float),
                           ("DIR_LIMIT_OFFSET", "dir_limit_offset", float)]:
        if key in head:
            out[name] = typ(head[key])
    coder = (head.get("TARGET_ASSIGNER_CONFIG", {}) or {}).get("BOX_CODER")
    if coder and coder != "ResidualCoder":
        raise UserError(f"config {path}: box coder {coder} is not supported (ResidualCoder only)")
    post = model.get("POST_PROCESSING", {}) or {}
    if "SCORE_THRESH" in post:
        out["score_thresh"] = float(post["SCORE_THRESH"])
    nms = post.get("NMS_CONFIG", {}) or {}
    if nms.get("MULTI_CLASSES_NMS", False):
        raise UserError(f"config {path}: MULTI_CLASSES_NMS is not supported (class-agnostic NMS only)")
    for key, name, typ in [("NMS_THRESH", "nms_thresh", float), ("NMS_PRE_MAXSIZE", "nms_pre", int),
                           ("NMS_POST_MAXSIZE", "max_det", int)]:
        if key in nms:
            out[name] = typ(nms[key])
    _training_fields(y, head, out)
    return out


def _augmentation_fields(data: dict[str, Any], out: dict[str, Any]) -> None:
    """DATA_AUGMENTOR's flip / rotation / scaling settings (training only)."""
    for aug in (data.get("DATA_AUGMENTOR", {}) or {}).get("AUG_CONFIG_LIST", []) or []:
        name = aug.get("NAME")
        if name == "random_world_flip":
            out["aug_flip_x"] = "x" in aug.get("ALONG_AXIS_LIST", [])
        elif name == "random_world_rotation":
            out["aug_rotation"] = [float(v) for v in aug["WORLD_ROT_ANGLE"]]
        elif name == "random_world_scaling":
            out["aug_scaling"] = [float(v) for v in aug["WORLD_SCALE_RANGE"]]


def _training_fields(y: dict[str, Any], head: dict[str, Any], out: dict[str, Any]) -> None:
    """LOSS_CONFIG's weights and OPTIMIZATION's one-cycle Adam settings (training only)."""
    w = ((head.get("LOSS_CONFIG", {}) or {}).get("LOSS_WEIGHTS", {}) or {})
    for key, name in [("cls_weight", "cls_weight"), ("loc_weight", "loc_weight"), ("dir_weight", "dir_weight")]:
        if key in w:
            out[name] = float(w[key])
    if "code_weights" in w:
        out["code_weights"] = [float(v) for v in w["code_weights"]]
    opt = y.get("OPTIMIZATION", {}) or {}
    for key, name in [("LR", "lr"), ("WEIGHT_DECAY", "weight_decay"), ("DIV_FACTOR", "div_factor"),
                      ("PCT_START", "pct_start"), ("GRAD_NORM_CLIP", "grad_norm_clip")]:
        if key in opt:
            out[name] = float(opt[key])
    if "MOMS" in opt:
        out["moms"] = [float(v) for v in opt["MOMS"]]


def with_intensity(cfg: PointPillarsConfig, scale: float | None,
                    lo_hi: tuple[float, float] | None) -> PointPillarsConfig:
    """The config with the caller's intensity scale / range, checked (UserError for a bad value)."""
    changes: dict[str, Any] = {}
    try:
        if scale is not None:
            changes["intensity_scale"] = float(scale)
        if lo_hi is not None:
            changes["intensity_range"] = tuple(float(v) for v in lo_hi)
    except (TypeError, ValueError):
        raise UserError(f"intensity_scale must be a number and intensity_range two numbers (lo, hi), got "
                        f"{scale!r} and {lo_hi!r}") from None
    return dataclasses.replace(cfg, **changes) if changes else cfg
