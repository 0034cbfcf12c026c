"""`bench --startup`: how long a new process takes to answer `infer SCAN`, phase by phase, cold and warm.

The command runs in child processes: first with every cache empty (new folders for the project's cache, Numba's,
Inductor's and Triton's: a machine that never ran the tool), then again with the same folders (the next process on
that machine). Python's bytecode is the machine's own, written where missing (PYTHONDONTWRITEBYTECODE dropped);
fresh_bytecode starts it empty too (PYTHONPYCACHEPREFIX), as on a machine whose packages were installed without
.pyc. Each child records its phases (pointpillars_trt/phases.py); the whole process is timed from outside, so the
rows add up to it.
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
              "TRITON_CACHE_DIR": "triton"}
BYTECODE_VAR = ("PYTHONPYCACHEPREFIX", "bytecode")
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


def child_env(folder: Path, fresh_bytecode: bool = False) -> dict[str, str]:
    """This process's environment with every cache in `folder` (Python's bytecode too if fresh_bytecode) and
    bytecode writing allowed."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for var, sub in (*CACHE_VARS.items(), *([BYTECODE_VAR] if fresh_bytecode else [])):
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


def torch_bytecode_cached(env: dict[str, str]) -> bool | None:
    """Whether torch's package module has its .pyc under `env` (None: no torch); before a cold run, the bytecode
    part of its figure: without it Python compiles every module it imports from source."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return None
    if env.get(BYTECODE_VAR[0]):  # a new, empty PYTHONPYCACHEPREFIX folder
        return False
    return Path(importlib.util.cache_from_source(spec.origin)).is_file()


def measure(scan: Path, infer_args: list[str], warm_runs: int = 1, folder: Path | None = None,
            progress: Any = None, fresh_bytecode: bool = False) -> dict[str, Any]:
    """A cold process then `warm_runs` warm ones of `python -m pointpillars_trt infer SCAN --show 0 ARGS`, with every
    cache in `folder` (default: a new temporary folder, removed after)."""
    command = [sys.executable, "-m", "pointpillars_trt", "infer", str(scan), "--show", "0", *infer_args]
    with tempfile.TemporaryDirectory(prefix="pointpillars_trt_startup_") as tmp:
        where = Path(folder) if folder is not None else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        if any((where / sub).exists() for sub in (*CACHE_VARS.values(), BYTECODE_VAR[1])):
            raise UserError(f"{where} already holds caches; a cold start needs an empty folder")
        env = child_env(where, fresh_bytecode)
        bytecode = torch_bytecode_cached(env)
        runs = []
        for i in range(1 + warm_runs):
            label = "cold" if i == 0 else "warm" if warm_runs == 1 else f"warm{i}"
            if progress:
                progress(f"{label} process: {' '.join(command[1:])}")
            runs.append(run_once(label, command, env, where))
    return {"command": "python " + " ".join(command[1:]), "scan": str(scan),
            "caches": sorted(CACHE_VARS) + ([BYTECODE_VAR[0]] if fresh_bytecode else []),
            "torch_bytecode_before_cold": bytecode, "runs": runs}


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
    if "caches" in result:
        pyc = {True: "present", False: "absent: compiled from source", None: "no torch"}
        lines.append(f"\nEmpty at the cold start: {', '.join(result['caches'])}. torch's bytecode before it: "
                     f"{pyc[result.get('torch_bytecode_before_cold')]}.")
    for r in runs:
        notes = "; ".join(f"{k}: {v}" for k, v in r["notes"].items())
        lines.append(f"\n{r['label']}: {r['report']}" + (f"\n  {notes}" if notes else ""))
    return "\n".join(lines)
