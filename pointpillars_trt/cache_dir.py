"""Where exported ONNX files, built engines and the demo model live: one cache per user, not per working directory."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "POINTPILLARS_TRT_CACHE"


def default_cache_dir() -> Path:
    """$POINTPILLARS_TRT_CACHE, else $XDG_CACHE_HOME/pointpillars_trt, else ~/.cache/pointpillars_trt."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "pointpillars_trt"
