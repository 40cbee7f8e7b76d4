"""The dimensional framework's first draft: profile a table and propose its dimensions.

``warehouse-rca dimensions suggest TABLE`` (or ``--metric NAME`` for a project metric's source)
profiles every column with two pushed-down queries (one scan for distinct counts, NULL shares and
text lengths; one GROUPING SETS pass for the value counts of the plausible columns) and sorts the
columns into proposed dimensions and rejected ones, each with a reason. The output ends with a
ready-to-paste YAML block for the project file.

Rules (in order): a timestamp or date is a time column, not a dimension; a column with one value is
constant; a fractional number with many values is a measure (bucket it as a derived dimension); a
column whose distinct values are most of the rows, or more than ``max_values``, is a key or
identifier (or free text, when its values are long strings); an integer with many values is a
measure; anything else is proposed, ranked by how
evenly its values split the rows (normalised entropy), so the most informative slices come first.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import click
import yaml

from warehouse_rca import sql
from warehouse_rca.config import load_project, load_target
from warehouse_rca.cube import source_expression
from warehouse_rca.engines import connect
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, RcaError

TIME_TYPES = ("TIMESTAMP", "DATE", "TIME", "DATETIME")
NUMERIC_TYPES = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "NUMERIC", "REAL", "BIGINT", "HUGEINT")
FRACTIONAL_TYPES = ("DOUBLE", "FLOAT", "DECIMAL", "NUMERIC", "REAL")


@dataclass
class ColumnProfile:
    name: str
    type: str
    distinct: int
    null_share: float
    mean_length: float
    top_values: list[tuple[str, float]]
    entropy: float | None  # normalised to [0, 1]
    proposed: bool
    reason: str


def profile(engine: Engine, source: Any, *, max_values: int = 1000, unique_share: float = 0.5,
            text_length: float = 40.0) -> list[ColumnProfile]:
    """Profile every column of ``source`` (a table or subquery expression) in the warehouse."""
    types = engine.column_types(source)
    names = list(types)
    if not names:
        raise ConfigError("the source has no columns")
    stats = engine.query(sql.render("profile_columns.sql.j2", engine.DIALECT, source=source,
                                    columns=[sql.column_ref(n) for n in names])).iloc[0]
    rows = int(stats["n_rows"])
    if rows == 0:
        raise ConfigError("the source has no rows to profile")
    profiles: list[ColumnProfile] = []
    for i, name in enumerate(names):
        kind = types[name]
        distinct = int(stats[f"distinct_{i}"] or 0)
        nulls = float(stats[f"nulls_{i}"] or 0) / rows
        length = float(stats[f"length_{i}"] or 0.0)
        reason, proposed = "", False
        if any(t in kind for t in TIME_TYPES):
            reason = "timestamp/date: use it as the time column, or derive hour/weekday dimensions"
        elif distinct <= 1:
            reason = "constant: a single value cannot explain a change"
        elif any(t in kind for t in FRACTIONAL_TYPES) and distinct > 50:
            reason = f"numeric with {distinct:,} values: a measure; bucket it as a derived dimension"
        elif distinct > max_values or distinct >= unique_share * rows:
            if length >= text_length and not any(t in kind for t in NUMERIC_TYPES):
                reason = f"free text: {distinct:,} distinct values averaging {length:.0f} characters"
            else:
                reason = f"identifier or near-unique key: {distinct:,} distinct values in {rows:,} rows"
        elif any(t in kind for t in NUMERIC_TYPES) and distinct > 50:
            reason = f"numeric with {distinct:,} values: a measure; bucket it as a derived dimension"
        else:
            proposed = True
        profiles.append(ColumnProfile(name, kind, distinct, nulls, length, [], None, proposed, reason))
    candidates = [p for p in profiles if p.proposed]
    if candidates:
        counts = engine.query(sql.render("profile_values.sql.j2", engine.DIALECT, source=source,
                                         columns=[sql.column_ref(p.name) for p in candidates]))
        all_set = 2 ** len(candidates) - 1
        for i, p in enumerate(candidates):
            mine = counts[counts["rca_set"] == all_set - 2**i]
            n = mine["n"].astype(float)
            shares = (n / n.sum()).sort_values(ascending=False)
            values = mine.loc[shares.index, f"v{i}"].fillna("(null)").astype(str)
            p.top_values = list(zip(values.head(5), shares.head(5).round(4)))
            h = -float((shares * shares.map(math.log)).sum())
            p.entropy = h / math.log(len(shares)) if len(shares) > 1 else 0.0
            top = p.top_values[0]
            p.reason = (f"{p.distinct} values, top {top[0]!r} {top[1]:.0%}, evenness {p.entropy:.2f}"
                        + (f", {p.null_share:.0%} NULL (kept as its own segment)" if p.null_share else ""))
        candidates.sort(key=lambda p: -(p.entropy or 0.0))
    return sorted(profiles, key=lambda p: (not p.proposed, -(p.entropy or 0.0), p.name))


def yaml_block(profiles: list[ColumnProfile]) -> str:
    proposed = [p.name for p in profiles if p.proposed]
    return yaml.safe_dump({"dimensions": proposed}, sort_keys=False, allow_unicode=True)


@click.group("dimensions")
def dimensions_group() -> None:
    """Discover and maintain the dimensional framework."""


@dimensions_group.command("suggest")
@click.argument("table", required=False)
@click.option("--metric", help="Profile this project metric's source instead of TABLE.")
@click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False))
@click.option("--profiles-dir", envvar="WAREHOUSE_RCA_PROFILES_DIR", type=click.Path(file_okay=False))
@click.option("--target", envvar="WAREHOUSE_RCA_TARGET")
@click.option("--max-values", type=int, default=1000, show_default=True, help="More distinct values than this is a key, not a dimension.")
def suggest(table: str | None, metric: str | None, project: str | None, profiles_dir: str | None,
            target: str | None, max_values: int) -> None:
    """Profile TABLE's columns in the warehouse and propose dimensions, with reasons."""
    try:
        if bool(table) == bool(metric):
            raise ConfigError("give a TABLE or --metric NAME")
        source = sql.table_ref(table) if table else source_expression(load_project(project).metric(metric))
        engine = connect(load_target(profiles_dir, target))
        try:
            profiles = profile(engine, source, max_values=max_values)
        finally:
            engine.close()
    except RcaError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    click.echo("Proposed dimensions:")
    for p in profiles:
        if p.proposed:
            click.echo(f"  + {p.name}: {p.reason}")
    click.echo("Left out:")
    for p in profiles:
        if not p.proposed:
            click.echo(f"  - {p.name}: {p.reason}")
    click.echo("\n# paste under your metric in warehouse_rca.yml")
    click.echo(yaml_block(profiles), nl=False)


commands = [dimensions_group]
