#!/usr/bin/env bash
# Build and test segnode with colcon (PyPI colcon, no ROS needed) outside the source tree, and
# check the install layout that `ros2 run` / `ros2 launch` rely on.
# Usage: bash .ci/colcon_check.sh   (BIN defaults to the repository's .venv/bin)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$repo/.venv/bin}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/segnode-colcon.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

paths=(--base-paths "$repo" --build-base "$tmp/build" --install-base "$tmp/install")

echo "colcon_check: building into $tmp"
"$BIN/python" -m colcon --log-base "$tmp/log" build "${paths[@]}" --event-handlers console_cohesion+

install=$tmp/install/segnode  # colcon's default isolated layout, as in a ROS 2 workspace
missing=0
for f in lib/segnode/segnode_node lib/segnode/segnode share/segnode/package.xml \
    share/segnode/config/segnode.yaml share/segnode/config/multi_camera.yaml \
    share/segnode/launch/segnode.launch.py share/segnode/launch/multi_camera.launch.py \
    share/ament_index/resource_index/packages/segnode; do
  if [[ ! -e $install/$f ]]; then
    echo "colcon_check: MISSING from the install tree: $f" >&2
    missing=1
  fi
done
if (( missing )); then
  echo 'colcon_check: install layout incomplete (see setup.py data_files and setup.cfg)' >&2
  exit 1
fi
echo 'colcon_check: install layout OK'

# The full suite runs in `make pytest`; here colcon test runs the packaging and ament lint tests
# (the ament ones skip themselves where ament_* is not installed). The leading spaces stop
# argparse from reading pytest's options as colcon's own (colcon strips them).
"$BIN/python" -m colcon --log-base "$tmp/log" test "${paths[@]}" --event-handlers console_cohesion+ \
  --pytest-args ' -m' 'not gpu and not ros and not data and not slow' \
  test/test_layout.py test/test_flake8.py test/test_pep257.py
"$BIN/python" -m colcon --log-base "$tmp/log" test-result --test-result-base "$tmp/build" --verbose
