"""Stage 1, in the warehouse: one GROUPING SETS pass that returns the compact cube.

``plan_cube`` validates a metric against the source's catalog and turns it into sqlglot fragments;
``cube_sql`` renders ``sql_templates/cube.sql.j2`` for any dialect; ``fetch_cube`` runs it and
labels the result. Python never sees a fact row: the result has at most a few hundred rows per
dimension combination, whatever the size of the table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube.predicates import threshold_condition
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec

#: Columns of the cube frame besides the dimensions. ``num``/``den`` are the metric's numerator and
#: denominator (for additive metrics ``num`` is the measure and ``den`` the row count);
#: ``nn``/``dd``/``nd`` are sums of squares and cross-products, for variances.
COMPONENTS = (
    "base_num", "cur_num", "base_den", "cur_den", "base_rows", "cur_rows",
    "base_nn", "cur_nn", "base_dd", "cur_dd", "base_nd", "cur_nd",
)
#: Day-cluster moments of each period, in the first level's cube only (``cube_sql(cluster=True)``):
#: sums over the baseline's days of each segment's day sums squared (``cnn``, ``cdd``), multiplied
#: (``cnd``) and multiplied by the day's totals (``cdt`` for the denominator, ``cnt`` for the
#: numerator), and the days it has rows on. stats.design_effects reads them.
#: Rows left out because a measure value is NaN or infinite, per side (period mode's cube).
NONFINITE_COUNTS = ("base_nonfinite", "cur_nonfinite")
CLUSTER_COMPONENTS = tuple(f"{side}_{k}" for side in ("base", "cur")
                           for k in ("cnn", "cdd", "cnd", "cdt", "cnt", "days"))
SOURCE_ALIAS = "rca_source"
#: The folded tail of a dimension (cube.sql.j2): not a real value, so no filter reproduces it.
OTHER = sql.OTHER_LABEL


@dataclass(frozen=True)
class CubePlan:
    """Everything the cube template needs, as sqlglot trees, plus what Python needs to read it."""

    metric: MetricSpec
    dimensions: tuple[str, ...]
    source: exp.Expr
    dim_exprs: tuple[exp.Expr, ...]
    num: exp.Expr
    den: exp.Expr
    base_num: exp.Expr | None
    base_den: exp.Expr | None
    time: exp.Expr | None
    #: the rows compared: the metric's filters and ``finite`` (every query but the cube's own)
    condition: exp.Expr | None
    baseline: Period | None
    current: Period | None
    sets: tuple[tuple[int, ...], ...]
    min_support: float
    #: Baseline-to-current length ratio for additive metrics (a 4-week baseline vs a 1-week
    #: current period compares weekly averages). Ratios need no scaling.
    scale: float = 1.0
    #: Per dimension, the values a later search level keeps (the rest is folded into '(other)'
    #: in the scan); None: every value. Set by search.level_wise, never by the user.
    keep: tuple[tuple[str, ...] | None, ...] | None = None
    #: The metric's own filters (``condition`` without ``finite``).
    filters: exp.Expr | None = None
    #: A row whose measure values are all finite or NULL (NaN and infinities are left out of the
    #: comparison like rows a filter drops; the cube counts them per side instead: ``*_nonfinite``).
    finite: exp.Expr | None = None

    @property
    def ratio(self) -> bool:
        return self.metric.kind == "ratio"

    @property
    def mode(self) -> str:
        return "expected" if self.base_num is not None else "periods"


def grouping_sets(n_dims: int, max_depth: int) -> tuple[tuple[int, ...], ...]:
    """Every combination of up to ``max_depth`` dimensions, the empty set (the total) first.

    >>> grouping_sets(3, 2)
    ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2))
    """
    depth = max(0, min(max_depth, n_dims))
    return tuple(
        combo for k in range(depth + 1) for combo in itertools.combinations(range(n_dims), k)
    )


def source_expression(metric: MetricSpec) -> exp.Expr:
    if metric.table:
        return sql.table_ref(metric.table)
    assert metric.sql is not None
    select = sql.parse_source_select(metric.sql, metric.where("sql"))
    return exp.Subquery(this=select, alias=exp.TableAlias(this=sql.identifier(SOURCE_ALIAS)))


def plan_cube(
    metric: MetricSpec,
    columns: Sequence[str] | None,
    *,
    baseline: Period | None,
    current: Period | None,
    max_depth: int = 3,
    min_support: float = 0.005,
    sets: Sequence[tuple[int, ...]] | None = None,
    baseline_scale: float | None = None,
) -> CubePlan:
    """Validate ``metric`` against the source's ``columns`` (None: dry run, names taken as given).

    Additive metrics compare the current period with the baseline scaled by ``baseline_scale``
    (default: the ratio of the periods' lengths); a forecast sets it so the baseline's total is
    the forecast (monitor: the detector's expected value, with its trend and seasonality)."""
    if max_depth < 1:
        raise ConfigError("--max-depth must be at least 1")
    if not 0 <= min_support < 1:
        raise ConfigError("--min-support must be a share between 0 and 1")

    def col(name: str, key: str) -> exp.Column:
        if columns is None:
            return sql.column_ref(name)
        try:
            return sql.column_ref(sql.resolve_column(name, columns))
        except InputError as err:
            raise InputError(f"{metric.where(key)}: {err}") from None

    cols = list(columns) if columns is not None else None

    def measure(text: str, key: str) -> exp.Expr:
        if cols is None:
            return sql.parse_row_measure(text, _AnyColumns(), metric.where(key))
        return sql.parse_row_measure(text, cols, metric.where(key))

    dims = tuple(metric.dimensions)

    def dimension(name: str) -> exp.Expr:
        # A derived dimension is its validated expression (buckets, date parts, CASE mappings:
        # see warehouse_rca.dimensions); any other dimension is a column of the source.
        if name not in metric.derived:
            return col(name, "dimensions")
        where = metric.where(f"dimensions.{name}")
        try:
            return sql.parse_dimension_expr(
                metric.derived[name], cols if cols is not None else _AnyColumns(), where
            )
        except InputError as err:
            raise InputError(f"{where}: {err}") from None

    dim_exprs = tuple(dimension(d) for d in dims)
    expected_mode = metric.expected_column is not None
    if metric.kind == "ratio":
        assert metric.numerator and metric.denominator
        num = measure(metric.numerator, "numerator")
        den = measure(metric.denominator, "denominator")
    else:
        assert metric.measure
        num, den = measure(metric.measure, "measure"), exp.Literal.number(1)
    base_num = base_den = None
    if expected_mode:
        if metric.kind == "ratio":
            raise ConfigError(f"{metric.where('expected_column')}: "
                              "expected-vs-actual mode is for additive metrics")
        assert metric.actual_column and metric.expected_column
        num = col(metric.actual_column, "actual_column")
        base_num = col(metric.expected_column, "expected_column")
        base_den = exp.Literal.number(1)
    time = col(metric.time_column, "time_column") if metric.time_column else None
    if not expected_mode:
        if baseline is None or current is None:
            raise ConfigError("both --baseline and --current periods are required")
        if baseline.overlaps(current):
            raise ConfigError(f"baseline {baseline.text} overlaps current {current.text}")
    filters = [
        sql.parse_condition(f, cols if cols is not None else _AnyColumns(), metric.where("filters"))
        for f in metric.filters
    ]
    if expected_mode and current is not None and time is not None:
        filters.append(
            exp.and_(
                exp.GTE(this=time.copy(), expression=sql.literal(current.start)),
                exp.LT(this=time.copy(), expression=sql.literal(current.end_exclusive)),
            )
        )
    scale = 1.0
    if not expected_mode and metric.kind == "additive":
        assert baseline is not None and current is not None
        scale = (current.seconds / baseline.seconds if baseline_scale is None
                 else float(baseline_scale))
        if not math.isfinite(scale) or scale <= 0:
            raise InputError(f"metric {metric.name!r}: "
                             f"the baseline scale must be a positive number, not {scale}")
    finite = finite_condition(num, den, base_num, base_den)
    user_filters = sql.and_all(filters)
    return CubePlan(
        metric=metric,
        dimensions=dims,
        source=source_expression(metric),
        dim_exprs=dim_exprs,
        num=num,
        den=den,
        base_num=base_num,
        base_den=base_den,
        time=time,
        condition=sql.and_all([*filters, finite] if finite is not None else filters),
        filters=user_filters,
        finite=finite,
        baseline=baseline,
        current=current,
        sets=tuple(sets) if sets is not None else grouping_sets(len(dims), max_depth),
        min_support=min_support,
        scale=scale,
    )


class _AnyColumns(list):
    """Dry run: accept every column name as written."""

    def __contains__(self, item: object) -> bool:
        return True


def _alias(i: int) -> exp.Identifier:
    return exp.to_identifier(f"d{i}")


def template_dims(exprs: Sequence[exp.Expr], aliases: Sequence[exp.Identifier],
                  keep: Sequence[Sequence[str] | None] | None = None) -> list[dict[str, object]]:
    """Dimensions as the templates take them: the expression and its alias; for a dimension
    folded to ``keep`` labels (``_fold.sql.j2``), the labels, the values they stand for
    (None for '(null)') and the code NULL gets (0: NULL is not kept)."""
    out: list[dict[str, object]] = []
    for i, (e, alias) in enumerate(zip(exprs, aliases, strict=True)):
        labels = keep[i] if keep is not None else None
        d: dict[str, object] = {"expr": e, "alias": alias, "keep": None}
        if labels is not None:
            raw = [sql.label_value(v) for v in labels]
            d.update(keep=[sql.literal(v) for v in labels],
                     raw=[None if v is None else sql.literal(v) for v in raw],
                     null_code=raw.index(None) + 1 if None in raw else 0)
        out.append(d)
    return out


def segment_condition(plan: CubePlan, segment: dict[str, str]) -> exp.Expr | None:
    """The rows of ``segment``: each dimension's value compared with the real value its label
    stands for (``expr IS NULL`` for '(null)'; sql.label_matches); None for the empty segment."""
    parts = []
    for name, value in segment.items():
        expr = plan.dim_exprs[plan.dimensions.index(name)].copy()
        cuts = plan.metric.thresholds.get(name)
        direct = threshold_condition(expr, cuts, value) if cuts else None
        parts.append(direct if direct is not None
                     else sql.label_matches(exp.cast(expr, exp.DataType.Type.VARCHAR), value))
    return sql.and_all(parts)


def period_bounds(plan: CubePlan) -> dict[str, exp.Expr]:
    """The two periods' bounds as template literals (none in expected-vs-actual mode)."""
    if plan.mode != "periods":
        return {}
    assert plan.baseline and plan.current and plan.time is not None
    return {
        "base_start": sql.literal(plan.baseline.start),
        "base_end": sql.literal(plan.baseline.end_exclusive),
        "cur_start": sql.literal(plan.current.start),
        "cur_end": sql.literal(plan.current.end_exclusive),
    }


def _is_one(expression: exp.Expr) -> bool:
    """The literal 1 (a denominator of COUNT(*), or an additive measure's row count)."""
    while isinstance(expression, (exp.Cast, exp.Paren)):
        expression = expression.this
    return (isinstance(expression, exp.Literal) and not expression.is_string
            and float(expression.this) == 1.0)


def finite_condition(*values: exp.Expr | None) -> exp.Expr | None:
    """True for a row whose per-row measure values are each finite or NULL: ``v - v = 0`` is
    false for NaN and +-infinity on every engine (and NULL for NULL, hence the IS NULL); constants
    (``count(*)``'s 1) need no check.

    >>> finite_condition(exp.column("x"), exp.Literal.number(1)).sql()
    '(CAST((x) AS DOUBLE) - CAST((x) AS DOUBLE) = 0 OR x IS NULL)'
    """
    def double(v: exp.Expr) -> exp.Expr:  # as the templates sum it (booleans have no minus)
        return exp.cast(exp.Paren(this=v.copy()), exp.DataType.Type.DOUBLE)

    checks = [
        exp.Paren(this=exp.or_(
            exp.EQ(this=exp.Sub(this=double(v), expression=double(v)),
                   expression=exp.Literal.number(0)),
            exp.Is(this=v.copy(), expression=exp.Null()),
        ))
        for v in values if v is not None and not isinstance(v, exp.Literal)
    ]
    return sql.and_all(checks)


def cube_sql(plan: CubePlan, *, preaggregate: bool = True,
             cluster: bool = False) -> sql.Template:
    """The single-pass cube query. ``preaggregate``: roll rows up to leaves (the
    finest combination of the dimensions) before the grouping sets; worth it when sets combine
    dimensions, not for single-dimension sets. ``cluster`` (period mode): also return each
    segment's day-to-day variation inside the baseline (:data:`CLUSTER_COMPONENTS`), from the
    same scan (the day is one more grouping key)."""
    periods = period_bounds(plan)
    cluster = cluster and plan.mode == "periods" and plan.time is not None
    keep = plan.keep or (None,) * len(plan.dim_exprs)
    return sql.template(
        "cube.sql.j2",
        expected=plan.mode == "expected",
        ratio=plan.ratio,
        source=plan.source,
        dims=template_dims(plan.dim_exprs, [_alias(i) for i in range(len(plan.dim_exprs))],
                           keep),
        preaggregate=preaggregate,
        time=plan.time,
        num=plan.num,
        den=plan.den,
        unit_den=_is_one(plan.den),
        base_num=plan.base_num,
        base_den=plan.base_den,
        # Period mode counts the rows with non-finite measures per side instead of dropping them.
        filter=plan.filters if plan.mode == "periods" else plan.condition,
        finite=plan.finite if plan.mode == "periods" else None,
        sets=[[_alias(i) for i in s] for s in plan.sets],
        scale=float(plan.scale),
        min_support=float(plan.min_support),
        all_set=2 ** len(plan.dim_exprs) - 1,
        cluster=cluster,
        **periods,
    )


@dataclass
class Cube:
    """The compact result: one row per segment (dimension -> value, None where rolled up)."""

    frame: pd.DataFrame
    dimensions: tuple[str, ...]
    kind: str
    scale: float
    #: "periods" (two periods of one table) or "expected" (expected and actual columns)
    mode: str = "periods"
    queries: int = 1
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def total(self) -> pd.Series:
        return self.frame.loc[self.frame["depth"] == 0].iloc[0]


def label_cube(raw: pd.DataFrame, plan: CubePlan) -> Cube:
    """Turn the warehouse result into a frame keyed by the user's dimension names."""
    n = len(plan.dimensions)
    sets = raw["rca_set"].astype("int64").to_numpy()
    columns: dict[str, np.ndarray] = {}
    depth = np.zeros(len(raw), dtype="int64")
    for i, name in enumerate(plan.dimensions):
        rolled = (sets >> i) & 1 == 1
        values = raw[f"d{i}"].to_numpy(dtype="object", na_value=None).copy()  # writable
        values[rolled] = None
        columns[name] = values
        depth += ~rolled
    columns["depth"] = depth
    for c in COMPONENTS + CLUSTER_COMPONENTS + NONFINITE_COUNTS:
        if c in raw:
            x = pd.to_numeric(raw[c]).to_numpy(dtype="float64", na_value=np.nan)
            columns[c] = np.where(np.isnan(x), 0.0, x)
    frame = pd.DataFrame(columns)
    frame = frame.sort_values(["depth"], kind="stable").reset_index(drop=True)
    if not (frame["depth"] == 0).any() or n == 0:
        raise InputError(f"metric {plan.metric.name!r}: the warehouse returned no total row")
    return Cube(frame=frame, dimensions=plan.dimensions, kind=plan.metric.kind, scale=plan.scale,
                mode=plan.mode)
