#!/usr/bin/env bash
# Runs a job that must fail fast and checks how it ended:
#   expect_job_failure.sh WITHIN_SECONDS EXIT_CODE|nonzero [--expect TEXT]... -- COMMAND...
# Fails when COMMAND exits 0, with another code than EXIT_CODE, takes WITHIN_SECONDS or longer, or
# its output lacks one of the TEXTs. A hung job is killed at 6 x WITHIN_SECONDS and fails too.
set -u
within=$1 code=$2
shift 2
expects=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  [ "$1" = "--expect" ] || { echo "expect_job_failure.sh: unknown option $1" >&2; exit 2; }
  expects+=("$2")
  shift 2
done
shift  # --
log=$(mktemp)
trap 'rm -f "$log"' EXIT

start_ns=$(date +%s%N)
timeout --kill-after=5 $((within * 6)) "$@" >"$log" 2>&1
status=$?
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
elapsed=$(printf "%d.%03d" $((elapsed_ms / 1000)) $((elapsed_ms % 1000)))

failed=0
if [ "$status" -eq 0 ]; then
  echo "FAIL: the job exited 0; expected a failure" >&2
  failed=1
elif [ "$code" != nonzero ] && [ "$status" -ne "$code" ]; then
  echo "FAIL: the job exited $status; expected $code" >&2
  failed=1
fi
if [ "$elapsed_ms" -ge $((within * 1000)) ]; then
  echo "FAIL: the job took ${elapsed} s; expected less than ${within} s" >&2
  failed=1
fi
for text in "${expects[@]}"; do
  if ! grep -qF -- "$text" "$log"; then
    echo "FAIL: the output lacks: $text" >&2
    failed=1
  fi
done
echo "job ended with exit code $status after ${elapsed} s"
if [ "$failed" -ne 0 ]; then
  echo "---- output of: $*" >&2
  cat "$log" >&2
fi
exit "$failed"
