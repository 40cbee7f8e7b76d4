"""Golden SQL: what each template generates per dialect, pinned in tests/golden/.

Regenerate after an intended change with ``RCA_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_sql.py``.
Every golden statement must also parse back with sqlglot in its own dialect.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlglot

from warehouse_rca.config import Period, metric_from_mapping
from warehouse_rca.cube import cube_sql, plan_cube

GOLDEN = Path(__file__).parent / "golden"
DIALECTS = ("duckdb", "postgres", "snowflake", "spark", "databricks", "bigquery", "trino")
UPDATE = os.environ.get("RCA_UPDATE_GOLDEN") == "1"

RATIO = metric_from_mapping("conversion_rate", {
    "table": "analytics.sessions", "time_column": "session_start", "numerator": "sum(converted)",
    "denominator": "count(*)", "dimensions": ["device", "region", "channel"],
    "filters": ["country IN ('US', 'CA') AND amount BETWEEN 0 AND 1000"],
}, "golden")
ADDITIVE = metric_from_mapping("revenue", {
    "table": "forecasts", "measure": "sum(real)", "expected_column": "predict",
    "actual_column": "real", "dimensions": ["a", "b"],
}, "golden")


def statements() -> dict[str, callable]:
    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    return {
        "cube_ratio": lambda d: cube_sql(plan_cube(RATIO, None, baseline=base, current=cur, max_depth=2), d),
        "cube_expected": lambda d: cube_sql(plan_cube(ADDITIVE, None, baseline=None, current=None, max_depth=2), d),
    }


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(statements()))
def test_golden_sql(name: str, dialect: str) -> None:
    text = statements()[name](dialect).strip() + "\n"
    path = GOLDEN / f"{name}.{dialect}.sql"
    if UPDATE or not path.exists():
        if not UPDATE and os.environ.get("CI"):
            pytest.fail(f"golden file {path.name} missing: run with RCA_UPDATE_GOLDEN=1")
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} changed: review, then RCA_UPDATE_GOLDEN=1"
    tree = sqlglot.parse_one(text, read=dialect)
    assert "GROUPING SETS" in tree.sql(dialect=dialect).upper()
    # one GROUPING(col) per dimension: Spark rejects the multi-argument form
    assert "GROUPING(d0, " not in text.replace("`", "").replace('"', "")
