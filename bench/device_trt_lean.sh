#!/usr/bin/env bash
# Device test: TensorRT 11.4 lean runtime (cu13) + tests/test_tensorrt_runner.py on the GPU machine.
# Run from the repo root with the device tool, carrying the wheels:
#   run(command="bash bench/device_trt_lean.sh", carry=[".whl"])
# .whl/ needs tensorrt_lean_cu13_libs-11.4.0.106 and tensorrt_lean_cu13_bindings-11.4.0.106 (cp312);
# see engines/README.md for the pip download line. Only these two are installed, so other
# wheels in .whl/ cannot clash. WHL=<dir> picks another (ignored, carried) wheel folder, e.g. when
# .whl/ with other wheels would push the tree over 64 MiB. Output: stdout and $OUT/trt_lean_tests.log.
set -o pipefail
W=${WHL:-.whl}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$W"/tensorrt_lean_cu13_libs-11.4.0.106-*.whl \
  "$W"/tensorrt_lean_cu13_bindings-11.4.0.106-cp312-*.whl || exit
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c 'import tensorrt_lean_bindings as t; print("tensorrt_lean_bindings", t.__version__)'
python3 -c 'from pointpillars_trt.backends.tensorrt.runner import probe_gpu; print("probe_gpu:", probe_gpu())'
python3 -m pytest tests/test_tensorrt_runner.py -v -rs -p no:cacheprovider 2>&1 | tee "${OUT:-/tmp}/trt_lean_tests.log"
