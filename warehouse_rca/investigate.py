"""The investigation: spec -> cube SQL -> warehouse -> compact cube -> statistics -> root causes.

>>> # investigate(engine, metric, baseline=Period.parse(...), current=Period.parse(...)).to_json()
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone

from warehouse_rca import sql
from warehouse_rca.causal.drivers import explain_drivers
from warehouse_rca.causal.validate import validate
from warehouse_rca.contract import Investigation, InvestigationOptions, KnowledgeBase, run_id_for
from warehouse_rca.cube.plan import CLUSTER_COMPONENTS, Cube, plan_cube, source_expression
from warehouse_rca.dimensions.arrange import arrange_causes
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import InputError
from warehouse_rca.localize.levelwise import Budget, locate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec
from warehouse_rca.stats import is_proportion

log = logging.getLogger("warehouse_rca.investigate")

#: The first pass searches every combination of up to this many dimensions.
FIRST_PASS_DEPTH = 3


def _check_cube(cube: Cube, metric: MetricSpec, periods: dict[str, Period | None]) -> None:
    total = cube.total
    for side, label in (("base", "baseline"), ("cur", "current")):
        if float(total[f"{side}_rows"]) == 0:
            period = periods.get(label)
            where = f" {period.text}" if period else ""
            raise InputError(f"metric {metric.name!r}: the {label} period{where} has no rows")
        if metric.kind == "ratio" and float(total[f"{side}_den"]) == 0:
            raise InputError(
                f"metric {metric.name!r}: the denominator ({metric.denominator}) is zero over the "
                f"{label} period, so the rate is undefined"
            )


#: Column names the analysis frames use besides the dimensions (cube components, statistics).
#: A dimension with one of these names would overwrite them, so it is refused up front;
#: tests/test_bad_data.py checks this list covers every column the analysis produces.
RESERVED_NAMES = frozenset({
    "base_dd", "base_den", "base_nd", "base_nn", "base_num", "base_rows", "base_share",
    "base_value", "change", "cur_dd", "cur_den", "cur_nd", "cur_nn", "cur_num", "cur_rows",
    "cur_share", "cur_value", "depth", "key", "mix_effect", "mix_intensity", "mix_intensity_sd",
    "p_value", "q_value", "rate_effect", "rate_intensity", "rate_intensity_sd", "rate_log_change",
    "rate_log_change_sd", "share",
    "support", "z", "z_mix", "z_rate", "rca_set", "bucket", "fdr_weight",
    # the leaf-evidence cube's columns (warehouse_rca.search.leaf_search)
    "leaves", "ab_leaves", "ab_w", "nor_w", "ab_change", "dev_n", "dev_sum", "dev_sq", "cutoff",
    "side", "far_leaves",
    # day-to-day noise (cube.CLUSTER_COMPONENTS, stats.design_effects)
    *CLUSTER_COMPONENTS,
    "deff_rate", "deff_mix",
})


def investigate(
    engine: Engine,
    metric: MetricSpec,
    *,
    baseline: Period | None,
    current: Period | None,
    options: InvestigationOptions | None = None,
    knowledge: KnowledgeBase | None = None,
) -> Investigation:
    """Run one investigation. Costs one catalog probe (no rows), one pass over the data, and one
    smaller query per deeper level when a cause sits at the deepest level searched.

    ``knowledge`` (:func:`warehouse_rca.feedback.load_knowledge`) ranks confirmed patterns up
    and rejected ones down, and notes causes seen in earlier incidents."""
    options = options or InvestigationOptions()
    extra = tuple(d for d in options.extra_dimensions if d not in metric.dimensions)
    if extra:  # e.g. new columns drift found (warehouse_rca.dimensions), for this run only
        metric = dataclasses.replace(metric, dimensions=metric.dimensions + extra)
    clash = sorted(set(metric.dimensions) & RESERVED_NAMES)
    if clash:
        raise InputError(
            f"{metric.where('dimensions')}: dimension name {clash[0]!r} is reserved for the "
            "analysis; expose the column under another name (e.g. a view or the metric's 'sql')"
        )
    # Known before any query, so every statement can carry it as a query tag (warehouse cost
    # attribution: the comment shows up in pg_stat_activity and query histories).
    run_id = run_id_for(metric, {"baseline": baseline, "current": current}, options)
    with sql.query_tag(run_id):
        return _investigate(engine, metric, baseline=baseline, current=current, options=options,
                            knowledge=knowledge)


def _investigate(engine: Engine, metric: MetricSpec, *, baseline: Period | None,
                 current: Period | None, options: InvestigationOptions,
                 knowledge: KnowledgeBase | None) -> Investigation:
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    columns = engine.columns_of(source_expression(metric))
    # The plan holds the lattice up to --max-depth; the search (search.locate) sends it level by
    # level, so 20 dimensions never send 1,351 grouping sets at once.
    plan = plan_cube(
        metric, columns, baseline=baseline, current=current,
        max_depth=(FIRST_PASS_DEPTH if options.max_depth is None
                   else min(options.max_depth, FIRST_PASS_DEPTH)),
        min_support=options.min_support,
        baseline_scale=options.baseline_scale,
    )
    periods = {"baseline": baseline, "current": current}
    # Additive metrics: leaf-evidence search; ratio metrics: segment statistics (search.locate).
    budget = Budget(options.max_queries, options.time_budget)
    budget.spend()  # the catalog probe
    # The budget counts every query (the probe, each search level, the causal series, the
    # framework's), so it is also the run's query count.
    cube, loc, _, plan = locate(engine, plan, options.localize,
                                check=lambda c: _check_cube(c, metric, periods), budget=budget,
                                max_depth=options.max_depth)
    asked, metric = metric, plan.metric  # numeric dimensions: now derived ones of their thresholds
    report = None
    if options.causal and plan.mode == "periods" and budget.allows("causal validation"):
        report = validate(engine, plan, loc, periods, options.causal_settings,
                          min_share=options.localize.min_share)
        loc = report.localization
        budget.spend(report.queries)
    # The framework's hierarchies and groups (warehouse_rca.dimensions): a parent and its child
    # are reported once, causes carry their group, group_priority mildly orders them.
    loc, arrangement, framework_queries = arrange_causes(engine, plan, loc)
    budget.spend(framework_queries)
    drivers = None
    if metric.drivers and plan.mode == "periods" and budget.allows("drivers"):
        drivers = explain_drivers(engine, plan, loc, columns,
                                  proportion=metric.kind == "ratio" and is_proportion(cube.total))
        budget.spend(drivers.queries)
    warnings = nonfinite_warnings(cube, metric, periods)
    for warning in warnings:
        log.warning("%s", warning)
    return Investigation(
        run_id=run_id_for(asked, periods, options),
        metric=metric,
        periods=periods,
        options=options,
        cube=cube,
        localization=loc,
        started_at=started,
        elapsed_seconds=time.perf_counter() - clock,
        queries=budget.queries,
        causal=report,
        knowledge=knowledge,
        framework=arrangement,
        budget=budget,
        warnings=warnings,
        drivers=drivers,
    )


def nonfinite_warnings(cube: Cube, metric: MetricSpec,
                       periods: dict[str, Period | None]) -> tuple[str, ...]:
    """One sentence per period whose rows held NaN or infinite measure values (left out)."""
    total = cube.total
    measures = ", ".join(m for m in (metric.measure, metric.numerator, metric.denominator) if m)
    out = []
    for side, name in (("base", "baseline"), ("cur", "current")):
        count = int(total.get(f"{side}_nonfinite", 0) or 0)
        period = periods.get(name)
        if count:
            out.append(
                f"{count:,} row(s) of the {name} period"
                f"{f' ({period.text})' if period is not None else ''} hold NaN or infinite values "
                f"in {measures}: they are left out of the comparison, like rows a filter drops"
            )
    return tuple(out)
