"""The causal checks' queries: one aggregate series per candidate segment over the analysis
window (segment_series.sql.j2) and the change events inside it (change_events.sql.j2)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube.plan import OTHER, CubePlan, template_dims
from warehouse_rca.errors import InputError
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import EventsSpec

Key = frozenset[tuple[str, str]]

STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
SEASON = {"hour": 24, "day": 7}  # points per natural season (hour of day, day of week)


# --------------------------------------------------------------------------- SQL (pushed down)


def analysis_window(baseline: Period, current: Period, grain: str, history: float) -> Period:
    """``[baseline.start - history * len(baseline), current.end)``, aligned down to a bucket."""
    step = STEPS[grain]
    start = baseline.start - (baseline.end_exclusive - baseline.start) * history
    start = min(start, baseline.start - 3 * step)  # at least a few points before the baseline
    if grain == "day":
        start = datetime.combine(start.date(), datetime.min.time())
    elif grain == "hour":
        start = start.replace(minute=0, second=0, microsecond=0)
    else:  # weeks start on Monday (DATE_TRUNC('week') in every supported warehouse)
        day = datetime.combine(start.date(), datetime.min.time())
        start = day - timedelta(days=day.weekday())
    return Period(start=start, end_exclusive=current.end_exclusive,
                  text=f"{start.isoformat()}:{current.end_exclusive.isoformat()}")


def series_groups(dim_sets: list[frozenset[int]]) -> list[tuple[int, ...]]:
    """The grouping sets the series query rolls rows up to: the largest dimension sets among the
    series (every other series' dimensions lie within one of them). A few small hash tables per
    scan instead of one over every named value's combination across all dimensions."""
    maximal = {d for d in dim_sets if not any(d < other for other in dim_sets)} or {frozenset()}
    return sorted((tuple(sorted(d)) for d in maximal), key=lambda g: (-len(g), g))


#: A dimension with more values than this (or a folded tail) at the first level has the values
#: no series names folded into '(other)' in the series scan (small hash tables); fewer, and its
#: values are grouped as they are (no per-row CASE).
FOLD_ABOVE = 64


def folded_dimensions(stats: pd.DataFrame, dims: tuple[str, ...]) -> set[str]:
    """The dimensions the series scan folds (:data:`FOLD_ABOVE`), read off the first level."""
    first = stats[stats["depth"] == 1]
    return {d for d in dims if d in first
            and ((first[d] == OTHER).any() or first[d].nunique() > FOLD_ABOVE)}


def series_sql(plan: CubePlan, segments: list[dict[str, str]], window: Period,
               fold: set[str] | None = None) -> sql.Template:
    """One aggregate query: per time bucket, the metric and each segment's numerator/denominator.
    ``fold``: the dimensions whose unnamed values are folded into '(other)' (None: all)."""
    if plan.time is None:
        raise InputError(f"metric {plan.metric.name!r}: causal checks need a time column")
    bucket = exp.TimestampTrunc(this=plan.time.copy(), unit=exp.var(plan.metric.grain.upper()))
    named: dict[str, set[str]] = {}
    for segment in segments:
        for name, val in segment.items():
            named.setdefault(name, set()).add(val)
    used = [d for d in plan.dimensions if d in named]  # the framework's order: stable SQL
    alias = {d: exp.to_identifier(f"d{i}") for i, d in enumerate(used)}
    groups = series_groups([frozenset(used.index(d) for d in segment) for segment in segments])
    all_bits = 2 ** len(used) - 1

    def set_id(segment: dict[str, str]) -> int:
        """The grouping set that holds the segment's rows once (its id as the GROUPING bits)."""
        own = {used.index(d) for d in segment}
        group = next(g for g in groups if own <= set(g))
        return all_bits - sum(2 ** i for i in group)

    folded = {d for d in used if fold is None or d in fold}
    keep = {d: sorted(named[d]) for d in used}

    def value(d: str, v: str) -> exp.Expr:
        """A folded dimension is compared by its value's code (_fold.sql.j2), others by value."""
        return exp.Literal.number(keep[d].index(v) + 1) if d in folded else sql.literal(v)

    def condition(segment: dict[str, str]) -> exp.Expr:
        parts = [exp.EQ(this=exp.column("rca_set"), expression=exp.Literal.number(set_id(segment)))]
        parts += [
            exp.EQ(this=exp.column(alias[d]), expression=value(d, v)) for d, v in segment.items()
        ]
        return exp.and_(*parts) if len(parts) > 1 else parts[0]

    return sql.template(
        "segment_series.sql.j2",
        bucket=bucket, num=plan.num, den=plan.den, source=plan.source, time=plan.time,
        filter=plan.condition, start=sql.literal(window.start),
        end=sql.literal(window.end_exclusive),
        dims=template_dims([plan.dim_exprs[plan.dimensions.index(d)] for d in used],
                           [alias[d] for d in used],
                           [keep[d] if d in folded else None for d in used]),
        groups=[[alias[used[i]] for i in g] for g in groups],
        total_set=set_id({}),  # every row once: the largest set
        series=[{"condition": condition(s), "num_alias": exp.to_identifier(f"s{i}_num"),
                 "den_alias": exp.to_identifier(f"s{i}_den")} for i, s in enumerate(segments)],
    )


def events_sql(events: EventsSpec, columns: list[str] | None, window: Period) -> sql.Template:
    """The change events inside ``window`` (one small query on the events table)."""
    def col(name: str) -> exp.Column:
        return sql.column_ref(
            sql.resolve_column(name, columns, what="events column") if columns else name
        )

    source: exp.Expr
    if events.table:
        source = sql.table_ref(events.table)
    else:
        assert events.sql is not None
        select = sql.parse_source_select(events.sql, f"{events.origin}: events, key 'sql'")
        source = exp.Subquery(this=select, alias=exp.TableAlias(this=sql.identifier("rca_events")))
    return sql.template(
        "change_events.sql.j2", source=source, time=col(events.time_column),
        description=col(events.description_column),
        dimension=col(events.dimension_column) if events.dimension_column else None,
        value=col(events.value_column) if events.value_column else None,
        start=sql.literal(window.start), end=sql.literal(window.end_exclusive),
    )


def _events_source(events: EventsSpec) -> exp.Expr:
    if events.table:
        return sql.table_ref(events.table)
    assert events.sql is not None
    select = sql.parse_source_select(events.sql, f"{events.origin}: events, key 'sql'")
    return exp.Subquery(this=select, alias=exp.TableAlias(this=sql.identifier("rca_events")))
