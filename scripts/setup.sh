#!/usr/bin/env bash
# Set up benchrun in ./.venv: CPU PyTorch first (an unpinned torch would pull a multi-GB CUDA build),
# then benchrun with the embedded local model server (llama-cpp-python, built from source once and
# cached by pip) and the test tools. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing CPU PyTorch 2.13.0" >&2
  .venv/bin/pip install --quiet --quiet "torch==2.13.0"
fi
# llama.cpp's default build targets the build machine's CPU (-march=native). On CPUs with AMX (Sapphire
# Rapids and newer) that enables ggml's AMX kernels, which died with SIGILL (`tilezero` in a worker thread)
# on our 2-core CI-class VMs although AMX itself works there; x86-64 builds use the portable AVX2/FMA/F16C
# path instead, which is as fast for the 135M model. Set CMAKE_ARGS yourself to override.
if [ "$(uname -m)" = "x86_64" ] && [ -z "${CMAKE_ARGS:-}" ]; then
  export CMAKE_ARGS="-DGGML_NATIVE=OFF"
fi
echo "setup: installing benchrun and its dependencies (the first build of llama-cpp-python takes ~5 minutes)" >&2
.venv/bin/pip install --quiet --quiet -e ".[local,dev,postgres]"
# bytecode for our own modules: an editable install leaves src/ uncompiled, and where PYTHONDONTWRITEBYTECODE is
# set (as in some CI and container images) every start would compile them again (~0.15 s of CPU per command).
# checked-hash: Python compares the source's hash on import, so an edited file is never shadowed by its old .pyc
# (a timestamp .pyc can be, after a same-size edit within the same second)
.venv/bin/python -m compileall -q --invalidation-mode checked-hash src
echo "setup: done (.venv)" >&2
