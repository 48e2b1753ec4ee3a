#!/usr/bin/env bash
# Set up .venv for midnite: CPU PyTorch, the package with its extras.
#   bash scripts/setup.sh          # for the demo: [models,plot,photos,concepts]
#   bash scripts/setup.sh --ray    # also [ray]: the catalogue on a Ray cluster (--ray)
#   bash scripts/setup.sh --test   # also [dev,ray] and, where apt-get works, Chromium for the browser test
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "" | --ray | --test) ;;
  *) echo "setup: unknown option ${1}; accepted: --ray, --test" >&2 && exit 2 ;;
esac
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch first, pinned: on these machines 2.13.0 is a CPU build on local disk; an unpinned
# install would fetch a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || pip install "torch==2.13.0"
extras="models,plot,photos,concepts"
if [ "${1:-}" = "--ray" ]; then
  extras="$extras,ray"
fi
if [ "${1:-}" = "--test" ]; then
  extras="dev,models,plot,photos,ray,concepts,serve"
  if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
        >/dev/null 2>&1 || echo "setup: Chromium could not be installed; the browser test will be skipped"
    else
      echo "setup: no root apt-get; the browser test will be skipped"
    fi
  fi
fi
pip install -e ".[$extras]"
