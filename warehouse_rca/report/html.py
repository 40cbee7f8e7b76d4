"""Findings people read: the self-contained HTML report, verification SQL, and the ``report``,
``feedback`` and ``history`` commands.

``warehouse-rca report RUN_ID`` rebuilds a run's report from the findings tables (``runs`` and
``root_causes`` hold the run's periods, values, parameters and segments) plus ONE pushed-down
aggregate query: the metric's series at its grain around the two periods. No fact row leaves the
warehouse. Charts are drawn by matplotlib as SVG and embedded as data URIs, so the single HTML
file opens anywhere without a network.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from jinja2.sandbox import SandboxedEnvironment
from sqlglot import exp

from warehouse_rca import __version__, narrative, sql
from warehouse_rca.contract import value_format
from warehouse_rca.cube.plan import plan_cube, source_expression
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.findings.feedback import eq, feedback_for_run, select, table_exists
from warehouse_rca.findings.history import _clean
from warehouse_rca.findings.store import ROOT_CAUSE_COLUMNS, RUNS_COLUMNS, findings_table
from warehouse_rca.report.charts import (
    _periods_of,
    driver_chart,
    segments_chart,
    series_chart,
    waterfall_chart,
)
from warehouse_rca.spec.periods import GRAIN_STEP, Period
from warehouse_rca.spec.project import MetricSpec, Project

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
#: most points the series chart asks the warehouse for (the window shrinks to fit)
MAX_SERIES_POINTS = 400


# --------------------------------------------------------------------------- progress


@contextlib.contextmanager
def progress(message: str) -> Iterator[None]:
    """A rich spinner on stderr while long work runs; silent when stderr is not a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


# --------------------------------------------------------------------------- reading the findings




def load_run(
    engine: Engine, schema: str, run_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The succeeded run row and its root causes (rank order), from the findings tables."""
    runs = findings_table(schema, "runs")
    if not table_exists(engine, runs):
        raise InputError(f"no findings tables in schema {schema!r}: run an investigation first")
    frame = select(engine, runs, where=eq("run_id", run_id),
                   order=[exp.Ordered(this=sql.column_ref("finished_at"), desc=True)])
    if frame.empty:
        raise InputError(
            f"no run {run_id!r} in {schema}.runs (`warehouse-rca history METRIC` lists runs)"
        )
    rows = [_clean(r) for r in frame.to_dict("records")]
    done = [r for r in rows if r.get("status") == "succeeded"]
    if not done:
        latest = rows[0]
        why = f": {latest['error']}" if latest.get("error") else ""
        raise InputError(
            f"run {run_id!r} has no succeeded attempt (latest is {latest.get('status')}{why})"
        )
    causes = select(engine, findings_table(schema, "root_causes"), where=eq("run_id", run_id),
                    order=[sql.column_ref("rank")])
    return done[0], [_clean(r) for r in causes.to_dict("records")]



def fetch_series(engine: Engine, metric: MetricSpec, run: dict[str, Any]) -> pd.DataFrame:
    """ONE aggregate query: the metric per bucket of its grain around the run's periods.

    Columns ``bucket``, ``value`` (and ``expected`` in expected-vs-actual mode)."""
    if metric.time_column is None:
        raise InputError(f"{metric.where('time_column')}: the series chart needs a time column")
    periods = _periods_of(run)
    base, cur = periods["baseline"], periods["current"]
    if cur is None:
        raise InputError(f"run {run['run_id']} has no current period to chart")
    step = GRAIN_STEP[metric.grain]
    first = base.start if base else cur.start
    span = cur.end_exclusive - first
    start, end = first - span, cur.end_exclusive + (cur.end_exclusive - cur.start)
    if (end - start) / step > MAX_SERIES_POINTS:  # keep the chart (and the result) compact
        start = max(start, end - MAX_SERIES_POINTS * step)
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)),
                     baseline=base or Period(start - timedelta(seconds=1), start, "history"),
                     current=cur, max_depth=1)
    assert plan.time is not None
    bucket = exp.TimestampTrunc(this=plan.time.copy(), unit=exp.var(metric.grain.upper()))
    frame = engine.query(sql.template(
        "series_report.sql.j2", bucket=bucket, num=plan.num, den=plan.den,
        base_num=plan.base_num, source=plan.source, time=plan.time, start=sql.literal(start),
        end=sql.literal(end), filter=plan.condition,
    ))
    if frame.empty:
        return pd.DataFrame({"bucket": pd.Series([], dtype="datetime64[ns]"), "value": []})
    out = pd.DataFrame({"bucket": pd.to_datetime(frame["bucket"]).dt.tz_localize(None)})
    num, den = frame["num"].astype(float), frame["den"].astype(float)
    out["value"] = (num / den.where(den != 0)) if metric.kind == "ratio" else num
    if "expected" in frame:
        out["expected"] = frame["expected"].astype(float)
    return out.sort_values("bucket").reset_index(drop=True)


# --------------------------------------------------------------------------- the HTML


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["value"] = narrative.fmt_value
    env.filters["points"] = lambda x, kind: "n/a" if x is None else narrative.fmt_points(x, kind)
    env.filters["pct"] = lambda x: "n/a" if x is None else f"{x:.0%}"
    env.filters["num"] = lambda x, digits=3: "n/a" if x is None else f"{x:.{digits}g}"
    # counts (sessions, flights, orders) are whole numbers, never "26.00"
    env.filters["count"] = lambda x: "n/a" if x is None else f"{x:,.0f}"
    return env


def _causal_of(cause: dict[str, Any]) -> dict[str, Any] | None:
    """The causal evidence of a finding row (``causal_evidence`` JSON or flat columns), if any."""
    text = cause.get("causal_evidence")
    if isinstance(text, str) and text.strip():
        with contextlib.suppress(ValueError):
            doc = json.loads(text)
            if isinstance(doc, dict):
                return doc
    if isinstance(cause.get("causal"), dict):
        return cause["causal"]
    if cause.get("causal_verdict"):
        return {"verdict": cause["causal_verdict"], "did_estimate": cause.get("did_estimate"),
                "did_p_value": cause.get("did_p_value"), "ordering": cause.get("ordering"),
                "change_start": cause.get("change_start"), "control": cause.get("causal_control"),
                "reasons": []}
    return None


def _informative(causal: dict[str, Any] | None,
                 periods: dict[str, Any]) -> dict[str, Any] | None:
    """The causal evidence as the page states it: a change start on or before the baseline's
    first day is the window's edge, not a finding, so it is not stated."""
    if not causal:
        return causal
    base = periods.get("baseline")
    start = causal.get("change_start")
    if base is not None and start is not None:
        try:
            at = pd.Timestamp(start).tz_localize(None) if pd.Timestamp(start).tzinfo else \
                pd.Timestamp(start)
        except (TypeError, ValueError):
            return causal
        if at <= pd.Timestamp(base.start):
            return {**causal, "change_start": None, "ordering": None}
    return causal


def _drivers_of(cause: dict[str, Any]) -> list[dict[str, Any]]:
    """The drivers read inside a finding's segment (the findings table's JSON column)."""
    with contextlib.suppress(TypeError, ValueError):
        drivers = json.loads(cause.get("drivers") or "[]")
        if isinstance(drivers, list):
            return [d for d in drivers if isinstance(d, dict)]
    return []


def render_report(run: dict[str, Any], causes: list[dict[str, Any]], series: pd.DataFrame | None, *,
                  title: str, fmt: str, feedback: dict[str, dict[str, Any]] | None = None,
                  series_note: str | None = None, higher_is_better: bool | None = True) -> str:
    """The self-contained HTML page for one run. ``higher_is_better`` colours moves by harm (a
    harmful move is red whatever its sign; None: neither)."""
    feedback = feedback or {}
    # Rows from an older findings table (or a hand-made run) may lack columns: they read as NULL.
    run = {**{n: None for n, _ in RUNS_COLUMNS}, **run}
    causes = [{**{n: None for n, _ in ROOT_CAUSE_COLUMNS}, **c} for c in causes]
    items = []
    periods_of_run = _periods_of(run)
    for cause in causes:
        causal = _causal_of(cause)
        causal = _informative(causal, periods_of_run)
        drivers = _drivers_of(cause)
        lead = narrative.leading_driver({"drivers": drivers})
        items.append({
            **cause,
            "causal": causal,
            "causal_sentence": narrative.causal_sentence(causal, fmt) if causal else "",
            "feedback": feedback.get(str(cause["finding_id"])),
            "driver_chart": (driver_chart(lead, fmt, str(cause["segment_label"]))
                             if lead is not None else None),
            "driver_name": lead["driver"] if lead is not None else None,
        })
    charts = {
        "series": (
            series_chart(series, run, fmt, title)
            if series is not None and not series.empty else None
        ),
        "waterfall": (
            waterfall_chart(run, causes, fmt, higher_is_better)
            if run.get("baseline_value") is not None else None
        ),
        "segments": segments_chart(run, causes, fmt, higher_is_better) if causes else None,
    }
    periods = _periods_of(run)
    params = {}
    with contextlib.suppress(TypeError, ValueError):
        params = json.loads(run.get("parameters") or "{}")
    return _environment().get_template("report.html.j2").render(
        run=run, causes=items, charts=charts, title=title, fmt=fmt, periods=periods, params=params,
        series_note=series_note, version=__version__,
        generated=datetime.now().strftime("%Y-%m-%d %H:%M"),
    )


def _value_format(metric: MetricSpec | None, run: dict[str, Any]) -> str:
    if metric is not None:
        return value_format(metric)
    return "percent" if run.get("metric_kind") == "ratio" else "number"


def build_report(engine: Engine, schema: str, run_id: str, project: Project | None,
                 metric: MetricSpec | None = None) -> str:
    """Rebuild a run's report: findings tables + one series query (when ``metric`` is given or the
    project declares the run's metric; otherwise the page says why the series chart is missing)."""
    with progress(f"Reading run {run_id} ..."):
        run, causes = load_run(engine, schema, run_id)
        feedback = feedback_for_run(engine, schema, run_id)
    if metric is None or metric.name != run["metric"]:
        metric = project.metrics.get(run["metric"]) if project is not None else None
    series, note = None, None
    if metric is None:
        note = (
            f"metric {run['metric']!r} is not declared in the project file, so the series chart "
            "is left out (pass --project)"
        )
    else:
        try:
            with progress(f"Querying the {metric.grain}ly series of {metric.name} ..."):
                series = fetch_series(engine, metric, run)
        except InputError as err:
            note = f"series chart left out: {err}"
    title = metric.title if metric is not None else run["metric"]
    with progress("Drawing charts ..."):
        return render_report(run, causes, series, title=title, fmt=_value_format(metric, run),
                             feedback=feedback, series_note=note,
                             higher_is_better=(metric.higher_is_better if metric is not None
                                               else None))


def write_report(path: str | os.PathLike[str], html: str) -> Path:
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise ConfigError(f"--report/--output: folder {target.parent} does not exist")
    try:
        target.write_text(html, encoding="utf-8")
    except OSError as err:  # a full disk, a read-only folder, a directory of that name
        raise ConfigError(f"--report/--output: cannot write {target}: "
                          f"{err.strerror or err}") from None
    return target
