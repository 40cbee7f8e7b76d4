"""Findings people read: the self-contained HTML report, verification SQL, and the ``report``,
``feedback`` and ``history`` commands.

``warehouse-rca report RUN_ID`` rebuilds a run's report from the findings tables (``runs`` and
``root_causes`` hold the run's periods, values, parameters and segments) plus ONE pushed-down
aggregate query: the metric's series at its grain around the two periods. No fact row leaves the
warehouse. Charts are drawn by matplotlib as SVG and embedded as data URIs, so the single HTML
file opens anywhere without a network.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import io
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import jinja2
import pandas as pd
from jinja2.sandbox import SandboxedEnvironment
from sqlglot import exp

from warehouse_rca import __version__, narrative, sql
from warehouse_rca.config import MetricSpec, Period, Project, load_project, load_target
from warehouse_rca.cube import OTHER, segment_condition
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, InputError, RcaError

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
GRAIN_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
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


# --------------------------------------------------------------------------- verification SQL


def _segment_condition(plan: Any, segment: dict[str, Any]) -> exp.Expr | None:
    """The rows of a segment, compared the way the cube labels them; None for '(other)'."""
    if any(value == OTHER or dim not in plan.dimensions for dim, value in segment.items()):
        return None
    return segment_condition(plan, {dim: str(value) for dim, value in segment.items()})


def verification_sql(plan: Any, segment: dict[str, Any], dialect: str) -> str | None:
    """The query (in ``dialect``) that reproduces a finding's baseline and current numbers from
    the source; None for a folded '(other)' segment, which no single filter reproduces."""
    condition = _segment_condition(plan, segment)
    if condition is None and segment:
        return None
    context: dict[str, Any] = {
        "expected": plan.mode == "expected", "ratio": plan.ratio, "source": plan.source,
        "num": plan.num, "den": plan.den, "base_num": plan.base_num, "filter": plan.condition,
        "segment": condition, "scale": float(plan.scale), "time": plan.time,
    }
    if plan.mode == "periods":
        context.update(
            base_start=sql.literal(plan.baseline.start),
            base_end=sql.literal(plan.baseline.end_exclusive),
            cur_start=sql.literal(plan.current.start),
            cur_end=sql.literal(plan.current.end_exclusive),
        )
    # Rendered without the run's query tag: this text is for people to paste and run.
    (tree,) = sql.render_tree("series_verify.sql.j2", **context)
    return tree.sql(dialect=dialect, pretty=True)


def verification_sqls(engine: Engine, metric: MetricSpec, periods: dict[str, Period | None],
                      causes: Sequence[dict[str, Any]]) -> dict[str, str]:
    """finding_id -> verification SQL for each cause (one catalog probe, no rows read)."""
    from warehouse_rca.cube import plan_cube, source_expression

    if not causes:
        return {}
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)),
                     baseline=periods.get("baseline"), current=periods.get("current"), max_depth=1)
    out = {}
    for cause in causes:
        text = verification_sql(plan, cause["segment"], engine.DIALECT)
        if text:
            out[cause["finding_id"]] = text
    return out


# --------------------------------------------------------------------------- reading the findings


def _table(schema: str, name: str) -> exp.Table:
    return exp.Table(this=sql.identifier(name), db=sql.identifier(schema))


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            out[key] = None
        elif isinstance(value, pd.Timestamp):
            out[key] = value.to_pydatetime()
        elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def load_run(
    engine: Engine, schema: str, run_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The succeeded run row and its root causes (rank order), from the findings tables."""
    from warehouse_rca.feedback import eq, select, table_exists

    runs = _table(schema, "runs")
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
    causes = select(engine, _table(schema, "root_causes"), where=eq("run_id", run_id),
                    order=[sql.column_ref("rank")])
    return done[0], [_clean(r) for r in causes.to_dict("records")]


def _periods_of(run: dict[str, Any]) -> dict[str, Period | None]:
    def period(side: str) -> Period | None:
        start, end = run.get(f"{side}_start"), run.get(f"{side}_end")
        if start is None or end is None:
            return None
        return Period(start, end, f"{start:%Y-%m-%d}..{end - timedelta(microseconds=1):%Y-%m-%d}")

    return {"baseline": period("baseline"), "current": period("current")}


def fetch_series(engine: Engine, metric: MetricSpec, run: dict[str, Any]) -> pd.DataFrame:
    """ONE aggregate query: the metric per bucket of its grain around the run's periods.

    Columns ``bucket``, ``value`` (and ``expected`` in expected-vs-actual mode)."""
    from warehouse_rca.cube import plan_cube, source_expression

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
    frame = engine.query(sql.render(
        "series_report.sql.j2", engine.DIALECT, bucket=bucket, num=plan.num, den=plan.den,
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


# --------------------------------------------------------------------------- charts


def _svg_uri(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue().encode()).decode()


def _new_figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "warehouse-rca"  # stable ids: same data, same file
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y" if width > height else "x", alpha=0.3)
    return fig, ax


def _formatter(fmt: str) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: narrative.fmt_value(v, fmt))


BLUE, ORANGE, RED, GREEN, GREY = "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#7f7f7f"


def series_chart(series: pd.DataFrame, run: dict[str, Any], fmt: str, title: str) -> str:
    """The metric's series with the baseline and current periods shaded and their values drawn."""
    fig, ax = _new_figure(10, 3.4)
    ax.plot(
        series["bucket"], series["value"], color="#333333", lw=1.6, marker="o", ms=2.5, label=title
    )
    if "expected" in series:
        ax.plot(series["bucket"], series["expected"], color=GREY, lw=1.2, ls="--", label="expected")
    periods = _periods_of(run)
    for side, colour, value_key in (
        ("baseline", BLUE, "baseline_value"), ("current", ORANGE, "current_value")
    ):
        p = periods[side]
        if p is None:
            continue
        ax.axvspan(p.start, p.end_exclusive, color=colour, alpha=0.13, label=f"{side} {p.text}")
        value = run.get(value_key)
        if value is not None and fmt != "currency" and run.get("metric_kind") == "ratio":
            # A ratio's period value is comparable to its points; totals of additive metrics are
            # not.
            ax.hlines(value, p.start, p.end_exclusive, colors=colour, lw=2.2,
                      label=f"{side} value {narrative.fmt_value(value, fmt)}")
    ax.yaxis.set_major_formatter(_formatter(fmt))
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.autofmt_xdate()
    return _svg_uri(fig)


def _short(text: str, n: int = 42) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def waterfall_chart(run: dict[str, Any], causes: list[dict[str, Any]], fmt: str) -> str:
    """Baseline -> each cause's contribution -> the rest -> current, as horizontal steps."""
    base, cur = run.get("baseline_value") or 0.0, run.get("current_value") or 0.0
    steps = [
        (f"#{c['rank']} {_short(c['segment_label'])}", c.get("contribution") or 0.0)
        for c in causes
    ]
    rest = (cur - base) - sum(v for _, v in steps)
    steps.append(("everything else", rest))
    labels = ["baseline"] + [s for s, _ in steps] + ["current"]
    running, lefts, widths, colours = base, [], [], []
    totals = [base, cur]
    for _, value in steps:
        lefts.append(min(running, running + value))
        widths.append(abs(value))
        colours.append(GREEN if value > 0 else RED)
        running += value
        totals.append(running)
    lo, hi = min(totals), max(totals)
    pad = (hi - lo) * 0.6 or abs(hi) * 0.1 or 1.0
    axis_lo = lo - pad if (lo - pad) > 0 or lo < 0 else 0.0
    fig, ax = _new_figure(10, 0.45 * len(labels) + 1.2)
    y = list(range(len(labels)))[::-1]
    ax.barh(y[0], base - axis_lo, left=axis_lo, color=BLUE)
    ax.barh(y[1:-1], widths, left=lefts, color=colours)
    ax.barh(y[-1], cur - axis_lo, left=axis_lo, color=ORANGE)
    for yy, (_, value), left, width in zip(y[1:-1], steps, lefts, widths):
        ax.text(left + width, yy, "  " + narrative.fmt_points(value, fmt), va="center", fontsize=8)
    ax.text(base, y[0], "  " + narrative.fmt_value(base, fmt), va="center", fontsize=8)
    ax.text(cur, y[-1], "  " + narrative.fmt_value(cur, fmt), va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(axis_lo, hi + pad * 0.6)
    ax.xaxis.set_major_formatter(_formatter(fmt))
    return _svg_uri(fig)


def segments_chart(run: dict[str, Any], causes: list[dict[str, Any]], fmt: str) -> str:
    """Each finding's segment before and after (dumbbells), against the metric overall."""
    fig, ax = _new_figure(10, 0.5 * len(causes) + 1.4)
    y = list(range(len(causes)))[::-1]
    for yy, c in zip(y, causes):
        b, a = c.get("baseline_value"), c.get("current_value")
        if b is None or a is None:
            continue
        ax.annotate("", xy=(a, yy), xytext=(b, yy),
                    arrowprops={"arrowstyle": "->", "color": RED if a < b else GREEN, "lw": 1.8})
        ax.plot([b], [yy], "o", color=BLUE, ms=6)
        ax.plot([a], [yy], "o", color=ORANGE, ms=6)
    if run.get("metric_kind") == "ratio":
        for key, colour in (("baseline_value", BLUE), ("current_value", ORANGE)):
            if run.get(key) is not None:
                ax.axvline(
                    run[key], color=colour, ls=":", lw=1.2,
                    label=f"overall {key.split('_')[0]} {narrative.fmt_value(run[key], fmt)}",
                )
    ax.plot([], [], "o", color=BLUE, label="segment baseline")
    ax.plot([], [], "o", color=ORANGE, label="segment current")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / max(1, len(causes))), ncol=4,
              fontsize=8, frameon=False)
    ax.set_yticks(y, [f"#{c['rank']} {_short(c['segment_label'])}" for c in causes], fontsize=8)
    ax.set_ylim(-0.7, len(causes) - 0.3)
    ax.xaxis.set_major_formatter(_formatter(fmt))
    return _svg_uri(fig)


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


def render_report(run: dict[str, Any], causes: list[dict[str, Any]], series: pd.DataFrame | None, *,
                  title: str, fmt: str, feedback: dict[str, dict[str, Any]] | None = None,
                  series_note: str | None = None) -> str:
    """The self-contained HTML page for one run."""
    from warehouse_rca.findings import ROOT_CAUSE_COLUMNS, RUNS_COLUMNS

    feedback = feedback or {}
    # Rows from an older findings table (or a hand-made run) may lack columns: they read as NULL.
    run = {**{n: None for n, _ in RUNS_COLUMNS}, **run}
    causes = [{**{n: None for n, _ in ROOT_CAUSE_COLUMNS}, **c} for c in causes]
    items = []
    for cause in causes:
        causal = _causal_of(cause)
        items.append({
            **cause,
            "causal": causal,
            "causal_sentence": narrative.causal_sentence(causal, fmt) if causal else "",
            "feedback": feedback.get(str(cause["finding_id"])),
        })
    charts = {
        "series": (
            series_chart(series, run, fmt, title)
            if series is not None and not series.empty else None
        ),
        "waterfall": (
            waterfall_chart(run, causes, fmt) if run.get("baseline_value") is not None else None
        ),
        "segments": segments_chart(run, causes, fmt) if causes else None,
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
        from warehouse_rca.investigate import value_format

        return value_format(metric)
    return "percent" if run.get("metric_kind") == "ratio" else "number"


def build_report(engine: Engine, schema: str, run_id: str, project: Project | None,
                 metric: MetricSpec | None = None) -> str:
    """Rebuild a run's report: findings tables + one series query (when ``metric`` is given or the
    project declares the run's metric; otherwise the page says why the series chart is missing)."""
    from warehouse_rca.feedback import feedback_for_run

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
                             feedback=feedback, series_note=note)


def write_report(path: str | os.PathLike[str], html: str) -> Path:
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise ConfigError(f"--report/--output: folder {target.parent} does not exist")
    target.write_text(html, encoding="utf-8")
    return target


# --------------------------------------------------------------------------- commands


def _connection_options(fn: Any) -> Any:
    options = [
        click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False),
                     help="Project file (default: ./warehouse_rca.yml when it exists)."),
        click.option(
            "--profiles-dir", envvar="WAREHOUSE_RCA_PROFILES_DIR", type=click.Path(file_okay=False)
        ),
        click.option("--target", envvar="WAREHOUSE_RCA_TARGET"),
        click.option(
            "--findings-schema",
            help="Schema of the findings tables (default: project's, profile's, or rca).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _open(project: str | None, profiles_dir: str | None, target: str | None,
          findings_schema: str | None) -> tuple[Engine, str, Project | None]:
    from warehouse_rca.engines import connect

    spec: Project | None = None
    if project or Path("warehouse_rca.yml").is_file():
        spec = load_project(project)
    engine = connect(load_target(profiles_dir, target))
    schema = findings_schema or (spec.findings_schema if spec else None) or engine.findings_schema
    return engine, schema, spec


def _fail(err: RcaError) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)


@click.command("report")
@click.argument("run_id")
@_connection_options
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False),
    help="HTML file to write (default: rca_report_RUN_ID.html).",
)
def report_command(run_id: str, project: str | None, profiles_dir: str | None, target: str | None,
                   findings_schema: str | None, output: str | None) -> None:
    """Write RUN_ID's findings as one self-contained HTML report (opens without a network)."""
    try:
        engine, schema, spec = _open(project, profiles_dir, target, findings_schema)
        try:
            html = build_report(engine, schema, run_id, spec)
        finally:
            engine.close()
        path = write_report(output or f"rca_report_{run_id}.html", html)
    except RcaError as err:
        _fail(err)
    click.echo(f"report written to {path}")


@click.command("feedback")
@click.argument("run_id")
@click.argument("finding")
@click.option("--confirm", "verdict", flag_value="confirmed", help="The finding is a real cause.")
@click.option("--reject", "verdict", flag_value="rejected", help="The finding is not a cause.")
@click.option("--note", help="Why (shown when the segment comes up again).")
@click.option(
    "--by", "author", envvar="WAREHOUSE_RCA_USER",
    help="Who (default: $WAREHOUSE_RCA_USER or the login name).",
)
@_connection_options
def feedback_command(run_id: str, finding: str, verdict: str | None, note: str | None,
                     author: str | None, project: str | None, profiles_dir: str | None,
                     target: str | None, findings_schema: str | None) -> None:
    """Confirm or reject FINDING (its rank or finding id) of RUN_ID; confirmed causes rank up in
    later investigations of the metric, rejected ones down."""
    from warehouse_rca.feedback import record_feedback

    try:
        if verdict is None:
            raise ConfigError("say --confirm or --reject")
        engine, schema, _ = _open(project, profiles_dir, target, findings_schema)
        try:
            row = record_feedback(engine, schema, run_id, finding, verdict,
                                  author or getpass.getuser(), note)
        finally:
            engine.close()
    except RcaError as err:
        _fail(err)
    click.echo(f"{row['verdict']}: {row['segment_label']} ({row['metric']}, run {run_id}, "
               f"finding {row['finding_id']}) by {row['author']}; recorded in {schema}.feedback")


def history(engine: Engine, schema: str, metric: str, limit: int = 20) -> list[dict[str, Any]]:
    """Past succeeded runs of ``metric`` (newest incident first) with their causes and verdicts."""
    from warehouse_rca.feedback import eq, select, table_exists

    runs_table, causes_table = _table(schema, "runs"), _table(schema, "root_causes")
    if not table_exists(engine, runs_table):
        return []
    runs = select(
        engine, runs_table, where=exp.and_(eq("metric", metric), eq("status", "succeeded")),
        order=[exp.Ordered(this=sql.column_ref("current_start"), desc=True),
               exp.Ordered(this=sql.column_ref("finished_at"), desc=True)],
        limit=limit,
    )
    causes = select(
        engine, causes_table, where=eq("metric", metric), order=[sql.column_ref("rank")]
    )
    verdicts: dict[tuple[str, str], dict[str, Any]] = {}
    feedback_table = _table(schema, "feedback")
    if table_exists(engine, feedback_table):
        for row in select(
            engine, feedback_table, where=eq("metric", metric),
            order=[sql.column_ref("created_at"), sql.column_ref("feedback_id")],
        ).to_dict("records"):
            verdicts[(str(row["run_id"]), str(row["finding_id"]))] = _clean(row)
    out = []
    for run in (_clean(r) for r in runs.to_dict("records")):
        mine = [_clean(c) for c in causes.to_dict("records") if c["run_id"] == run["run_id"]]
        out.append({
            "run_id": run["run_id"],
            "baseline": [_iso(run.get("baseline_start")), _iso(run.get("baseline_end"))],
            "current": [_iso(run.get("current_start")), _iso(run.get("current_end"))],
            "baseline_value": run.get("baseline_value"), "current_value": run.get("current_value"),
            "relative_change": run.get("relative_change"), "summary": run.get("summary"),
            "finished_at": _iso(run.get("finished_at")),
            "root_causes": [{
                "rank": c["rank"], "finding_id": c["finding_id"],
                "segment": json.loads(c["segment"] or "{}"),
                "segment_label": c["segment_label"], "effect": c.get("effect"),
                "share_of_change": c.get("share_of_change"), "confidence": c.get("confidence"),
                "feedback": {k: _iso(v) if isinstance(v, datetime) else v
                             for k, v in verdicts.get((run["run_id"], c["finding_id"]), {}).items()
                             if k in ("verdict", "author", "note", "created_at")} or None,
            } for c in mine],
        })
    return out


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


@click.command("history")
@click.argument("metric")
@click.option(
    "--limit", type=int, default=20, show_default=True, help="Most recent incidents shown."
)
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@_connection_options
def history_command(metric: str, limit: int, output: str, project: str | None,
                    profiles_dir: str | None, target: str | None,
                    findings_schema: str | None) -> None:
    """List METRIC's past incidents (succeeded runs) with their causes and analysts' verdicts."""
    try:
        engine, schema, _ = _open(project, profiles_dir, target, findings_schema)
        try:
            incidents = history(engine, schema, metric, limit)
        finally:
            engine.close()
    except RcaError as err:
        _fail(err)
    if output == "json":
        click.echo(json.dumps(incidents, indent=2, ensure_ascii=False, default=str))
        return
    if not incidents:
        click.echo(f"no runs of {metric!r} in {schema}.runs")
        return
    for inc in incidents:
        period = f"{(inc['current'][0] or '?')[:10]} .. {(inc['current'][1] or '?')[:10]}"
        click.echo(f"{period}  run {inc['run_id']}")
        click.echo(f"  {inc['summary']}")
        for c in inc["root_causes"]:
            fb = c["feedback"]
            verdict = (
                f" -- {fb['verdict']} by {fb['author']}"
                + (f": {fb['note']}" if fb.get("note") else "")
                if fb else ""
            )
            share = (
                f"{abs(c['share_of_change']):.0%} of the change, "
                if c.get("share_of_change") is not None else ""
            )
            click.echo(f"  {c['rank']}. {c['segment_label']} ({c['effect']}, {share}confidence "
                       f"{c['confidence']:.2f}){verdict}")
        if not inc["root_causes"]:
            click.echo("  (no root cause)")


commands = [report_command, feedback_command, history_command]
