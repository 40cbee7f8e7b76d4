#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine: Python packages, then the PostgreSQL
# server binaries the engine tests start themselves, then pytest (slow engine tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev,postgres,snowflake,spark]"
# fakesnow (the Snowflake emulator the engine tests start in server mode) pins its own sqlglot and
# duckdb versions, so it gets a virtualenv of its own; the tests reach it over HTTP only.
FAKESNOW_VENV="${RCA_FAKESNOW_VENV:-$HOME/.cache/warehouse-rca/fakesnow}"
if [ ! -x "$FAKESNOW_VENV/bin/fakesnow" ]; then
  (python3 -m venv "$FAKESNOW_VENV" && "$FAKESNOW_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "fakesnow[server]==0.12.1" "snowflake-connector-python>=3.12,<5") \
    || echo "warning: could not install fakesnow; the Snowflake engine tests will be skipped" >&2
fi
# dbt (the semantic-layer tests build and parse a real dbt project) pins its own dependency ranges,
# so it gets a virtualenv of its own too; warehouse-rca runs `dbt parse` as a program, never imports it.
DBT_VENV="${RCA_DBT_VENV:-$HOME/.cache/warehouse-rca/dbt}"
if [ ! -x "$DBT_VENV/bin/dbt" ]; then
  (python3 -m venv "$DBT_VENV" && "$DBT_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "dbt-core>=1.10,<1.11" "dbt-duckdb>=1.10,<1.11" "dbt-postgres>=1.9,<1.11") \
    || echo "warning: could not install dbt; the dbt semantic-layer tests will be skipped" >&2
fi
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "warning: could not install PostgreSQL; its engine tests will be skipped" >&2
fi
# Headless chromium opens the HTML report in tests/test_report.py (skipped only if this fails).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test of the report will be skipped" >&2
fi
python3 -m pytest -q "$@"
