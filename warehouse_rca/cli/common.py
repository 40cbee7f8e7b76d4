"""What every command shares: exit codes, error handling, logging, warehouse and metric
options, and the metric and periods they resolve to."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from warehouse_rca.cli.logs import _debug_enabled, format_error_chain
from warehouse_rca.cli.terminal import echo
from warehouse_rca.errors import ConfigError, RcaError
from warehouse_rca.spec.layers import SEMANTIC_LAYERS
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec, load_project, metric_from_mapping

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_WAREHOUSE = 3


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RcaError as err:
            if _debug_enabled():
                # The chain (driver error included) helps debugging; tracebacks show code and
                # messages, not local variables, so settings and passwords stay out, and the
                # text is redacted (a driver message may quote a URL with its credentials).
                echo(format_error_chain(err), err=True)
            echo(f"error: {err}", err=True)  # redacted; control characters escaped
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


def _use_layer(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """--dbt-project / --lookml: every project this command loads exposes their metrics."""
    if value is None:
        return
    dbt_dir, lookml_dir = SEMANTIC_LAYERS.get()
    SEMANTIC_LAYERS.set((value, lookml_dir) if param.name == "dbt_project"
                        else (dbt_dir, value))


def _semantic_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Metrics from a dbt project's semantic layer or a LookML folder (spec.dbt, spec.lookml)."""
    fn = click.option(
        "--lookml", type=click.Path(file_okay=False, exists=True), expose_value=False,
        is_eager=True, callback=_use_layer, envvar="WAREHOUSE_RCA_LOOKML",
        help="A LookML folder: its explores' measures are metrics too.",
    )(fn)
    return click.option(
        "--dbt-project", type=click.Path(file_okay=False, exists=True), expose_value=False,
        is_eager=True, callback=_use_layer, envvar="WAREHOUSE_RCA_DBT_PROJECT",
        help="A dbt project: its semantic layer's metrics are metrics too (reads "
             "target/semantic_manifest.json; runs `dbt parse` when it is missing).",
    )(fn)


def _metric_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False),
            help="Project file declaring the metrics (default: ./warehouse_rca.yml).",
        ),
        _semantic_options,
        click.option("--table", help="Ad-hoc mode: the table to investigate (schema.table)."),
        click.option("--time-column", help="Ad-hoc mode: the time column."),
        click.option(
            "--measure", help='Ad-hoc additive metric, e.g. "sum(revenue)" or "count(*)".'
        ),
        click.option("--numerator", help='Ad-hoc ratio metric numerator, e.g. "sum(converted)".'),
        click.option("--denominator", help='Ad-hoc ratio metric denominator, e.g. "count(*)".'),
        click.option("--dimensions", help="Ad-hoc mode: comma-separated dimension columns."),
        click.option(
            "--numeric-dimensions",
            help="Ad-hoc mode: comma-separated numeric columns searched through thresholds "
                 "found from the data (e.g. employees >= 500).",
        ),
        click.option(
            "--drivers",
            help="Ad-hoc mode: comma-separated numeric measures read inside each root cause "
                 "(e.g. page_load_ms): how they moved and how much of the cause they explain.",
        ),
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
        def names(key: str) -> list[str]:
            return [d.strip() for d in (adhoc.get(key) or "").split(",") if d.strip()]

        raw: dict[str, Any] = {
            "table": table,
            "time_column": adhoc.get("time_column"),
            "dimensions": [*names("dimensions"),
                           *({"name": n, "numeric": True} for n in names("numeric_dimensions"))],
            "filters": list(adhoc.get("filters") or []),
        }
        if names("drivers"):
            raw["drivers"] = names("drivers")
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
    if adhoc.get("numeric_dimensions") or adhoc.get("drivers"):
        raise ConfigError("--numeric-dimensions and --drivers are ad-hoc options (with --table); "
                          "a project's metric declares them (numeric: true, drivers:)")
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
