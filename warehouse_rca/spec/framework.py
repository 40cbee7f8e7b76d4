"""A metric's dimensional framework as declared: dimensions (columns or derived expressions),
hierarchies, dimension groups and group priorities, validated before any query."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from warehouse_rca import sql
from warehouse_rca.errors import ConfigError, InputError

# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Framework:
    """A metric's validated framework keys (what :func:`parse_framework` returns to config)."""

    dimensions: tuple[str, ...]
    derived: dict[str, str]
    hierarchies: tuple[tuple[str, ...], ...]
    groups: dict[str, tuple[str, ...]]
    priority: dict[str, float]
    #: dimensions searched through thresholds found from the data (localize.thresholds)
    numeric: tuple[str, ...] = ()
    #: driver name -> SQL expression over the fact rows (None: the column of that name)
    drivers: dict[str, str | None] = field(default_factory=dict)


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
    numeric: list[str] = []
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
        unknown = set(entry) - {"name", "expr", "group", "numeric"}
        if unknown:
            raise fail(key, f"unknown key {min(unknown)!r} (allowed: name, expr, group, numeric)")
        if not isinstance(entry.get("numeric", False), bool):
            raise fail(key, "'numeric' must be true or false")
        text = entry.get("expr")
        if entry.get("numeric") and text is None:  # a numeric column, searched by thresholds
            names.append(name)
            numeric.append(name)
            if entry.get("group") is not None:
                inline_groups.setdefault(str(entry["group"]), []).append(name)
            continue
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
        if entry.get("numeric"):
            numeric.append(name)
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
    for start, parent in parent_of.items():  # [[region, city], [city, region]]: a loop
        chain, level = [start], parent
        while level in parent_of and level not in chain:
            chain.append(level)
            level = parent_of[level]
        if level in chain:
            cycle = " -> ".join([*chain[chain.index(level):], level])
            raise fail("hierarchies", f"the levels form a cycle ({cycle}); a hierarchy goes from "
                                      "the broadest level to the finest")

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
    for level in (level for levels in hierarchies for level in levels):
        if level in numeric:
            raise fail("hierarchies", f"{level!r} is numeric: its thresholds are found per run, "
                                      "so it cannot be a hierarchy level")
    return Framework(tuple(names), derived, tuple(hierarchies),
                     {g: tuple(m) for g, m in groups.items()}, priority, tuple(numeric),
                     parse_drivers(raw.get("drivers"), fail))


def parse_drivers(raw: Any, fail: Callable[[str, str], ConfigError]) -> dict[str, str | None]:
    """``drivers``: numeric operational measures on the fact rows (column names, or ``{name,
    expr}`` for an expression such as ``page_load_ms / 1000.0``), read inside each root cause
    and its complement (causal.drivers). Returns name -> SQL expression text (None: the
    column of that name)."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise fail("drivers", "must be a list of column names or {name, expr} mappings")
    out: dict[str, str | None] = {}
    for entry in raw:
        text: str | None = None
        if isinstance(entry, str) and entry:
            name = entry
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"]:
            name = entry["name"]
            unknown = set(entry) - {"name", "expr"}
            if unknown:
                raise fail(f"drivers.{name}", f"unknown key {min(unknown)!r} (allowed: name, expr)")
            text = entry.get("expr")
            if text is not None:
                if not isinstance(text, str) or not text.strip():
                    raise fail(f"drivers.{name}", "'expr' must be a SQL expression")
                try:
                    sql.parse_dimension_expr(text, _AnyColumns(), f"drivers.{name}")
                except (ConfigError, InputError) as err:
                    raise fail(f"drivers.{name}", str(err)) from None
        else:
            raise fail("drivers",
                       f"{entry!r} is neither a column name nor a {{name, expr}} mapping")
        if name in out:
            raise fail("drivers", f"lists {name!r} twice")
        out[name] = text
    return out
