#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine: Python packages, then the PostgreSQL
# server binaries the engine tests start themselves, then pytest (slow engine tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "warning: could not install PostgreSQL; its engine tests will be skipped" >&2
fi
python3 -m pytest -q "$@"
