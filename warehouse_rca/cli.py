"""Command line: thin commands over the library. ``warehouse-rca --help`` lists them.

Exit codes: 0 success; 2 bad input or configuration (unknown column, empty period, invalid
spec, ...); 3 the warehouse failed or refused a statement; 1 an unexpected error (a bug).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from warehouse_rca import __version__
from warehouse_rca.config import (
    MetricSpec,
    Period,
    Target,
    load_project,
    load_target,
    metric_from_mapping,
)
from warehouse_rca.errors import ConfigError, RcaError

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_WAREHOUSE = 3


class _ClickHandler(logging.Handler):
    """Log records to stderr through click, so they follow click's (and tests') stream."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"{record.levelname.lower()}: {self.format(record)}", err=True)
        except Exception:  # noqa: BLE001 - logging must never break a run
            self.handleError(record)


def _configure_logging(debug: bool) -> None:
    """Warnings (retries, a failed-run row that could not be written) always; with --debug, every
    statement sent and its duration. Nothing logged holds a credential: targets are logged
    redacted, statements hold names and literals, never connection settings."""
    logger = logging.getLogger("warehouse_rca")
    for handler in [h for h in logger.handlers if isinstance(h, _ClickHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(_ClickHandler())
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)


def _debug_enabled() -> bool:
    return logging.getLogger("warehouse_rca").isEnabledFor(logging.DEBUG)


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RcaError as err:
            if _debug_enabled():
                # The chain (driver error included) helps debugging; tracebacks show code and
                # messages, not local variables, so settings and passwords stay out.
                click.echo("".join(traceback.format_exception(err)), err=True)
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)

    return wrapper


def _warehouse_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--target", envvar="WAREHOUSE_RCA_TARGET",
        help="Output of profiles.yml to use (default: the profile's target).",
    )(fn)
    fn = click.option(
        "--profiles-dir", envvar="WAREHOUSE_RCA_PROFILES_DIR", type=click.Path(file_okay=False),
        help=(
            "Directory holding profiles.yml (default: ./, then ~/.warehouse_rca; "
            "none: embedded DuckDB)."
        ),
    )(fn)
    return fn


def _metric_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False),
            help="Project file declaring the metrics (default: ./warehouse_rca.yml).",
        ),
        click.option("--table", help="Ad-hoc mode: the table to investigate (schema.table)."),
        click.option("--time-column", help="Ad-hoc mode: the time column."),
        click.option(
            "--measure", help='Ad-hoc additive metric, e.g. "sum(revenue)" or "count(*)".'
        ),
        click.option("--numerator", help='Ad-hoc ratio metric numerator, e.g. "sum(converted)".'),
        click.option("--denominator", help='Ad-hoc ratio metric denominator, e.g. "count(*)".'),
        click.option("--dimensions", help="Ad-hoc mode: comma-separated dimension columns."),
        click.option(
            "--filter", "filters", multiple=True,
            help="Extra condition on the rows (repeatable), e.g. \"country = 'US'\".",
        ),
        click.option(
            "--expected-column",
            help="Expected-vs-actual mode: column holding the expected (forecast) value.",
        ),
        click.option(
            "--actual-column", help="Expected-vs-actual mode: column holding the actual value."
        ),
        click.option(
            "--baseline", help="Baseline period START:END (inclusive dates or timestamps)."
        ),
        click.option("--current", help="Current period START:END (inclusive dates or timestamps)."),
        click.option(
            "--max-depth", type=int, default=None,
            help=(
                "Deepest combination of dimensions reported, a cap (default: as deep as the "
                "causes lead; the first pass searches combinations of up to 3)."
            ),
        ),
        click.option(
            "--min-support", type=float, default=0.005, show_default=True,
            help=(
                "Smallest share of rows, or of its combination's change, a segment needs to be "
                "kept; the rest of each dimension is folded into '(other)'."
            ),
        ),
        click.option(
            "--max-queries", type=click.IntRange(min=2),
            help=(
                "At most this many warehouse queries (the probe and the first pass always run; "
                "deeper levels and causal checks only within it)."
            ),
        ),
        click.option(
            "--time-budget", type=click.FloatRange(min=0, min_open=True),
            help=(
                "Seconds after which no further query is started (deeper levels, causal "
                "checks); the answer so far is returned and says what was skipped."
            ),
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return click.argument("metric", required=False)(fn)


def _resolve_metric(metric: str | None, project: str | None, **adhoc: Any) -> MetricSpec:
    """A metric from the project file, or one built from ad-hoc options."""
    table = adhoc.get("table")
    if table:
        if metric:
            raise ConfigError("give either a METRIC from the project or --table (ad-hoc), not both")
        raw: dict[str, Any] = {
            "table": table,
            "time_column": adhoc.get("time_column"),
            "dimensions": [
                d.strip() for d in (adhoc.get("dimensions") or "").split(",") if d.strip()
            ],
            "filters": list(adhoc.get("filters") or []),
        }
        for key in ("measure", "numerator", "denominator", "expected_column", "actual_column"):
            if adhoc.get(key):
                raw[key] = adhoc[key]
        raw["label"] = (
            f"{adhoc['numerator']} / {adhoc['denominator']}" if adhoc.get("numerator")
            else adhoc.get("measure") or adhoc.get("actual_column")
        )
        if adhoc.get("expected_column") and not adhoc.get("measure"):
            raw["measure"] = (
                f"sum({adhoc['actual_column']})" if adhoc.get("actual_column") else None
            )
        return metric_from_mapping(table, raw, "command line")
    if not metric:
        raise ConfigError("name a METRIC from the project file, or use ad-hoc mode with --table")
    spec = load_project(project).metric(metric)
    extra = tuple(adhoc.get("filters") or ())
    if extra:
        spec = MetricSpec(**{**spec.__dict__, "filters": spec.filters + extra})
    return spec


def _periods(
    metric: MetricSpec, baseline: str | None, current: str | None
) -> tuple[Period | None, Period | None]:
    if metric.expected_column:
        return (None, Period.parse(current, option="--current") if current else None)
    if not baseline or not current:
        raise ConfigError(
            "--baseline and --current are required (START:END, e.g. 2026-11-10:2026-11-16)"
        )
    return Period.parse(baseline, option="--baseline"), Period.parse(current, option="--current")


def _options(max_depth: int | None, min_support: float, max_queries: int | None = None,
             time_budget: float | None = None):
    from warehouse_rca.investigate import InvestigationOptions

    return InvestigationOptions(max_depth=max_depth, min_support=min_support,
                                max_queries=max_queries, time_budget=time_budget)


def _print_text(doc: dict[str, Any], schema: str | None) -> None:
    click.echo(doc["summary"])
    click.echo("")
    if doc["root_causes"]:
        click.echo("Root causes, ranked by impact:")
        for cause in doc["root_causes"]:
            click.echo(f"  {cause['rank']}. {cause['narrative']}")
    elif doc["message"] not in doc["summary"]:
        click.echo(doc["message"])
    click.echo("")
    where = f"; findings written to {schema}.runs / {schema}.root_causes" if schema else ""
    click.echo(
        f"run {doc['run_id']}: {doc['segments_evaluated']} segments evaluated in "
        f"{doc['elapsed_seconds']:.2f}s with {doc['queries']} warehouse queries{where}."
    )


def _investigate_and_report(target: Target, metric: MetricSpec, baseline: Period | None,
                            current: Period | None, options: Any, output: str, write: bool,
                            schema: str | None, report_path: str | None = None) -> dict[str, Any]:
    from warehouse_rca.api import run_investigation
    from warehouse_rca.engines import connect
    from warehouse_rca.report import build_report, progress, write_report

    if report_path and not write:
        raise ConfigError("--report builds the page from the findings tables: drop --no-write")

    logging.getLogger("warehouse_rca").debug("target %s (%s): %s", target.name, target.type,
                                             target.redacted())
    with connect(target) as engine:
        with progress(f"Investigating {metric.name} ..."):
            run = run_investigation(engine, metric, baseline=baseline, current=current,
                                    options=options, schema=schema, write=write)
        investigation, written = run.investigation, run.written
        if report_path and written:
            html = build_report(engine, written, investigation.run_id, None, metric=metric)
            click.echo(f"report written to {write_report(report_path, html)}", err=True)
    doc = investigation.to_json()
    if output == "json":
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _print_text(doc, written)
    return doc


# Stage modules contribute their commands, loaded when one is used: the name, the module and
# attribute that define it, and the line `--help` lists for it, so listing the commands imports
# no stage (monitor pulls in statsmodels through causal: seconds for every command).
# tests/test_cli.py checks each line against the command's own help.
STAGE_COMMANDS = {
    "detect": ("warehouse_rca.monitor", "detect_command",
               "Detect anomalies in METRIC's series and investigate each new one."),
    "monitor": ("warehouse_rca.monitor", "monitor_command",
                "Detect and investigate across every metric of the project (for schedulers)."),
    "dimensions": ("warehouse_rca.dimensions", "dimensions_group",
                   "Discover and maintain the dimensional framework."),
    "report": ("warehouse_rca.report", "report_command",
               ("Write RUN_ID's findings as one self-contained HTML report "
                "(opens without a network).")),
    "feedback": ("warehouse_rca.report", "feedback_command",
                 ("Confirm or reject FINDING (its rank or finding id) of RUN_ID; confirmed causes "
                  "rank up in later investigations of the metric, rejected ones down.")),
    "history": ("warehouse_rca.report", "history_command",
                ("List METRIC's past incidents (succeeded runs) with their causes and analysts' "
                 "verdicts.")),
}


def stage_command(name: str) -> click.Command:
    """The stage command ``name``, its module imported now."""
    module, attribute, _ = STAGE_COMMANDS[name]
    return getattr(importlib.import_module(module), attribute)


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(STAGE_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in STAGE_COMMANDS and cmd_name not in self.commands:
            self.add_command(stage_command(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(n) for n in self.list_commands(ctx))
        rows = [(name, self.commands[name].get_short_help_str(limit) if name in self.commands
                 else click.Command(name, help=STAGE_COMMANDS[name][2]).get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="warehouse-rca")
@click.option(
    "--debug", is_flag=True, envvar="WAREHOUSE_RCA_DEBUG",
    help=(
        "Log every statement sent (with its run-id tag and duration) and full error chains; "
        "secrets stay redacted."
    ),
)
def main(debug: bool = False) -> None:
    """Automated root-cause analysis for business metrics, pushed down into your warehouse."""
    _configure_logging(debug)


@main.command()
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
def investigate(metric: str | None, project: str | None, baseline: str | None, current: str | None,
                max_depth: int, min_support: float, profiles_dir: str | None,
                target: str | None, output: str, write: bool, findings_schema: str | None,
                report_path: str | None = None, **adhoc: Any) -> None:
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

        from warehouse_rca.causal import CausalSettings

        # The project's change-events table feeds the causal checks (linked and global events).
        events = None if adhoc.get("table") else load_project(project).events
        options = dataclasses.replace(
            options, causal=causal, causal_settings=CausalSettings(events=events)
        )
    _investigate_and_report(
        load_target(profiles_dir, target), spec, base, cur, options, output, write, schema,
        report_path=report_path,
    )


@main.command("sql")
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

    from warehouse_rca.cube import cube_sql, plan_cube

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
    click.echo(cube_sql(plan, dialect) + ";")


@main.command()
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
def demo(directory: str, sessions_per_day: int, output: str) -> None:
    """Build a demo DuckDB warehouse with an incident in it and investigate the conversion rate."""
    from warehouse_rca.config import DEFAULT_DUCKDB_PATH
    from warehouse_rca.demo import build_demo_warehouse, demo_periods, write_demo_project
    from warehouse_rca.engines.duckdb import DuckDBEngine

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


if __name__ == "__main__":  # pragma: no cover
    main()
