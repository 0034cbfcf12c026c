"""`bench --startup`: how long a new process takes to answer `infer SCAN`, phase by phase, cold and warm.

The command runs in child processes: first with every cache empty (new folders for the project's cache, Numba's,
Inductor's and Triton's, and for Python's bytecode through PYTHONPYCACHEPREFIX: a machine that never ran the tool and
keeps no .pyc), then again with the same folders (the next process on that machine). Each child records its phases
(pointpillars_trt/phases.py); the whole process is timed from outside, so the rows add up to it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pointpillars_trt import phases
from pointpillars_trt.errors import UserError

#: the caches a cold start fills, each pointed at a sub-folder of the run's folder
CACHE_VARS = {"POINTPILLARS_TRT_CACHE": "cache", "NUMBA_CACHE_DIR": "numba", "TORCHINDUCTOR_CACHE_DIR": "inductor",
              "TRITON_CACHE_DIR": "triton", "PYTHONPYCACHEPREFIX": "bytecode"}
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
EXIT_ROW = "interpreter exit"
TOTAL_ROW = "whole process"


def first_scan(path: Path) -> Path:
    """The scan to time: the file given, or a folder's first .bin."""
    if path.is_file():
        return path
    found = sorted(path.glob("*.bin")) if path.is_dir() else []
    if not found:
        raise UserError(f"--startup needs a scan file or a folder holding .bin scans, got {path}")
    return found[0]


def child_env(folder: Path) -> dict[str, str]:
    """This process's environment with every cache in `folder` and bytecode writing allowed."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for var, sub in CACHE_VARS.items():
        env[var] = str(folder / sub)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run_once(label: str, command: list[str], env: dict[str, str], folder: Path) -> dict[str, Any]:
    """One child process: its phases, notes, whole wall time and the command's report line."""
    out = folder / f"{label}.phases.json"
    env = dict(env, **{phases.ENV_VAR: str(out), phases.T0_VAR: repr(time.time())})
    t0 = time.perf_counter()
    r = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"the {label} process failed (exit status {r.returncode}): {last}")
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"the {label} process wrote no phases ({e})") from None
    rows = [(str(name), float(s)) for name, s in data["phases"]]
    rows.append((EXIT_ROW, max(0.0, wall - sum(s for _, s in rows))))
    report = next((ln for ln in r.stdout.splitlines() if "detections" in ln), "")
    return {"label": label, "wall_s": wall, "phases": rows, "notes": data.get("notes", {}), "report": report,
            "messages": [ln for ln in r.stderr.splitlines() if ln.strip()][-20:]}


def measure(scan: Path, infer_args: list[str], warm_runs: int = 1, folder: Path | None = None,
            progress: Any = None) -> dict[str, Any]:
    """A cold process then `warm_runs` warm ones of `python -m pointpillars_trt infer SCAN --show 0 ARGS`, with every
    cache in `folder` (default: a new temporary folder, removed after)."""
    command = [sys.executable, "-m", "pointpillars_trt", "infer", str(scan), "--show", "0", *infer_args]
    with tempfile.TemporaryDirectory(prefix="pointpillars_trt_startup_") as tmp:
        where = Path(folder) if folder is not None else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        if any((where / sub).exists() for sub in CACHE_VARS.values()):
            raise UserError(f"{where} already holds caches; a cold start needs an empty folder")
        env = child_env(where)
        runs = []
        for i in range(1 + warm_runs):
            label = "cold" if i == 0 else "warm" if warm_runs == 1 else f"warm{i}"
            if progress:
                progress(f"{label} process: {' '.join(command[1:])}")
            runs.append(run_once(label, command, env, where))
    return {"command": "python " + " ".join(command[1:]), "scan": str(scan), "caches": sorted(CACHE_VARS),
            "runs": runs}


def table(result: dict[str, Any]) -> str:
    """Markdown: one row a phase (in the order first seen), one column a process, then each process's notes."""
    runs = result["runs"]
    names: list[str] = []
    for r in runs:
        names += [n for n, _ in r["phases"] if n not in names and n != EXIT_ROW]
    names.append(EXIT_ROW)
    head = "| phase | " + " | ".join(f"{r['label']} s" for r in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for n in names:
        cells = [f"{dict(r['phases']).get(n, 0.0):.2f}" for r in runs]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append(f"| **{TOTAL_ROW}** | " + " | ".join(f"**{r['wall_s']:.2f}**" for r in runs) + " |")
    for r in runs:
        notes = "; ".join(f"{k}: {v}" for k, v in r["notes"].items())
        lines.append(f"\n{r['label']}: {r['report']}" + (f"\n  {notes}" if notes else ""))
    return "\n".join(lines)
