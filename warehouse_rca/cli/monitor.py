"""``warehouse-rca detect|monitor``: the scheduler's commands and their exit codes."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from warehouse_rca.api import monitor_project
from warehouse_rca.cli.common import _semantic_options
from warehouse_rca.cli.terminal import echo
from warehouse_rca.engines import connect
from warehouse_rca.errors import ConfigError, RcaError
from warehouse_rca.monitor import MonitorResult
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import load_target
from warehouse_rca.spec.project import DIRECTION_WORDS, load_project

# --------------------------------------------------------------------------- CLI


def _as_of(text: str | None) -> datetime:
    if not text:
        today = datetime.now(timezone.utc).date()
        return datetime.combine(today - timedelta(days=1), datetime.min.time())
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is not a date or timestamp") from None


def _report(result: MonitorResult, output: str) -> None:
    if output == "json":
        import json

        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    for o in result.outcomes:
        if o.window[1] > o.window[0]:
            echo(
                f"{o.metric}: {len(o.anomalies)} anomaly(ies) in {o.window[0]:%Y-%m-%d %H:%M} .. "
                f"{o.window[1]:%Y-%m-%d %H:%M} (model {o.model})"
            )
        else:
            echo(f"{o.metric}: nothing new to examine after {o.window[0]:%Y-%m-%d %H:%M}")
        if o.freshness:
            echo(f"  stale source: {o.freshness}")
        for e, doc in zip(o.anomalies, o.investigations + [{}] * len(o.anomalies)):
            click.echo(
                f"  {e.start:%Y-%m-%d %H:%M}: {e.direction}, {e.actual:.4g} vs expected "
                f"{e.expected:.4g} (score {e.score:.1f})"
            )
            if doc.get("summary"):
                echo(f"    {doc['summary']}")
            elif doc.get("error"):
                echo(f"    not investigated: {doc['error']}")


def _common(fn: Any) -> Any:
    options: list[Any] = [
        click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False)),
        _semantic_options,
        click.option(
            "--profiles-dir", envvar="WAREHOUSE_RCA_PROFILES_DIR", type=click.Path(file_okay=False)
        ),
        click.option("--target", envvar="WAREHOUSE_RCA_TARGET"),
        click.option("--as-of", help="Last bucket to process (default: yesterday)."),
        click.option(
            "--backfill",
            help="Process this window START:END instead of resuming from the last run.",
        ),
        click.option(
            "--sigma", type=float,
            help="Score threshold in robust standard deviations (default 4).",
        ),
        click.option(
            "--min-relative-change", type=float,
            help="Smallest relative change that alarms (default 0.10).",
        ),
        click.option("--min-volume", type=float, help="Values below this never alarm (default 0)."),
        click.option(
            "--direction", type=click.Choice(["down", "up", "both"]),
            help="Which moves alarm (default: the metric's detection block, else drops of a "
                 "metric where higher is better).",
        ),
        click.option("--no-investigate", is_flag=True, help="Detect only."),
        click.option("--format", "output", type=click.Choice(["text", "json"]), default="text"),
        click.option(
            "--report", "report_path", type=click.Path(dir_okay=False),
            help=(
                "Write the investigated anomaly's HTML report to this file "
                "(several: NAME-<run_id>.html)."
            ),
        ),
        click.option(
            "--report-dir", type=click.Path(file_okay=False),
            help="Write each investigated anomaly's HTML report here (<run_id>.html).",
        ),
        click.option(
            "--include-new-dimensions", is_flag=True,
            help="Add new dimension-like source columns (drift) to this run's investigations.",
        ),
        click.option(
            "--alerts/--no-alerts", default=True, show_default=True,
            help="Send the project's webhook/email alerts, one per incident.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(metric_names: list[str] | None, project: str | None, profiles_dir: str | None,
         target: str | None, as_of: str | None, backfill: str | None, sigma: float | None,
         min_relative_change: float | None, min_volume: float | None, direction: str | None,
         no_investigate: bool,
         output: str, report_dir: str | None = None, include_new_dimensions: bool = False,
         alerts: bool = True, report_path: str | None = None) -> None:
    try:
        spec = load_project(project)
        if report_dir is not None and not Path(report_dir).is_dir():
            raise ConfigError(f"--report-dir {report_dir}: not an existing folder")
        if report_path is not None and not Path(report_path).resolve().parent.is_dir():
            raise ConfigError(
                f"--report {report_path}: folder {Path(report_path).parent} does not exist"
            )
        with connect(load_target(profiles_dir, target)) as engine:
            run = monitor_project(
                engine, spec, as_of=_as_of(as_of),
                backfill=Period.parse(backfill, option="--backfill") if backfill else None,
                metrics=metric_names, investigate_anomalies=not no_investigate, sigma=sigma,
                min_relative_change=min_relative_change, min_volume=min_volume,
                direction=DIRECTION_WORDS[direction] if direction else None,
                include_new_dimensions=include_new_dimensions, alerts=alerts,
                report_dir=report_dir, report_path=report_path,
            )
        for written in run.reports:
            echo(f"report written to {written}", err=True)
        # One alert per incident (excursion), never twice for the same one (alerts_sent).
        for sent in run.alerts:
            if sent.error:
                echo(f"warning: {sent.channel} alert not sent: {sent.error}", err=True)
        result = run.result
    except RcaError as err:
        echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    _report(result, output)
    sys.exit(result.exit_code)


@click.command("detect")
@click.argument("metric")
@_common
def detect_command(metric: str, **kwargs: Any) -> None:
    """Detect anomalies in METRIC's series and investigate each new one.

    Exit codes: 0 nothing found, 10 anomalies found, 11 stale source (no data for longer than
    the metric's max_latency), 2 bad input, 3 warehouse error."""
    _run([metric], **kwargs)


@click.command("monitor")
@_common
def monitor_command(**kwargs: Any) -> None:
    """Detect and investigate across every metric of the project (for schedulers).

    Exit codes: 0 nothing found, 10 anomalies found, 11 stale source (no data for longer than
    a metric's max_latency), 2 bad input, 3 warehouse error."""
    _run(None, **kwargs)


commands = [detect_command, monitor_command]
