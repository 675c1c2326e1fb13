#!/usr/bin/env bash
# Installs Pants 2.17.1 into .venv-pants (Pants 2.17 runs on Python 3.7-3.9; it is the newest
# release on PyPI) for tests/pants, and makes it work offline: Pants downloads its pex tool from
# GitHub at first use, so this builds that tool here from PyPI's pex wheel and writes
# .venv-pants/offline.toml, the settings that point Pants at it (see README, Pants).
# Idempotent: a second run only checks that everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PANTS_VERSION=2.17.1
PEX_VERSION=2.1.137 # the pex that Pants 2.17.1 pins
VENV=.venv-pants
PEX="$VENV/pex-$PEX_VERSION.pex"

# A Python that Pants 2.17 runs on: $PANTS_PYTHON, else python3.9/3.8/3.7 on PATH (pyenv's
# shims only count when they run), else pyenv's own versions.
find_python() {
  local candidate
  for candidate in ${PANTS_PYTHON:-} python3.9 python3.8 python3.7 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.{9,8,7}.*/bin/python3.[987]; do
    if [ -n "$candidate" ] && "$candidate" -c \
      'import sys; sys.exit(not (3, 7) <= sys.version_info[:2] <= (3, 9))' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

installed=$("$VENV/bin/python" -c \
  'import importlib.metadata as m; print(m.version("pantsbuild.pants"))' 2>/dev/null || true)
if [ "$installed" != "$PANTS_VERSION" ] || [ ! -x "$VENV/bin/pants" ]; then
  python=$(find_python) || {
    echo "setup_pants.sh: Pants $PANTS_VERSION needs Python 3.7-3.9, and none was found:" \
      "install one (e.g. pyenv install 3.9) or set PANTS_PYTHON to it" >&2
    exit 1
  }
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "pantsbuild.pants==$PANTS_VERSION"
fi

if [ ! -s "$PEX" ]; then
  wheels=$(mktemp -d)
  trap 'rm -rf "$wheels"' EXIT
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$wheels" \
    "pex==$PEX_VERSION"
  # This machine's global pip configuration (extra indexes, a constraints file) breaks pex's
  # resolves: pex gets none, and only the wheel just downloaded.
  PIP_CONFIG_FILE=/dev/null "$VENV/bin/pex" --no-pypi --find-links "$wheels" \
    "pex==$PEX_VERSION" --console-script pex --output-file "$PEX.tmp"
  mv "$PEX.tmp" "$PEX"
fi

# Rewritten every time: it names the PEX by its absolute path, and by its own sha256 and size.
read -r sha256 _ < <(sha256sum "$PEX")
case "$(uname -m)" in
  aarch64 | arm64) platform=linux_arm64 ;;
  *) platform=linux_x86_64 ;;
esac
cat >"$VENV/offline.toml.tmp" <<EOF
# Written by scripts/setup_pants.sh: what Pants $PANTS_VERSION needs to run offline here.
[pex-cli]
version = "v$PEX_VERSION"
url_template = "file://$(pwd)/$PEX"
known_versions = ["v$PEX_VERSION|$platform|$sha256|$(stat -c %s "$PEX")"]

[subprocess-environment]
# This machine's global pip configuration breaks the pex processes Pants runs.
env_vars.add = ["PIP_CONFIG_FILE=/dev/null"]
EOF
mv "$VENV/offline.toml.tmp" "$VENV/offline.toml"
