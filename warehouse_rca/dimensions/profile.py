"""Profiling a table for the framework: which columns make dimensions, and why (``dimensions
suggest``). Pushed down: one statistics query and one value-count query per candidate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from warehouse_rca import sql
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError

# --------------------------------------------------------------------------- suggest

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
            text_length: float = 40.0, columns: Sequence[str] | None = None) -> list[ColumnProfile]:
    """Profile every column of ``source`` (a table or subquery expression) in the warehouse, or
    only ``columns`` (drift profiles just the new ones)."""
    types = engine.column_types(source)
    names = [n for n in types if columns is None or n in columns]
    if not names:
        raise ConfigError(
            "the source has no columns" if columns is None else "no such columns to profile"
        )
    stats = engine.query(sql.template("profile_columns.sql.j2", source=source,
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
            reason = (
                f"numeric with {distinct:,} values: a measure; bucket it as a derived dimension"
            )
        elif distinct > max_values or distinct >= unique_share * rows:
            if length >= text_length and not any(t in kind for t in NUMERIC_TYPES):
                reason = (
                    f"free text: {distinct:,} distinct values averaging {length:.0f} characters"
                )
            else:
                reason = (
                    f"identifier or near-unique key: {distinct:,} distinct values in {rows:,} rows"
                )
        elif any(t in kind for t in NUMERIC_TYPES) and distinct > 50:
            reason = (
                f"numeric with {distinct:,} values: a measure; bucket it as a derived dimension"
            )
        else:
            proposed = True
        profiles.append(
            ColumnProfile(name, kind, distinct, nulls, length, [], None, proposed, reason)
        )
    candidates = [p for p in profiles if p.proposed]
    if candidates:
        counts = engine.query(sql.template("profile_values.sql.j2", source=source,
                                         columns=[sql.column_ref(p.name) for p in candidates]))
        all_set = 2 ** len(candidates) - 1
        for i, p in enumerate(candidates):
            mine = counts[counts["rca_set"] == all_set - 2**i]
            n = mine["n"].astype(float)
            shares = (n / n.sum()).sort_values(ascending=False)
            values = mine.loc[shares.index, f"v{i}"].map(sql.value_label)
            p.top_values = list(zip(values.head(5), shares.head(5).round(4)))
            h = -float((shares * shares.map(math.log)).sum())
            p.entropy = h / math.log(len(shares)) if len(shares) > 1 else 0.0
            top = p.top_values[0]
            p.reason = (
                f"{p.distinct} values, top {top[0]!r} {top[1]:.0%}, evenness {p.entropy:.2f}"
                + (f", {p.null_share:.0%} NULL (kept as its own segment)" if p.null_share else "")
            )
        candidates.sort(key=lambda p: -(p.entropy or 0.0))
    return sorted(profiles, key=lambda p: (not p.proposed, -(p.entropy or 0.0), p.name))


def yaml_block(profiles: list[ColumnProfile]) -> str:
    """The proposed dimensions as YAML, with derived-dimension ideas for time and numeric
    columns as comments (uncomment and adjust the cut-offs)."""
    proposed = [p.name for p in profiles if p.proposed]
    text = yaml.safe_dump({"dimensions": proposed}, sort_keys=False, allow_unicode=True)
    for p in profiles:
        if p.proposed or not p.name.isidentifier():
            continue
        if any(t in p.type for t in TIME_TYPES):
            text += (f"# - {{name: {p.name}_hour, expr: \"hour({p.name})\"}}\n"
                     f"# - {{name: {p.name}_weekend, expr: \"dayofweek({p.name}) IN (0, 6)\"}}\n")
        elif p.reason.startswith("numeric"):
            text += (f"# - {{name: {p.name}_tier, expr: \"CASE WHEN {p.name} < 10 THEN 'low' "
                     f"WHEN {p.name} < 100 THEN 'mid' ELSE 'high' END\"}}\n")
    return text
