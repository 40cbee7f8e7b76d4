"""Arranging causes after localization by the framework: a parent and its child (hierarchy)
are reported once, causes carry their dimension group, group priorities mildly order them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube.plan import OTHER, CubePlan
from warehouse_rca.engines.base import Engine
from warehouse_rca.localize.segments import Key, Localization, RootCause
from warehouse_rca.spec.project import MetricSpec

# --------------------------------------------------------------------------- hierarchies and groups

#: A child value belongs to a parent when that parent holds at least this share of its rows
#: (a city name shared by two regions is left without a parent instead of guessing).
PARENT_SHARE = 0.95


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
            frame = engine.query(sql.template(
                "profile_hierarchy.sql.j2", source=plan.source,
                levels=[
                    {"expr": e, "alias": exp.to_identifier(f"h{i}")} for i, e in enumerate(exprs)
                ],
                child=exp.or_(*[sql.label_matches(exp.cast(exprs[-1].copy(), "VARCHAR"), v)
                                for v in values]),
                filter=plan.condition,
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
