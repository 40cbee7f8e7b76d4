"""``warehouse-rca investigate|sql|demo``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from warehouse_rca.api import run_investigation
from warehouse_rca.causal.validate import CausalSettings
from warehouse_rca.cli.common import (
    _handle_errors,
    _metric_options,
    _periods,
    _resolve_metric,
    _warehouse_options,
)
from warehouse_rca.cli.terminal import echo
from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.cube.plan import cube_sql, plan_cube
from warehouse_rca.demo import build_demo_warehouse, demo_periods, write_demo_project
from warehouse_rca.engines import connect
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.errors import ConfigError
from warehouse_rca.localize.thresholds import histogram_sql
from warehouse_rca.report.html import build_report, progress, write_report
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import DEFAULT_DUCKDB_PATH, Target, load_target
from warehouse_rca.spec.project import MetricSpec, load_project


def _options(max_depth: int | None, min_support: float, max_queries: int | None = None,
             time_budget: float | None = None):
    return InvestigationOptions(max_depth=max_depth, min_support=min_support,
                                max_queries=max_queries, time_budget=time_budget)


def _print_text(doc: dict[str, Any], schema: str | None) -> None:
    echo(doc["summary"])
    echo("")
    if doc["root_causes"]:
        echo("Root causes, ranked by impact:")
        for cause in doc["root_causes"]:
            echo(f"  {cause['rank']}. {cause['narrative']}")
    elif doc["message"] not in doc["summary"]:
        echo(doc["message"])
    echo("")
    where = f"; findings written to {schema}.runs / {schema}.root_causes" if schema else ""
    echo(
        f"run {doc['run_id']}: {doc['segments_evaluated']} segments evaluated in "
        f"{doc['elapsed_seconds']:.2f}s with {doc['queries']} warehouse queries{where}."
    )


def _investigate_and_report(target: Target, metric: MetricSpec, baseline: Period | None,
                            current: Period | None, options: Any, output: str, write: bool,
                            schema: str | None, report_path: str | None = None) -> dict[str, Any]:
    if report_path and not write:
        raise ConfigError("--report builds the page from the findings tables: drop --no-write")

    logging.getLogger("warehouse_rca").debug("target %s (%s): %s", target.name, target.type,
                                             target.redacted())
    # --no-write: a read-only session (DuckDB lets read-only runs share the file; PostgreSQL
    # refuses any write in the session).
    with connect(target, read_only=not write) as engine:
        with progress(f"Investigating {metric.name} ..."):
            run = run_investigation(engine, metric, baseline=baseline, current=current,
                                    options=options, schema=schema, write=write)
        investigation, written = run.investigation, run.written
        if report_path and written:
            html = build_report(engine, written, investigation.run_id, None, metric=metric)
            echo(f"report written to {write_report(report_path, html)}", err=True)
    doc = investigation.to_json()
    if output == "json":
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _print_text(doc, written)
    return doc


@click.command("investigate")
@_metric_options
@_warehouse_options
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--write/--no-write", default=True, show_default=True, help="Write findings to the warehouse."
)
@click.option(
    "--findings-schema",
    help=(
        "Schema for the findings tables (default: project's findings_schema, profile's schema, "
        "or rca)."
    ),
)
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False),
    help="Also write the run's self-contained HTML report to this file.",
)
@click.option(
    "--causal/--no-causal", "causal", default=True, show_default=True,
    help=(
        "Validate root causes causally (ordering, difference-in-differences, confounding, "
        "change events): one extra aggregate query."
    ),
)
@_handle_errors
def investigate_command(metric: str | None, project: str | None, baseline: str | None,
                        current: str | None, max_depth: int, min_support: float,
                        profiles_dir: str | None, target: str | None, output: str, write: bool,
                        findings_schema: str | None, report_path: str | None = None,
                        **adhoc: Any) -> None:
    """Explain why METRIC changed between --baseline and --current."""
    causal = bool(adhoc.pop("causal", True))
    spec = _resolve_metric(metric, project, **adhoc)
    base, cur = _periods(spec, baseline, current)
    options = _options(
        max_depth, min_support, adhoc.pop("max_queries", None), adhoc.pop("time_budget", None)
    )
    schema = findings_schema
    if schema is None and not adhoc.get("table"):
        schema = load_project(project).findings_schema
    if not causal or (not adhoc.get("table") and load_project(project).events is not None):
        import dataclasses

        # The project's change-events table feeds the causal checks (linked and global events).
        events = None if adhoc.get("table") else load_project(project).events
        options = dataclasses.replace(
            options, causal=causal, causal_settings=CausalSettings(events=events)
        )
    _investigate_and_report(
        load_target(profiles_dir, target), spec, base, cur, options, output, write, schema,
        report_path=report_path,
    )


@click.command("sql")
@_metric_options
@click.option(
    "--dialect", default="duckdb", show_default=True,
    help="Any dialect sqlglot knows: snowflake, bigquery, spark, postgres, trino, ...",
)
@_handle_errors
def sql_command(metric: str | None, project: str | None, baseline: str | None, current: str | None,
                max_depth: int, min_support: float, dialect: str, **adhoc: Any) -> None:
    """Print the metric's cube as one query (dry run: no warehouse needed).

    It computes every segment an investigation can look at; a run sends the same aggregation in
    levels whose later queries depend on earlier answers (docs/ARCHITECTURE.md)."""
    import sqlglot

    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except ValueError as err:
        raise ConfigError(f"--dialect: {err}") from None
    spec = _resolve_metric(metric, project, **adhoc)
    base, cur = _periods(spec, baseline, current)
    plan = plan_cube(
        spec, None, baseline=base, current=cur,
        max_depth=3 if max_depth is None else max_depth, min_support=min_support,
    )
    numeric = [d for d in spec.numeric if d in plan.dimensions]
    if numeric and plan.mode == "periods":
        # the thresholds are chosen from this query's answer, so the cube below can only show
        # the numeric dimensions as their raw values
        click.echo(f"-- numeric dimensions {', '.join(numeric)}: their histogram, from which a "
                   "run chooses each one's thresholds (the cube then groups by the predicate)")
        values = [plan.dim_exprs[plan.dimensions.index(d)] for d in numeric]
        click.echo(histogram_sql(plan, values).sql(dialect) + ";")
    click.echo(cube_sql(plan).sql(dialect) + ";")


@click.command("demo")
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
    help="Where to create warehouse_rca.duckdb and warehouse_rca_demo.yml.",
)
@click.option(
    "--sessions-per-day", type=int, default=72_000, show_default=True,
    help="Demo size (72,000/day is about 2.8M rows).",
)
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@_handle_errors
def demo_command(directory: str, sessions_per_day: int, output: str) -> None:
    """Build a demo DuckDB warehouse with an incident in it and investigate the conversion rate."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    target = Target(
        "demo", "duckdb", {"path": str(folder / DEFAULT_DUCKDB_PATH), "schema": "rca"}, "demo"
    )
    engine = DuckDBEngine(target)
    try:
        if output == "text":
            click.echo(f"Building the demo warehouse in {target.settings['path']} ...")
        rows = build_demo_warehouse(engine, sessions_per_day)
    finally:
        engine.close()
    project_path = write_demo_project(folder / "warehouse_rca_demo.yml")
    project = load_project(project_path)
    baseline, current = demo_periods()
    if output == "text":
        click.echo(
            f"{rows:,} sessions in shop.sessions; project file {project_path}.\n"
            f"Investigating conversion_rate: baseline {baseline.text}, current {current.text}\n"
        )
    _investigate_and_report(target, project.metric("conversion_rate"), baseline, current,
                            _options(3, 0.005), output, True, project.findings_schema)
    if output == "text":
        click.echo(
            "\nTry it yourself:\n"
            f"  cd {folder} && warehouse-rca investigate conversion_rate "
            "--project warehouse_rca_demo.yml "
            f"--baseline {baseline.text} --current {current.text} --format json"
        )

