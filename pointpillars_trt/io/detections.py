"""The pipeline's result for one scan: lidar-frame boxes, scores, 1-based labels, and their file forms (JSON, KITTI)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from pointpillars_trt.io.kitti import Calib, KittiObjects

BOX_KEYS = ("x", "y", "z", "dx", "dy", "dz", "yaw")
#: one detection of to_json: %.6f and %.5f give the floats that to_dict's round(v, 6) and round(v, 5) give
_JSON_ROW = '  {"label": %s, "label_id": %d, "score": %.6f, ' + ", ".join(f'"{k}": %.5f' for k in BOX_KEYS) + "}"


@dataclass
class Detections:
    """At most max_det boxes, sorted by descending score.

    boxes: [D, 7] float32 (x, y, z_centre, dx, dy, dz, yaw) in the lidar frame;
    scores: [D] float32; labels: [D] int32, 1 = first class (Car) ...
    device: None, or (when asked for with ``detector(points, on_device=True)``) the same rows [D, 9] (box, score,
    label) still on the GPU, offering ``__dlpack__`` and ``__cuda_array_interface__`` (e.g. ``torch.from_dlpack``);
    valid until the detector's next call.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    device: Any = None

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def above(self, score_thresh: float) -> "Detections":
        """The detections scoring at least score_thresh (order kept), for a stricter cut than the model's."""
        keep = self.scores >= score_thresh
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    def as_array(self) -> np.ndarray:
        """[D, 9] float32: box, score, label (DESIGN.md's download layout)."""
        return np.column_stack([self.boxes, self.scores, self.labels.astype(np.float32)]).astype(np.float32)

    @classmethod
    def from_array(cls, a: np.ndarray) -> "Detections":
        a = np.asarray(a, np.float32).reshape(-1, 9)
        return cls(a[:, :7].copy(), a[:, 7].copy(), a[:, 8].astype(np.int32))

    def labels_named(self, class_names: Sequence[str]) -> list[str]:
        """The class name of each detection (labels are 1-based into class_names)."""
        return [class_names[int(l) - 1] for l in self.labels]

    def to_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        """{"frame": "lidar", "detections": [{label, label_id, score, x, y, z, dx, dy, dz, yaw}]} (z at the centre)."""
        dets = [{"label": name, "label_id": int(l), "score": round(float(s), 6),
                 **{k: round(float(v), 5) for k, v in zip(BOX_KEYS, b)}}
                for name, b, s, l in zip(self.labels_named(class_names), self.boxes.reshape(-1, 7), self.scores, self.labels)]
        return {"frame": "lidar", "detections": dets}

    def to_json(self, class_names: Sequence[str], meta: dict | None = None) -> str:
        """The results JSON `infer --out` writes (<id>.json): "frame", the meta keys (one line each), then
        "detections", one per line, with to_dict's values. One %-format for all rows: json.dumps of to_dict took
        1.1 ms for 46 detections on 2 cores, this 0.18 ms (bench/tools.py folder-host), which a folder run at the
        GPU's pace needs; non-finite values (not JSON) go through json.dumps as before."""
        head = '{\n "frame": "lidar",\n' + "".join(f" {json.dumps(k)}: {json.dumps(v)},\n" for k, v in (meta or {}).items())
        n = len(self)
        if n and not (np.isfinite(self.boxes).all() and np.isfinite(self.scores).all()):
            return json.dumps({"frame": "lidar", **(meta or {}), "detections": self.to_dict(class_names)["detections"]},
                              indent=1)
        if n == 0:
            return head + ' "detections": []\n}\n'
        quoted, labels = [json.dumps(name) for name in class_names], self.labels.tolist()
        flat: list[Any] = [None] * (10 * n)  # row by row: label, label_id, score, box; filled a column at a time
        flat[0::10], flat[1::10], flat[2::10] = [quoted[l - 1] for l in labels], labels, self.scores.tolist()
        for k, column in enumerate(self.boxes.reshape(-1, 7).T.tolist()):
            flat[3 + k::10] = column
        body = ",\n".join([_JSON_ROW] * n) % tuple(flat)
        return head + ' "detections": [\n' + body + "\n ]\n}\n"

    def to_kitti_objects(self, calib: "Calib", class_names: Sequence[str],
                         image_shape: tuple[int, int] | None = None) -> "KittiObjects":
        """KITTI result objects (camera frame; the 2D box is the projected 3D box, clipped to (height, width))."""
        from pointpillars_trt.io.kitti import detections_to_kitti

        return detections_to_kitti(self.boxes, self.scores, self.labels, tuple(class_names), calib, image_shape)

    def to_kitti(self, calib: "Calib", class_names: Sequence[str], image_shape: tuple[int, int] | None = None) -> str:
        """KITTI's 16-column result text (label_2 columns plus a score), one line per detection."""
        from pointpillars_trt.io.kitti import format_labels

        return format_labels(self.to_kitti_objects(calib, class_names, image_shape))
