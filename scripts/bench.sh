#!/usr/bin/env bash
# Benchmarks torchpack against torch.package side by side (see the README's Benchmarks
# section); arguments go to `python -m bench` (--rounds, --size-mib, --deps, --out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[bench]'
exec .venv/bin/python -u -m bench "$@"
