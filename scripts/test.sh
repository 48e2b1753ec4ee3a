#!/usr/bin/env bash
# Everything CI checks, one labelled step after another (.ci/run runs exactly this):
#   setup (scripts/setup.sh --test), ruff format --check, ruff check, mypy,
#   pytest (the default selection), pytest -m ray_cluster (in a loopback-only network
#   namespace), pytest -m slow (real models, benchmark smoke runs).
# Every step runs even when an earlier one failed, so one run shows every failure; the exit
# status is non-zero if any step failed (or at once if setup fails: nothing else can run).
#   bash scripts/test.sh                       # all of it
#   MIDNITE_SKIP_SLOW=1 bash scripts/test.sh   # all but the slow tests, for a quick local check
set -euo pipefail
cd "$(dirname "$0")/.."

steps=0
failed=()

step() { # step NAME COMMAND...: run COMMAND under a heading, remember whether it failed
  local name=$1
  shift
  steps=$((steps + 1))
  printf '\n==> test.sh step %d: %s: %s\n' "$steps" "$name" "$*"
  local status=0 began=$SECONDS
  "$@" || status=$?
  if [ "$status" -eq 0 ]; then
    printf '==> %s: passed (%d s)\n' "$name" $((SECONDS - began))
  else
    printf '==> %s: FAILED (exit status %d, %d s)\n' "$name" "$status" $((SECONDS - began))
    failed+=("$name")
  fi
}

step setup bash scripts/setup.sh --test
if [ ${#failed[@]} -gt 0 ]; then
  echo "==> test.sh: setup failed; nothing else can run"
  exit 1
fi

step format .venv/bin/ruff format --check .
step lint .venv/bin/ruff check .
step types .venv/bin/mypy
step tests .venv/bin/python -m pytest
# Ray's tests start local Ray instances, which listen on every interface: they run in a network
# namespace of their own with only the loopback (unshare -rn: root or user namespaces).
step ray-tests timeout 900 unshare -rn sh -c 'ip link set lo up && exec .venv/bin/python -m pytest -m ray_cluster'
# Slow tests always exist, so pytest's status 5 (no tests collected) is a failure here too.
if [ "${MIDNITE_SKIP_SLOW:-0}" = 1 ]; then
  printf '\n==> slow tests: skipped (MIDNITE_SKIP_SLOW=1)\n'
else
  step slow-tests .venv/bin/python -m pytest -m slow
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf '\n==> test.sh: FAILED: %s (of %d steps)\n' "${failed[*]}" "$steps"
  exit 1
fi
printf '\n==> test.sh: all %d steps passed in %d s\n' "$steps" "$SECONDS"
