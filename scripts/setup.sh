#!/usr/bin/env bash
# Set everything up on a fresh Debian/Ubuntu machine, then start the simulated robot.
#   bash scripts/setup.sh            install + run `passeur sim`
#   bash scripts/setup.sh --no-run   install only (CI)
# Debian packages need root (or sudo); Python packages go into .venv; browser test tools
# (axe-core) into node_modules. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
RUN=1
for arg in "$@"; do
  case "$arg" in
    --no-run) RUN=0 ;;
    *) echo "usage: bash scripts/setup.sh [--no-run]" >&2; exit 2 ;;
  esac
done

say() { printf '\n==> %s\n' "$*"; }

# 1. Debian packages
PKGS=$(grep -v '^\s*#' scripts/debian-packages.txt | grep -v '^\s*$' | tr '\n' ' ')
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
fi
if [ "$SUDO" = none ]; then
  say "Not root and no sudo: skipping Debian packages. Install them yourself: $PKGS"
else
  MISSING=""
  for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || MISSING="$MISSING $p"; done
  if [ -n "$MISSING" ]; then
    say "Installing Debian packages:$MISSING"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $MISSING
  fi
fi

# 2. Python virtual environment (system ROS 2 when one is sourced, else Kilted wheels)
PY=${PYTHON:-python3}
SYSTEM_ROS=0
if [ -n "${ROS_DISTRO:-}" ] && "$PY" -c "import rclpy" >/dev/null 2>&1; then
  SYSTEM_ROS=1
  say "Using the sourced ROS 2 ($ROS_DISTRO)"
fi
if [ ! -x .venv/bin/python ]; then
  say "Creating .venv"
  if [ "$SYSTEM_ROS" = 1 ]; then "$PY" -m venv --system-site-packages .venv; else "$PY" -m venv .venv; fi
fi
VPIP=".venv/bin/python -m pip"
$VPIP install -q --upgrade pip
say "Installing Python packages"
if [ "$SYSTEM_ROS" = 0 ]; then $VPIP install -q -r requirements-ros.txt; fi
$VPIP install -q -r requirements.txt -r requirements-dev.txt
$VPIP install -q --no-deps -e .

# 3. Browser test tools (axe-core, injected into pages by the accessibility tests)
if command -v npm >/dev/null 2>&1; then
  say "Installing axe-core"
  npm install --no-audit --no-fund --silent >/dev/null
fi

# 4. Generated helper prefix so get_package_share_directory('passeur') works from source
.venv/bin/python -c "from passeur.paths import ensure_dev_prefix; ensure_dev_prefix()"

say "Set up. Tests: bash scripts/test.sh"
if [ "$RUN" = 1 ]; then
  say "Starting the simulated robot (Ctrl-C to stop)"
  exec .venv/bin/passeur sim
fi
