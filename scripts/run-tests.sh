#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine and run it.
#   - system packages (apt-get): Xvfb + Mesa for the real napari viewer tests
#   - Python packages (pip) into ./.venv: the package with its [testing] extra
# Core and CLI tests run WITHOUT a display; viewer tests run under Xvfb with Mesa.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  xvfb xauth libgl1-mesa-dri libegl1 libgl1 libxkbcommon-x11-0 libxkbcommon0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libxcb-cursor0 libxcb-xkb1
  libdbus-1-3 libfontconfig1 libglib2.0-0 libxrender1 libxi6
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[testing]"

status=0
echo "== core, CLI and benchmark-helper tests (no display)"
env -u DISPLAY -u WAYLAND_DISPLAY \
  .venv/bin/python -m pytest tests --ignore=tests/napari "$@" || status=$?
echo "== napari viewer tests (Xvfb + Mesa, Qt6)"
xvfb-run -a -s "-screen 0 1280x1024x24" \
  .venv/bin/python -m pytest tests/napari "$@" || status=$?
exit "$status"
