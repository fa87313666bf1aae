# Shared by the end-to-end scripts of tests/launch (source it after `set -euo pipefail`):
# a temporary work folder removed on exit, fail, and expect_exit.

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

expect_exit() {  # expect_exit CODE PATTERN -- command...
  local code=$1 pattern=$2; shift 3
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
  [ "$rc" -eq "$code" ] || fail "'$*' exited $rc, expected $code; output: $out"
  grep -q -- "$pattern" <<<"$out" || fail "'$*' output lacks '$pattern': $out"
}
