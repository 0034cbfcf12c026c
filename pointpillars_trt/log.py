"""Messages for the user on stderr (stdout carries results): info, warnings, one place to silence them."""
from __future__ import annotations

import sys

QUIET = False


def info(msg: str) -> None:
    if not QUIET:
        print(msg, file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def on_terminal(stream=None) -> bool:
    """Whether `stream` (default stderr) is a terminal: progress bars are drawn only there."""
    return bool(getattr(stream or sys.stderr, "isatty", lambda: False)())


def progress(iterable=None, **kwargs):
    """A tqdm bar on stderr, drawn only on a terminal: off one (CI logs, `| tee`, `2> log`) it is disabled, since a
    redrawn bar written to a file is a line of carriage returns per redraw."""
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs["disable"] = kwargs.get("disable", False) or not on_terminal(kwargs["file"])
    return tqdm(iterable, **kwargs)
