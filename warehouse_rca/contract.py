"""The question and the answer: investigation options, run and finding ids, the
``Investigation`` and its JSON document (warehouse_rca/schemas/investigation.schema.json)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from warehouse_rca import __version__, narrative
from warehouse_rca.causal.drivers import DriverReport
from warehouse_rca.causal.validate import CausalReport
from warehouse_rca.cube.plan import Cube
from warehouse_rca.dimensions.arrange import Arrangement, CauseContext, findings_by_group
from warehouse_rca.localize.levelwise import Budget
from warehouse_rca.localize.segments import Localization, LocalizeSettings, effect_of
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec
from warehouse_rca.stats import finite_or_none as _num


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
    for key in ("derived", "hierarchies", "dimension_groups", "group_priority", "numeric",
                "drivers"):
        if getattr(metric, key, None):
            ask[key] = getattr(metric, key)
    return hashlib.sha256(json.dumps(ask, sort_keys=True).encode()).hexdigest()[:16]




@dataclass(frozen=True)
class Investigation:
    """The answer to one question. Everything it states (ranks, confidences, counterfactuals,
    narratives) is computed once, when it is made; ``to_json`` only copies that document out."""

    run_id: str
    metric: MetricSpec
    periods: dict[str, Period | None]
    options: InvestigationOptions
    cube: Cube
    localization: Localization
    started_at: datetime
    elapsed_seconds: float
    queries: int
    #: the causal checks' report, or None when they were off or not applicable
    causal: CausalReport | None = None
    #: analysts' verdicts, which re-rank the causes (KnowledgeBase.rank); None keeps the order
    knowledge: KnowledgeBase | None = None
    #: the dimensional framework's groups and hierarchy paths of the causes
    framework: Arrangement | None = None
    #: what the run spent and what its budget skipped
    budget: Budget | None = None
    #: what the answer leaves out and why (rows with NaN or infinite measures, ...)
    warnings: tuple[str, ...] = ()
    #: the metric's drivers read inside the first causes (causal.drivers); None: none declared
    drivers: DriverReport | None = None
    document: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "document", self._answer())

    def to_json(self) -> dict[str, Any]:
        """The investigation document (schemas/investigation.schema.json); a fresh copy."""
        return copy.deepcopy(self.document)

    def _answer(self) -> dict[str, Any]:
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
            read = self.drivers.for_segment(cause.segment) if self.drivers is not None else []
            item["drivers"] = [d.to_json() for d in read]
            lead = narrative.driver_sentence(item, [d.to_json() for d in read], fmt, metric.title)
            item["driver_summary"] = lead
            if lead:
                item["narrative"] += " " + lead
            if evidence is not None and evidence.reasons:
                item["narrative"] += " Causal check: " + "; ".join(evidence.reasons) + "."
            # The dimensional framework: stakeholder group, hierarchy path, merged parent/child.
            item.update((self.framework.context(segment) if self.framework is not None
                         else CauseContext()).to_json())
            causes.append(item)
        applied: list[str] = []
        if self.knowledge is not None:  # confirmed patterns up, rejected ones down; "seen before"
            causes = self.knowledge.rank(causes, self.run_id,
                                         "up" if change > 0 else "down" if change < 0 else None)
            applied = verdicts_applied(causes)
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
            "warnings": list(self.warnings),
            "dimensions": list(metric.dimensions),
            "segments_evaluated": int((loc.stats["depth"] >= 1).sum()),
            "queries": self.queries,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "parameters": self.options.to_json(),
            "tool_version": __version__,
        }
        doc["summary"] = narrative.headline(doc, metric.title, fmt, loc.message)
        if applied:  # the headline says when analysts' verdicts changed the ranking, and which
            doc["summary"] += " Ranked with analysts' verdicts: " + "; ".join(applied) + "."
        doc["findings_by_group"] = (findings_by_group(doc) if self.framework is not None
                                    and self.framework.groups_defined else {})
        # Causal validation: window, the aggregate's change start, events, demoted candidates.
        doc["causal"] = self.causal.to_json() if self.causal is not None else {"enabled": False}
        doc["budget"] = self.budget.to_json() if self.budget is not None else Budget().to_json()
        # Wide frameworks: the dimensions whose combinations were searched (search.level_wise);
        # every dimension's single values always are. None: the leaf-evidence search (additive).
        combined = cast("Sequence[str] | None", self.cube.extra.get("combined_dimensions"))
        doc["combined_dimensions"] = list(combined) if combined is not None else None
        # Numeric dimensions: the thresholds this run chose (localize.thresholds), and how.
        doc["numeric_dimensions"] = list(
            cast("Sequence[dict[str, Any]]", self.cube.extra.get("numeric", []))
        )
        return doc


CONFIRMED, REJECTED = "confirmed", "rejected"
#: Ranking prior of a segment by its verdicts (see the module docstring).
PRIOR_CONFIRMED, PRIOR_REJECTED, PRIOR_NEUTRAL = 3.0, 1 / 3, 1.0
#: How many earlier incidents a cause's "seen before" note names.
SEEN_BEFORE_LIMIT = 3


def verdicts_applied(causes: list[dict[str, Any]]) -> list[str]:
    """One phrase per cause an earlier verdict ranked up or down ("channel = social ranked down,
    #1 -> #2 (rejected before)"); the helper position is dropped from the causes."""
    out = []
    for cause in causes:
        before = cause.pop("_position", cause["rank"])
        if cause.get("knowledge") not in (CONFIRMED, REJECTED):
            continue
        moved = "up" if cause["knowledge"] == CONFIRMED else "down"
        where = f", #{before} -> #{cause['rank']}" if before != cause["rank"] else ""
        out.append(f"{cause['segment_label']} ranked {moved}{where} ({cause['knowledge']} before)")
    return out


def canonical_segment(segment: dict[str, Any] | str | None) -> str:
    """The segment as the findings tables store it: JSON with sorted keys."""
    if segment is None:
        return "{}"
    if isinstance(segment, str):
        segment = json.loads(segment) if segment.strip() else {}
    return json.dumps(segment, sort_keys=True, ensure_ascii=False)


# --------------------------------------------------------------------------- knowledge base


@dataclass
class PastIncident:
    """An earlier run of the metric in which a segment was a root cause."""

    run_id: str
    date: datetime | None
    verdict: str | None = None
    author: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "date": self.date.date().isoformat() if self.date else None,
                "verdict": self.verdict, "author": self.author, "note": self.note}


@dataclass
class KnowledgeBase:
    """What analysts said about a metric's past findings, keyed by canonical segment JSON."""

    metric: str
    #: segment -> (confirmations, rejections), latest verdict per finding
    verdicts: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: (segment, direction of the incident's change: "up" or "down") -> (confirmations,
    #: rejections): a verdict given in a drop says nothing about a recovery week
    scoped: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    #: segment -> earlier incidents where it was a root cause, newest first
    incidents: dict[str, list[PastIncident]] = field(default_factory=dict)

    def prior(self, segment: dict[str, Any],
              direction: str | None = None) -> tuple[float, str | None]:
        """The ranking prior of a segment and its knowledge status (see the module docstring);
        with ``direction``, only the verdicts given in incidents that moved the same way count
        (when the knowledge base knows the directions)."""
        key = canonical_segment(segment)
        if direction is not None and self.scoped:
            c, r = self.scoped.get((key, direction), (0, 0))
        else:
            c, r = self.verdicts.get(key, (0, 0))
        if c > r:
            return PRIOR_CONFIRMED, CONFIRMED
        if r > c:
            return PRIOR_REJECTED, REJECTED
        return PRIOR_NEUTRAL, None

    def rank(self, causes: list[dict[str, Any]], run_id: str,
             direction: str | None = None) -> list[dict[str, Any]]:
        """Re-rank an investigation's causes by the documented rule; annotate each one.
        ``direction``: the incident's ("up" or "down"), so verdicts apply in their context."""
        scored = []
        for position, cause in enumerate(causes):
            prior, status = self.prior(cause["segment"], direction)
            cause["_position"] = position + 1
            seen = [i for i in self.incidents.get(canonical_segment(cause["segment"]), [])
                    if i.run_id != run_id]
            cause["prior"] = prior
            cause["knowledge"] = status
            cause["ranking_score"] = abs(cause.get("contribution") or 0.0) * prior
            cause["seen_before"] = [i.to_json() for i in seen[:SEEN_BEFORE_LIMIT]]
            note = narrative.seen_before_sentence(cause["seen_before"], status)
            if note:
                cause["narrative"] = f"{cause['narrative']} {note}"
            scored.append((-cause["ranking_score"], position, cause))
        ranked = [c for _, _, c in sorted(scored, key=lambda t: (t[0], t[1]))]
        for rank, cause in enumerate(ranked, start=1):
            cause["rank"] = rank
        return ranked
