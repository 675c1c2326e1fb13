#!/usr/bin/env bash
# Optional second run: the whole test suite on torch 2.14.1, with torchvision 0.29.1 and timm,
# which the main venv (torch 2.13.0, CPU) cannot load: PyPI's torchvision needs torch's CUDA
# build. Creates .venv-torch214 (about 5.5 GB: torch 2.14.1 and torchvision 0.29.1 are CUDA
# builds, which run on the CPU; pip takes them from this machine's disk where they lie there,
# else from PyPI). Idempotent; arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv-torch214
PINS=(torch==2.14.1 torchvision==0.29.1)
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import sys, torch, torchvision
sys.exit(torch.__version__.split("+")[0] != "2.14.1" or torchvision.__version__.split("+")[0] != "0.29.1")' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
fi
# The pins again, so that nothing here moves torch or torchvision.
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e '.[test,models]' timm==1.0.29 "${PINS[@]}"

# The Bazel tests build with this interpreter too.
export TORCHPACK_PYTHON="$PWD/$VENV/bin/python"
"$VENV/bin/python" -m pytest "$@"
