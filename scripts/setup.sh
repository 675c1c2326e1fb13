#!/usr/bin/env bash
# Creates .venv with torch 2.13.0 (CPU), torchpack installed for development and the real model
# libraries the tests package (transformers, diffusers; pinned in pyproject.toml), and installs
# Bazel and nginx (used by the Bazel tests) from Debian when missing. Idempotent: a second run
# only checks that everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Pinned: an unpinned torch would pull a multi-GB CUDA build.
if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test,models]'
# Nothing above may replace torch (a CUDA build would be several GB and untested here).
.venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' || {
  echo "setup.sh: torch is no longer 2.13.0 after installing the test dependencies" >&2
  exit 1
}

# Debian's bazel-bootstrap (Bazel 4.2.3) is the Bazel that installs offline; see README.
missing=()
command -v bazel >/dev/null 2>&1 || missing+=(bazel-bootstrap)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" nginx "* ]]; then
    # The package starts a public server on port 80; the tests run their own on 127.0.0.1.
    "${sudo[@]}" service nginx stop >/dev/null 2>&1 || true
  fi
fi

# Pants 2.17.1 in its own Python 3.9 environment, offline, for tests/pants (see README, Pants).
bash scripts/setup_pants.sh
