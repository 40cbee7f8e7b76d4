"""Golden SQL: what each template generates per dialect, pinned in tests/golden/.

Regenerate after an intended change with ``RCA_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_sql.py``.
Every golden statement must also parse back with sqlglot in its own dialect.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlglot

from warehouse_rca.cube.plan import cube_sql, plan_cube
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import metric_from_mapping

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
    from warehouse_rca.findings.store import _columns, findings_tables

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
        "findings_views": lambda d: ";\n".join(sql.render_all("findings_views.sql.j2", d, **tables,
                                                               run_columns=[sql.identifier(n) for n, _ in RUNS_COLUMNS])),
        "findings_stage": lambda d: sql.render("findings_stage.sql.j2", d, stage=stage,
                                               columns=_columns(ROOT_CAUSE_COLUMNS)),
        "findings_merge": lambda d: sql.render("findings_merge.sql.j2", d, table=causes, columns=cause_cols,
                                               stage=stage),
        "insert_rows": lambda d: sql.render("insert_rows.sql.j2", d, table=runs,
                                            columns=[sql.identifier(n) for n, _ in RUNS_COLUMNS]),
        "runs_abandon": lambda d: sql.render("runs_abandon.sql.j2", d, table=runs, finished_at=started,
                                             error=sql.literal("abandoned"), cutoff=started),
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
    from warehouse_rca.cube.plan import plan_cube

    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    plan = plan_cube(RATIO, None, baseline=base, current=cur, max_depth=1)
    assert plan.time is not None
    bucket = exp.TimestampTrunc(this=plan.time.copy(), unit=exp.var("DAY"))
    return sql.render("series.sql.j2", dialect, bucket=bucket, num=plan.num, den=plan.den, source=plan.source,
                      time=plan.time, start=sql.literal(cur.start), end=sql.literal(cur.end_exclusive),
                      filter=plan.condition)


def _last_data(dialect: str) -> str:
    """The monitor's probe of a quiet source: its newest day holding rows, filters applied."""
    from sqlglot import exp

    from warehouse_rca import sql
    from warehouse_rca.cube.plan import plan_cube

    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    plan = plan_cube(HIERARCHY, None, baseline=base, current=cur, max_depth=1)
    assert plan.time is not None
    bucket = exp.TimestampTrunc(this=plan.time.copy(), unit=exp.var("DAY"))
    return sql.render("last_data.sql.j2", dialect, bucket=bucket, source=plan.source,
                      filter=plan.condition)


def _level_statements() -> dict[str, Callable[[str], str]]:
    """The level-wise search's two cube queries (search.level_wise) and the causal series."""
    import dataclasses

    from warehouse_rca.causal.series import series_sql

    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    plan = plan_cube(RATIO, None, baseline=base, current=cur, max_depth=3)
    first = dataclasses.replace(plan, sets=((), (0,), (1,), (2,)))
    second = dataclasses.replace(plan, sets=((), (0, 1), (0, 2), (1, 2), (0, 1, 2)),
                                 keep=(("mobile", "(null)"), None, ("it's", "paid")))
    window = Period.parse("2026-10-01:2026-11-23")
    segments = [{"device": "mobile"}, {"device": "desktop", "channel": "it's"}]
    return {
        "cube_level1": lambda d: cube_sql(first, preaggregate=False, cluster=True).sql(d),
        "cube_level2": lambda d: cube_sql(second).sql(d),
        "segment_series": lambda d: series_sql(plan, segments, window).sql(d),
    }


LEAF = metric_from_mapping("revenue", {
    "table": "analytics.sessions", "time_column": "session_start", "measure": "sum(revenue)",
    "dimensions": ["device", "region", "channel"], "filters": ["country IN ('US', 'CA')"],
}, "golden")
EXPECTED_SERIES = metric_from_mapping("revenue", {
    "table": "forecasts", "time_column": "ds", "measure": "sum(real)", "expected_column": "predict",
    "actual_column": "real", "dimensions": ["a", "b"],
}, "golden")
HIERARCHY = metric_from_mapping("conversion_rate", {
    "table": "analytics.sessions", "time_column": "session_start", "numerator": "sum(converted)",
    "denominator": "count(*)", "dimensions": ["device", "region", "city"],
    "hierarchies": [["region", "city"]], "filters": ["amount > 0"],
}, "golden")


class _Capture:
    """An engine stand-in for builders that hand their statement straight to engine.query."""

    def __init__(self, dialect: str) -> None:
        self.DIALECT = dialect

    def query(self, statement: object) -> str:
        from warehouse_rca import sql

        assert isinstance(statement, sql.Template), "builders hand the engine a template"
        return statement.sql(self.DIALECT)


def _row_level_dml(dialect: str) -> bool:
    """Whether the engine of ``dialect`` has DELETE/transactions (base Engine: yes)."""
    import importlib

    from warehouse_rca.engines import ENGINES
    from warehouse_rca.engines.base import Engine

    if dialect not in ENGINES:
        return Engine.ROW_LEVEL_DML
    module, name = ENGINES[dialect]
    return getattr(importlib.import_module(module), name).ROW_LEVEL_DML


def _search_statements() -> dict[str, Callable[[str], str]]:
    """The leaf-evidence search's queries (search.leaf_search) for additive metrics."""
    import dataclasses

    from warehouse_rca.localize.levelwise import grouping_sets_upto, leaf_cube_sql

    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    plan = plan_cube(LEAF, None, baseline=base, current=cur, max_depth=3)
    # the first query stops at depth 2 of 3 dimensions: its depth-2 sets are the frontier
    first = dataclasses.replace(plan, sets=grouping_sets_upto(3, 2))
    frontier = tuple(s for s in first.sets if len(s) == 2)
    # the next (last) level: the children of the frontier segments still unexplained
    grow = [{"device": "mobile", "region": "it's"}, {"device": "desktop", "channel": "(null)"}]
    deeper = dataclasses.replace(plan, sets=((), (0, 1, 2)))
    expected = plan_cube(ADDITIVE, None, baseline=None, current=None, max_depth=2)
    expected = dataclasses.replace(expected, sets=grouping_sets_upto(2, 2))
    return {
        "leaf_cube_level1": lambda d: leaf_cube_sql(first, frontier).sql(d),
        "leaf_cube_level2": lambda d: leaf_cube_sql(deeper, (), within=grow).sql(d),
        "leaf_cube_expected": lambda d: leaf_cube_sql(expected).sql(d),
    }


def _report_statements() -> dict[str, Callable[[str], str]]:
    """The report's series chart (report.series_frame) and verification SQL (report.verification_sql)."""
    from sqlglot import exp

    from warehouse_rca import sql
    from warehouse_rca.cube.verify import verification_sql

    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    start, end = Period.parse("2026-10-27:2026-11-30").start, cur.end_exclusive

    def series_report(metric: object, d: str) -> str:
        plan = plan_cube(metric, None, baseline=base, current=cur, max_depth=1)  # type: ignore[arg-type]
        assert plan.time is not None
        bucket = exp.TimestampTrunc(this=plan.time.copy(), unit=exp.var("DAY"))
        return sql.render("series_report.sql.j2", d, bucket=bucket, num=plan.num, den=plan.den,
                          base_num=plan.base_num, source=plan.source, time=plan.time,
                          start=sql.literal(start), end=sql.literal(end), filter=plan.condition)

    ratio = plan_cube(RATIO, None, baseline=base, current=cur, max_depth=1)
    expected = plan_cube(ADDITIVE, None, baseline=None, current=None, max_depth=1)

    def verify(plan: object, segment: dict[str, str], d: str) -> str:
        tree = verification_sql(plan, segment)
        assert tree is not None
        return tree.sql(dialect=d, pretty=True)

    return {
        "series_report": lambda d: series_report(RATIO, d),
        "series_report_expected": lambda d: series_report(EXPECTED_SERIES, d),
        "series_verify": lambda d: verify(ratio, {"device": "mobile", "channel": "it's"}, d),
        "series_verify_expected": lambda d: verify(expected, {"a": "x"}, d),
    }


def _causal_statements() -> dict[str, Callable[[str], str]]:
    """The change events of causal validation (causal.events_sql), from a table and from a SELECT."""
    from warehouse_rca.causal.series import events_sql
    from warehouse_rca.spec.project import EventsSpec

    window = Period.parse("2026-10-01:2026-11-23")
    table = EventsSpec(table="ops.change_events", time_column="happened_at", description_column="description",
                       dimension_column="dimension", value_column="value")
    select = EventsSpec(sql="SELECT happened_at, title FROM ops.releases WHERE env = 'prod'",
                        time_column="happened_at", description_column="title")
    return {
        "change_events": lambda d: events_sql(table, None, window).sql(d),
        "change_events_sql": lambda d: events_sql(select, ["happened_at", "title"], window).sql(d),
    }


def _monitor_statements() -> dict[str, Callable[[str], str]]:
    """The monitor's bookmark read and its window replacement (monitor._last_processed, monitor_metric)."""
    from datetime import datetime

    from sqlglot import exp

    from warehouse_rca import sql

    tables = {n: exp.Table(this=sql.identifier(n), db=sql.identifier("rca")) for n in ("anomalies", "monitor_state")}
    window = exp.and_(
        exp.EQ(this=exp.column("metric"), expression=sql.literal("conversion_rate")),
        exp.GTE(this=exp.column("bucket_start"), expression=sql.literal(datetime(2026, 11, 17))),
        exp.LT(this=exp.column("bucket_start"), expression=sql.literal(datetime(2026, 11, 24))),
    )
    return {
        "state_read": lambda d: sql.render("state_read.sql.j2", d, table=tables["monitor_state"],
                                           metric=sql.literal("conversion_rate")),
        "delete_where": lambda d: sql.render("delete_where.sql.j2", d, table=tables["anomalies"], condition=window),
    }


def _dimension_statements() -> dict[str, Callable[[str], str]]:
    """Profiling, hierarchy paths and drift (warehouse_rca.dimensions), as its functions render them."""
    from sqlglot import exp

    from warehouse_rca import sql
    from warehouse_rca.dimensions.drift import _tables

    source = sql.table_ref("analytics.sessions")
    columns = [sql.column_ref(n) for n in ("device", "region", "amount")]
    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    tables = _tables("rca")
    # A fixed small column spec, as for findings_ddl: the golden pins the template's shape.
    spec = (("run_id", "VARCHAR"), ("baseline_share", "DOUBLE"), ("included", "BOOLEAN"),
            ("recorded_at", "TIMESTAMP"))

    def hierarchy(d: str) -> str:
        plan = plan_cube(HIERARCHY, None, baseline=base, current=cur)
        chain = ["region", "city"]
        exprs = [plan.dim_exprs[plan.dimensions.index(level)] for level in chain]
        return sql.render(
            "profile_hierarchy.sql.j2", d, source=plan.source,
            levels=[{"expr": e, "alias": exp.to_identifier(f"h{i}")} for i, e in enumerate(exprs)],
            child=exprs[-1], values=[sql.literal(v) for v in ("Lyon", "it's")], filter=plan.condition)

    def drift_values(d: str) -> str:
        plan = plan_cube(RATIO, None, baseline=base, current=cur)
        return sql.render(
            "drift_values.sql.j2", d, source=plan.source,
            dims=[{"expr": e, "alias": exp.to_identifier(f"d{i}")} for i, e in enumerate(plan.dim_exprs)],
            time=plan.time, weight=plan.den if plan.ratio else plan.num, filter=plan.condition,
            base_start=sql.literal(base.start), base_end=sql.literal(base.end_exclusive),
            cur_start=sql.literal(cur.start), cur_end=sql.literal(cur.end_exclusive),
            min_share=0.05, new_share=0.005)

    def drift_ddl(d: str) -> str:
        return ";\n".join(sql.render_all(
            "drift_ddl.sql.j2", d, schema=sql.identifier("rca"),
            partition_by=None if _row_level_dml(d) else sql.identifier("run_id"),
            tables=[{"name": tables[n], "columns": [{"name": sql.identifier(c), "type": exp.DataType.build(t)}
                                                     for c, t in spec]}
                    for n in ("dimension_drift", "dimension_frameworks")]))

    return {
        "profile_columns": lambda d: sql.render("profile_columns.sql.j2", d, source=source, columns=[
            {"expr": c, "numeric": i == 1} for i, c in enumerate(columns)]),
        "profile_values": lambda d: sql.render("profile_values.sql.j2", d, source=source, columns=columns[:2]),
        "profile_time_parts": lambda d: sql.render("profile_time_parts.sql.j2", d, source=source, checks=[
            {"column": columns[1], "part": exp.Extract(this=exp.var(part), expression=sql.column_ref("ts"))}
            for part in ("MONTH", "HOUR")]),
        "profile_pairs": lambda d: sql.render("profile_pairs.sql.j2", d, source=source, columns=columns[:3],
                                              pairs=[(0, 1), (0, 2)]),
        "profile_quantiles": lambda d: sql.render("profile_quantiles.sql.j2", d, source=source,
                                                  columns=columns[1:3], levels=[1 / 3, 2 / 3]),
        "profile_hierarchy": hierarchy,
        "drift_values": drift_values,
        "drift_framework_read": lambda d: sql.render(
            "drift_framework_read.sql.j2", d, table=tables["dimension_frameworks"],
            metric=sql.literal("conversion_rate"), run_id=sql.literal("0123456789abcdef")),
        "drift_ddl": drift_ddl,
    }


def _numeric_statements() -> dict[str, Callable[[str], str]]:
    """Numeric dimensions' histogram (localize.thresholds) and the drivers' bins (causal.drivers),
    as the investigation renders them: one numeric column and an expression, two causes, one of
    them holding a threshold's predicate."""
    from sqlglot import exp

    from warehouse_rca import sql
    from warehouse_rca.causal.drivers import drivers_sql
    from warehouse_rca.cube.plan import segment_condition
    from warehouse_rca.cube.predicates import split_expression
    from warehouse_rca.localize.thresholds import histogram_sql

    plan = plan_cube(RATIO, None, baseline=Period.parse("2026-11-10:2026-11-16"),
                     current=Period.parse("2026-11-17:2026-11-23"))
    load = sql.column_ref("page load_ms")
    employees = split_expression(sql.column_ref("employees"), (500.0,))
    split = dataclasses.replace(plan, dimensions=(*plan.dimensions, "employees"),
                                dim_exprs=(*plan.dim_exprs, employees),
                                metric=dataclasses.replace(plan.metric,
                                                           thresholds={"employees": (500.0,)}))
    causes = [segment_condition(split, {"device": "mobile", "employees": ">= 500"}),
              segment_condition(split, {"channel": "it's"})]
    values = [sql.column_ref("employees"), exp.Div(this=load, expression=exp.Literal.number(1000))]
    return {
        "numeric_histogram": lambda d: histogram_sql(plan, values).sql(d),
        "driver_bins": lambda d: drivers_sql(plan, causes, values).sql(d),
    }


def _feedback_statements() -> dict[str, Callable[[str], str]]:
    """The findings reads (feedback.select, as report.py calls it) and the feedback views."""
    from sqlglot import exp

    from warehouse_rca import sql
    from warehouse_rca.findings.feedback import eq, select
    from warehouse_rca.findings.store import findings_table as _table

    def runs_history(d: str) -> str:
        return select(_Capture(d), _table("rca", "runs"),  # type: ignore[arg-type,return-value]
                      where=exp.and_(eq("metric", "conversion_rate"), eq("status", "succeeded")),
                      order=[exp.Ordered(this=sql.column_ref("current_start"), desc=True),
                             exp.Ordered(this=sql.column_ref("finished_at"), desc=True)], limit=20)

    return {
        "feedback_select": runs_history,
        "feedback_select_columns": lambda d: select(  # type: ignore[return-value]
            _Capture(d), _table("rca", "runs"), columns=["current_start"],  # type: ignore[arg-type]
            where=exp.and_(eq("run_id", "r-0001"), eq("status", "succeeded"))),
        "feedback_views": lambda d: ";\n".join(sql.render_all(
            "feedback_views.sql.j2", d, feedback=_table("rca", "feedback"),
            latest_feedback=_table("rca", "latest_feedback"), knowledge_base=_table("rca", "knowledge_base"),
            open_incidents=_table("rca", "open_incidents"), runs=_table("rca", "runs"),
            columns=[sql.identifier("feedback_id"), sql.identifier("verdict")],
            run_columns=[sql.identifier("run_id"), sql.identifier("metric")])),
    }


#: The conformance tests' bound-row loader (tests/engines/test_conformance.py _load_bound).
LOAD_COLUMNS = (("ts", "TIMESTAMP"), ("device", "VARCHAR"), ("converted", "INTEGER"), ("revenue", "DOUBLE"))


def _engine_statements() -> dict[str, Callable[[str], str]]:
    """Engine-specific statements (engines/*.py), the demo warehouse and the test-fixture loader."""
    from datetime import date

    from sqlglot import exp

    from warehouse_rca import sql
    from warehouse_rca.findings.store import _lock_key

    table = sql.table_ref("sessions")
    return {
        "drop_table": lambda d: sql.render("drop_table.sql.j2", d,
                                           table=exp.Table(this=sql.identifier("rca_stage_0123abcd"))),
        "lock_advisory": lambda d: sql.render("lock_advisory.sql.j2", d, key=sql.literal(int(_lock_key("run", "r-0001")))),
        "session_read_only": lambda d: sql.render("session_read_only.sql.j2", d, on=sql.literal("on")),
        "use_schema": lambda d: sql.render("use_schema.sql.j2", d, schema=exp.Table(
            this=sql.identifier("PUBLIC"), db=sql.identifier("ANALYTICS"))),
        "demo_sessions": lambda d: ";\n".join(sql.render_all(
            "demo_sessions.sql.j2", d, schema=sql.identifier("shop"), table=sql.table_ref("shop.sessions"),
            start=sql.literal(date(2026, 10, 13).isoformat()), n_days=42, sessions_per_day=72_000)),
        "create_table": lambda d: sql.render("create_table.sql.j2", d, table=table, columns=[
            {"name": sql.identifier(n), "type": exp.DataType.build(t)} for n, t in LOAD_COLUMNS]),
        "insert_values": lambda d: sql.render("insert_values.sql.j2", d, table=table, n_rows=3,
                                              columns=[sql.identifier(n) for n, _ in LOAD_COLUMNS]),
    }


#: Statements only some engines ever run: pinned for those dialects only.
ONLY: dict[str, tuple[str, ...]] = {
    "lock_advisory": ("postgres",),  # PostgresEngine.lock
    "session_read_only": ("postgres",),  # PostgresEngine.reading
    "use_schema": ("snowflake",),  # SnowflakeEngine.execute
    "demo_sessions": ("duckdb",),  # demo.build_demo_warehouse (a DuckDBEngine)
    "create_table": ("postgres", "snowflake"),  # test_conformance._load_bound
    "insert_values": ("postgres", "snowflake"),
    # DuckDB has no PARTITIONED BY: render_all raises (test_partition_unsupported_raises), and no
    # DuckDB run asks for it (its engine has row-level DML).
    "findings_ddl_partitioned": tuple(d for d in DIALECTS if d != "duckdb"),
}


def statements() -> dict[str, Callable[[str], str]]:
    base, cur = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")
    return {
        **_level_statements(),
        "cube_ratio": lambda d: cube_sql(plan_cube(RATIO, None, baseline=base, current=cur, max_depth=2)).sql(d),
        "cube_expected": lambda d: cube_sql(plan_cube(ADDITIVE, None, baseline=None, current=None, max_depth=2)).sql(d),
        "series": _series,
        "last_data": _last_data,
        **_findings_statements(),
        **_search_statements(),
        **_report_statements(),
        **_causal_statements(),
        **_monitor_statements(),
        **_dimension_statements(),
        **_numeric_statements(),
        **_feedback_statements(),
        **_engine_statements(),
    }


def _cases() -> list[tuple[str, str]]:
    return [(name, dialect) for name in sorted(statements()) for dialect in ONLY.get(name, DIALECTS)]


def assert_golden(path: Path, text: str) -> None:
    """``text`` equals the pinned file ``path`` (written when missing outside CI, or on
    RCA_UPDATE_GOLDEN=1)."""
    if UPDATE or not path.exists():
        if not UPDATE and os.environ.get("CI"):
            pytest.fail(f"golden file {path.name} missing: run with RCA_UPDATE_GOLDEN=1")
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} changed: review, then RCA_UPDATE_GOLDEN=1"


@pytest.mark.parametrize(("name", "dialect"), _cases())
def test_golden_sql(name: str, dialect: str) -> None:
    text = statements()[name](dialect).strip() + "\n"
    path = GOLDEN / f"{name}.{dialect}.sql"
    assert_golden(path, text)
    # parses back in its own dialect, statement by statement, to the same statement kind
    trees = [t for t in sqlglot.parse(text, read=dialect) if t is not None]
    assert trees and all(not isinstance(t, sqlglot.exp.Command) for t in trees), "did not parse back"
    if name.startswith("cube"):
        assert "GROUPING SETS" in trees[0].sql(dialect=dialect).upper()
        # one GROUPING(col) per dimension: Spark rejects the multi-argument form
        assert "GROUPING(d0, " not in text.replace("`", "").replace('"', "")


def test_every_template_has_a_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each template in sql_templates/ (includes, named _*, aside) is rendered by some golden entry."""
    from warehouse_rca import sql

    rendered: set[str] = set()
    real = sql.render_tree

    def spy(template: str, **context: object) -> list[sqlglot.exp.Expression]:
        rendered.add(template)
        return real(template, **context)

    monkeypatch.setattr(sql, "render_tree", spy)
    for name, dialect in _cases():
        statements()[name](dialect)
    templates = {p.name for p in sql.TEMPLATE_DIR.glob("*.sql.j2") if not p.name.startswith("_")}
    assert templates, f"no templates found in {sql.TEMPLATE_DIR}"
    missing = sorted(templates - rendered)
    assert not missing, f"templates without a golden entry in tests/test_golden_sql.py: {missing}"



def test_partition_unsupported_raises() -> None:
    """unsupported_level=RAISE: a PARTITIONED BY the dialect cannot express fails, never vanishes."""
    from sqlglot.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="partitionedbyproperty"):
        statements()["findings_ddl_partitioned"]("duckdb")
