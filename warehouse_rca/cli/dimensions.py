"""``warehouse-rca dimensions suggest|drift``."""

from __future__ import annotations

import json

import click
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cli.common import _handle_errors, _semantic_options, _warehouse_options
from warehouse_rca.cli.terminal import echo
from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.cube.plan import source_expression
from warehouse_rca.dimensions.drift import detect_drift, write_drift
from warehouse_rca.dimensions.profile import outcome_columns, yaml_block
from warehouse_rca.dimensions.profile import suggest as suggest_dimensions
from warehouse_rca.engines import connect
from warehouse_rca.errors import ConfigError
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import load_target
from warehouse_rca.spec.project import load_project


@click.group("dimensions")
def dimensions_group() -> None:
    """Discover and maintain the dimensional framework."""


@dimensions_group.command("suggest")
@click.argument("table", required=False)
@click.option("--metric", help="Profile this project metric's source instead of TABLE.")
@click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False))
@_semantic_options
@_warehouse_options
@click.option(
    "--max-values", type=click.IntRange(min=1), default=1000, show_default=True,
    help="More distinct values than this is a key, not a dimension.",
)
@_handle_errors
def suggest(table: str | None, metric: str | None, project: str | None, profiles_dir: str | None,
            target: str | None, max_values: int) -> None:
    """Profile TABLE's columns in the warehouse and propose dimensions, with reasons.

    With --metric, the columns the metric is computed from are left out (its own outcome) and
    the parts of its time column are checked against that column."""
    if bool(table) == bool(metric):
        raise ConfigError("give a TABLE or --metric NAME")
    source: exp.Expr
    outcomes: list[str] = []
    time_column = None
    if table:
        source = sql.table_ref(table)
    else:
        assert metric is not None  # exactly one of TABLE / --metric, checked above
        spec = load_project(project).metric(metric)
        source = source_expression(spec)
        time_column = spec.time_column
    with connect(load_target(profiles_dir, target), read_only=True) as engine:
        if metric:
            outcomes = outcome_columns(spec, list(engine.column_types(source)))
        found = suggest_dimensions(engine, source, max_values=max_values, outcomes=outcomes,
                                   time_column=time_column)
    click.echo("Proposed dimensions:")
    for p in found.columns:
        if p.proposed:
            echo(f"  + {p.name}: {p.reason}")
    numeric = [p for p in found.columns if p.numeric]
    if numeric:
        click.echo("Numeric measurements, as bands cut from the data:")
        for p in numeric:
            echo(f"  ~ {p.name}: {p.reason}")
    if found.hierarchies:
        click.echo("Hierarchies (every value of the finer one lies in one value of the broader):")
        for h in found.hierarchies:
            echo(f"  > {h.parent} > {h.child}")
    click.echo("Left out:")
    for p in found.columns:
        if not p.proposed and not p.numeric:
            echo(f"  - {p.name}: {p.reason}")
    click.echo("\n# paste under your metric in warehouse_rca.yml")
    echo(yaml_block(found), nl=False)


@dimensions_group.command("drift")
@click.argument("metric")
@click.option("--baseline", required=True, help="Baseline period START:END.")
@click.option("--current", required=True, help="Current period START:END.")
@click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False))
@_semantic_options
@_warehouse_options
@click.option(
    "--min-share", type=float, default=0.05, show_default=True,
    help="A new value is reported when it takes at least this share of the metric now.",
)
@click.option(
    "--include-new", is_flag=True,
    help=(
        "Also investigate METRIC for these periods with the new dimension-like columns "
        "included (this run only)."
    ),
)
@click.option(
    "--write/--no-write", default=True, show_default=True,
    help="Record the framework and the drift in the findings schema.",
)
@click.option(
    "--findings-schema",
    help=(
        "Schema for dimension_drift / dimension_frameworks (default: project's "
        "findings_schema, profile's schema, or rca)."
    ),
)
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@_handle_errors
def drift(metric: str, baseline: str, current: str, project: str | None, profiles_dir: str | None,
          target: str | None, min_share: float, include_new: bool, write: bool,
          findings_schema: str | None, output: str) -> None:
    """Report what METRIC's dimensional framework misses now: new columns, new values that take a
    material share of the metric, dimensions that became constant."""
    loaded = load_project(project)
    spec = loaded.metric(metric)
    base = Period.parse(baseline, option="--baseline")
    cur = Period.parse(current, option="--current")
    investigation = None
    with connect(load_target(profiles_dir, target), read_only=not write) as engine:
        schema = findings_schema or loaded.findings_schema or engine.findings_schema
        report = detect_drift(engine, spec, base, cur, schema=schema, min_share=min_share,
                              include_new=include_new)
        if write:
            write_drift(engine, schema, report.run_id, report)
        if include_new:
            investigation = investigate(
                engine, spec, baseline=base, current=cur,
                options=InvestigationOptions(extra_dimensions=tuple(report.new_dimensions)),
            )
    doc = report.to_json()
    if investigation is not None:
        doc["investigation"] = investigation.to_json()
    if output == "json":
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        return
    if not report.items:
        click.echo(
            f"No drift in {metric}'s dimensional framework between {base.text} and {cur.text}."
        )
    for item in report.items:
        echo(f"  {item.kind}: {item.detail}")
    if report.previous_run is None:
        click.echo("(no earlier framework recorded: new columns are found from the next run on)")
    if write:
        click.echo(
            f"run {report.run_id}: recorded in {schema}.dimension_frameworks / "
            f"{schema}.dimension_drift"
        )
    if investigation is not None:
        inv = investigation.to_json()
        click.echo(
            f"\nWith new dimensions {', '.join(report.new_dimensions) or '(none)'}: "
            f"{inv['summary']}"
        )
        for cause in inv["root_causes"]:
            echo(f"  {cause['rank']}. {cause['narrative']}")


commands = [dimensions_group]
