"""Level-wise search: find root causes among every dimension combination without sending the
combinatorial lattice to the warehouse at once.

Ratio metrics (:func:`level_wise`): single dimensions first, then the combinations of the
dimensions with evidence, with the values that hardly deviate from a uniform move folded away in
the scan.
Additive metrics (:func:`leaf_search`): the leaf-evidence cube, level by level below the depth
whose lattice fits in one query. For both, when a chosen cause sits at the
frontier (its depth is the deepest searched and more dimensions exist), it may be an
under-specified parent of a deeper cause. Apriori-style, one more pushed-down query per level asks
only for the children of the frontier causes (their dimensions plus one more), restricted to their
rows; the children join the cube and the selection runs again. Only surviving candidates are ever
expanded, so 20 dimensions cost a handful of small grouping sets per level, not all 2^20.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube.plan import (
    OTHER,
    Cube,
    CubePlan,
    cube_sql,
    label_cube,
    period_bounds,
    segment_condition,
    template_dims,
)
from warehouse_rca.engines.base import Engine
from warehouse_rca.localize.leaves import LEAF_COLUMNS, localize_leaves
from warehouse_rca.localize.segments import Localization, LocalizeSettings, localize
from warehouse_rca.localize.thresholds import split_numeric
from warehouse_rca.stats import DEFF_COLUMNS, describe, segment_stats


@dataclass
class Budget:
    """What one investigation may spend: warehouse queries and seconds (None: no limit).

    The catalog probe and the first pass always run; every further query (a deeper level, the
    causal checks' series) asks :meth:`allows` first, and what the budget stops is listed in
    ``skipped`` (and in the JSON) so a partial answer is never mistaken for a complete one."""

    max_queries: int | None = None
    seconds: float | None = None
    queries: int = 0
    skipped: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def spend(self, queries: int = 1) -> None:
        self.queries += queries

    def allows(self, what: str) -> bool:
        over = (
            f"query budget of {self.max_queries} spent" if self.max_queries is not None
            and self.queries >= self.max_queries
            else f"time budget of {self.seconds:g} s spent" if self.seconds is not None
            and time.perf_counter() - self.started >= self.seconds
            else None
        )
        if over is not None:
            self.skipped.append(f"{what} ({over})")
        return over is None

    def to_json(self) -> dict[str, object]:
        return {"max_queries": self.max_queries, "seconds": self.seconds, "queries": self.queries,
                "skipped": list(self.skipped)}


def _segments_condition(plan: CubePlan, segments: list[dict[str, str]]) -> exp.Expr:
    """Rows of any of ``segments`` (non-empty), compared the way the cube labels them."""
    alternatives = [
        c for segment in segments if (c := segment_condition(plan, segment)) is not None
    ]
    return exp.or_(*alternatives) if len(alternatives) > 1 else alternatives[0]


def _within(frame: pd.DataFrame, dimensions: tuple[str, ...],
            segments: list[dict[str, str]]) -> pd.Series:
    """Rows of a restricted deeper level that refine one of ``segments``: only those are complete.

    A deeper level reads the rows of the segments it refines only, yet its grouping sets also form
    groups that merely overlap them (a frontier cause ``a=1`` makes a set ``(b, c)`` whose groups
    hold just the rows with ``a=1``): those are partial and must never join the cube."""
    keep = pd.Series(False, index=frame.index)
    for segment in segments:
        match = pd.Series(True, index=frame.index)
        for d, v in segment.items():
            match &= frame[d].astype("object").eq(v)
        keep |= match
    return keep


def _children_sets(plan: CubePlan, segments: list[dict[str, str]]) -> tuple[tuple[int, ...], ...]:
    sets: set[tuple[int, ...]] = {()}
    for segment in segments:
        own = {plan.dimensions.index(d) for d in segment}
        for extra in range(len(plan.dimensions)):
            if extra not in own:
                sets.add(tuple(sorted(own | {extra})))
    return tuple(sorted(sets, key=lambda s: (len(s), s)))


def deepen(
    engine: Engine,
    plan: CubePlan,
    cube: Cube,
    located: Localization,
    settings: LocalizeSettings,
    *,
    max_levels: int | None = None,
    budget: Budget | None = None,
) -> tuple[Cube, Localization, int]:
    """Expand frontier causes level by level; returns the grown cube, its localization and the
    number of extra queries issued."""
    run = engine.query
    queries = 0
    depth = max((len(s) for s in plan.sets), default=0)
    limit = (
        len(plan.dimensions) if max_levels is None
        else min(len(plan.dimensions), depth + max_levels)
    )
    while depth < limit:
        frontier = [c.segment for c in located.root_causes if len(c.segment) == depth]
        if not frontier or (budget is not None and not budget.allows(f"search level {depth + 1}")):
            break
        condition = _segments_condition(plan, frontier)
        # Both row restrictions: a period cube reads `filters` (it counts non-finite rows itself),
        # every other query `condition`; without it here the level scanned every row.
        deeper = dataclasses.replace(
            plan,
            sets=_children_sets(plan, frontier),
            condition=sql.and_all([c for c in (plan.condition, condition) if c is not None]),
            filters=sql.and_all([c for c in (plan.filters, condition) if c is not None]),
        )
        raw = run(cube_sql(deeper))
        queries += 1
        if budget is not None:
            budget.spend()
        children = label_cube(raw, deeper).frame
        children = children[(children["depth"] > depth)
                            & _within(children, plan.dimensions, frontier)].reset_index(drop=True)
        if children.empty:
            break
        grown = pd.concat([cube.frame, children], ignore_index=True)
        cube = dataclasses.replace(cube, frame=grown, queries=cube.queries + 1)
        located = localize(cube, settings)
        depth += 1
    return cube, located, queries


# --------------------------------------------------------------------------- leaf-evidence search

#: How many leaves noise alone may push past the cutoff (RiskLoc removes the 5 most extreme
#: deviations before reading the tail, i.e. takes the 6th).
K_EXTREME = 6
#: The noise's reach (sql_templates/leaf_cube.sql.j2): the deviation noise passes anywhere among
#: the leaves only with this probability; a lone abnormal leaf must pass it to count as a cause.
REACH_ALPHA = 0.05
#: Grouping sets a single query may hold before the search goes level-wise (2^8: every
#: combination of up to 8 dimensions in one pass).
MAX_SETS = 256
#: Fewer live leaves than this and the tails cannot measure the noise (K_EXTREME per side is most
#: of them): the segment statistics of the classic path judge such small cubes instead.
MIN_LEAVES = 4 * K_EXTREME


def leaf_depth(n_dims: int, max_sets: int = MAX_SETS) -> int:
    """The deepest level whose complete lattice fits in ``max_sets`` grouping sets.

    >>> leaf_depth(4), leaf_depth(7), leaf_depth(20)
    (4, 7, 2)
    """
    from math import comb

    depth, count = 0, 1
    while depth < n_dims and count + comb(n_dims, depth + 1) <= max_sets:
        depth += 1
        count += comb(n_dims, depth)
    return max(depth, 1)


def _set_id(plan: CubePlan, s: tuple[int, ...]) -> int:
    return 2 ** len(plan.dimensions) - 1 - sum(2**i for i in s)


def leaf_cube_sql(plan: CubePlan, frontier: tuple[tuple[int, ...], ...] = (),
                  within: list[dict[str, str]] | None = None) -> sql.Template:
    """The leaf-evidence cube (sql_templates/leaf_cube.sql.j2) for an additive metric."""
    periods = period_bounds(plan)
    return sql.template(
        "leaf_cube.sql.j2",
        expected=plan.mode == "expected",
        source=plan.source,
        dims=template_dims(plan.dim_exprs,
                           [exp.to_identifier(f"d{i}") for i in range(len(plan.dim_exprs))]),
        time=plan.time,
        num=plan.num,
        base_num=plan.base_num,
        filter=plan.condition,
        sets=[[exp.to_identifier(f"d{i}") for i in s] for s in plan.sets],
        frontier=[_set_id(plan, s) for s in frontier],
        # Deeper levels keep only the leaves of the segments refined, *after* the cutoff was
        # taken over every leaf (a cutoff from a subset would judge noise by another scale).
        within=_alias_condition(plan, within) if within else None,
        scale=float(plan.scale),
        k_extreme=K_EXTREME,
        reach_alpha=REACH_ALPHA,
        all_set=2 ** len(plan.dim_exprs) - 1,
        **periods,
    )


def _alias_of(plan: CubePlan, dimension: str) -> exp.Identifier:
    return exp.to_identifier(f"d{plan.dimensions.index(dimension)}")


def _alias_condition(plan: CubePlan, segments: list[dict[str, str]]) -> exp.Expr:
    """Leaves of any of ``segments``, on the dimension values of the leaf CTE (labelled only
    once grouped: sql.label_matches)."""
    alternatives = [
        exp.and_(*[sql.label_matches(exp.column(_alias_of(plan, d)), v) for d, v in seg.items()])
        for seg in segments
    ]
    return exp.or_(*alternatives) if len(alternatives) > 1 else alternatives[0]


def _label_leaf_cube(raw: pd.DataFrame, plan: CubePlan) -> Cube:
    """label_cube plus the leaf-evidence columns (kept aligned by pre-sorting on depth)."""
    n = len(plan.dimensions)
    sets = raw["rca_set"].astype("int64").to_numpy()
    depth = n - np.array([int(s).bit_count() for s in sets], dtype="int64")
    raw = raw.iloc[np.argsort(depth, kind="stable")].reset_index(drop=True)
    cube = label_cube(raw, plan)
    for c in (*LEAF_COLUMNS, "side"):
        cube.frame[c] = pd.to_numeric(raw[c]).astype("float64").fillna(0.0).to_numpy()
    return cube


def leaf_search(engine: Engine, plan: CubePlan, settings: LocalizeSettings,
                            check: Callable[[Cube], None] | None = None,
                budget: Budget | None = None,
                max_depth: int | None = None) -> tuple[Cube, Localization, int] | None:
    """Level-wise risk-and-ripple search for an additive metric (None: too few leaves for it).

    The first query holds every combination up to :func:`leaf_depth` (all of them for up to 8
    dimensions). Beyond that, apriori-style, each further level is one more query whose grouping
    sets only extend the frontier segments that still hold unexplained abnormal leaves; segments
    without an abnormal leaf never come back, so 20 dimensions cost a bounded number of rows.
    """
    run = engine.query
    n = len(plan.dimensions)
    limit = n if max_depth is None else max(1, min(n, max_depth))  # --max-depth is a cap
    depth = min(leaf_depth(n), limit)
    sets = grouping_sets_upto(n, depth)
    frontier = tuple(s for s in sets if len(s) == depth) if depth < limit else ()
    plan = dataclasses.replace(plan, sets=sets)
    cube = _label_leaf_cube(run(leaf_cube_sql(plan, frontier)), plan)
    if budget is not None:
        budget.spend()
    if check is not None:
        check(cube)
    root = cube.frame[cube.frame["depth"] == 0]
    if root.empty or float(root["dev_n"].iloc[0]) < MIN_LEAVES:
        return None
    located = localize_leaves(cube, alpha=settings.alpha)
    queries = 1
    while depth < limit:
        # Frontier segments whose abnormal leaves the chosen causes do not explain: refine them.
        frame = cube.frame
        chosen = [frozenset(c.segment.items()) for c in located.root_causes]
        grow = []
        for _, row in frame[(frame["depth"] == depth) & (frame["ab_leaves"] > 0)].iterrows():
            seg = {d: row[d] for d in plan.dimensions if row[d] is not None and not pd.isna(row[d])}
            if not any(c <= frozenset(seg.items()) for c in chosen):
                grow.append((float(row["ab_w"]), seg))
        if not grow or (budget is not None and not budget.allows(f"search level {depth + 1}")):
            break
        grown_segments = [seg for _, seg in sorted(grow, key=lambda g: -g[0])[:MAX_SETS]]
        child_sets = tuple(s for s in _children_sets(plan, grown_segments) if len(s) == depth + 1)
        deeper = dataclasses.replace(plan, sets=((), *child_sets))
        depth += 1
        raw = run(leaf_cube_sql(deeper, child_sets if depth < limit else (),
                                within=grown_segments))
        queries += 1
        if budget is not None:
            budget.spend()
        children = _label_leaf_cube(raw, deeper).frame
        children = children[
            (children["depth"] == depth) & _within(children, plan.dimensions, grown_segments)
        ].reset_index(drop=True)
        if children.empty:
            break
        cube = dataclasses.replace(cube, frame=pd.concat([cube.frame, children], ignore_index=True),
                                   queries=cube.queries + 1)
        located = localize_leaves(cube, alpha=settings.alpha)
    return cube, located, queries


def grouping_sets_upto(n: int, depth: int) -> tuple[tuple[int, ...], ...]:
    import itertools

    return tuple(c for k in range(depth + 1) for c in itertools.combinations(range(n), k))


# --------------------------------------------------------------------------- ratio metrics

#: Grouping sets the second level may hold: every combination of up to 3 of 8 dimensions (93).
#: A wider framework keeps the dimensions with the most evidence at the first level.
DEEP_SETS = 100
#: ... and at least this many of them (the evidence at the first level can be faint for a deep
#: cause), when the framework has them.
MIN_DEEP_DIMS = 6
#: A value the second level combines deviates from a uniform move by at least this fraction of
#: the smallest reportable share (``min_share``) of the total change.
DEVIATION_FLOOR = 0.25


def max_dimensions(depth: int, max_sets: int = DEEP_SETS) -> int:
    """The most dimensions whose lattice up to ``depth`` fits in ``max_sets`` grouping sets.

    >>> max_dimensions(3), max_dimensions(2), max_dimensions(4)
    (8, 13, 7)
    """
    from math import comb

    k = 1
    while sum(comb(k + 1, j) for j in range(depth + 1)) <= max_sets:
        k += 1
    return k


def value_deviations(cube: Cube, stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """The first level's values with how far each moved from a uniform move of the total.

    A value unrelated to any cause moves like the total (a uniform relative change, shares
    unchanged); a value holding a cause, or part of a combination that does, deviates. Its
    deviation is its contribution minus what a uniform move would give it (``base value x total's
    relative change``, times its current share for a rate); ``deviation_sd`` its standard error
    and ``deviation_share`` its size as a share of the total change. ``stats``: the cube's
    :func:`~warehouse_rca.stats.segment_stats`, when the caller has them."""
    stats = segment_stats(cube) if stats is None else stats
    total = stats.loc[stats["depth"] == 0].iloc[0]
    seg = stats.loc[stats["depth"] == 1].reset_index(drop=True)
    relative = (
        float(total["rate_intensity"]) if np.isfinite(float(total["rate_intensity"])) else 0.0
    )
    base = np.nan_to_num(seg["base_value"].to_numpy(dtype="float64"))
    if cube.kind == "ratio":
        base = base * np.nan_to_num(seg["cur_share"].to_numpy(dtype="float64"))
    change = np.nan_to_num(seg["change"].to_numpy(dtype="float64"))
    z = np.nan_to_num(seg["z"].to_numpy(dtype="float64"))
    deviation = np.abs(change - base * relative)
    total_change = abs(float(total["change"])) if np.isfinite(float(total["change"])) else 0.0
    out = seg[list(cube.dimensions)].copy()
    out["deviation"] = deviation
    out["deviation_sd"] = np.divide(np.abs(change), np.abs(z), out=np.full(len(seg), np.inf),
                                    where=np.abs(z) > 1e-12)
    out["deviation_share"] = np.divide(deviation, total_change, out=np.full(len(seg), np.inf),
                                       where=total_change > 0)
    return out


def dimension_evidence(cube: Cube, alpha: float, min_share: float) -> pd.DataFrame:
    """Per dimension, how unevenly the change falls across its values (first level of the search):
    ``score`` sums the values' deviations (:func:`value_deviations`) that are beyond noise
    (Bonferroni over the values) and at least ``min_share`` of the total change; ``evidence`` is
    the largest deviation in standard errors.
    """
    from scipy import stats as sps

    values = value_deviations(cube)
    deviation, sd = values["deviation"].to_numpy(), values["deviation_sd"].to_numpy()
    z_crit = float(sps.norm.isf(alpha / (2 * max(len(values), 1))))
    beyond = (deviation >= z_crit * sd) & (values["deviation_share"].to_numpy() >= min_share)
    z_dev = np.divide(deviation, sd, out=np.zeros(len(values)), where=np.isfinite(sd) & (sd > 0))
    rows = []
    for name in cube.dimensions:
        own = values[name].notna().to_numpy()
        rows.append({"dimension": name, "score": float(deviation[own & beyond].sum()),
                     "evidence": float(z_dev[own].max()) if own.any() else 0.0})
    return pd.DataFrame(rows).set_index("dimension")


def select_dimensions(cube: Cube, depth: int, alpha: float, min_share: float) -> list[str]:
    """The dimensions the deeper levels combine: all of them while their lattice fits in
    :data:`DEEP_SETS`; otherwise those whose values deviate beyond noise (largest first), filled
    up to :data:`MIN_DEEP_DIMS` by the strongest evidence."""
    limit = max_dimensions(depth)
    if len(cube.dimensions) <= limit:
        return list(cube.dimensions)
    ev = dimension_evidence(cube, alpha, min_share)
    strong = ev[ev["score"] > 0].sort_values("score", ascending=False).index.tolist()[:limit]
    rest = [d for d in ev.sort_values("evidence", ascending=False).index if d not in strong]
    chosen = strong + rest[:max(0, MIN_DEEP_DIMS - len(strong))]
    return [d for d in cube.dimensions if d in chosen]  # the framework's order


#: The second level's leaves at most: combinations of the combined values ('(other)' included)
#: per side, estimated as their product and never more than the rows. Under it every value beyond
#: the share floor is combined; over it (uniform or wide data, where noise alone passes the floor
#: and every row is its own leaf), small values of the widest dimensions fold until it fits.
LEAF_BUDGET = 50_000
#: Over the budget, values holding at least this share of the baseline are folded last.
KEEP_WEIGHT = 0.05
#: Periods holding at most this many rows are always combined exactly: their second level costs
#: a fraction of a second whatever it keeps (at most these rows as leaves).
EXACT_ROWS = 200_000


def reference_moves(cube: Cube) -> pd.DataFrame:
    """The first level's values with their deviation from a reference that excludes the causes.

    :func:`value_deviations` measures a value against the total's relative change, which holds
    the cause: every other value of a cause's dimension then "deviates" by its share of the
    cause. Here each dimension's reference is the base-weighted median of its values' relative
    changes, which a cause holding less than half of the dimension's base cannot move; a value's
    ``deviation`` is its change minus its base times that reference (or the total's relative
    change, whichever leaves the larger deviation), ``deviation_sd`` the sampling standard error
    of its change, ``deviation_z`` the deviation in those, ``deviation_share`` it as a share of
    the total change."""
    stats = segment_stats(cube)
    out = value_deviations(cube, stats)
    seg = stats.loc[stats["depth"] == 1].reset_index(drop=True)
    base = np.nan_to_num(seg["base_value"].to_numpy(dtype="float64"))
    if cube.kind == "ratio":
        base = base * np.nan_to_num(seg["cur_share"].to_numpy(dtype="float64"))
    change = np.nan_to_num(seg["change"].to_numpy(dtype="float64"))
    total = stats.loc[stats["depth"] == 0].iloc[0]
    total_change = abs(float(total["change"])) if np.isfinite(float(total["change"])) else 0.0
    reference = np.zeros(len(seg))
    for name in cube.dimensions:
        own = out[name].notna().to_numpy() & (base > 0)
        if own.any():
            reference[out[name].notna().to_numpy()] = _weighted_median(
                change[own] / base[own], base[own])
    # A cause holding half of its dimension's base moves the median itself: it is measured
    # against the total's move too, and the larger deviation stands (a value folds only when it
    # moved like both).
    deviation = np.maximum(np.abs(change - base * reference), out["deviation"].to_numpy())
    # Judged against sampling noise alone, not the calibrated noise of segment_stats: that
    # dispersion is read across segments and inflated by the incident itself (a cause at z = 8
    # in its combination showed at z = 1.1 in its value), and folding a value wrongly costs a
    # cause where keeping one wrongly costs only a few leaves.
    frame = cube.frame.drop(columns=list(DEFF_COLUMNS), errors="ignore")
    sampling = describe(frame, cube.total, cube.kind, cube.scale)
    sampling = sampling.loc[(frame["depth"] == 1).to_numpy()].reset_index(drop=True)
    raw_z = np.abs(np.nan_to_num(sampling["z"].to_numpy(dtype="float64")))
    raw_change = np.abs(np.nan_to_num(sampling["change"].to_numpy(dtype="float64")))
    sd = np.divide(raw_change, raw_z, out=np.full(len(seg), np.inf), where=raw_z > 1e-12)
    out["deviation"] = deviation
    out["deviation_sd"] = sd
    out["deviation_z"] = np.divide(deviation, sd, out=np.zeros(len(seg)),
                                   where=np.isfinite(sd) & (sd > 0))
    out["deviation_share"] = np.divide(deviation, total_change, out=np.full(len(seg), np.inf),
                                       where=total_change > 0)
    size = "base_den" if cube.kind == "ratio" else "base_value"
    total_size = abs(float(np.nan_to_num(total[size])))
    out["base_weight"] = (np.abs(np.nan_to_num(seg[size].to_numpy(dtype="float64"))) / total_size
                          if total_size else 0.0)
    return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


@dataclasses.dataclass(frozen=True)
class Combined:
    """What the second level combines: per dimension, the values it keeps (the rest is folded into
    '(other)'); ``bounded`` when :data:`LEAF_BUDGET` folded values the exact rule keeps."""

    values: dict[str, tuple[str, ...]]
    bounded: bool = False


def combined_values(cube: Cube, dimensions: list[str], min_share: float) -> Combined:
    """Per dimension, the values the second level combines; the rest is folded into '(other)'.

    Apriori on deviation: a combination's deviation from a uniform move shows in each of its
    values (it is part of theirs), so a value whose own deviation (:func:`reference_moves`: from
    its dimension's reference or from the total's move, the larger) is under
    ``DEVIATION_FLOOR x min_share`` of the total change cannot hold a reportable combination
    unless a sibling offsets it exactly (``tests/test_search.py`` checks this on exact data).
    Each dimension keeps at least its most deviating value (the first level's evidence for a
    deep cause can be faint).

    On uniform or wide data noise alone passes that floor (every value of a 200-value dimension
    on 10M rows), every row is its own leaf, and combining them all costs 10-20x the floor scan
    (issue 20). So on periods of more than :data:`EXACT_ROWS` rows the second level's leaves
    are bounded by :data:`LEAF_BUDGET`: beyond it small values of the widest dimensions are
    folded first, the least deviating first, until the leaves fit (:func:`_within_budget`).
    That gives up exactness only for a combination of small values that deviate by little, in a
    table too large to combine exactly: the price of a bounded second level (measured in
    benchmarks/speed.py). Under the budget, and on every table of up to :data:`EXACT_ROWS`
    rows in its periods, the rule above is exact.

    The kept combinations also estimate the noise across segments (stats.segment_stats), so a
    bounded level, which keeps the most deviating values, reads the noise somewhat higher: on
    realistic.py's orders (100K rows, had they been bounded) one borderline cause of 42 fell
    below significance, which is why tables that small are never bounded."""
    values = reference_moves(cube)
    candidates: dict[str, pd.DataFrame] = {}
    counts: dict[str, int] = {}
    for name in dimensions:
        own = values[values[name].notna() & (values[name].astype(str) != OTHER)]
        if own.empty:
            continue
        # '(other)' is a leaf value of the dimension when the first level pruned a tail or
        # anything is folded: one more than the values it holds.
        counts[name] = len(own) + int((values[name].astype(str) == OTHER).any())
        strong = own[own["deviation_share"] >= DEVIATION_FLOOR * min_share]
        candidates[name] = strong if not strong.empty else own.nlargest(1, "deviation_z")
    total = cube.frame.loc[cube.frame["depth"] == 0].iloc[0]
    rows = float(np.nan_to_num(total.get("base_rows", np.inf), nan=np.inf)
                 + np.nan_to_num(total.get("cur_rows", 0.0)))
    bounded = rows > EXACT_ROWS and _leaves(
        {n: len(c) for n, c in candidates.items()}, counts, rows) > LEAF_BUDGET
    if bounded:
        candidates = _within_budget(candidates, counts, rows)
    return Combined({name: tuple(sorted(chosen[name].astype(str)))
                     for name, chosen in candidates.items()}, bounded)


def _leaves(kept: dict[str, int], counts: dict[str, int], rows: float) -> float:
    """The second level's leaves when ``kept[d]`` of dimension d's ``counts[d]`` values are
    combined: the product of each dimension's kept values (plus '(other)' when it folds any),
    per side, never more than the rows."""
    product = 2.0
    for name, k in kept.items():
        product *= k + int(k < counts[name])
    return min(product, rows)


def _within_budget(candidates: dict[str, pd.DataFrame], counts: dict[str, int],
                   rows: float) -> dict[str, pd.DataFrame]:
    """The values that fit :data:`LEAF_BUDGET`, folded one at a time until the leaves fit: small
    values (under :data:`KEEP_WEIGHT` of the baseline) before large ones, the widest dimension
    first, within it the value whose deviation is the smallest share of the total change; each
    dimension keeps its most deviating value and its largest.

    Small and wide first: a 200-value campaign's values each hold about 0.5% of the rows, so
    they can hold little of any change, while a 4-value device's hold the deep causes. A cause
    inside a large value deviates it by few of its standard errors (a depth-3 cause is a
    fiftieth of a 25% device), so neither standard errors nor a share floor can tell it from
    noise there: large values go last."""
    queue: dict[str, list[object]] = {}
    for name, c in candidates.items():
        rest = c.drop(list({c["deviation_z"].idxmax(), c["base_weight"].idxmax()}))
        queue[name] = list(rest.assign(_large=rest["base_weight"] >= KEEP_WEIGHT).sort_values(
            ["_large", "deviation_share", "deviation_z"], kind="stable").index)
    weight = {name: c["base_weight"] for name, c in candidates.items()}
    kept = {name: len(c) for name, c in candidates.items()}
    folded: dict[str, set[object]] = {name: set() for name in candidates}
    order = list(candidates)
    while _leaves(kept, counts, rows) > LEAF_BUDGET:
        open_ = [n for n in order if queue[n]]
        if not open_:
            break
        name = max(open_, key=lambda n: (weight[n][queue[n][0]] < KEEP_WEIGHT, kept[n],
                                         -order.index(n)))
        folded[name].add(queue[name].pop(0))
        kept[name] -= 1
    return {name: c.drop(list(folded[name])) for name, c in candidates.items()}


def _keeps_all(cube: Cube, name: str, kept: tuple[str, ...]) -> bool:
    """Whether the second level keeps every value of ``name``: then it reads the column as it is
    (no per-row CASE; a kept value's code costs a comparison per value and row)."""
    first = cube.frame.loc[cube.frame["depth"] == 1, name].dropna().astype(str)
    return OTHER not in set(first) and set(first) == set(kept)


def level_wise(engine: Engine, plan: CubePlan, settings: LocalizeSettings, max_depth: int,
               check: Callable[[Cube], None] | None = None,
               budget: Budget | None = None,
               cap: int | None = None) -> tuple[Cube, Localization, int]:
    """Ratio metrics (and small additive cubes): the search level by level.

    1. One query over the rows with single-dimension sets only (small hash tables: the cheapest
       pass there is), which gives every value's support and change.
    2. One query with every combination of 2 to ``max_depth`` of the selected dimensions
       (:func:`select_dimensions`), where the values that cannot hold a reportable combination
       (:func:`combined_values`) are folded into '(other)' inside the scan, so the leaves and
       grouping sets shrink from the data's size to the deviating values'.
    3. :func:`deepen` below causes found at the deepest level.
    """
    n = len(plan.dimensions)
    depth = max(1, min(max_depth, n))
    first = dataclasses.replace(plan, sets=grouping_sets_upto(n, 1))
    cube = label_cube(engine.query(cube_sql(first, preaggregate=False,
                                            cluster=True)), first)
    queries = 1
    if budget is not None:
        budget.spend()
    if check is not None:
        check(cube)
    combined = combined_values(
        cube, select_dimensions(cube, depth, settings.alpha, settings.min_share), settings.min_share
    ) if depth >= 2 else Combined({})
    keep = combined.values
    chosen = list(keep)
    if len(chosen) >= 2:
        idx = [plan.dimensions.index(d) for d in chosen]
        second = dataclasses.replace(
            plan,
            dimensions=tuple(chosen),
            dim_exprs=tuple(plan.dim_exprs[i] for i in idx),
            keep=tuple(None if _keeps_all(cube, d, keep[d]) else keep[d] for d in chosen),
            sets=tuple(s for s in grouping_sets_upto(len(chosen), depth) if len(s) != 1),
        )
        deeper = label_cube(engine.query(cube_sql(second)), second).frame
        queries += 1
        if budget is not None:
            budget.spend()
        # '(other)' here folds more than the first level's '(other)' does: the two would be
        # different sets under one label, so the folded combinations stay out of the cube.
        folded = deeper[list(chosen)].isin([OTHER]).any(axis=1)
        deeper = deeper[(deeper["depth"] >= 2) & ~folded].reset_index(drop=True)
        for name in plan.dimensions:
            if name not in deeper:
                deeper[name] = pd.Series([None] * len(deeper), dtype="object")
        frame = pd.concat(
            [cube.frame, deeper.reindex(columns=cube.frame.columns)], ignore_index=True
        )
        cube = dataclasses.replace(cube, frame=frame, queries=queries,
                                   extra={**cube.extra, "combined_dimensions": chosen})
    elif depth >= 2:  # fewer than two dimensions hold a value to combine
        cube = dataclasses.replace(cube, extra={**cube.extra, "combined_dimensions": []})
    located = localize(cube, settings)
    searched = dataclasses.replace(plan, sets=grouping_sets_upto(n, depth))
    cube, located, extra = deepen(engine, searched, cube, located, settings, budget=budget,
                                  max_levels=None if cap is None else max(0, cap - depth))
    return cube, located, queries + extra


def locate(engine: Engine, plan: CubePlan, settings: LocalizeSettings,
           check: Callable[[Cube], None] | None = None,
           budget: Budget | None = None,
           max_depth: int | None = None) -> tuple[Cube, Localization, int, CubePlan]:
    """Stage 1 + 3 for any metric. The evidence is chosen by the data: an expected-vs-actual table
    (a forecast per leaf, dense leaves) gets the leaf-evidence search, where leaves are judged one
    by one in the warehouse; fact tables compared over two periods (one row per event: most
    leaves hold 0-2 events, too few to judge one) get the segment statistics, with the rate/mix
    decomposition for ratio metrics, searched level-wise (:func:`level_wise`). ``max_depth``
    caps the depth of every reported segment (None: the search goes as deep as causes lead).
    Numeric dimensions are first given their thresholds (:mod:`.thresholds`, one query): the
    plan returned is the one searched, its metric's numeric dimensions derived dimensions of
    their predicates. Returns the cube, the localization, the queries issued and that plan."""
    leaf_queries = 0
    plan, splits = split_numeric(engine, plan)
    if splits:
        leaf_queries += 1
        if budget is not None:
            budget.spend()
    if plan.metric.kind == "additive" and plan.mode == "expected":
        found = leaf_search(engine, plan, settings, check=check, budget=budget, max_depth=max_depth)
        if found is not None:
            return (*found, plan)
        leaf_queries += 1  # a small cube: a second, cheap query with the segment statistics
    depth = max((len(s) for s in plan.sets), default=1)  # the first pass's depth
    cube, located, queries = level_wise(engine, plan, settings, depth, check=check, budget=budget,
                                        cap=max_depth)
    if splits:
        cube = dataclasses.replace(cube, extra={**cube.extra,
                                                "numeric": [s.to_json() for s in splits]})
    return cube, located, queries + leaf_queries, plan
