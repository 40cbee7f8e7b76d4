"""Verification SQL: the query that reproduces a finding's numbers from the source, stored
with each finding for people to paste and run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube.plan import OTHER, plan_cube, segment_condition, source_expression
from warehouse_rca.engines.base import Engine
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec

# --------------------------------------------------------------------------- verification SQL


def _segment_condition(plan: Any, segment: dict[str, Any]) -> exp.Expr | None:
    """The rows of a segment, compared the way the cube labels them; None for '(other)'."""
    if any(value == OTHER or dim not in plan.dimensions for dim, value in segment.items()):
        return None
    return segment_condition(plan, {dim: str(value) for dim, value in segment.items()})


def verification_sql(plan: Any, segment: dict[str, Any]) -> exp.Expr | None:
    """The query (a sqlglot tree, written out by ``Engine.generate``) that reproduces a finding's
    baseline and current numbers from the source; None for a folded '(other)' segment, which no
    single filter reproduces."""
    condition = _segment_condition(plan, segment)
    if condition is None and segment:
        return None
    context: dict[str, Any] = {
        "expected": plan.mode == "expected", "ratio": plan.ratio, "source": plan.source,
        "num": plan.num, "den": plan.den, "base_num": plan.base_num, "filter": plan.condition,
        "segment": condition, "scale": float(plan.scale), "time": plan.time,
    }
    if plan.mode == "periods":
        context.update(
            base_start=sql.literal(plan.baseline.start),
            base_end=sql.literal(plan.baseline.end_exclusive),
            cur_start=sql.literal(plan.current.start),
            cur_end=sql.literal(plan.current.end_exclusive),
        )
    # Rendered without the run's query tag: this text is for people to paste and run.
    (tree,) = sql.render_tree("series_verify.sql.j2", **context)
    return tree


def verification_sqls(engine: Engine, metric: MetricSpec, periods: dict[str, Period | None],
                      causes: Sequence[dict[str, Any]]) -> dict[str, str]:
    """finding_id -> verification SQL for each cause (one catalog probe, no rows read)."""
    if not causes:
        return {}
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)),
                     baseline=periods.get("baseline"), current=periods.get("current"), max_depth=1)
    out = {}
    for cause in causes:
        tree = verification_sql(plan, cause["segment"])
        if tree is not None:
            out[cause["finding_id"]] = engine.generate(tree)
    return out
