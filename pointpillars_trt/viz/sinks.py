"""The viewer outputs a run writes besides its JSON: a Foxglove MCAP and/or a Rerun recording, fed scan by scan."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections

NS_PER_INDEX = 1_000_000_000  # folders of scans have no stamps: scan i is at i seconds (MCAP) / step i (Rerun)


def check_output(path: Path | None, suffix: str, flag: str, force: bool) -> None:
    """UserError for a viewer file with the wrong suffix, in a missing folder, or existing without --force."""
    if path is None:
        return
    if path.suffix.lower() != suffix:
        raise UserError(f"{flag} {path}: expected a {suffix} file name")
    if path.is_dir() or (path.exists() and not force):
        raise UserError(f"{flag} {path} already exists; pass --force to overwrite it, or name another file")
    if not path.parent.is_dir():
        raise UserError(f"{flag} {path}: folder {path.parent} does not exist")


class ViewerSinks:
    """Open the asked writers (each checks its extra is installed); `write` one scan to all; `close` finishes them."""

    def __init__(self, class_names: Sequence[str], *, mcap: Path | None = None, rerun: Path | None = None,
                 stamped: bool = True) -> None:
        self._stamped, self._writers = stamped, []
        if mcap is not None:
            from pointpillars_trt.viz.foxglove_mcap import FoxgloveMcapWriter

            self._writers.append(FoxgloveMcapWriter(mcap, class_names))
        if rerun is not None:
            from pointpillars_trt.viz.rerun_rrd import MESSAGE_TIME, SCAN_INDEX, RerunWriter

            self._rerun = RerunWriter(rerun, class_names, MESSAGE_TIME if stamped else SCAN_INDEX)
            self._writers.append(self._rerun)

    def write(self, index: int, stamp_ns: int | None, frame_id: str, points: np.ndarray | None, dets: Detections) -> None:
        """One scan: at its stamp (bags) or its index (folders: `stamped=False`)."""
        from pointpillars_trt.viz.rerun_rrd import RerunWriter

        for w in self._writers:
            if isinstance(w, RerunWriter):
                w.write(stamp_ns if self._stamped else index, frame_id, points, dets)
            else:
                w.write(stamp_ns if self._stamped else index * NS_PER_INDEX, frame_id, points, dets)

    def close(self) -> None:
        for w in self._writers:
            w.close()

    def __enter__(self) -> "ViewerSinks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
