#!/usr/bin/env bash
# The main job: package the example ResNet with torchpack, then load it back in a fresh
# process that cannot see the model's source, printing the package's files and an output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
.venv/bin/python -m examples.package_resnet out/resnet18.pt
.venv/bin/python examples/load_package.py out/resnet18.pt
