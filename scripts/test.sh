#!/usr/bin/env bash
# Run the whole test suite with no network but loopback (unshare -n), as CI does.
#   bash scripts/test.sh [pytest args...]     e.g. bash scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PYTEST=(.venv/bin/python -m pytest "$@")
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1; then
  exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh "${PYTEST[@]}"
else
  echo "warning: not root, running without a network namespace (ROS discovery stays on localhost)" >&2
  exec "${PYTEST[@]}"
fi
