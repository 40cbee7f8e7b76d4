"""The project file: per metric, its source, time column, grain, aggregation (additive or
ratio), the dimensional framework it may be sliced by, filters and direction; change events."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.framework import parse_framework
from warehouse_rca.spec.periods import GRAINS

DEFAULT_PROJECT_FILE = "warehouse_rca.yml"


# --------------------------------------------------------------------------- metric spec


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the dimensional framework.

    Exactly one of ``measure`` (additive: ``sum(revenue)``, ``count(*)``) or
    ``numerator``/``denominator`` (ratio) is set. ``table`` or ``sql`` names the source.
    """

    name: str
    time_column: str | None
    dimensions: tuple[str, ...]
    table: str | None = None
    sql: str | None = None
    grain: str = "day"
    measure: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    filters: tuple[str, ...] = ()
    higher_is_better: bool | None = True
    label: str | None = None
    format: str | None = None  # "percent", "currency", "number"
    expected_column: str | None = None  # expected-vs-actual mode
    actual_column: str | None = None
    origin: str = "command line"
    extra: dict[str, Any] = field(default_factory=dict)
    # The dimensional framework beyond plain columns (see warehouse_rca.dimensions):
    #: derived dimension name -> SQL expression (validated by sqlglot against an allow-list)
    derived: dict[str, str] = field(default_factory=dict)
    #: hierarchies, each from the broadest level to the finest, e.g. ("region", "city")
    hierarchies: tuple[tuple[str, ...], ...] = ()
    #: stakeholder group -> its dimensions (customer, product, operational, external, ...)
    dimension_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: group -> ranking prior in [0.5, 1] (a mild tie-breaker; 1 when not given)
    group_priority: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "ratio" if self.numerator is not None else "additive"

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def where(self, key: str) -> str:
        return f"{self.origin}: metric {self.name!r}, key {key!r}"


_METRIC_KEYS = {
    "table", "sql", "time_column", "grain", "measure", "numerator", "denominator", "dimensions",
    "filters", "higher_is_better", "label", "format", "expected_column", "actual_column",
    "description", "hierarchies", "dimension_groups", "group_priority",
}


def metric_from_mapping(name: str, raw: dict[str, Any], origin: str) -> MetricSpec:
    """Validate one metric entry; every error names the file, the metric and the key."""

    def fail(key: str, why: str) -> ConfigError:
        return ConfigError(f"{origin}: metric {name!r}, key {key!r}: {why}")

    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: metric {name!r} must be a mapping")
    unknown = set(raw) - _METRIC_KEYS
    if unknown:
        raise fail(min(unknown), f"unknown key (allowed: {', '.join(sorted(_METRIC_KEYS))})")
    if bool(raw.get("table")) == bool(raw.get("sql")):
        raise fail("table", "give exactly one of 'table' or 'sql'")
    has_ratio = raw.get("numerator") is not None or raw.get("denominator") is not None
    if has_ratio and raw.get("measure") is not None:
        raise fail("measure", "give either 'measure' or 'numerator'+'denominator', not both")
    if has_ratio and not (raw.get("numerator") and raw.get("denominator")):
        missing = "numerator" if not raw.get("numerator") else "denominator"
        raise fail(missing, "a ratio metric needs both 'numerator' and 'denominator'")
    if not has_ratio and not raw.get("measure"):
        raise fail(
            "measure", "missing: give 'measure' (e.g. sum(revenue)) or numerator+denominator"
        )
    expected_mode = raw.get("expected_column") is not None or raw.get("actual_column") is not None
    if expected_mode and not (raw.get("expected_column") and raw.get("actual_column")):
        raise fail(
            "expected_column",
            "expected-vs-actual mode needs both expected_column and actual_column",
        )
    if not expected_mode and not raw.get("time_column"):
        raise fail("time_column", "missing")
    grain = raw.get("grain", "day")
    if grain not in GRAINS:
        raise fail("grain", f"{grain!r} is not one of {', '.join(GRAINS)}")
    framework = parse_framework(raw, fail)
    dims = list(framework.dimensions)
    if len(set(dims)) != len(dims):
        raise fail("dimensions", "lists a dimension twice")
    filters = raw.get("filters") or []
    if isinstance(filters, str):
        filters = [filters]
    if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
        raise fail("filters", "must be a SQL condition or a list of them")
    hib = raw.get("higher_is_better", True)
    if hib is not None and not isinstance(hib, bool):
        raise fail("higher_is_better", "must be true, false or null")
    for key in ("measure", "numerator", "denominator", "table", "sql", "time_column"):
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            raise fail(key, "must be a string")
    fmt = raw.get("format")
    if fmt is not None and fmt not in ("percent", "currency", "number"):
        raise fail("format", "must be percent, currency or number")
    return MetricSpec(
        name=name,
        table=raw.get("table"),
        sql=raw.get("sql"),
        time_column=raw.get("time_column"),
        grain=grain,
        measure=raw.get("measure"),
        numerator=raw.get("numerator"),
        denominator=raw.get("denominator"),
        dimensions=tuple(dims),
        derived=framework.derived,
        hierarchies=framework.hierarchies,
        dimension_groups=framework.groups,
        group_priority=framework.priority,
        filters=tuple(filters),
        higher_is_better=hib,
        label=raw.get("label"),
        format=fmt,
        expected_column=raw.get("expected_column"),
        actual_column=raw.get("actual_column"),
        origin=origin,
    )


@dataclass(frozen=True)
class EventsSpec:
    """An optional table of change events (releases, config pushes, pricing changes).

    Declared in the project file as::

        events:
          table: ops.change_events        # or sql: SELECT ...
          time_column: happened_at
          description_column: description
          dimension_column: dimension     # optional: NULL in a row = a global change
          value_column: value             # optional: the dimension value it touched

    Causal validation links an event that touched a cause's segment (``app_version = 5.2``) and
    preceded its change to that finding, and tests a global event with an interrupted time series.
    """

    time_column: str
    description_column: str
    table: str | None = None
    sql: str | None = None
    dimension_column: str | None = None
    value_column: str | None = None
    origin: str = "project"


_EVENT_KEYS = {
    "table", "sql", "time_column", "description_column", "dimension_column", "value_column"
}


def events_from_mapping(raw: Any, origin: str) -> EventsSpec:
    """Validate the project's ``events:`` entry; errors name the file and the key."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{origin}: 'events' must be a mapping (table, time_column, description_column, ...)"
        )
    unknown = set(raw) - _EVENT_KEYS
    if unknown:
        raise ConfigError(f"{origin}: events, key {min(unknown)!r}: unknown key "
                          f"(allowed: {', '.join(sorted(_EVENT_KEYS))})")
    if bool(raw.get("table")) == bool(raw.get("sql")):
        raise ConfigError(f"{origin}: events, key 'table': give exactly one of 'table' or 'sql'")
    for key in ("time_column", "description_column"):
        if not raw.get(key):
            raise ConfigError(f"{origin}: events, key {key!r}: missing")
    for key in _EVENT_KEYS:
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            raise ConfigError(f"{origin}: events, key {key!r}: must be a string")
    if bool(raw.get("dimension_column")) != bool(raw.get("value_column")):
        raise ConfigError(f"{origin}: events, key 'dimension_column': give both dimension_column "
                          "and value_column, or neither (every event global)")
    return EventsSpec(
        table=raw.get("table"), sql=raw.get("sql"), time_column=raw["time_column"],
        description_column=raw["description_column"], dimension_column=raw.get("dimension_column"),
        value_column=raw.get("value_column"), origin=origin,
    )


@dataclass(frozen=True)
class Project:
    """The project file: metrics plus settings for where findings go."""

    metrics: dict[str, MetricSpec]
    findings_schema: str | None
    path: str
    #: optional change-events table for causal validation
    events: EventsSpec | None = None

    def metric(self, name: str) -> MetricSpec:
        if name not in self.metrics:
            known = ", ".join(sorted(self.metrics)) or "none"
            raise ConfigError(f"{self.path}: no metric named {name!r} (defined: {known})")
        return self.metrics[name]


def load_project(path: str | os.PathLike[str] | None) -> Project:
    """Load and validate the project file (default ``warehouse_rca.yml`` in the working dir)."""
    file = Path(path) if path else Path.cwd() / DEFAULT_PROJECT_FILE
    if not file.is_file():
        raise ConfigError(
            f"project file {file} not found: pass --project, or use ad-hoc mode "
            "(--table, --time-column, --measure|--numerator/--denominator, --dimensions)"
        )
    try:
        doc = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise ConfigError(f"{file}: expected a top-level 'metrics:' mapping of name -> definition")
    metrics = {
        name: metric_from_mapping(str(name), raw, str(file)) for name, raw in doc["metrics"].items()
    }
    schema = doc.get("findings_schema")
    if schema is not None and not isinstance(schema, str):
        raise ConfigError(f"{file}: key 'findings_schema' must be a string")
    events = (
        events_from_mapping(doc["events"], str(file)) if doc.get("events") is not None else None
    )
    return Project(metrics=metrics, findings_schema=schema, path=str(file), events=events)
