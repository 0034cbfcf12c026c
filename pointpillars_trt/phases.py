"""Where a process's start goes: wall-clock marks (interpreter start, backend check, model files, import torch, CUDA
context, kernels, first scan) kept only when $POINTPILLARS_TRT_PHASES is set: to a file, which gets one JSON object
at exit (`bench --startup` reads it), or to '-', a table on stderr. Unset, mark() does nothing."""
from __future__ import annotations

import atexit
import json
import os
import sys
import time

ENV_VAR = "POINTPILLARS_TRT_PHASES"
#: seconds since the epoch at which the parent started this process (bench --startup sets it: exact)
T0_VAR = "POINTPILLARS_TRT_PHASES_T0"

_target = os.environ.get(ENV_VAR, "")
_marks: list[tuple[str, float]] = []
_notes: dict[str, object] = {}


def enabled() -> bool:
    return bool(_target)


def mark(phase: str) -> None:
    """End the phase `phase` now: it began at the previous mark (the first at the process's start). A phase marked
    again (a second pipeline) adds its time to the first."""
    if _target:
        _marks.append((phase, time.time()))


def note(key: str, value: object) -> None:
    """A fact about the run beside the phases (kernels compiled or loaded, the RPN's compile plan, ...)."""
    if _target:
        _notes[key] = value


def without(env: dict[str, str]) -> dict[str, str]:
    """`env` for a helper process (a compile, a tuning): no phases of its own, which would overwrite these."""
    env.pop(ENV_VAR, None)
    env.pop(T0_VAR, None)
    return env


def process_start() -> float:
    """When this process started (seconds since the epoch): the parent's word, else Linux's /proc (10 ms ticks), else
    this module's import."""
    if os.environ.get(T0_VAR):
        return float(os.environ[T0_VAR])
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED


_IMPORTED = time.time()


def durations() -> list[tuple[str, float]]:
    """(phase, seconds) in the order first marked; repeated phases summed."""
    out: dict[str, float] = {}
    prev = process_start()
    for phase, t in _marks:
        out[phase] = out.get(phase, 0.0) + max(0.0, t - prev)
        prev = t
    return list(out.items())


def _report() -> None:
    mark("rest of the run, until exit")
    rows = durations()
    if _target == "-":
        for phase, s in rows:
            print(f"{s:9.3f} s  {phase}", file=sys.stderr)
        print(f"{sum(s for _, s in rows):9.3f} s  in all (interpreter teardown not included)", file=sys.stderr)
        for k, v in _notes.items():
            print(f"  {k}: {v}", file=sys.stderr)
        return
    try:
        with open(_target, "w") as f:
            json.dump({"phases": rows, "notes": _notes}, f, indent=1)
    except OSError as e:
        print(f"warning: could not write the start-up phases to {_target}: {e}", file=sys.stderr)


if _target:
    atexit.register(_report)
