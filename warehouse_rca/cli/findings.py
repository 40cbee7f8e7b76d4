"""``warehouse-rca report|feedback|history``: reading the findings tables."""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from warehouse_rca.cli.common import _handle_errors, _semantic_options, _warehouse_options
from warehouse_rca.cli.terminal import echo
from warehouse_rca.engines import connect
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError
from warehouse_rca.findings.feedback import record_feedback
from warehouse_rca.findings.history import history
from warehouse_rca.report.html import build_report, write_report
from warehouse_rca.spec.profiles import load_target
from warehouse_rca.spec.project import Project, load_project

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
@click.argument("finding")
@click.option("--confirm", "verdict", flag_value="confirmed", help="The finding is a real cause.")
@click.option("--reject", "verdict", flag_value="rejected", help="The finding is not a cause.")
@click.option("--note", help="Why (shown when the segment comes up again).")
@click.option(
    "--by", "author", envvar="WAREHOUSE_RCA_USER",
    help="Who (default: $WAREHOUSE_RCA_USER or the login name).",
)
@_connection_options
@_handle_errors
def feedback_command(run_id: str, finding: str, verdict: str | None, note: str | None,
                     author: str | None, project: str | None, profiles_dir: str | None,
                     target: str | None, findings_schema: str | None) -> None:
    """Confirm or reject FINDING (its rank or finding id) of RUN_ID; confirmed causes rank up in
    later investigations of the metric, rejected ones down."""
    if verdict is None:
        raise ConfigError("say --confirm or --reject")
    with _open(project, profiles_dir, target, findings_schema) as (engine, schema, _):
        row = record_feedback(engine, schema, run_id, finding, verdict,
                              author or getpass.getuser(), note)
    echo(f"{row['verdict']}: {row['segment_label']} ({row['metric']}, run {run_id}, "
               f"finding {row['finding_id']}) by {row['author']}; recorded in {schema}.feedback")


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
