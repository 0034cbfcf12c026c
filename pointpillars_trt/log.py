"""Messages for the user on stderr (stdout carries results): info, warnings, one place to silence them."""
from __future__ import annotations

import sys

QUIET = False


def info(msg: str) -> None:
    if not QUIET:
        print(msg, file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)
