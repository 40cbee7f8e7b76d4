"""Golden SQL: what each template generates per dialect, pinned in tests/golden/.

Regenerate after an intended change with ``RCA_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_sql.py``.
Every golden statement must also parse back with sqlglot in its own dialect.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


def _findings_statements() -> dict[str, Callable[[str], str]]:
    """Every template the findings write path renders, with the arguments findings.py gives it."""
    from datetime import datetime

    from sqlglot import exp

    from warehouse_rca import sql
    from warehouse_rca.findings import _columns, findings_tables

    # A fixed small column spec: the goldens pin the templates' shape, not the findings schema
    # (which grows with features); one column of every type the findings tables use.
    RUNS_COLUMNS = ROOT_CAUSE_COLUMNS = (
        ("run_id", "VARCHAR"), ("rank", "INTEGER"), ("value", "DOUBLE"), ("significant", "BOOLEAN"),
        ("created_at", "TIMESTAMP"),
    )
    tables = findings_tables("rca")
    runs, causes = tables["runs"], tables["root_causes"]
    stage = exp.Table(this=sql.identifier("rca_stage_0123abcd"))
    run_id, attempt = sql.literal("r-0001"), sql.literal("a-0001")
    started = sql.literal(datetime(2026, 11, 24, 6, 0))
    cause_cols = [sql.identifier(n) for n, _ in ROOT_CAUSE_COLUMNS]

    def ddl(dialect: str, partitioned: bool) -> str:
        return ";\n".join(sql.render_all(
            "findings_ddl.sql.j2", dialect, schema=sql.identifier("rca"),
            partition_by=sql.identifier("run_id") if partitioned else None,
            tables=[{"name": runs, "columns": _columns(RUNS_COLUMNS)},
                    {"name": causes, "columns": _columns(ROOT_CAUSE_COLUMNS)}]))

    return {
        "findings_ddl": lambda d: ddl(d, False),
        "findings_ddl_partitioned": lambda d: ddl(d, True),
        "findings_views": lambda d: ";\n".join(sql.render_all("findings_views.sql.j2", d, **tables)),
        "findings_stage": lambda d: sql.render("findings_stage.sql.j2", d, stage=stage,
                                               columns=_columns(ROOT_CAUSE_COLUMNS)),
        "findings_merge": lambda d: sql.render("findings_merge.sql.j2", d, table=causes, columns=cause_cols,
                                               stage=stage),
        "insert_rows": lambda d: sql.render("insert_rows.sql.j2", d, table=runs,
                                            columns=[sql.identifier(n) for n, _ in RUNS_COLUMNS]),
        "delete_run": lambda d: sql.render("delete_run.sql.j2", d, table=causes, run_id=run_id),
        "runs_supersede": lambda d: sql.render("runs_supersede.sql.j2", d, table=runs, run_id=run_id,
                                               attempt_id=attempt, started_at=started),
        "runs_fail": lambda d: sql.render("runs_fail.sql.j2", d, table=runs, finished_at=started,
                                          error=sql.literal("it's broken"), run_id=run_id, attempt_id=attempt),
        "overwrite_partition": lambda d: sql.render(
            "overwrite_partition.sql.j2", d, table=causes, key=sql.identifier("run_id"), value=run_id,
            stage=stage, columns=[c for c in cause_cols if c.name != "run_id"]),
        "add_column": lambda d: sql.render("add_column.sql.j2", d, table=runs, column=sql.identifier("error"),
                                           type=exp.DataType.build("VARCHAR")),
        "probe_columns": lambda d: sql.render("probe_columns.sql.j2", d, source=sql.table_ref("analytics.sessions")),
        "count_rows": lambda d: sql.render("count_rows.sql.j2", d, source=runs),
    }


def _series(dialect: str) -> str:
    """The monitor's series query: TIMESTAMP_TRUNC needs the column typed to transpile right."""
    from sqlglot import exp

    from warehouse_rca import sql
    from warehouse_rca.cube import plan_cube

    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    plan = plan_cube(RATIO, None, baseline=base, current=cur, max_depth=1)
    assert plan.time is not None
    bucket = exp.TimestampTrunc(this=plan.time.copy(), unit=exp.var("DAY"))
    return sql.render("series.sql.j2", dialect, bucket=bucket, num=plan.num, den=plan.den, source=plan.source,
                      time=plan.time, start=sql.literal(cur.start), end=sql.literal(cur.end_exclusive),
                      filter=plan.condition)


def _level_statements() -> dict[str, Callable[[str], str]]:
    """The level-wise search's two cube queries (search.level_wise) and the causal series."""
    import dataclasses

    from warehouse_rca.causal import series_sql

    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    plan = plan_cube(RATIO, None, baseline=base, current=cur, max_depth=3)
    first = dataclasses.replace(plan, sets=((), (0,), (1,), (2,)))
    second = dataclasses.replace(plan, sets=((), (0, 1), (0, 2), (1, 2), (0, 1, 2)),
                                 keep=(("mobile", "(null)"), None, ("it's", "paid")))
    window = Period.parse("2026-10-01:2026-11-23")
    segments = [{"device": "mobile"}, {"device": "desktop", "channel": "it's"}]
    return {
        "cube_level1": lambda d: cube_sql(first, d, preaggregate=False, cluster=True),
        "cube_level2": lambda d: cube_sql(second, d),
        "segment_series": lambda d: series_sql(plan, segments, window, d),
    }


def statements() -> dict[str, Callable[[str], str]]:
    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    return {
        **_level_statements(),
        "cube_ratio": lambda d: cube_sql(plan_cube(RATIO, None, baseline=base, current=cur, max_depth=2), d),
        "cube_expected": lambda d: cube_sql(plan_cube(ADDITIVE, None, baseline=None, current=None, max_depth=2), d),
        "series": _series,
        **_findings_statements(),
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
    # parses back in its own dialect, statement by statement, to the same statement kind
    trees = [t for t in sqlglot.parse(text, read=dialect) if t is not None]
    assert trees and all(not isinstance(t, sqlglot.exp.Command) for t in trees), "did not parse back"
    if name.startswith("cube"):
        assert "GROUPING SETS" in trees[0].sql(dialect=dialect).upper()
        # one GROUPING(col) per dimension: Spark rejects the multi-argument form
        assert "GROUPING(d0, " not in text.replace("`", "").replace('"', "")
