"""What a folder run did: scans done, skipped (finished before), failed and why, how fast, and per worker."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_LISTED = 20  # failures listed one per line; the rest are counted


@dataclass
class FolderSummary:
    """Counts of one run over `total` scans. seconds: from the first scan handed to the detectors to the last file
    written (model loading before it is not counted); warmup_*: the first batch (JIT, graph capture), which a run
    pays once; workers: scans done per worker (Ray); interrupted: stopped by Ctrl-C after finishing what was in
    flight."""

    total: int
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Any, str]] = field(default_factory=list)
    seconds: float = 0.0
    warmup_seconds: float = 0.0
    warmup_scans: int = 0
    interrupted: bool = False
    out: Path | None = None
    workers: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Scans done per second, end to end (reading, detecting, writing)."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_rate(self) -> float:
        """Scans per second after the first batch."""
        n, t = self.done - self.warmup_scans, self.seconds - self.warmup_seconds
        return n / t if n > 0 and t > 0 else 0.0

    @property
    def not_run(self) -> int:
        """Scans neither done, skipped nor failed: left for a rerun by an interruption."""
        return self.total - self.done - self.skipped - len(self.failed)

    def lines(self) -> list[str]:
        """The summary a command prints: counts, speed, where the results are, what failed and why."""
        out = []
        counts = [f"{self.done} done"] + ([f"{self.skipped} skipped (finished before)"] if self.skipped else [])
        counts += [f"{len(self.failed)} failed"] if self.failed else []
        counts += [f"{self.not_run} not run (interrupted; run the same command again to continue)"] if self.not_run else []
        if self.total > 1 or self.skipped or self.interrupted:
            out.append(f"{self.total} scans: " + ", ".join(counts))
        if self.done > 1 and self.seconds > 0:
            line = f"{self.done} scans in {self.seconds:.2f} s: {_rate(self.rate)} scans/s end to end (read, detected, written)"
            if self.steady_rate and self.warmup_scans and self.done >= 2 * self.warmup_scans:  # enough after it
                n = self.warmup_scans
                line += (f"; {_rate(self.steady_rate)} scans/s after the first batch ({n} scan{'s' * (n != 1)}, "
                         f"{self.warmup_seconds:.2f} s with warm-up)")
            out.append(line)
        if self.workers:
            out.append("per worker: " + ", ".join(f"{w} {n}" for w, n in sorted(self.workers.items())))
        if self.out is not None and (self.done or self.skipped):
            out.append(f"results in {self.out}/")
        if self.failed:
            out.append(f"{self.done + self.skipped} of {self.total} scans done; {len(self.failed)} failed:")
            out += [f"  {why}" for _, why in self.failed[:MAX_LISTED]]
            if len(self.failed) > MAX_LISTED:
                out.append(f"  ... and {len(self.failed) - MAX_LISTED} more")
        return out


def _rate(r: float) -> str:
    """Three significant figures up to 100 scans/s, whole numbers above."""
    return f"{r:.0f}" if r >= 100 else f"{r:.3g}"


def reason(e: Exception) -> str:
    """One line for a failed scan: a UserError's message, else the exception type and its first line."""
    from pointpillars_trt.errors import UserError

    text = str(e).splitlines()[0] if str(e) else ""
    return text if isinstance(e, UserError) else f"{type(e).__name__}: {text}"


def named(source: Any, why: str) -> str:
    """The reason, prefixed with the scan's path unless it already names it."""
    return why if str(source) in why else f"{source}: {why}"
