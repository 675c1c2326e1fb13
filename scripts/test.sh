#!/usr/bin/env bash
# Runs every check: lint, then the whole test suite. Sets up .venv first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check torchpack tests examples bench pants-plugins
.venv/bin/python -m pytest "$@"
