"""The project speaks of itself alone: no file name or text names a numbered session, round or issue of the work
that made it. Comments cite files and measurements instead."""
from __future__ import annotations

import re
import subprocess

from conftest import REPO

#: session, round or issue (or their plurals) then a number, joined by nothing, a space, '#', '_' or '-'; the number
#: must end its word, so that a sentence about label files that round 2D boxes is not one
MADE_BY = re.compile(r"\b(sessions?|rounds?|issues?)[ _#-]*\d+\b", re.I)


def test_no_word_about_how_the_project_was_made() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    hits = [f"{f}: file name" for f in files if MADE_BY.search(f)]
    for f in files:
        path = REPO / f
        if path.suffix in (".png", ".pth", ".bin", ".onnx") or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MADE_BY.search(line):
                hits.append(f"{f}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits[:20])
