"""The investigation: spec -> cube SQL -> warehouse -> compact cube -> statistics -> root causes.

>>> # investigate(engine, metric, baseline=Period.parse(...), current=Period.parse(...)).to_json()
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, cast

from warehouse_rca import __version__, narrative, sql
from warehouse_rca.config import MetricSpec, Period
from warehouse_rca.cube import Cube, plan_cube, source_expression
from warehouse_rca.dimensions import CauseContext, arrange_causes, findings_by_group
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import InputError
from warehouse_rca.localize import Localization, LocalizeSettings, effect_of
from warehouse_rca.search import Budget, locate
from warehouse_rca.stats import finite_or_none as _num

#: The first pass searches every combination of up to this many dimensions.
FIRST_PASS_DEPTH = 3


@dataclass(frozen=True)
class InvestigationOptions:
    #: deepest dimension combination reported (a cap); None: the first pass searches up to
    #: FIRST_PASS_DEPTH and deeper levels follow causes found there
    max_depth: int | None = None
    min_support: float = 0.005
    localize: LocalizeSettings = field(default_factory=LocalizeSettings)
    #: causal validation of the localized causes (warehouse_rca.causal); one extra aggregate query
    causal: bool = True
    #: its settings (history, events table, ...); None: defaults
    causal_settings: Any = None
    #: dimensions added for this run only (drift's new columns: warehouse_rca.dimensions)
    extra_dimensions: tuple[str, ...] = ()
    #: additive metrics: the baseline is multiplied by this instead of the periods' length ratio
    #: (the monitor sets it so the baseline totals the detector's expected value)
    baseline_scale: float | None = None
    #: at most this many warehouse queries / seconds per investigation (None: no limit); the
    #: probe and first pass always run, deeper levels and causal checks only within the budget
    max_queries: int | None = None
    time_budget: float | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "max_depth": self.max_depth,
            "min_support": self.min_support,
            "alpha": self.localize.alpha,
            "min_share": self.localize.min_share,
        }
        if not self.causal:  # only when off, so run ids of default runs stay as they were
            doc["causal"] = False
        if self.extra_dimensions:  # likewise only when set
            doc["extra_dimensions"] = list(self.extra_dimensions)
        if self.baseline_scale is not None:
            doc["baseline_scale"] = round(self.baseline_scale, 9)
        if self.max_queries is not None:
            doc["max_queries"] = self.max_queries
        if self.time_budget is not None:
            doc["time_budget"] = self.time_budget
        return doc


def value_format(metric: MetricSpec) -> str:
    if metric.format:
        return metric.format
    return "percent" if metric.kind == "ratio" else "number"


def run_id_for(metric: MetricSpec, periods: dict[str, Period | None],
               options: InvestigationOptions) -> str:
    """Same question, same id: reruns replace their findings instead of duplicating them."""
    ask = {
        "metric": metric.name,
        "source": metric.table or metric.sql,
        "measure": [metric.measure, metric.numerator, metric.denominator],
        "expected": [metric.expected_column, metric.actual_column],
        # with this run's extra dimensions, so the id is the same before and after adding them
        "dimensions": list(metric.dimensions) + [d for d in options.extra_dimensions
                                                 if d not in metric.dimensions],
        "filters": list(metric.filters),
        "periods": {k: (p.to_json() if p else None) for k, p in periods.items()},
        "options": options.to_json(),
    }
    # Derived dimensions, hierarchies and groups change the answer; absent keys keep old ids.
    for key in ("derived", "hierarchies", "dimension_groups", "group_priority"):
        if getattr(metric, key, None):
            ask[key] = getattr(metric, key)
    return hashlib.sha256(json.dumps(ask, sort_keys=True).encode()).hexdigest()[:16]




@dataclass
class Investigation:
    run_id: str
    metric: MetricSpec
    periods: dict[str, Period | None]
    options: InvestigationOptions
    cube: Cube
    localization: Localization
    started_at: datetime
    elapsed_seconds: float
    queries: int
    #: warehouse_rca.causal.CausalReport, or None when causal checks were off or not applicable
    causal: Any = None
    #: warehouse_rca.feedback.KnowledgeBase: analysts' verdicts re-rank the causes (documented
    #: rule in warehouse_rca.feedback); None leaves the drill-down's order
    knowledge: Any = None
    #: warehouse_rca.dimensions.Arrangement: groups and hierarchy paths of the causes
    framework: Any = None
    #: warehouse_rca.search.Budget: what the run spent and what its budget skipped
    budget: Any = None

    def to_json(self) -> dict[str, Any]:
        loc, metric = self.localization, self.metric
        total = loc.total
        base, cur = _num(total["base_value"]), _num(total["cur_value"])
        change = _num(total["change"]) or 0.0
        fmt = value_format(metric)
        volume = "traffic" if metric.kind == "ratio" else "volume"
        causes = []
        totals = {k: float(total[k]) for k in ("cur_num", "cur_den", "base_num", "base_den")}
        for rank, cause in enumerate(loc.root_causes, start=1):
            row = cause.row
            segment = {d: cause.segment[d] for d in metric.dimensions if d in cause.segment}
            confidence = (1 - float(row["q_value"])) * (0.5 + 0.5 * cause.specificity)
            presence = ("new" if float(row["base_den"]) == 0 else
                        "vanished" if float(row["cur_den"]) == 0 else None)
            item: dict[str, Any] = {
                "rank": rank,
                "finding_id": hashlib.sha256(
                    (self.run_id + json.dumps(segment, sort_keys=True)).encode()
                ).hexdigest()[:16],
                "segment": segment,
                "segment_label": narrative.segment_label(segment),
                "presence": presence,
                "baseline_value": _num(row["base_value"]),
                "current_value": _num(row["cur_value"]),
                "change": (_num(row["cur_value"]) or 0.0) - (_num(row["base_value"]) or 0.0),
                "contribution": _num(cause.explained_change),
                "share_of_change": _num(cause.explained_change / change) if change else None,
                "effect": effect_of(row, metric.kind, self.options.localize.alpha),
                "rate_effect": _num(row["rate_effect"]),
                "mix_effect": _num(row["mix_effect"]),
                "baseline_share": _num(row["base_share"]),
                "current_share": _num(row["cur_share"]),
                "baseline_support": _num(row["base_den"]),
                "current_support": _num(row["cur_den"]),
                "p_value": _num(row["p_value"]),
                "confidence": round(max(0.0, min(1.0, confidence)), 3),
            }
            if presence is not None:
                # The rest of the traffic on the side the value exists: "converting at 1.9%
                # against 3.9% for the rest".
                side = "cur" if presence == "new" else "base"
                rest_den = totals[f"{side}_den"] - float(row[f"{side}_den"])
                item["rest_value"] = (_num((totals[f"{side}_num"] - float(row[f"{side}_num"]))
                                           / rest_den) if rest_den and metric.kind == "ratio"
                                      else None)
            # Counterfactual: the contributions are exact (shift-share), so the metric without this
            # cause, had its segment kept its baseline rate and share, is the current value minus
            # the cause's contribution; the interval is +-1.96 standard errors of that contribution.
            z_row = float(row["z"]) if _num(row["z"]) else 0.0
            sd = abs(float(row["change"]) / z_row) if z_row else 0.0
            without = (cur - cause.explained_change) if cur is not None else None
            item["counterfactual_value"] = _num(without)
            item["counterfactual_interval"] = (
                [_num(without - 1.96 * sd), _num(without + 1.96 * sd)] if without is not None
                else None
            )
            evidence = self.causal.for_segment(cause.segment) if self.causal is not None else None
            if evidence is not None:
                # One confidence per finding: the drill-down's evidence times the causal checks',
                # set before any sentence quotes it.
                item["drilldown_confidence"] = item["confidence"]
                item["confidence"] = round(item["confidence"] * evidence.causal_score, 3)
                item["causal"] = evidence.to_json()
            item["narrative"] = narrative.cause_sentence(item, metric.title, fmt, change, volume)
            if without is not None:
                item["narrative"] += (
                    f" Without it, {metric.title.lower()} would be"
                    f" {narrative.fmt_value(without, fmt)},"
                    f" not {narrative.fmt_value(cur, fmt)}."
                )
            if evidence is not None and evidence.reasons:
                item["narrative"] += " Causal check: " + "; ".join(evidence.reasons) + "."
            # The dimensional framework: stakeholder group, hierarchy path, merged parent/child.
            item.update((self.framework.context(segment) if self.framework is not None
                         else CauseContext()).to_json())
            causes.append(item)
        if self.knowledge is not None:  # confirmed patterns up, rejected ones down; "seen before"
            causes = self.knowledge.rank(causes, self.run_id)
        # A candidate the causal checks demoted never ranks above one they did not.
        causes.sort(key=lambda c: (c.get("causal") or {}).get("verdict") == "demoted")
        for rank, item in enumerate(causes, start=1):
            item["rank"] = rank
        doc: dict[str, Any] = {
            "run_id": self.run_id,
            "metric": metric.name,
            "kind": metric.kind,
            "periods": {k: (p.to_json() if p else None) for k, p in self.periods.items()},
            "baseline_value": base,
            "current_value": cur,
            "change": change,
            "relative_change": _num(change / base) if base else None,
            "p_value": _num(loc.p_value if loc.p_value is not None else total["p_value"]),
            "total_p_value": _num(total["p_value"]),
            "significant": loc.significant,
            "global_change": loc.global_change,
            "root_causes": causes,
            "message": loc.message,
            "dimensions": list(metric.dimensions),
            "segments_evaluated": int((loc.stats["depth"] >= 1).sum()),
            "queries": self.queries,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "parameters": self.options.to_json(),
            "tool_version": __version__,
        }
        doc["summary"] = narrative.headline(doc, metric.title, fmt, loc.message)
        doc["findings_by_group"] = (findings_by_group(doc) if self.framework is not None
                                    and self.framework.groups_defined else {})
        # Causal validation: window, the aggregate's change start, events, demoted candidates.
        doc["causal"] = self.causal.to_json() if self.causal is not None else {"enabled": False}
        doc["budget"] = self.budget.to_json() if self.budget is not None else Budget().to_json()
        # Wide frameworks: the dimensions whose combinations were searched (search.level_wise);
        # every dimension's single values always are. None: the leaf-evidence search (additive).
        combined = cast("Sequence[str] | None", self.cube.extra.get("combined_dimensions"))
        doc["combined_dimensions"] = list(combined) if combined is not None else None
        return doc


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
    "base_cnn", "base_cdd", "base_cnd", "base_cdt", "base_cnt", "base_days",
    "deff_rate", "deff_mix",
})


def investigate(
    engine: Engine,
    metric: MetricSpec,
    *,
    baseline: Period | None,
    current: Period | None,
    options: InvestigationOptions | None = None,
    knowledge: Any = None,
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
        result = _investigate(engine, metric, baseline=baseline, current=current, options=options)
    result.knowledge = knowledge
    return result


def _investigate(engine: Engine, metric: MetricSpec, *, baseline: Period | None,
                 current: Period | None, options: InvestigationOptions) -> Investigation:
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
    cube, loc, _ = locate(engine, plan, options.localize,
                          check=lambda c: _check_cube(c, metric, periods), budget=budget,
                          max_depth=options.max_depth)
    report = None
    if options.causal and plan.mode == "periods" and budget.allows("causal validation"):
        from warehouse_rca.causal import validate

        report = validate(engine, plan, loc, periods, options.causal_settings,
                          min_share=options.localize.min_share)
        loc = report.localization
        budget.spend(report.queries)
    # The framework's hierarchies and groups (warehouse_rca.dimensions): a parent and its child
    # are reported once, causes carry their group, group_priority mildly orders them.
    loc, arrangement, framework_queries = arrange_causes(engine, plan, loc)
    budget.spend(framework_queries)
    return Investigation(
        run_id=run_id_for(metric, periods, options),
        metric=metric,
        periods=periods,
        options=options,
        cube=cube,
        localization=loc,
        started_at=started,
        elapsed_seconds=time.perf_counter() - clock,
        queries=budget.queries,
        causal=report,
        framework=arrangement,
        budget=budget,
    )
