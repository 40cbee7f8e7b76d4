"""``warehouse-rca report|feedback|history``: reading the findings tables."""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cli.common import _handle_errors, _semantic_options, _warehouse_options
from warehouse_rca.cli.terminal import echo
from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.engines import connect
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.findings.feedback import record_feedback, select
from warehouse_rca.findings.history import history
from warehouse_rca.findings.review import options_from, parse_segment, record_missed, review
from warehouse_rca.findings.store import findings_table
from warehouse_rca.report.html import build_report, write_report
from warehouse_rca.spec.profiles import load_target
from warehouse_rca.spec.project import MetricSpec, Project, load_project

# --------------------------------------------------------------------------- commands


def _connection_options(fn: Any) -> Any:
    options: list[Any] = [
        click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False),
                     help="Project file (default: ./warehouse_rca.yml when it exists)."),
        _semantic_options,
        click.option(
            "--findings-schema",
            help="Schema of the findings tables (default: project's, profile's, or rca).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return _warehouse_options(fn)


@contextlib.contextmanager
def _open(project: str | None, profiles_dir: str | None, target: str | None,
          findings_schema: str | None,
          read_only: bool = False) -> Iterator[tuple[Engine, str, Project | None]]:
    """The warehouse, the findings schema and the project (when there is one), closed after;
    ``read_only`` for the commands that only read findings (a read-only session)."""
    spec: Project | None = None
    if project or Path("warehouse_rca.yml").is_file():
        spec = load_project(project)
    with connect(load_target(profiles_dir, target), read_only=read_only) as engine:
        schema = findings_schema or (spec.findings_schema if spec else None)
        yield engine, schema or engine.findings_schema, spec


@click.command("report")
@click.argument("run_id")
@_connection_options
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False),
    help="HTML file to write (default: rca_report_RUN_ID.html).",
)
@_handle_errors
def report_command(run_id: str, project: str | None, profiles_dir: str | None, target: str | None,
                   findings_schema: str | None, output: str | None) -> None:
    """Write RUN_ID's findings as one self-contained HTML report (opens without a network)."""
    with _open(project, profiles_dir, target, findings_schema,
               read_only=True) as (engine, schema, spec):
        html = build_report(engine, schema, run_id, spec)
    path = write_report(output or f"rca_report_{run_id}.html", html)
    click.echo(f"report written to {path}")


@click.command("feedback")
@click.argument("run_id")
@click.argument("finding", required=False)
@click.option("--confirm", "verdict", flag_value="confirmed", help="The finding is a real cause.")
@click.option("--reject", "verdict", flag_value="rejected", help="The finding is not a cause.")
@click.option(
    "--missed", metavar="SEGMENT",
    help="A cause RUN_ID did not report, e.g. \"device=iOS,region=Southeast\" (checked against "
         "the data; it becomes a labelled case for `review`).",
)
@click.option("--note", help="Why (shown when the segment comes up again).")
@click.option(
    "--until", metavar="YYYY-MM-DD",
    help="The verdict ranks incidents starting before this date only (a campaign, a known "
         "outage); default: always.",
)
@click.option(
    "--by", "author", envvar="WAREHOUSE_RCA_USER",
    help="Who (default: $WAREHOUSE_RCA_USER or the login name).",
)
@_connection_options
@_handle_errors
def feedback_command(run_id: str, finding: str | None, verdict: str | None, missed: str | None,
                     note: str | None, until: str | None, author: str | None,
                     project: str | None,
                     profiles_dir: str | None, target: str | None,
                     findings_schema: str | None) -> None:
    """Confirm or reject FINDING (its rank or finding id) of RUN_ID, or record a cause it missed;
    confirmed causes rank up in later investigations of the metric, rejected ones down."""
    if missed is not None:
        if verdict is not None or finding is not None:
            raise ConfigError("--missed names a segment the run did not report: give no FINDING "
                              "and no --confirm/--reject with it")
        with _open(project, profiles_dir, target, findings_schema) as (engine, schema, spec):
            metric = _run_metric(engine, schema, run_id, spec)
            row = record_missed(engine, schema, metric, run_id, parse_segment(missed),
                                author or getpass.getuser(), note)
        echo(f"missed: {row['segment_label']} ({row['metric']}, run {run_id}) by "
             f"{row['author']}; recorded in {schema}.feedback")
        return
    if verdict is None or finding is None:
        raise ConfigError("say which FINDING and --confirm or --reject (or --missed SEGMENT)")
    try:
        valid_until = datetime.strptime(until, "%Y-%m-%d") if until else None
    except ValueError:
        raise ConfigError(f"--until {until!r}: expected YYYY-MM-DD") from None
    with _open(project, profiles_dir, target, findings_schema) as (engine, schema, _):
        row = record_feedback(engine, schema, run_id, finding, verdict,
                              author or getpass.getuser(), note, valid_until)
    echo(f"{row['verdict']}: {row['segment_label']} ({row['metric']}, run {run_id}, "
               f"finding {row['finding_id']}) by {row['author']}; recorded in {schema}.feedback")


def _run_metric(engine: Engine, schema: str, run_id: str, spec: Project | None) -> MetricSpec:
    """The metric RUN_ID investigated, as the project declares it."""
    runs = select(engine, findings_table(schema, "runs"), columns=["metric"],
                  where=exp.EQ(this=sql.column_ref("run_id"), expression=sql.literal(run_id)))
    if runs.empty:
        raise InputError(f"no run {run_id!r} in {schema}.runs")
    name = str(runs.iloc[0, 0])
    if spec is None:
        raise ConfigError(f"--missed checks the segment against {name!r}'s data: run it beside "
                          "the project file (or give --project)")
    return spec.metric(name)


@click.command("review")
@click.argument("metric")
@click.option("--since",
              help="Only incidents whose current period starts on or after (YYYY-MM-DD).")
@click.option("--compare-settings", type=click.Path(dir_okay=False, exists=True),
              help="YAML of settings (alpha, min_share, min_support, max_depth, causal) to replay "
                   "with too, side by side.")
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@_connection_options
@_handle_errors
def review_command(metric: str, since: str | None, compare_settings: str | None, output: str,
                   project: str | None, profiles_dir: str | None, target: str | None,
                   findings_schema: str | None) -> None:
    """How the diagnosis has done on METRIC's incidents: calibration, rejections, missed causes,
    and a replay of the labelled incidents with today's settings, scored against the verdicts."""
    start = datetime.strptime(since, "%Y-%m-%d") if since else None
    with _open(project, profiles_dir, target, findings_schema) as (engine, schema, spec):
        if spec is None:
            raise ConfigError("review replays incidents: run it beside the project file "
                              "(or give --project)")
        base = InvestigationOptions()
        other = None
        if compare_settings:
            raw = yaml.safe_load(Path(compare_settings).read_text(encoding="utf-8")) or {}
            if not isinstance(raw, dict):
                raise ConfigError(f"{compare_settings}: expected a mapping of settings")
            other = options_from(raw, base)
        done = review(engine, schema, spec.metric(metric), since=start, options=base,
                      compare=other)
    if output == "json":
        echo(json.dumps(done.to_json(), indent=2, default=str))
        return
    echo(f"{metric}: {done.incidents} investigation(s), {done.findings} finding(s), "
         f"{done.reviewed} reviewed, {len(done.missed)} missed cause(s) recorded")
    if not done.reviewed and not done.missed:
        echo("No verdicts yet: `warehouse-rca feedback RUN_ID RANK --confirm` (or --reject, or "
             "--missed SEGMENT) labels an incident; the replay scores the labelled ones.")
    echo("Calibration (do findings get confirmed as often as their confidence says?):")
    for band in done.calibration:
        rate = band["confirmation_rate"]
        echo(f"  confidence {band['band']}: {band['reviewed']} reviewed, "
             f"{'n/a' if rate is None else f'{rate:.0%}'} confirmed")
    if done.rejected_by_dimension:
        echo("Rejected findings by dimension: " + ", ".join(
            f"{d} {n}" for d, n in sorted(done.rejected_by_dimension.items())))
    for name, replay in (("today's settings", done.replay), ("--compare-settings", done.compared)):
        if replay is None:
            continue
        p, r = replay.precision, replay.recall
        echo(f"Replay with {name}: {replay.incidents} labelled incident(s), {replay.tp} "
             f"confirmed or missed cause(s) found, {replay.fp} rejected one(s) reported, "
             f"{replay.fn} not found; precision {'n/a' if p is None else f'{p:.2f}'}, "
             f"recall {'n/a' if r is None else f'{r:.2f}'}")


@click.command("history")
@click.argument("metric")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True,
    help="Most recent incidents shown."
)
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@_connection_options
@_handle_errors
def history_command(metric: str, limit: int, output: str, project: str | None,
                    profiles_dir: str | None, target: str | None,
                    findings_schema: str | None) -> None:
    """List METRIC's past incidents (succeeded runs) with their causes and analysts' verdicts."""
    with _open(project, profiles_dir, target, findings_schema,
               read_only=True) as (engine, schema, _):
        incidents = history(engine, schema, metric, limit)
    if output == "json":
        click.echo(json.dumps(incidents, indent=2, ensure_ascii=False, default=str))
        return
    if not incidents:
        click.echo(f"no runs of {metric!r} in {schema}.runs")
        return
    for inc in incidents:
        period = f"{(inc['current'][0] or '?')[:10]} .. {(inc['current'][1] or '?')[:10]}"
        echo(f"{period}  run {inc['run_id']}")
        echo(f"  {inc['summary']}")
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
            echo(f"  {c['rank']}. {c['segment_label']} ({c['effect']}, {share}confidence "
                       f"{c['confidence']:.2f}){verdict}")
        if not inc["root_causes"]:
            click.echo("  (no root cause)")


commands = [report_command, feedback_command, history_command]
