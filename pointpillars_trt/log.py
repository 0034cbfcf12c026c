"""Messages for the user on stderr (stdout carries results): info, warnings, one place to silence them."""
from __future__ import annotations

import sys

QUIET = False


def info(msg: str) -> None:
    if not QUIET:
        print(msg, file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def progress(iterable=None, **kwargs):
    """A tqdm bar on stderr. Off a terminal (CI logs, `| tee`) it redraws at most every 30 s, so logs get a few
    lines instead of one per frame."""
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    if not getattr(kwargs["file"], "isatty", lambda: False)():
        kwargs.setdefault("mininterval", 30)
    return tqdm(iterable, **kwargs)
