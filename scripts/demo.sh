#!/usr/bin/env bash
# The main job: build the example ResNet-18 package with Bazel (//examples/models:resnet_pkg),
# then load it in a fresh process that cannot see the model's source, printing the package's
# files and the model's output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bazel build //examples/models:resnet_pkg
mkdir -p out
install -m 644 bazel-bin/examples/models/resnet_pkg.pt out/resnet18.pt
# Stop the Bazel server this demo started; the next build starts another in seconds.
bazel shutdown
# Run as a script, Python puts examples/ (not the repository) on sys.path: the model's
# source is not importable, only the package.
.venv/bin/python examples/load_package.py out/resnet18.pt
