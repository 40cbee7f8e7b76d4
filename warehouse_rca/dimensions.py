"""The dimensional framework: discover it, structure it, and keep it current.

**Discover.** ``warehouse-rca dimensions suggest TABLE`` (or ``--metric NAME`` for a project
metric's source) profiles every column with two pushed-down queries (one scan for distinct counts,
NULL shares and text lengths; one GROUPING SETS pass for the value counts of the plausible columns)
and sorts the columns into proposed dimensions and rejected ones, each with a reason. The output
ends with a ready-to-paste YAML block for the project file.

Rules (in order): a timestamp or date is a time column, not a dimension; a column with one value is
constant; a fractional number with many values is a measure (bucket it as a derived dimension); a
column whose distinct values are most of the rows, or more than ``max_values``, is a key or
identifier (or free text, when its values are long strings); an integer with many values is a
measure; anything else is proposed, ranked by how evenly its values split the rows (normalised
entropy), so the most informative slices come first.

**Structure.** Per metric in the project file::

    metrics:
      conversion_rate:
        dimensions:
          - device
          - region
          - city
          - {name: price_tier,
             expr: "CASE WHEN price < 20 THEN 'low' WHEN price < 100 THEN 'mid' ELSE 'high' END"}
          - {name: weekend, expr: "dayofweek(session_start) IN (0, 6)", group: external}
        hierarchies: [[region, city]]            # broadest level first
        dimension_groups: {customer: [customer_type], operational: [device, app_version]}
        group_priority: {operational: 1.0, customer: 0.9}

* A *derived dimension* is a per-row SQL expression (DuckDB syntax, transpiled by sqlglot) checked
  against an allow-list (see ``sql.parse_dimension_expr``): CASE/IF, arithmetic, FLOOR/CEIL/ROUND,
  EXTRACT, hour/dayofweek/month/year, date_trunc, LOWER/UPPER/SUBSTRING/COALESCE, comparisons and
  IN. Aggregates, windows, subqueries and unknown functions are refused; errors name the metric
  and the key (``dimensions.price_tier``); unknown columns are caught against the catalog.
* A *hierarchy* lists levels from the broadest to the finest. After the search, a finding on a
  finer level is completed with its parent values (one small aggregate query over the named child
  values only), and a child and its parent are never reported as two causes: the one the search
  chose first is kept and the other is attached to it as ``related_causes`` (with its
  contribution, so nothing is hidden). The JSON of each cause carries its ``hierarchy`` path.
* *Dimension groups* (customer, product, operational, external, or any name) label each cause
  (``group``; a segment spanning groups gets ``a+b``) and the JSON lists ``findings_by_group``.
  ``group_priority`` (each in [0.5, 1], default 1) is a documented, mild prior: causes are
  ordered by ``|contribution| x priority`` (for a segment spanning groups, the highest), so a
  prior only reorders causes whose contributions are within a factor of two; it never adds or
  removes a cause.

**Keep current.** :func:`detect_drift` compares a metric's framework between a baseline and a
current period with one pushed-down query (``drift_values.sql.j2``): values that now take a
material share of the metric and had (almost) none before (a new app version, a new country), and
dimensions that have become constant. New columns of the source are found against the framework
recorded by the previous run (table ``dimension_frameworks``) and profiled, so the report says
whether each looks like a dimension. :func:`write_drift` records the framework used and the drift
found (table ``dimension_drift``), replacing a run's rows in one transaction.
``--include-new`` (``InvestigationOptions.extra_dimensions`` for the library) adds the new columns
that look like dimensions to that run's investigation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click
import pandas as pd
import yaml
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.config import MetricSpec, Period, load_project, load_target
from warehouse_rca.cube import OTHER, CubePlan, plan_cube, source_expression
from warehouse_rca.engines import connect
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, InputError, RcaError

if TYPE_CHECKING:
    from warehouse_rca.localize import Localization, RootCause

# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Framework:
    """A metric's validated framework keys (what :func:`parse_framework` returns to config)."""

    dimensions: tuple[str, ...]
    derived: dict[str, str]
    hierarchies: tuple[tuple[str, ...], ...]
    groups: dict[str, tuple[str, ...]]
    priority: dict[str, float]


class _AnyColumns(list):  # type: ignore[type-arg]
    """Spec validation happens before the catalog is known: every column name passes here and
    is checked against the source when the investigation plans its query."""

    def __contains__(self, item: object) -> bool:
        return True


MIN_PRIORITY = 0.5  # a prior below this would no longer be "mild": it could bury a large cause


def parse_framework(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> Framework:
    """Validate ``dimensions`` (names or ``{name, expr, group}``), ``hierarchies``,
    ``dimension_groups`` and ``group_priority`` of one metric; ``fail(key, why)`` builds the
    error naming the file, the metric and the key."""
    entries = raw.get("dimensions")
    if not isinstance(entries, list) or not entries:
        raise fail(
            "dimensions", "must be a non-empty list of column names or {name, expr} mappings"
        )
    names: list[str] = []
    derived: dict[str, str] = {}
    inline_groups: dict[str, list[str]] = {}
    for entry in entries:
        if isinstance(entry, str) and entry:
            names.append(entry)
            continue
        if not isinstance(entry, dict):
            raise fail(
                "dimensions", f"{entry!r} is neither a column name nor a {{name, expr}} mapping"
            )
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise fail("dimensions", f"derived dimension {entry!r} needs a 'name'")
        key = f"dimensions.{name}"
        unknown = set(entry) - {"name", "expr", "group"}
        if unknown:
            raise fail(key, f"unknown key {min(unknown)!r} (allowed: name, expr, group)")
        text = entry.get("expr")
        if not isinstance(text, str) or not text.strip():
            raise fail(
                key,
                "needs 'expr', a SQL expression such as "
                "\"CASE WHEN price < 20 THEN 'low' ELSE 'high' END\"",
            )
        try:
            sql.parse_dimension_expr(text, _AnyColumns(), "expr")
        except (ConfigError, InputError) as err:
            raise fail(key, str(err)) from None
        names.append(name)
        derived[name] = text
        if entry.get("group") is not None:
            if not isinstance(entry["group"], str) or not entry["group"]:
                raise fail(key, "'group' must be a group name")
            inline_groups.setdefault(entry["group"], []).append(name)
    known = set(names)

    hierarchies_raw = raw.get("hierarchies") or []
    if not isinstance(hierarchies_raw, list):
        raise fail(
            "hierarchies", "must be a list of level lists, broadest first, e.g. [[region, city]]"
        )
    hierarchies: list[tuple[str, ...]] = []
    parent_of: dict[str, str] = {}
    for levels in hierarchies_raw:
        if (
            not isinstance(levels, list)
            or len(levels) < 2
            or not all(isinstance(v, str) for v in levels)
        ):
            raise fail(
                "hierarchies", f"{levels!r} must list at least two dimensions, broadest first"
            )
        if len(set(levels)) != len(levels):
            raise fail("hierarchies", f"{levels!r} lists a level twice")
        for level in levels:
            if level not in known:
                raise fail("hierarchies", f"level {level!r} is not one of the metric's dimensions")
        for parent, child in itertools.pairwise(levels):
            if parent_of.get(child, parent) != parent:
                raise fail(
                    "hierarchies",
                    f"{child!r} has two parents ({parent_of[child]!r} and {parent!r})",
                )
            parent_of[child] = parent
        hierarchies.append(tuple(levels))

    groups_raw = raw.get("dimension_groups") or {}
    if not isinstance(groups_raw, dict):
        raise fail(
            "dimension_groups",
            "must map a group name to its dimensions, e.g. {customer: [plan]}",
        )
    groups: dict[str, list[str]] = {g: list(d) for g, d in inline_groups.items()}
    for group, members in groups_raw.items():
        if isinstance(members, str):
            members = [members]
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise fail("dimension_groups", f"group {group!r} must list dimension names")
        for member in members:
            if member not in known:
                raise fail(
                    "dimension_groups",
                    f"group {group!r}: {member!r} is not one of the metric's dimensions",
                )
        groups.setdefault(str(group), []).extend(
            m for m in members if m not in groups.get(str(group), [])
        )
    seen: dict[str, str] = {}
    for group, members in groups.items():
        for member in members:
            if member in seen and seen[member] != group:
                raise fail(
                    "dimension_groups",
                    f"{member!r} is in two groups ({seen[member]!r} and {group!r})",
                )
            seen[member] = group

    priority_raw = raw.get("group_priority") or {}
    if not isinstance(priority_raw, dict):
        raise fail("group_priority", "must map a group name to a number in [0.5, 1]")
    priority: dict[str, float] = {}
    for group, value in priority_raw.items():
        if str(group) not in groups:
            raise fail("group_priority", f"{group!r} is not a group of dimension_groups")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not MIN_PRIORITY <= value <= 1
        ):
            raise fail(
                "group_priority",
                f"{group!r}: {value!r} must be a number between {MIN_PRIORITY} and 1 "
                "(a mild prior: it reorders close causes, it cannot hide a large one)",
            )
        priority[str(group)] = float(value)
    return Framework(tuple(names), derived, tuple(hierarchies),
                     {g: tuple(m) for g, m in groups.items()}, priority)


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


# --------------------------------------------------------------------------- hierarchies and groups

#: A child value belongs to a parent when that parent holds at least this share of its rows
#: (a city name shared by two regions is left without a parent instead of guessing).
PARENT_SHARE = 0.95
Key = frozenset[tuple[str, str]]


@dataclass
class CauseContext:
    """What the framework adds to one reported cause (fields of its JSON)."""

    group: str | None = None
    hierarchy: dict[str, str] | None = None
    related: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "hierarchy": self.hierarchy, "related_causes": self.related}


@dataclass
class Arrangement:
    """The framework's view of an investigation's causes: groups, hierarchy paths, merges."""

    contexts: dict[Key, CauseContext] = field(default_factory=dict)
    groups_defined: bool = False

    def context(self, segment: dict[str, str]) -> CauseContext:
        return self.contexts.get(frozenset(segment.items()), CauseContext())


def group_of(metric: MetricSpec, dims: Sequence[str]) -> str | None:
    """The stakeholder group of a segment's dimensions: one name, ``a+b`` across groups, None
    when no group holds any of them."""
    member = {d: g for g, members in metric.dimension_groups.items() for d in members}
    groups = sorted({member[d] for d in dims if d in member})
    return "+".join(groups) if groups else None


def prior_of(metric: MetricSpec, dims: Sequence[str]) -> float:
    """The ranking prior of a segment: the highest priority of its groups, 1 without one."""
    member = {d: g for g, members in metric.dimension_groups.items() for d in members}
    values = [metric.group_priority.get(member[d], 1.0) for d in dims if d in member]
    return max(values) if values else 1.0


def hierarchy_paths(engine: Engine, plan: CubePlan, segments: Sequence[dict[str, str]]
                    ) -> tuple[dict[tuple[str, str], dict[str, str]], int]:
    """For each (level, value) of a hierarchy child named in ``segments``: its ancestors'
    values. One aggregate query per child level named, restricted to the values named."""
    metric = plan.metric
    paths: dict[tuple[str, str], dict[str, str]] = {}
    queries = 0
    for levels in metric.hierarchies:
        for depth in range(1, len(levels)):
            child = levels[depth]
            values = sorted({s[child] for s in segments if child in s and s[child] != OTHER})
            if not values:
                continue
            chain = levels[: depth + 1]
            exprs = [plan.dim_exprs[plan.dimensions.index(level)] for level in chain]
            frame = engine.query(sql.render(
                "profile_hierarchy.sql.j2", engine.DIALECT, source=plan.source,
                levels=[
                    {"expr": e, "alias": exp.to_identifier(f"h{i}")} for i, e in enumerate(exprs)
                ],
                child=exprs[-1], values=[sql.literal(v) for v in values], filter=plan.condition,
            ))
            queries += 1
            last = f"h{depth}"
            for value, rows in frame.groupby(last):
                rows = rows.assign(n=pd.to_numeric(rows["n"]).astype(float))
                path: dict[str, str] = {}
                for i, level in enumerate(chain[:-1]):
                    by_parent = rows.groupby(f"h{i}")["n"].sum()
                    if by_parent.max() >= PARENT_SHARE * by_parent.sum():
                        path[level] = str(by_parent.idxmax())
                paths[(child, str(value))] = path
    return paths, queries


def _completed(
    segment: dict[str, str], paths: dict[tuple[str, str], dict[str, str]]
) -> dict[str, str]:
    full = dict(segment)
    for dim, value in segment.items():
        for level, parent in paths.get((dim, value), {}).items():
            full.setdefault(level, parent)
    return full


def _path(
    metric: MetricSpec, segment: dict[str, str], full: dict[str, str]
) -> dict[str, str] | None:
    """The hierarchy path (broadest level first) of a segment on some hierarchy level."""
    for levels in metric.hierarchies:
        if any(level in segment for level in levels):
            return {level: full[level] for level in levels if level in full}
    return None


def arrange_causes(engine: Engine, plan: CubePlan, located: Localization
                   ) -> tuple[Localization, Arrangement, int]:
    """Apply the metric's hierarchies and groups to the causes the search chose.

    Returns the (possibly shortened and reordered) localization, each cause's context and the
    number of extra warehouse queries (one per hierarchy child level a cause names, else none).
    """
    metric = plan.metric
    causes: list[RootCause] = list(located.root_causes)
    arrangement = Arrangement(groups_defined=bool(metric.dimension_groups))
    queries = 0
    paths: dict[tuple[str, str], dict[str, str]] = {}
    if metric.hierarchies and causes:
        paths, queries = hierarchy_paths(engine, plan, [c.segment for c in causes])
    kept: list[RootCause] = []
    full: dict[int, dict[str, str]] = {}
    contexts: dict[int, CauseContext] = {}
    for cause in causes:
        mine = _completed(cause.segment, paths)
        items = set(mine.items())
        context = CauseContext(group=group_of(metric, list(cause.segment)),
                               hierarchy=_path(metric, cause.segment, mine))
        partner = next(
            (
                k for k in kept
                if k.segment != cause.segment
                and (items <= set(full[id(k)].items()) or set(full[id(k)].items()) <= items)
            ),
            None,
        )
        if partner is None:
            kept.append(cause)
            full[id(cause)], contexts[id(cause)] = mine, context
            continue
        # A parent and its child: report the one with the larger contribution (the parent when
        # the rest of it moved too, the child when it carries the change), attach the other.
        keep, drop = (
            (cause, partner) if abs(cause.explained_change) > abs(partner.explained_change)
            else (partner, cause)
        )
        if keep is cause:
            kept[kept.index(partner)] = cause
            full[id(cause)], contexts[id(cause)] = mine, context
            context.related.extend(contexts[id(partner)].related)
        keep_items = set(full[id(keep)].items())
        contexts[id(keep)].related.append({
            "segment": dict(drop.segment),
            "relation": (
                "parent" if set(_completed(drop.segment, paths).items()) < keep_items else "child"
            ),
            "contribution": float(drop.explained_change),
        })
    if metric.group_priority:
        # The documented mild prior: order by |contribution| x priority (stable for ties).
        kept.sort(key=lambda c: -abs(c.explained_change) * prior_of(metric, list(c.segment)))
    arrangement.contexts = {frozenset(c.segment.items()): contexts[id(c)] for c in kept}
    if len(kept) == len(causes) and kept == causes:
        return located, arrangement, queries
    message = located.message
    if len(kept) < len(causes):
        total = float(located.total["change"])
        explained = sum(c.explained_change for c in kept)
        message = (f"{len(kept)} root cause(s) explain {explained / total:.0%} of the change "
                   "(parent and child levels of a hierarchy reported once)."
                   if abs(total) > 1e-12 else f"{len(kept)} root cause(s) found.")
    return dataclasses.replace(located, root_causes=kept, message=message), arrangement, queries


def findings_by_group(doc: dict[str, Any]) -> dict[str, list[int]]:
    """Ranks of an investigation's root causes per stakeholder group (for reports)."""
    out: dict[str, list[int]] = {}
    for cause in doc.get("root_causes", []):
        out.setdefault(cause.get("group") or "ungrouped", []).append(cause["rank"])
    return out


# --------------------------------------------------------------------------- drift

DRIFT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("kind", "VARCHAR"),  # new_column | new_value | constant_dimension
    ("dimension", "VARCHAR"),
    ("value", "VARCHAR"),
    ("baseline_share", "DOUBLE"),
    ("current_share", "DOUBLE"),
    ("detail", "VARCHAR"),
    ("included", "BOOLEAN"),
    ("detected_at", "TIMESTAMP"),
)
FRAMEWORK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("recorded_at", "TIMESTAMP"),
    ("source_columns", "VARCHAR"),  # JSON list: the source's columns when the run looked
    ("dimensions", "VARCHAR"),  # JSON: dimensions, derived expressions, hierarchies, groups
)


@dataclass
class DriftItem:
    """One change of the framework: a new column, a new material value, a constant dimension."""

    kind: str
    dimension: str
    value: str | None = None
    baseline_share: float | None = None
    current_share: float | None = None
    detail: str = ""
    #: a new column that profiles as a dimension (``--include-new`` adds it to the run)
    candidate: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DriftReport:
    """What changed in a metric's framework between two periods (see :func:`detect_drift`)."""

    metric: str
    run_id: str
    baseline: Period
    current: Period
    source_columns: list[str]
    framework: dict[str, Any]
    items: list[DriftItem]
    previous_run: str | None = None
    include_new: bool = False
    queries: int = 0

    @property
    def new_dimensions(self) -> list[str]:
        """New source columns that look like dimensions: what ``--include-new`` adds."""
        return [i.dimension for i in self.items if i.kind == "new_column" and i.candidate]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "metric": self.metric,
            "periods": {"baseline": self.baseline.to_json(), "current": self.current.to_json()},
            "previous_run": self.previous_run,
            "framework": self.framework,
            "drift": [i.to_json() for i in self.items],
            "new_dimensions": self.new_dimensions,
            "included": self.new_dimensions if self.include_new else [],
            "queries": self.queries,
        }


def framework_of(metric: MetricSpec) -> dict[str, Any]:
    """The framework a run used, as recorded in ``dimension_frameworks``."""
    return {
        "dimensions": list(metric.dimensions),
        "derived": dict(metric.derived),
        "hierarchies": [list(h) for h in metric.hierarchies],
        "dimension_groups": {g: list(m) for g, m in metric.dimension_groups.items()},
    }


def drift_run_id(metric: MetricSpec, baseline: Period, current: Period) -> str:
    """Same question, same id: a rerun replaces its drift rows."""
    ask = {
        "drift": metric.name, "framework": framework_of(metric),
        "source": metric.table or metric.sql,
        "periods": [baseline.to_json(), current.to_json()],
    }
    return hashlib.sha256(json.dumps(ask, sort_keys=True).encode()).hexdigest()[:16]


def _tables(schema: str) -> dict[str, exp.Table]:
    return {name: exp.Table(this=sql.identifier(name), db=sql.identifier(schema))
            for name in ("dimension_drift", "dimension_frameworks")}


def previous_framework(
    engine: Engine, schema: str, metric: str, run_id: str
) -> tuple[str, list[str]] | None:
    """(run id, source columns) the latest other run of ``metric`` recorded; None if none did."""
    table = _tables(schema)["dimension_frameworks"]
    try:
        engine.columns_of(table)
    except InputError:
        return None  # nothing recorded yet
    frame = engine.query(sql.render("drift_framework_read.sql.j2", engine.DIALECT, table=table,
                                    metric=sql.literal(metric), run_id=sql.literal(run_id)))
    if frame.empty:
        return None
    return str(frame["run_id"].iloc[0]), list(json.loads(frame["source_columns"].iloc[0]))


def detect_drift(engine: Engine, metric: MetricSpec, baseline: Period, current: Period, *,
                 schema: str | None = None, min_share: float = 0.05, new_share: float = 0.005,
                 run_id: str | None = None, include_new: bool = False) -> DriftReport:
    """Find what the framework misses now: new material values, constant dimensions, new columns.

    ``min_share``: a value is material when it takes at least this share of the metric's weight
    (its denominator for ratio metrics, its measure for additive ones) in the current period;
    it is new when its baseline share was at most ``new_share``. New columns are judged against
    the framework recorded in ``schema`` by the previous run of the metric (none on a first run).
    """
    if not 0 < min_share < 1 or not 0 <= new_share < min_share:
        raise ConfigError("drift needs 0 < min_share < 1 and 0 <= new_share < min_share")
    if metric.time_column is None:
        raise ConfigError(
            f"{metric.where('time_column')}: drift compares two periods, so it needs a time column"
        )
    if baseline.overlaps(current):
        raise ConfigError(f"baseline {baseline.text} overlaps current {current.text}")
    run_id = run_id or drift_run_id(metric, baseline, current)
    source = source_expression(metric)
    types = engine.column_types(source)
    plan = plan_cube(metric, list(types), baseline=baseline, current=current)
    items: list[DriftItem] = []
    queries = 1
    frame = engine.query(sql.render(
        "drift_values.sql.j2", engine.DIALECT, source=plan.source,
        dims=[
            {"expr": e, "alias": exp.to_identifier(f"d{i}")} for i, e in enumerate(plan.dim_exprs)
        ],
        time=plan.time, weight=plan.den if plan.ratio else plan.num, filter=plan.condition,
        base_start=sql.literal(baseline.start), base_end=sql.literal(baseline.end_exclusive),
        cur_start=sql.literal(current.start), cur_end=sql.literal(current.end_exclusive),
        min_share=float(min_share), new_share=float(new_share),
    ))
    queries += 1
    all_set = 2 ** len(plan.dimensions) - 1
    what = "traffic" if plan.ratio else "the metric"
    for _, row in frame.iterrows():
        i = int((all_set - int(row["rca_set"])).bit_length() - 1)
        dim, value = plan.dimensions[i], str(row[f"d{i}"])
        base_share = float(row["base_share"]) if pd.notna(row["base_share"]) else 0.0
        cur_share = float(row["cur_share"]) if pd.notna(row["cur_share"]) else 0.0
        if int(row["cur_values"]) == 1 and int(row["base_values"]) > 1:
            items.append(DriftItem(
                "constant_dimension", dim, value, base_share, cur_share,
                f"{dim} had {int(row['base_values'])} values in the baseline and only "
                f"{value!r} in the current period: it can no longer explain a change",
            ))
        else:
            items.append(DriftItem("new_value", dim, value, base_share, cur_share,
                                   f"{dim} = {value!r} takes {cur_share:.1%} of {what} now, "
                                   f"{base_share:.1%} in the baseline"))
    previous = previous_framework(engine, schema, metric.name, run_id) if schema else None
    if previous is not None:
        used = {c.lower() for c in previous[1]}
        new_columns = [c for c in types if c.lower() not in used]
        if new_columns:
            for p in profile(engine, source, columns=new_columns):
                items.append(DriftItem(
                    "new_column", p.name, None, None, None,
                    ("looks like a dimension: " if p.proposed else "not a dimension: ") + p.reason,
                    candidate=p.proposed,
                ))
            queries += 2
    items.sort(key=lambda i: (i.kind, i.dimension, -(i.current_share or 0.0)))
    return DriftReport(metric=metric.name, run_id=run_id, baseline=baseline, current=current,
                       source_columns=list(types), framework=framework_of(metric), items=items,
                       previous_run=previous[0] if previous else None, include_new=include_new,
                       queries=queries)


def _ensure_drift_tables(engine: Engine, schema: str) -> None:
    tables = _tables(schema)
    specs = {"dimension_drift": DRIFT_COLUMNS, "dimension_frameworks": FRAMEWORK_COLUMNS}
    try:
        for name in specs:
            engine.columns_of(tables[name])
        return  # everything exists: no DDL, so a role with only INSERT/DELETE can write
    except InputError:
        pass
    with engine.transaction():
        for statement in sql.render_all(
            "drift_ddl.sql.j2", engine.DIALECT, schema=sql.identifier(schema),
            partition_by=engine.partition_column("run_id"),
            tables=[
                {
                    "name": tables[n],
                    "columns": [
                        {"name": sql.identifier(c), "type": exp.DataType.build(t)}
                        for c, t in spec
                    ],
                }
                for n, spec in specs.items()
            ],
        ):
            engine.execute(statement)


def write_drift(engine: Engine, schema: str, run_id: str, report: DriftReport) -> None:
    """Record the framework the run used and the drift found, replacing the run's earlier rows
    in one transaction (a partition overwrite per table where the engine has no DELETE)."""
    _ensure_drift_tables(engine, schema)
    tables = _tables(schema)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    included = set(report.new_dimensions) if report.include_new else set()
    drift_rows = [{
        "run_id": run_id, "metric": report.metric, "kind": i.kind, "dimension": i.dimension,
        "value": i.value, "baseline_share": i.baseline_share, "current_share": i.current_share,
        "detail": i.detail, "included": i.dimension in included and i.kind == "new_column",
        "detected_at": now,
    } for i in report.items]
    framework_rows = [{
        "run_id": run_id, "metric": report.metric, "recorded_at": now,
        "source_columns": json.dumps(report.source_columns),
        "dimensions": json.dumps(
            {**report.framework, "included": sorted(included)}, sort_keys=True
        ),
    }]
    with engine.transaction():  # a no-op where the engine overwrites partitions (each one atomic)
        engine.replace_rows(tables["dimension_drift"], DRIFT_COLUMNS, "run_id", run_id, drift_rows)
        engine.replace_rows(
            tables["dimension_frameworks"], FRAMEWORK_COLUMNS, "run_id", run_id, framework_rows
        )


def with_new_dimensions(metric: MetricSpec, report: DriftReport) -> MetricSpec:
    """The metric with the report's new dimension-like columns added, for this run only."""
    extra = tuple(d for d in report.new_dimensions if d not in metric.dimensions)
    return dataclasses.replace(metric, dimensions=metric.dimensions + extra) if extra else metric


@click.group("dimensions")
def dimensions_group() -> None:
    """Discover and maintain the dimensional framework."""


@dimensions_group.command("suggest")
@click.argument("table", required=False)
@click.option("--metric", help="Profile this project metric's source instead of TABLE.")
@click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False))
@click.option(
    "--profiles-dir", envvar="WAREHOUSE_RCA_PROFILES_DIR", type=click.Path(file_okay=False)
)
@click.option("--target", envvar="WAREHOUSE_RCA_TARGET")
@click.option(
    "--max-values", type=int, default=1000, show_default=True,
    help="More distinct values than this is a key, not a dimension.",
)
def suggest(table: str | None, metric: str | None, project: str | None, profiles_dir: str | None,
            target: str | None, max_values: int) -> None:
    """Profile TABLE's columns in the warehouse and propose dimensions, with reasons."""
    try:
        if bool(table) == bool(metric):
            raise ConfigError("give a TABLE or --metric NAME")
        source: exp.Expr
        if table:
            source = sql.table_ref(table)
        else:
            assert metric is not None  # exactly one of TABLE / --metric, checked above
            source = source_expression(load_project(project).metric(metric))
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


@dimensions_group.command("drift")
@click.argument("metric")
@click.option("--baseline", required=True, help="Baseline period START:END.")
@click.option("--current", required=True, help="Current period START:END.")
@click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False))
@click.option(
    "--profiles-dir", envvar="WAREHOUSE_RCA_PROFILES_DIR", type=click.Path(file_okay=False)
)
@click.option("--target", envvar="WAREHOUSE_RCA_TARGET")
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
def drift(metric: str, baseline: str, current: str, project: str | None, profiles_dir: str | None,
          target: str | None, min_share: float, include_new: bool, write: bool,
          findings_schema: str | None, output: str) -> None:
    """Report what METRIC's dimensional framework misses now: new columns, new values that take a
    material share of the metric, dimensions that became constant."""
    try:
        loaded = load_project(project)
        spec = loaded.metric(metric)
        base = Period.parse(baseline, option="--baseline")
        cur = Period.parse(current, option="--current")
        engine = connect(load_target(profiles_dir, target))
        investigation = None
        try:
            schema = findings_schema or loaded.findings_schema or engine.findings_schema
            report = detect_drift(engine, spec, base, cur, schema=schema, min_share=min_share,
                                  include_new=include_new)
            if write:
                write_drift(engine, schema, report.run_id, report)
            if include_new:
                from warehouse_rca.investigate import InvestigationOptions, investigate

                investigation = investigate(
                    engine, spec, baseline=base, current=cur,
                    options=InvestigationOptions(extra_dimensions=tuple(report.new_dimensions)),
                )
        finally:
            engine.close()
    except RcaError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
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
        click.echo(f"  {item.kind}: {item.detail}")
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
            click.echo(f"  {cause['rank']}. {cause['narrative']}")


commands = [dimensions_group]
