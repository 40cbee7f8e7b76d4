"""Continuous monitoring: detect anomalies on every metric's series and investigate each new one.

Built for schedulers (cron, Airflow, dbt hooks, Snowflake tasks):

* one pushed-down query per metric returns its series at the metric's grain;
* a run covers a window ``(last processed bucket, as_of]`` remembered per metric in the
  ``monitor_state`` table, so a missed day is caught up on the next run; ``--backfill A:B``
  processes an explicit window instead;
* writes are idempotent for the window: the engine replaces the window's anomalies and the
  metric's bookmark (``Engine.replace_where`` / ``replace_rows``: DELETE + INSERT in one
  transaction, or on plain Spark a rewrite of the metric's partition, both tables being
  partitioned by ``metric`` there), investigations replace their own rows (their run id hashes
  the question);
* exit codes: 0 nothing found, 10 anomalies found, 2 bad input/configuration, 3 warehouse error.

``run_monitor()`` returns the same :class:`MonitorResult` to Python orchestrators.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.causal.validate import CausalSettings
from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.cube.plan import plan_cube, source_expression
from warehouse_rca.detect import DetectionSettings, Excursion, detect
from warehouse_rca.dimensions.drift import detect_drift, write_drift
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.findings.feedback import load_knowledge
from warehouse_rca.findings.store import _columns, write_investigation
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import GRAIN_STEP, Period
from warehouse_rca.spec.project import EventsSpec, MetricSpec

log = logging.getLogger("warehouse_rca.monitor")

EXIT_NOTHING_FOUND = 0
EXIT_ANOMALIES_FOUND = 10
#: history fetched for the detector, in buckets of the grain
HISTORY_BUCKETS = {"hour": 24 * 28, "day": 120, "week": 104}
#: baseline for the investigation of an anomaly: this many buckets before it (whole seasons)
BASELINE_BUCKETS = {"hour": 24 * 7, "day": 28, "week": 8}

ANOMALY_COLUMNS = (
    ("metric", "VARCHAR"), ("bucket_start", "TIMESTAMP"), ("bucket_end", "TIMESTAMP"),
    ("peak", "TIMESTAMP"), ("direction", "VARCHAR"), ("expected", "DOUBLE"), ("actual", "DOUBLE"),
    ("score", "DOUBLE"), ("model", "VARCHAR"), ("investigation_run_id", "VARCHAR"),
    ("detected_at", "TIMESTAMP"),
)
STATE_COLUMNS = (("metric", "VARCHAR"), ("last_bucket", "TIMESTAMP"), ("updated_at", "TIMESTAMP"))


@dataclass
class MetricOutcome:
    metric: str
    model: str
    window: tuple[datetime, datetime]
    anomalies: list[Excursion] = field(default_factory=list)
    investigations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MonitorResult:
    outcomes: list[MetricOutcome]

    @property
    def anomalies_found(self) -> int:
        return sum(len(o.anomalies) for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return EXIT_ANOMALIES_FOUND if self.anomalies_found else EXIT_NOTHING_FOUND

    def to_json(self) -> list[dict[str, Any]]:
        """The document ``monitor --format json`` prints (one entry per metric)."""
        return [{
            "metric": o.metric, "model": o.model,
            "window": [o.window[0].isoformat(), o.window[1].isoformat()],
            "anomalies": [{"start": e.start.isoformat(), "end": e.end.isoformat(),
                           "direction": e.direction, "expected": e.expected, "actual": e.actual,
                           "score": e.score} for e in o.anomalies],
            "investigations": [{"run_id": d.get("run_id"), "summary": d.get("summary"),
                                "error": d.get("error")} for d in o.investigations],
        } for o in self.outcomes]


def settings_for(metric: MetricSpec, **overrides: Any) -> DetectionSettings:
    directions: dict[bool | None, str] = {True: "higher_is_better", False: "lower_is_better"}
    direction = directions.get(metric.higher_is_better, "both")
    values = {"direction": direction, **{k: v for k, v in overrides.items() if v is not None}}
    return DetectionSettings(**values)


def fetch_series(engine: Engine, metric: MetricSpec, start: datetime, end: datetime) -> pd.Series:
    """The metric per bucket of its grain over ``[start, end)``: one aggregate query."""
    if metric.time_column is None:
        raise ConfigError(f"{metric.where('time_column')}: detection needs a time column")
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)),
                     baseline=Period(start - timedelta(seconds=1), start, "history"),
                     current=Period(start, end, "window"), max_depth=1)
    assert plan.time is not None
    bucket = exp.TimestampTrunc(this=plan.time.copy(), unit=exp.var(metric.grain.upper()))
    frame = engine.query(sql.template(
        "series.sql.j2", bucket=bucket, num=plan.num, den=plan.den,
        source=plan.source,
        time=plan.time, start=sql.literal(start), end=sql.literal(end), filter=plan.condition,
    ))
    if frame.empty:
        raise InputError(f"metric {metric.name!r}: no rows between {start} and {end}")
    frame["bucket"] = pd.to_datetime(frame["bucket"]).dt.tz_localize(None)
    num, den = frame["num"].astype(float), frame["den"].astype(float)
    values = num / den.where(den != 0) if metric.kind == "ratio" else num
    series = pd.Series(values.to_numpy(), index=pd.DatetimeIndex(frame["bucket"]), name=metric.name)
    full = pd.date_range(series.index.min(), series.index.max(), freq=GRAIN_STEP[metric.grain])
    return series.reindex(full)


def _ensure(engine: Engine, schema: str) -> dict[str, exp.Table]:
    tables = {
        n: exp.Table(this=sql.identifier(n), db=sql.identifier(schema))
        for n in ("anomalies", "monitor_state")
    }
    engine.execute_all(sql.template(
        "findings_ddl.sql.j2", schema=sql.identifier(schema),
        # Both tables are replaced per metric: partitioned by it where the engine overwrites
        # partitions.
        partition_by=engine.partition_column("metric"),
        tables=[{"name": tables["anomalies"], "columns": _columns(ANOMALY_COLUMNS)},
                {"name": tables["monitor_state"], "columns": _columns(STATE_COLUMNS)}],
    ))
    return tables


def _last_processed(engine: Engine, table: exp.Table, metric: str) -> datetime | None:
    frame = engine.query(
        sql.template("state_read.sql.j2", table=table, metric=sql.literal(metric))
    )
    if frame.empty or pd.isna(frame.iloc[0, 0]):
        return None
    return pd.Timestamp(frame.iloc[0, 0]).to_pydatetime()


def monitor_metric(engine: Engine, metric: MetricSpec, schema: str, *, as_of: datetime,
                   window_start: datetime | None = None, investigate_anomalies: bool = True,
                   events: EventsSpec | None = None, include_new_dimensions: bool = False,
                   **thresholds: Any) -> MetricOutcome:
    """Detect on ``metric``'s series over the window and investigate each new excursion.

    Each investigation uses the project's change ``events`` in its causal checks and the
    analysts' verdicts (knowledge base) in its ranking; the dimensional framework it used and the
    drift found for its periods are recorded (``dimension_frameworks`` / ``dimension_drift``), and
    ``include_new_dimensions`` adds new dimension-like source columns to that run."""
    tables = _ensure(engine, schema)
    step = GRAIN_STEP[metric.grain]
    end = as_of + step  # as_of's bucket included
    last = _last_processed(engine, tables["monitor_state"], metric.name)
    if window_start is None:
        window_start = (last + step) if last is not None else as_of
    history_start = window_start - HISTORY_BUCKETS[metric.grain] * step
    series = fetch_series(engine, metric, history_start, end)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = detect(series, settings_for(metric, **thresholds), grain=metric.grain)
    new = [e for e in result.excursions if window_start <= e.start.to_pydatetime() < end]
    outcome = MetricOutcome(metric.name, result.model, (window_start, end), new)
    rows = []
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    for excursion in new:
        run_id = None
        if investigate_anomalies:
            start = excursion.start.to_pydatetime()
            baseline = Period(
                start - BASELINE_BUCKETS[metric.grain] * step, start, "seasonal baseline"
            )
            current = Period(start, excursion.end.to_pydatetime() + step, "anomaly")
            try:
                extra = _record_drift(
                    engine, metric, schema, baseline, current, include_new_dimensions
                )
                options = InvestigationOptions(
                    causal_settings=CausalSettings(events=events),
                    extra_dimensions=extra,
                    baseline_scale=_forecast_scale(metric, series, result, baseline, current),
                )
                inv = investigate(
                    engine, metric, baseline=baseline, current=current, options=options,
                    knowledge=load_knowledge(engine, schema, metric.name),
                )
            except InputError as err:  # e.g. no baseline rows yet: keep the anomaly, say why
                outcome.investigations.append({"error": str(err)})
            else:
                write_investigation(engine, inv, schema)
                doc = inv.to_json()
                run_id = doc["run_id"]
                outcome.investigations.append(doc)
        rows.append({
            "metric": metric.name, "bucket_start": excursion.start.to_pydatetime(),
            "bucket_end": excursion.end.to_pydatetime(), "peak": excursion.peak.to_pydatetime(),
            "direction": excursion.direction, "expected": excursion.expected,
            "actual": excursion.actual,
            "score": excursion.score, "model": result.model, "investigation_run_id": run_id,
            "detected_at": now,
        })
    window = exp.and_(
        exp.EQ(this=exp.column("metric"), expression=sql.literal(metric.name)),
        exp.GTE(this=exp.column("bucket_start"), expression=sql.literal(window_start)),
        exp.LT(this=exp.column("bucket_start"), expression=sql.literal(end)),
    )
    newest = max(as_of, last) if last is not None else as_of
    # The window's anomalies and the bookmark move together (one transaction where the engine has
    # them; without, the anomalies go first: a failure in between leaves the old bookmark, so the
    # next run redoes the window, which is idempotent).
    with engine.transaction():
        engine.replace_where(
            tables["anomalies"], ANOMALY_COLUMNS, window, rows, partition=("metric", metric.name)
        )
        engine.replace_rows(tables["monitor_state"], STATE_COLUMNS, "metric", metric.name,
                            [{"metric": metric.name, "last_bucket": newest, "updated_at": now}])
    return outcome


def _forecast_scale(metric: MetricSpec, series: pd.Series, result: Any, baseline: Period,
                    current: Period) -> float | None:
    """Additive metrics: the factor that makes the baseline total the detector's expected value
    over the anomaly, so the investigation explains actual vs. forecast (trend and seasonality
    included), not vs. a plain average. Ratio metrics compare rates, which need no scaling."""
    if metric.kind != "additive":
        return None
    in_base = (series.index >= baseline.start) & (series.index < baseline.end_exclusive)
    points = result.points
    in_current = (points.index >= current.start) & (points.index < current.end_exclusive)
    base_total = float(series[in_base].sum())
    expected = float(points.loc[in_current, "expected"].sum())
    if not (base_total > 0 and expected > 0):
        return None
    return expected / base_total


def _record_drift(
    engine: Engine,
    metric: MetricSpec,
    schema: str,
    baseline: Period,
    current: Period,
    include_new: bool,
) -> tuple[str, ...]:
    """Record the framework this run uses and its drift; the new dimensions to add, if asked.
    Drift is advice: when it cannot be computed the investigation still runs (logged)."""
    try:
        report = detect_drift(
            engine, metric, baseline, current, schema=schema, include_new=include_new
        )
        write_drift(engine, schema, report.run_id, report)
    except (ConfigError, InputError) as err:
        log.warning("metric %s: dimension drift not recorded: %s", metric.name, err)
        return ()
    return tuple(report.new_dimensions) if include_new else ()


def run_monitor(engine: Engine, metrics: list[MetricSpec], schema: str, *, as_of: datetime,
                backfill: Period | None = None, **kwargs: Any) -> MonitorResult:
    """Monitor ``metrics`` up to ``as_of`` (or over ``backfill``); the orchestrators' entry
    point."""
    outcomes = []
    for metric in metrics:
        if backfill is not None:
            outcomes.append(monitor_metric(
                engine, metric, schema,
                as_of=backfill.end_exclusive - GRAIN_STEP[metric.grain],
                window_start=backfill.start, **kwargs,
            ))
        else:
            outcomes.append(monitor_metric(engine, metric, schema, as_of=as_of, **kwargs))
    return MonitorResult(outcomes)
