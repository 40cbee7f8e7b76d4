"""Profiling a table for the framework: which columns make dimensions, and why (``dimensions
suggest``). Pushed down: one statistics query and one value-count query per candidate."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.project import MetricSpec

# --------------------------------------------------------------------------- suggest

TIME_TYPES = ("TIMESTAMP", "DATE", "TIME", "DATETIME")
#: (Snowflake's connector reports NUMBER as FIXED.)
NUMERIC_TYPES = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "NUMERIC", "NUMBER", "FIXED", "REAL",
                 "BIGINT", "HUGEINT")
FRACTIONAL_TYPES = ("DOUBLE", "FLOAT", "DECIMAL", "NUMERIC", "REAL")
#: A numeric column with more distinct values than this is a measurement (searched through
#: thresholds), not a category: wind speeds and visibilities are not 40 unrelated segments.
NUMERIC_LEVELS = 12
#: The parts of a time column a small-integer column is checked against, and whether periods are
#: disjoint in that part (a baseline week and a current week never share a day of the month).
TIME_PARTS = {"year": True, "quarter": True, "month": True, "week": True, "day": True,
              "hour": False, "minute": False}
#: A column equal to a part of the time column on at least this share of its rows is that part.
TIME_PART_SHARE = 0.99
#: The quantiles a numeric column's suggested bands are cut at (thirds of the rows).
BAND_LEVELS = (1 / 3, 2 / 3)


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
    #: a numeric measurement: proposed as bands cut where the data puts a real share of rows
    numeric: bool = False
    cuts: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Hierarchy:
    """A many-to-one dependency found in the data: every value of ``child`` has one ``parent``."""

    parent: str
    child: str


@dataclass
class Suggestion:
    """What ``dimensions suggest`` proposes: every column with its verdict and reason, and the
    hierarchies the data shows among the proposed dimensions."""

    columns: list[ColumnProfile]
    hierarchies: list[Hierarchy]


def outcome_columns(metric: MetricSpec, columns: Sequence[str]) -> list[str]:
    """The columns of ``columns`` (the source's) a metric is computed from: its numerator,
    denominator or measure (parsed as the cube parses them) and its expected and actual
    columns. Never its dimensions."""
    names: list[str] = []
    for key in ("numerator", "denominator", "measure"):
        text = getattr(metric, key)
        if text:
            tree = sql.parse_row_measure(text, columns, metric.where(key))
            names += [c.name for c in tree.find_all(exp.Column)]
    names += [c for c in (metric.expected_column, metric.actual_column) if c]
    return list(dict.fromkeys(names))


def profile(engine: Engine, source: Any, *, max_values: int = 1000, unique_share: float = 0.5,
            text_length: float = 40.0, columns: Sequence[str] | None = None,
            outcomes: Sequence[str] = (), time_column: str | None = None) -> list[ColumnProfile]:
    """Profile every column of ``source`` (a table or subquery expression) in the warehouse, or
    only ``columns`` (drift profiles just the new ones). ``outcomes``: the columns a metric is
    computed from (never a dimension: the metric's own outcome explains it); ``time_column``:
    the metric's time column (its parts are never dimensions; without it every time column
    is checked)."""
    return suggest(engine, source, max_values=max_values, unique_share=unique_share,
                   text_length=text_length, columns=columns, outcomes=outcomes,
                   time_column=time_column).columns


def suggest(engine: Engine, source: Any, *, max_values: int = 1000, unique_share: float = 0.5,
            text_length: float = 40.0, columns: Sequence[str] | None = None,
            outcomes: Sequence[str] = (), time_column: str | None = None) -> Suggestion:
    """:func:`profile` plus the hierarchies among the proposed dimensions. Pushed down: one
    statistics scan, one for time parts, one value-count pass, one for pairs of candidates, one
    for the numeric columns' quantiles (each only when it has something to check)."""
    types = engine.column_types(source)
    names = [n for n in types if columns is None or n in columns]
    if not names:
        raise ConfigError(
            "the source has no columns" if columns is None else "no such columns to profile"
        )
    numeric = {n: any(t in types[n] for t in NUMERIC_TYPES) for n in names}
    stats = engine.query(sql.template(
        "profile_columns.sql.j2", source=source,
        columns=[{"expr": sql.column_ref(n), "numeric": numeric[n]} for n in names])).iloc[0]
    rows = int(stats["n_rows"])
    if rows == 0:
        raise ConfigError("the source has no rows to profile")
    outcome = {o.casefold() for o in outcomes}
    profiles: list[ColumnProfile] = []
    for i, name in enumerate(names):
        kind = types[name]
        distinct = int(stats[f"distinct_{i}"] or 0)
        nulls = float(stats[f"nulls_{i}"] or 0) / rows
        length = float(stats[f"length_{i}"] or 0.0)
        low = _number(stats.get(f"min_{i}")) if numeric[name] else None
        high = _number(stats.get(f"max_{i}")) if numeric[name] else None
        p = ColumnProfile(name, kind, distinct, nulls, length, [], None, False, "",
                          low=low, high=high)
        p.reason, p.proposed, p.numeric = _verdict(
            p, rows, max_values=max_values, unique_share=unique_share, text_length=text_length,
            outcome=name.casefold() in outcome)
        profiles.append(p)
    _time_parts(engine, source, profiles, types, time_column)
    candidates = [p for p in profiles if p.proposed]
    if candidates:
        _value_counts(engine, source, candidates)
    hierarchies = _dependencies(engine, source, [p for p in profiles if p.proposed or p.numeric],
                                [p for p in profiles if p.name.casefold() in outcome])
    _bands(engine, source, [p for p in profiles if p.numeric])
    ordered = sorted(profiles, key=lambda p: (not p.proposed, not p.numeric,
                                              -(p.entropy or 0.0) if p.proposed else 0.0, p.name))
    return Suggestion(ordered, hierarchies)


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _verdict(p: ColumnProfile, rows: int, *, max_values: int, unique_share: float,
             text_length: float, outcome: bool) -> tuple[str, bool, bool]:
    """(reason, proposed as a category, proposed as a numeric measurement) from the statistics."""
    kind, distinct = p.type, p.distinct
    is_numeric = any(t in kind for t in NUMERIC_TYPES)
    fractional = any(t in kind for t in FRACTIONAL_TYPES)
    many = distinct > max_values or distinct >= unique_share * rows
    if outcome:
        reason = ("the metric is computed from it: its own outcome would explain every change "
                  "(leakage)")
    elif any(t in kind for t in TIME_TYPES):
        reason = "timestamp/date: use it as the time column, or derive hour/weekday dimensions"
    elif distinct <= 1:
        reason = "constant: a single value cannot explain a change"
    elif "BOOL" in kind or (is_numeric and distinct == 2 and p.low == 0 and p.high == 1):
        reason = ("0/1 flag: looks like an outcome (a metric's numerator), not a dimension; add "
                  "it by hand if it describes the row rather than its result")
    elif many and not is_numeric and p.mean_length >= text_length:
        reason = (f"free text: {distinct:,} distinct values averaging {p.mean_length:.0f} "
                  "characters")
    elif many and (not is_numeric or (not fractional and distinct >= 0.9 * rows)):
        reason = f"identifier or near-unique key: {distinct:,} distinct values in {rows:,} rows"
    elif is_numeric and distinct > NUMERIC_LEVELS:
        reason = (f"numeric with {distinct:,} values: a measurement (a numeric dimension or a "
                  "driver), not a category")
        return reason, False, True
    else:
        return "", True, False
    return reason, False, False


def _time_parts(engine: Engine, source: Any, profiles: list[ColumnProfile],
                types: dict[str, str], time_column: str | None) -> None:
    """Mark the small-integer columns that are a part of a time column (its month, its day...):
    checked in the warehouse, row by row, not guessed from the name."""
    times = [n for n, t in types.items() if any(k in t for k in TIME_TYPES)
             and (time_column is None or n.casefold() == time_column.casefold())]
    pool = [p for p in profiles if (p.proposed or p.numeric) and p.low is not None
            and p.high is not None and p.low >= 0 and p.high <= 9999 and p.distinct <= 60]
    if not times or not pool:
        return
    checks = [(p, t, part) for p in pool for t in times for part in TIME_PARTS
              if not (part in ("hour", "minute") and "TIMESTAMP" not in types[t].upper())]
    if not checks:
        return
    found = engine.query(sql.template("profile_time_parts.sql.j2", source=source, checks=[
        {"column": sql.column_ref(p.name),
         "part": exp.Extract(this=exp.var(part.upper()), expression=sql.column_ref(t))}
        for p, t, part in checks])).iloc[0]
    marked: set[str] = set()
    for i, (p, t, part) in enumerate(checks):
        present = float(found[f"present_{i}"] or 0)
        if p.name in marked or present == 0:
            continue
        if float(found[f"equal_{i}"] or 0) >= TIME_PART_SHARE * present:
            marked.add(p.name)
            p.proposed = p.numeric = False
            p.reason = (
                f"the {part} of {t}: a baseline and a current period hold different values of "
                "it, so it would 'explain' every change" if TIME_PARTS[part] else
                f"the {part} of {t}: derive it from the time column instead "
                f"(`{part}({t})`), so it follows the column the periods are cut on")


def _value_counts(engine: Engine, source: Any, candidates: list[ColumnProfile]) -> None:
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


def _groups(p: ColumnProfile) -> int:
    """The values of a column as GROUP BY sees them (NULL is one more)."""
    return p.distinct + int(p.null_share > 0)


def _dependencies(engine: Engine, source: Any, candidates: list[ColumnProfile],
                  outcomes: list[ColumnProfile]) -> list[Hierarchy]:
    """From the number of distinct pairs (one GROUPING SETS pass): 1:1 duplicates among the
    candidates (one of them is left out), many-to-one hierarchies among them, and candidates
    that determine the metric's outcome (each of their values has one outcome value: the
    outcome is derived from them, e.g. an on-time flag from the arrival delay)."""
    columns = candidates + outcomes
    pairs = [(i, j) for i in range(len(candidates)) for j in range(i + 1, len(candidates))
             if not (candidates[i].numeric or candidates[j].numeric)]
    pairs += [(i, len(candidates) + k) for i in range(len(candidates))
              for k in range(len(outcomes)) if _groups(outcomes[k]) > 1]
    if not pairs:
        return []
    used = sorted({k for pair in pairs for k in pair})  # only columns some grouping set holds
    slot = {k: n for n, k in enumerate(used)}
    counts = engine.query(sql.template(
        "profile_pairs.sql.j2", source=source,
        columns=[sql.column_ref(columns[k].name) for k in used],
        pairs=[(slot[i], slot[j]) for i, j in pairs]))
    all_set = 2 ** len(used) - 1
    by_set = dict(zip(counts["rca_set"].astype(int), counts["n"].astype(int), strict=True))
    out: list[Hierarchy] = []
    for i, j in pairs:
        a, b = columns[i], columns[j]
        both = by_set.get(all_set - 2**slot[i] - 2**slot[j], 0)
        if j >= len(candidates):  # b is an outcome
            if both == _groups(a) and (a.proposed or a.numeric):
                a.proposed = a.numeric = False
                a.reason = (f"the metric's outcome {b.name} is a function of it (each of its "
                            f"{_groups(a):,} values has one {b.name}): derived from the outcome, "
                            "it would explain every change (leakage)")
            continue
        if not (a.proposed and b.proposed):
            continue
        if both == _groups(a) == _groups(b):
            # the same partition of the rows under two names: keep the shorter values (a code)
            keep, drop = (a, b) if a.mean_length <= b.mean_length else (b, a)
            drop.proposed = False
            drop.reason = (f"duplicates {keep.name} (1:1: each value of one has exactly one of "
                           "the other), which is proposed")
        elif both == _groups(a) and _groups(a) > _groups(b):
            out.append(Hierarchy(b.name, a.name))
        elif both == _groups(b) and _groups(b) > _groups(a):
            out.append(Hierarchy(a.name, b.name))
    named = {p.name: p for p in candidates}
    return [h for h in out if named[h.parent].proposed and named[h.child].proposed]


def _bands(engine: Engine, source: Any, numeric: list[ColumnProfile]) -> None:
    """Cut points for each numeric column at :data:`BAND_LEVELS` of its rows (pushed down)."""
    if not numeric:
        return
    found = engine.query(sql.template(
        "profile_quantiles.sql.j2", source=source,
        columns=[sql.column_ref(p.name) for p in numeric], levels=list(BAND_LEVELS))).iloc[0]
    for i, p in enumerate(numeric):
        cuts = sorted({_nice(v) for k in range(len(BAND_LEVELS))
                       if (v := _number(found[f"q{i}_{k}"])) is not None})
        p.cuts = tuple(c for c in cuts if p.low is None or c > p.low)
        if p.cuts:
            shown = " and ".join(_text(c) for c in p.cuts)
            p.reason += f"; bands cut at {shown} (a third of the rows each)"
        elif p.low is not None:
            p.reason += (f"; most rows hold its lowest value {_text(p.low)}: split there "
                         f"(<= {_text(p.low)} or above)")


def _nice(value: float) -> float:
    """A cut point rounded to two significant digits (502.7 -> 500, 0.434 -> 0.43)."""
    if value == 0:
        return 0.0
    digits = 1 - math.floor(math.log10(abs(value)))
    return round(value, digits)


def _text(value: float) -> str:
    return f"{value:g}"


def band_expression(p: ColumnProfile) -> str:
    """The derived dimension of a numeric column's bands, as SQL text for the project file:
    ``< a``, ``[a, b)``, ``>= b`` (or ``<= low`` / ``> low`` when most rows hold the lowest)."""
    col, cuts = p.name, p.cuts
    if not cuts:
        low = _text(p.low if p.low is not None else 0.0)
        return f"CASE WHEN {col} <= {low} THEN '<= {low}' WHEN {col} > {low} THEN '> {low}' END"
    parts = [f"WHEN {col} < {_text(cuts[0])} THEN '< {_text(cuts[0])}'"]
    for lo, hi in itertools.pairwise(cuts):
        parts.append(f"WHEN {col} < {_text(hi)} THEN '[{_text(lo)}, {_text(hi)})'")
    parts.append(f"WHEN {col} >= {_text(cuts[-1])} THEN '>= {_text(cuts[-1])}'")
    return "CASE " + " ".join(parts) + " END"


def yaml_block(found: Suggestion) -> str:
    """The proposed dimensions as YAML: categories by name, numeric measurements as numeric
    dimensions (their thresholds are found from the data in each investigation:
    localize.thresholds), the hierarchies found; the same measurements as possible drivers, the
    data's thirds as a fixed band, and derived-dimension ideas for time columns as comments."""
    columns, hierarchies = found.columns, found.hierarchies
    entries: list[Any] = [p.name for p in columns if p.proposed]
    numeric = [p for p in columns if p.numeric]
    entries += [{"name": p.name, "numeric": True} for p in numeric]
    block: dict[str, Any] = {"dimensions": entries}
    if hierarchies:
        block["hierarchies"] = [[h.parent, h.child] for h in hierarchies]
    text = yaml.safe_dump(block, sort_keys=False, allow_unicode=True, width=1000)
    if numeric:
        text += ("# a measure that can move with a cause is a driver instead (or too):\n"
                 f"# drivers: [{', '.join(p.name for p in numeric)}]\n")
    for p in numeric:
        if (p.cuts or p.low is not None) and p.name.isidentifier():
            text += f"# - {{name: {p.name}_band, expr: \"{band_expression(p)}\"}}  # fixed cuts\n"
    for p in columns:
        if p.proposed or p.numeric or not p.name.isidentifier():
            continue
        if "TIMESTAMP" in p.type.upper() or "DATETIME" in p.type.upper():
            text += (f"# - {{name: {p.name}_hour, expr: \"hour({p.name})\"}}\n"
                     f"# - {{name: {p.name}_weekend, expr: \"dayofweek({p.name}) IN (0, 6)\"}}\n")
        elif "DATE" in p.type.upper():
            text += f"# - {{name: {p.name}_weekend, expr: \"dayofweek({p.name}) IN (0, 6)\"}}\n"
    return text
