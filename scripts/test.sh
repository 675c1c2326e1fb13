#!/usr/bin/env bash
# Runs every check: lint, then the whole test suite. Sets up .venv first if needed. Without
# arguments it also runs the real-library cases that need torchvision (timm, torchvision) on
# torch 2.14.1 (scripts/test_torch214.sh): PyPI's torchvision does not load beside torch 2.13.0.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check torchpack tests examples bench pants-plugins
.venv/bin/python -m pytest "$@"
if [ $# -eq 0 ]; then
  bash scripts/test_torch214.sh tests/test_real_libraries.py -k "timm or torchvision"
fi
