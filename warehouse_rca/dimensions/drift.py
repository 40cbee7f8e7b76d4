"""Framework drift between runs: new columns, new values, dimensions gone constant; the
``dimension_drift`` table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube.plan import plan_cube, source_expression, template_dims
from warehouse_rca.dimensions.profile import profile
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec

# --------------------------------------------------------------------------- drift

DRIFT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("kind", "VARCHAR"),  # new_column | new_value | constant_dimension
    ("dimension", "VARCHAR"),
    ("value", "VARCHAR"),
    ("baseline_share", "DOUBLE"),
    ("current_share", "DOUBLE"),
    ("detail", "VARCHAR"),
    ("included", "BOOLEAN"),
    ("detected_at", "TIMESTAMP"),
)
FRAMEWORK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("recorded_at", "TIMESTAMP"),
    ("source_columns", "VARCHAR"),  # JSON list: the source's columns when the run looked
    ("dimensions", "VARCHAR"),  # JSON: dimensions, derived expressions, hierarchies, groups
)


@dataclass
class DriftItem:
    """One change of the framework: a new column, a new material value, a constant dimension."""

    kind: str
    dimension: str
    value: str | None = None
    baseline_share: float | None = None
    current_share: float | None = None
    detail: str = ""
    #: a new column that profiles as a dimension (``--include-new`` adds it to the run)
    candidate: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DriftReport:
    """What changed in a metric's framework between two periods (see :func:`detect_drift`)."""

    metric: str
    run_id: str
    baseline: Period
    current: Period
    source_columns: list[str]
    framework: dict[str, Any]
    items: list[DriftItem]
    previous_run: str | None = None
    include_new: bool = False
    queries: int = 0

    @property
    def new_dimensions(self) -> list[str]:
        """New source columns that look like dimensions: what ``--include-new`` adds."""
        return [i.dimension for i in self.items if i.kind == "new_column" and i.candidate]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "metric": self.metric,
            "periods": {"baseline": self.baseline.to_json(), "current": self.current.to_json()},
            "previous_run": self.previous_run,
            "framework": self.framework,
            "drift": [i.to_json() for i in self.items],
            "new_dimensions": self.new_dimensions,
            "included": self.new_dimensions if self.include_new else [],
            "queries": self.queries,
        }


def framework_of(metric: MetricSpec) -> dict[str, Any]:
    """The framework a run used, as recorded in ``dimension_frameworks``."""
    return {
        "dimensions": list(metric.dimensions),
        "derived": dict(metric.derived),
        "hierarchies": [list(h) for h in metric.hierarchies],
        "dimension_groups": {g: list(m) for g, m in metric.dimension_groups.items()},
    }


def drift_run_id(metric: MetricSpec, baseline: Period, current: Period) -> str:
    """Same question, same id: a rerun replaces its drift rows."""
    ask = {
        "drift": metric.name, "framework": framework_of(metric),
        "source": metric.table or metric.sql,
        "periods": [baseline.to_json(), current.to_json()],
    }
    return hashlib.sha256(json.dumps(ask, sort_keys=True).encode()).hexdigest()[:16]


def _tables(schema: str) -> dict[str, exp.Table]:
    return {name: exp.Table(this=sql.identifier(name), db=sql.identifier(schema))
            for name in ("dimension_drift", "dimension_frameworks")}


def previous_framework(
    engine: Engine, schema: str, metric: str, run_id: str
) -> tuple[str, list[str]] | None:
    """(run id, source columns) the latest other run of ``metric`` recorded; None if none did."""
    table = _tables(schema)["dimension_frameworks"]
    try:
        engine.columns_of(table)
    except InputError:
        return None  # nothing recorded yet
    frame = engine.query(sql.template("drift_framework_read.sql.j2", table=table,
                                    metric=sql.literal(metric), run_id=sql.literal(run_id)))
    if frame.empty:
        return None
    return str(frame["run_id"].iloc[0]), list(json.loads(frame["source_columns"].iloc[0]))


def detect_drift(engine: Engine, metric: MetricSpec, baseline: Period, current: Period, *,
                 schema: str | None = None, min_share: float = 0.05, new_share: float = 0.005,
                 run_id: str | None = None, include_new: bool = False) -> DriftReport:
    """Find what the framework misses now: new material values, constant dimensions, new columns.

    ``min_share``: a value is material when it takes at least this share of the metric's weight
    (its denominator for ratio metrics, its measure for additive ones) in the current period;
    it is new when its baseline share was at most ``new_share``. New columns are judged against
    the framework recorded in ``schema`` by the previous run of the metric (none on a first run).
    """
    if not 0 < min_share < 1 or not 0 <= new_share < min_share:
        raise ConfigError("drift needs 0 < min_share < 1 and 0 <= new_share < min_share")
    if metric.time_column is None:
        raise ConfigError(
            f"{metric.where('time_column')}: drift compares two periods, so it needs a time column"
        )
    if baseline.overlaps(current):
        raise ConfigError(f"baseline {baseline.text} overlaps current {current.text}")
    run_id = run_id or drift_run_id(metric, baseline, current)
    if metric.numeric and set(metric.dimensions) - set(metric.numeric):
        # a numeric dimension's values are measurements: no single one is "new material"
        metric = dataclasses.replace(metric, dimensions=tuple(
            d for d in metric.dimensions if d not in metric.numeric))
    source = source_expression(metric)
    types = engine.column_types(source)
    plan = plan_cube(metric, list(types), baseline=baseline, current=current)
    items: list[DriftItem] = []
    queries = 1
    frame = engine.query(sql.template(
        "drift_values.sql.j2", source=plan.source,
        dims=template_dims(plan.dim_exprs,
                           [exp.to_identifier(f"d{i}") for i in range(len(plan.dim_exprs))]),
        time=plan.time, weight=plan.den if plan.ratio else plan.num, filter=plan.condition,
        base_start=sql.literal(baseline.start), base_end=sql.literal(baseline.end_exclusive),
        cur_start=sql.literal(current.start), cur_end=sql.literal(current.end_exclusive),
        min_share=float(min_share), new_share=float(new_share),
    ))
    queries += 1
    all_set = 2 ** len(plan.dimensions) - 1
    what = "traffic" if plan.ratio else "the metric"
    for _, row in frame.iterrows():
        i = int((all_set - int(row["rca_set"])).bit_length() - 1)
        dim, value = plan.dimensions[i], str(row[f"d{i}"])
        base_share = float(row["base_share"]) if pd.notna(row["base_share"]) else 0.0
        cur_share = float(row["cur_share"]) if pd.notna(row["cur_share"]) else 0.0
        if int(row["cur_values"]) == 1 and int(row["base_values"]) > 1:
            items.append(DriftItem(
                "constant_dimension", dim, value, base_share, cur_share,
                f"{dim} had {int(row['base_values'])} values in the baseline and only "
                f"{value!r} in the current period: it can no longer explain a change",
            ))
        else:
            items.append(DriftItem("new_value", dim, value, base_share, cur_share,
                                   f"{dim} = {value!r} takes {cur_share:.1%} of {what} now, "
                                   f"{base_share:.1%} in the baseline"))
    previous = previous_framework(engine, schema, metric.name, run_id) if schema else None
    if previous is not None:
        used = {c.lower() for c in previous[1]}
        new_columns = [c for c in types if c.lower() not in used]
        if new_columns:
            for p in profile(engine, source, columns=new_columns):
                items.append(DriftItem(
                    "new_column", p.name, None, None, None,
                    ("looks like a dimension: " if p.proposed else "not a dimension: ") + p.reason,
                    candidate=p.proposed,
                ))
            queries += 2
    items.sort(key=lambda i: (i.kind, i.dimension, -(i.current_share or 0.0)))
    return DriftReport(metric=metric.name, run_id=run_id, baseline=baseline, current=current,
                       source_columns=list(types), framework=framework_of(metric), items=items,
                       previous_run=previous[0] if previous else None, include_new=include_new,
                       queries=queries)


def _ensure_drift_tables(engine: Engine, schema: str) -> None:
    tables = _tables(schema)
    specs = {"dimension_drift": DRIFT_COLUMNS, "dimension_frameworks": FRAMEWORK_COLUMNS}
    try:
        for name in specs:
            engine.columns_of(tables[name])
        return  # everything exists: no DDL, so a role with only INSERT/DELETE can write
    except InputError:
        pass
    with engine.transaction():
        engine.execute_all(sql.template(
            "drift_ddl.sql.j2", schema=sql.identifier(schema),
            partition_by=engine.partition_column("run_id"),
            tables=[
                {
                    "name": tables[n],
                    "columns": [
                        {"name": sql.identifier(c), "type": exp.DataType.build(t)}
                        for c, t in spec
                    ],
                }
                for n, spec in specs.items()
            ],
        ))


def write_drift(engine: Engine, schema: str, run_id: str, report: DriftReport) -> None:
    """Record the framework the run used and the drift found, replacing the run's earlier rows
    in one transaction (a partition overwrite per table where the engine has no DELETE)."""
    _ensure_drift_tables(engine, schema)
    tables = _tables(schema)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    included = set(report.new_dimensions) if report.include_new else set()
    drift_rows = [{
        "run_id": run_id, "metric": report.metric, "kind": i.kind, "dimension": i.dimension,
        "value": i.value, "baseline_share": i.baseline_share, "current_share": i.current_share,
        "detail": i.detail, "included": i.dimension in included and i.kind == "new_column",
        "detected_at": now,
    } for i in report.items]
    framework_rows = [{
        "run_id": run_id, "metric": report.metric, "recorded_at": now,
        "source_columns": json.dumps(report.source_columns),
        "dimensions": json.dumps(
            {**report.framework, "included": sorted(included)}, sort_keys=True
        ),
    }]
    with engine.transaction():  # a no-op where the engine overwrites partitions (each one atomic)
        engine.replace_rows(tables["dimension_drift"], DRIFT_COLUMNS, "run_id", run_id, drift_rows)
        engine.replace_rows(
            tables["dimension_frameworks"], FRAMEWORK_COLUMNS, "run_id", run_id, framework_rows
        )


def with_new_dimensions(metric: MetricSpec, report: DriftReport) -> MetricSpec:
    """The metric with the report's new dimension-like columns added, for this run only."""
    extra = tuple(d for d in report.new_dimensions if d not in metric.dimensions)
    return dataclasses.replace(metric, dimensions=metric.dimensions + extra) if extra else metric
