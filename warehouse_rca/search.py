"""Level-wise deepening: reach root causes deeper than the first pass without a combinatorial blow-up.

The first cube query covers every combination up to ``max_depth``. When a chosen cause sits at the
frontier (its depth is the deepest searched and more dimensions exist), it may be an
under-specified parent of a deeper cause. Apriori-style, one more pushed-down query per level asks
only for the children of the frontier causes (their dimensions plus one more), restricted to their
rows; the children join the cube and the selection runs again. Only surviving candidates are ever
expanded, so 20 dimensions cost a handful of small grouping sets per level, not all 2^20.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube import Cube, CubePlan, cube_sql, label_cube
from warehouse_rca.engines.base import Engine
from warehouse_rca.localize import Localization, LocalizeSettings, localize


def _segment_condition(plan: CubePlan, segments: list[dict[str, str]]) -> exp.Expression:
    """Rows of any of ``segments``, comparing values the way the cube labels them."""
    alternatives = []
    for segment in segments:
        parts = []
        for name, value in segment.items():
            expr = plan.dim_exprs[plan.dimensions.index(name)].copy()
            labelled = exp.Coalesce(
                this=exp.cast(expr, exp.DataType.Type.VARCHAR),
                expressions=[exp.Literal.string("(null)")],
            )
            parts.append(exp.EQ(this=labelled, expression=sql.literal(value)))
        alternatives.append(exp.and_(*parts))
    return exp.or_(*alternatives) if len(alternatives) > 1 else alternatives[0]


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
    query: Callable[[str], pd.DataFrame] | None = None,
) -> tuple[Cube, Localization, int]:
    """Expand frontier causes level by level; returns the grown cube, its localization and the
    number of extra queries issued."""
    run = query or engine.query
    queries = 0
    depth = max((len(s) for s in plan.sets), default=0)
    limit = len(plan.dimensions) if max_levels is None else min(len(plan.dimensions), depth + max_levels)
    while depth < limit:
        frontier = [c.segment for c in located.root_causes if len(c.segment) == depth]
        if not frontier:
            break
        condition = _segment_condition(plan, frontier)
        deeper = dataclasses.replace(
            plan,
            sets=_children_sets(plan, frontier),
            condition=exp.and_(plan.condition, condition) if plan.condition is not None else condition,
        )
        raw = run(cube_sql(deeper, engine.DIALECT))
        queries += 1
        children = label_cube(raw, deeper).frame
        children = children[children["depth"] > depth]
        if children.empty:
            break
        grown = pd.concat([cube.frame, children], ignore_index=True)
        cube = dataclasses.replace(cube, frame=grown, queries=cube.queries + 1)
        located = localize(cube, settings)
        depth += 1
    return cube, located, queries
