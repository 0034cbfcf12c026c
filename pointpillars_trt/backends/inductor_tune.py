"""The RPN's Inductor tuning in a process of its own (compile='auto', a shape this cache never tuned, a long run):
it loads the network its parent saved, compiles it with max-autotune for the parent's input layout into the same
Inductor cache, and records the shape as tuned (inductor_compile.TunedShapes). The parent then compiles from that
cache on a worker thread in seconds, and so does every later process.

Run by the parent as `python -m pointpillars_trt.backends.inductor_tune SPEC.pt` in a session of its own, so that the
parent can stop it with the autotuning workers it starts (inductor_compile._stop).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pointpillars_trt import phases

#: the folder that holds the package, for the child's import path (a source checkout run without installing)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def spawn(spec: Path) -> tuple[subprocess.Popen, Path]:
    """Start the tuning of the network saved in `spec`; returns the process and the file its output goes to."""
    log_file = spec.with_suffix(".log")
    env = phases.without(dict(os.environ))  # its phases would overwrite its parent's
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(log_file, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(spec)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, log_file


def tune(spec_file: Path) -> float:
    """Compile (and tune) the saved network as its parent runs it; returns the seconds it took."""
    import torch

    from pointpillars_trt.backends.torch_runner import TorchRunner

    spec = torch.load(spec_file, map_location="cpu", weights_only=False)  # our own file: the parent's module
    spec_file.unlink(missing_ok=True)
    runner = TorchRunner(spec["module"], spec["input"], tuple(spec["outputs"]), spec["precision"], compile="now",
                         tf32=spec["tf32"], native_input=spec["native_input"])
    device = torch.device(spec["device"])
    with torch.cuda.device(device):  # the parent's GPU
        runner.activate()
        key = runner._tuned_key(spec["shape"])
        if key != spec["key"]:  # the parent would not find this tuning under its own key
            raise RuntimeError(f"the tuning's key differs from the parent's: {key} != {spec['key']}")
        t0 = time.perf_counter()
        runner._compile_like(spec["shape"], spec["stride"], spec["dtype"], device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pointpillars_trt.backends.inductor_tune SPEC.pt", file=sys.stderr)
        return 2
    print(f"tuned in {tune(Path(args[0])):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
