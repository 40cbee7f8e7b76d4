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
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.causal.validate import CausalSettings
from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.cube.plan import CubePlan, plan_cube, source_expression
from warehouse_rca.detect import DetectionSettings, Excursion, detect
from warehouse_rca.dimensions.drift import detect_drift, write_drift
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.findings.feedback import load_knowledge
from warehouse_rca.findings.store import (
    _columns,
    add_columns,
    missing_columns,
    write_investigation,
)
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import GRAIN_STEP, Period
from warehouse_rca.spec.project import EventsSpec, MetricSpec
from warehouse_rca.stats import finite_or_none

log = logging.getLogger("warehouse_rca.monitor")

EXIT_NOTHING_FOUND = 0
EXIT_ANOMALIES_FOUND = 10
#: a source without data for longer than its metric's ``max_latency`` (wins over 10)
EXIT_STALE_DATA = 11
#: data this many buckets older than --as-of is stale, unless the metric's detection block says
DEFAULT_LATENCY_BUCKETS = 1
#: history fetched for the detector, in buckets of the grain
HISTORY_BUCKETS = {"hour": 24 * 28, "day": 120, "week": 104}
#: baseline for the investigation of an anomaly: this many buckets before it (whole seasons)
BASELINE_BUCKETS = {"hour": 24 * 7, "day": 28, "week": 8}

# Every period in the tool's tables is [start, end): ``bucket_end`` is the start of the next bucket
# (bi/README.md), as in runs.current_end.
ANOMALY_COLUMNS = (
    ("metric", "VARCHAR"), ("bucket_start", "TIMESTAMP"), ("bucket_end", "TIMESTAMP"),
    ("peak", "TIMESTAMP"), ("direction", "VARCHAR"), ("expected", "DOUBLE"), ("actual", "DOUBLE"),
    ("score", "DOUBLE"), ("model", "VARCHAR"), ("investigation_run_id", "VARCHAR"),
    ("detected_at", "TIMESTAMP"),
)
#: The detector's view of every examined bucket: actual, expected and the band beyond which it
#: alarms, so a BI chart of actual vs band needs no other query.
SERIES_COLUMNS = (
    ("metric", "VARCHAR"), ("bucket_start", "TIMESTAMP"), ("bucket_end", "TIMESTAMP"),
    ("actual", "DOUBLE"), ("expected", "DOUBLE"), ("lower", "DOUBLE"), ("upper", "DOUBLE"),
    ("score", "DOUBLE"), ("is_anomaly", "BOOLEAN"), ("model", "VARCHAR"),
    ("detected_at", "TIMESTAMP"),
)
#: Per metric, what its last run examined: ``last_bucket`` (the bookmark: the newest bucket
#: examined, never past the data), ``examined_start``/``examined_end`` ([start, end)), the newest
#: bucket holding data and whether the source was stale at ``as_of``.
STATE_COLUMNS = (
    ("metric", "VARCHAR"), ("last_bucket", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
    ("examined_start", "TIMESTAMP"), ("examined_end", "TIMESTAMP"),
    ("last_data_bucket", "TIMESTAMP"), ("stale", "BOOLEAN"), ("as_of", "TIMESTAMP"),
)


@dataclass
class MetricOutcome:
    metric: str
    model: str
    #: the buckets examined, [start, end): never past the newest bucket holding data
    window: tuple[datetime, datetime]
    anomalies: list[Excursion] = field(default_factory=list)
    investigations: list[dict[str, Any]] = field(default_factory=list)
    #: the start of the newest bucket holding data (None: the source holds none)
    last_data: datetime | None = None
    #: no data for longer than the metric's max_latency at ``as_of``
    stale: bool = False
    as_of: datetime | None = None

    @property
    def freshness(self) -> str | None:
        """"conversion_rate: no data since 2013-12-31 (expected up to 2026-11-30)", when stale."""
        if not self.stale:
            return None
        since = f"{self.last_data:%Y-%m-%d %H:%M}".removesuffix(" 00:00") if self.last_data \
            else "ever"
        until = f" (expected up to {self.as_of:%Y-%m-%d %H:%M})".replace(" 00:00)", ")") \
            if self.as_of else ""
        return f"{self.metric}: no data since {since}{until}"


@dataclass
class MonitorResult:
    outcomes: list[MetricOutcome]

    @property
    def anomalies_found(self) -> int:
        return sum(len(o.anomalies) for o in self.outcomes)

    @property
    def stale(self) -> list[MetricOutcome]:
        return [o for o in self.outcomes if o.stale]

    @property
    def exit_code(self) -> int:
        if self.stale:
            return EXIT_STALE_DATA
        return EXIT_ANOMALIES_FOUND if self.anomalies_found else EXIT_NOTHING_FOUND

    def to_json(self) -> list[dict[str, Any]]:
        """The document ``monitor --format json`` prints (one entry per metric)."""
        return [{
            "metric": o.metric, "model": o.model,
            "window": [o.window[0].isoformat(), o.window[1].isoformat()],
            "freshness": {"last_data": o.last_data.isoformat() if o.last_data else None,
                          "stale": o.stale, "message": o.freshness},
            "anomalies": [{"start": e.start.isoformat(), "end": e.end.isoformat(),
                           "direction": e.direction, "expected": e.expected, "actual": e.actual,
                           "score": e.score} for e in o.anomalies],
            "investigations": [{"run_id": d.get("run_id"), "summary": d.get("summary"),
                                "error": d.get("error")} for d in o.investigations],
        } for o in self.outcomes]


def settings_for(metric: MetricSpec, holidays: tuple[date, ...] = (),
                 **overrides: Any) -> DetectionSettings:
    """The detector's settings for ``metric``: its defaults, then the project file's
    ``detection:`` block, then ``overrides`` (the command line's flags; None: not given)."""
    directions: dict[bool | None, str] = {True: "higher_is_better", False: "lower_is_better"}
    values: dict[str, Any] = {"direction": directions.get(metric.higher_is_better, "both"),
                              **metric.detection.thresholds(),
                              **{k: v for k, v in overrides.items() if v is not None}}
    if holidays:
        values["holidays"] = holidays
    try:
        return DetectionSettings(**values)
    except ConfigError as err:
        raise ConfigError(f"{metric.where('detection')}: {err}") from None


def holidays_for(metric: MetricSpec, start: datetime, end: datetime) -> tuple[date, ...]:
    """The metric's holidays between ``start`` and ``end``: its ``holidays`` list and, with a
    ``holiday_country``, that country's public holidays (the maintained ``holidays`` package)."""
    days = {d for d in metric.detection.holidays if start.date() <= d <= end.date()}
    country = metric.detection.holiday_country
    if country:
        try:
            import holidays as calendars  # a maintained calendar of public holidays per country
        except ImportError:
            raise ConfigError(f"{metric.where('detection.holiday_country')}: needs the "
                              "'holidays' package (pip install holidays)") from None
        try:
            calendar = calendars.country_holidays(country, years=range(start.year, end.year + 1))
        except NotImplementedError:
            raise ConfigError(f"{metric.where('detection.holiday_country')}: no holiday "
                              f"calendar for {country!r}") from None
        days |= {d for d in calendar if start.date() <= d <= end.date()}
    return tuple(sorted(days))


def _series_plan(engine: Engine, metric: MetricSpec) -> tuple[CubePlan, exp.Expr]:
    """The metric's source, measures, filters and its time bucket expression (the plan's periods
    are placeholders: the series queries bound time themselves)."""
    if metric.time_column is None:
        raise ConfigError(f"{metric.where('time_column')}: detection needs a time column")
    day = datetime(1970, 1, 1)
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)),
                     baseline=Period(day, day + timedelta(days=1), "any"),
                     current=Period(day + timedelta(days=1), day + timedelta(days=2), "any"),
                     max_depth=1)
    assert plan.time is not None
    return plan, exp.TimestampTrunc(this=plan.time.copy(), unit=exp.var(metric.grain.upper()))


def last_data_bucket(engine: Engine, metric: MetricSpec) -> datetime | None:
    """The start of the newest bucket of the metric's source holding rows (filters applied), as
    the series query buckets it; None when the source is empty."""
    plan, bucket = _series_plan(engine, metric)
    frame = engine.query(sql.template("last_data.sql.j2", bucket=bucket, source=plan.source,
                                      filter=plan.condition))
    value = frame.iloc[0, 0] if not frame.empty else None
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize(None) if stamp.tzinfo else stamp).to_pydatetime()


def fetch_series(engine: Engine, metric: MetricSpec, start: datetime,
                 end: datetime) -> tuple[pd.Series, pd.Series | None]:
    """The metric per bucket of its grain over ``[start, end)``, and for a ratio metric its
    denominator per bucket (the detector judges a rate on 10 flights more leniently than one on
    1,000): one aggregate query."""
    plan, bucket = _series_plan(engine, metric)
    assert plan.time is not None
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
    index = pd.DatetimeIndex(frame["bucket"])
    series = pd.Series(values.to_numpy(), index=index, name=metric.name)
    full = pd.date_range(series.index.min(), series.index.max(), freq=GRAIN_STEP[metric.grain])
    volume = (pd.Series(den.to_numpy(), index=index).reindex(full)
              if metric.kind == "ratio" else None)
    return series.reindex(full), volume


def _ensure(engine: Engine, schema: str) -> dict[str, exp.Table]:
    specs = {"anomalies": ANOMALY_COLUMNS, "detection_series": SERIES_COLUMNS,
             "monitor_state": STATE_COLUMNS}
    tables = {n: exp.Table(this=sql.identifier(n), db=sql.identifier(schema)) for n in specs}
    engine.execute_all(sql.template(
        "findings_ddl.sql.j2", schema=sql.identifier(schema),
        # Every table is replaced per metric: partitioned by it where the engine overwrites
        # partitions.
        partition_by=engine.partition_column("metric"),
        tables=[{"name": tables[n], "columns": _columns(spec)} for n, spec in specs.items()],
    ))
    for name, spec in specs.items():  # tables of an older version: their new columns
        add_columns(engine, tables[name], missing_columns(engine, tables[name], spec) or [])
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
    latency = metric.detection.max_latency or DEFAULT_LATENCY_BUCKETS * step
    try:
        with engine.reading():  # the metric's SQL runs in a read-only session where possible
            series, volume = fetch_series(engine, metric, history_start, end)
    except InputError:
        # Not one row in the history and the window: the source stopped (or never started).
        with engine.reading():
            last_data = last_data_bucket(engine, metric)
        if last_data is not None and last_data >= history_start:
            raise  # rows exist, the metric's filters or bucketing leave none: not staleness
        outcome = MetricOutcome(metric.name, "none", (window_start, window_start),
                                last_data=last_data, stale=True, as_of=as_of)
        _record_state(engine, tables["monitor_state"], metric, last, outcome)
        return outcome
    observed = series.dropna()
    last_data = observed.index.max().to_pydatetime() if len(observed) else None
    # Never past the data: buckets after the newest one holding rows are not examined, so data
    # loaded late is examined by the next run (the bookmark stays before it).
    examined_end = min(end, last_data + step) if last_data is not None else window_start
    examined_end = max(examined_end, window_start)
    stale = last_data is None or last_data < as_of - latency
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings = settings_for(metric, holidays_for(metric, history_start, end), **thresholds)
        result = detect(series, settings, grain=metric.grain, volume=volume)
    new = [e for e in result.excursions
           if window_start <= e.start.to_pydatetime() < examined_end]
    outcome = MetricOutcome(metric.name, result.model, (window_start, examined_end), new,
                            last_data=last_data, stale=stale, as_of=as_of)
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
                with engine.reading():
                    inv = investigate(
                        engine, metric, baseline=baseline, current=current, options=options,
                        knowledge=load_knowledge(engine, schema, metric.name, at=current.start),
                    )
            except InputError as err:  # e.g. no baseline rows yet: keep the anomaly, say why
                outcome.investigations.append({"error": str(err)})
            else:
                write_investigation(engine, inv, schema, origin="monitor")
                doc = inv.to_json()
                run_id = doc["run_id"]
                outcome.investigations.append(doc)
        rows.append({
            "metric": metric.name, "bucket_start": excursion.start.to_pydatetime(),
            "bucket_end": excursion.end.to_pydatetime() + step,
            "peak": excursion.peak.to_pydatetime(),
            "direction": excursion.direction, "expected": excursion.expected,
            "actual": excursion.actual,
            "score": excursion.score, "model": result.model, "investigation_run_id": run_id,
            "detected_at": now,
        })
    points = result.points.loc[(result.points.index >= window_start)
                               & (result.points.index < examined_end)]
    band_rows = [{
        "metric": metric.name, "bucket_start": bucket.to_pydatetime(),
        "bucket_end": bucket.to_pydatetime() + step, "actual": finite_or_none(p.value),
        "expected": finite_or_none(p.expected), "lower": finite_or_none(p.lower),
        "upper": finite_or_none(p.upper),
        "score": finite_or_none(p.score), "is_anomaly": bool(p.flag), "model": result.model,
        "detected_at": now,
    } for bucket, p in zip(points.index, points.itertuples(index=False))]
    window = exp.and_(
        exp.EQ(this=exp.column("metric"), expression=sql.literal(metric.name)),
        exp.GTE(this=exp.column("bucket_start"), expression=sql.literal(window_start)),
        exp.LT(this=exp.column("bucket_start"), expression=sql.literal(examined_end)),
    )
    # The window's anomalies, its band and the bookmark move together (one transaction where the
    # engine has them; without, the bookmark goes last: a failure in between leaves the old
    # bookmark, so the next run redoes the window, which is idempotent).
    with engine.transaction():
        engine.replace_where(
            tables["anomalies"], ANOMALY_COLUMNS, window, rows, partition=("metric", metric.name)
        )
        engine.replace_where(tables["detection_series"], SERIES_COLUMNS, window, band_rows,
                             partition=("metric", metric.name))
        _record_state(engine, tables["monitor_state"], metric, last, outcome)
    return outcome


def _record_state(engine: Engine, table: exp.Table, metric: MetricSpec, last: datetime | None,
                  outcome: MetricOutcome) -> None:
    """The metric's bookmark (the newest bucket examined, never past the data) and what this run
    examined. Nothing examined and no earlier bookmark: the bookmark stays unset."""
    start, end = outcome.window
    newest = last
    if end > start:
        examined_last = end - GRAIN_STEP[metric.grain]
        newest = max(examined_last, last) if last is not None else examined_last
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    engine.replace_rows(table, STATE_COLUMNS, "metric", metric.name, [{
        "metric": metric.name, "last_bucket": newest, "updated_at": now,
        "examined_start": start, "examined_end": end, "last_data_bucket": outcome.last_data,
        "stale": outcome.stale, "as_of": outcome.as_of,
    }])


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
