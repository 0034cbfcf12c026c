"""Command-line entry: `python -m pointpillars_trt COMMAND ...`; user errors become one line and exit status 2."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from pointpillars_trt import __version__, phases
from pointpillars_trt.errors import UserError

# modules that each register one or more subcommands with add_parser(subparsers)
COMMAND_MODULES = ("infer", "eval", "view", "make_sample", "export", "build", "bench", "cache", "train", "tune", "sim2real")
#: optional modules a command may import on its way: the extra that brings each, and what needs it
OPTIONAL_MODULES = {"torch": ("export", "reading checkpoints, exporting them to ONNX, training and the torch backend "
                                        "need it; --onnx-dir runs an exported model without it")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pointpillars_trt",
        description="PointPillars 3D object detection (Car, Pedestrian, Cyclist) on LiDAR scans: "
                    "TensorRT / torch on an NVIDIA GPU, onnxruntime on the CPU.",
        epilog="run `python -m pointpillars_trt COMMAND --help` for each command's options")
    p.add_argument("--version", action="version", version=f"pointpillars_trt {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    from pointpillars_trt.cli.dataset import extend

    extend(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    phases.mark("interpreter start, import of the command line")
    args = build_parser().parse_args(argv)
    phases.mark("command modules imported, arguments parsed")
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:  # an extra that is not installed: name it (pyproject's optional-dependencies)
        top = (e.name or "").split(".")[0]
        if top not in OPTIONAL_MODULES:
            raise
        extra, why = OPTIONAL_MODULES[top]
        print(f"error: {top} is not installed: pip install \"pointpillars_trt[{extra}]\" (README: install torch "
              f"first for your machine); {why}", file=sys.stderr)
        return UserError.exit_code
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit cannot fail again
        return 141  # 128 + SIGPIPE, what a shell reports for such a pipeline
