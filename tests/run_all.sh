#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: install what is missing, build, and run every
# test (unit suites, multi-rank suites under mpirun with timeouts, end-to-end CLI checks).
#   tests/run_all.sh [extra ctest arguments, e.g. -R dist]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
launch/setup.sh
launch/build.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ctest --test-dir "${WINNOW_BUILD_DIR:-$root/build}" --output-on-failure --timeout 600 -j 2 "$@"
echo "run_all: finished in $(( $(date +%s) - start )) s"
