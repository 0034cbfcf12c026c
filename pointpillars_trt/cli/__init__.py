"""Command-line entry: `python -m pointpillars_trt COMMAND ...`; user errors become one line and exit status 2."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from pointpillars_trt import __version__
from pointpillars_trt.errors import UserError

# modules that each register one or more subcommands with add_parser(subparsers)
COMMAND_MODULES = ("infer", "eval", "view", "make_sample", "export", "build", "bench", "cache", "train", "sim2real")


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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit cannot fail again
        return 141  # 128 + SIGPIPE, what a shell reports for such a pipeline
