"""The project file: per metric, its source, time column, grain, aggregation (additive or
ratio), the dimensional framework it may be sliced by, filters and direction; change events."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from warehouse_rca import sql as sql_text
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.dbt import load_dbt_metrics
from warehouse_rca.spec.framework import parse_framework
from warehouse_rca.spec.layers import SEMANTIC_LAYERS
from warehouse_rca.spec.lookml import load_lookml_metrics
from warehouse_rca.spec.periods import GRAIN_STEP, GRAINS

DEFAULT_PROJECT_FILE = "warehouse_rca.yml"


# --------------------------------------------------------------------------- detection settings

#: The project file's words for the direction that alarms (the detector's names in detect.py).
DIRECTION_WORDS = {"both": "both", "down": "higher_is_better", "up": "lower_is_better"}


@dataclass(frozen=True)
class DetectionSpec:
    """A metric's ``detection:`` block: when its monitor alarms. Every key is optional (None:
    the detector's default; the command line's flags override the file)::

        detection:
          sigma: 3                    # robust standard deviations out
          min_relative_change: 0.10   # and at least 10 % off the expected value
          min_volume: 100             # buckets below this never alarm
          direction: down             # down | up | both (default: from higher_is_better)
          holidays: [2026-11-26, 2026-12-25]   # and/or holiday_country: US
          max_latency: 1 day          # data older than this at --as-of is stale
    """

    sigma: float | None = None
    min_relative_change: float | None = None
    min_volume: float | None = None
    #: the detector's name: "both", "higher_is_better" (drops alarm), "lower_is_better"
    direction: str | None = None
    holidays: tuple[date, ...] = ()
    holiday_country: str | None = None
    max_latency: timedelta | None = None

    def thresholds(self) -> dict[str, Any]:
        """The detector settings this block sets (None values left out)."""
        values = {"sigma": self.sigma, "min_relative_change": self.min_relative_change,
                  "min_volume": self.min_volume, "direction": self.direction}
        return {k: v for k, v in values.items() if v is not None}


_DETECTION_KEYS = {"sigma", "min_relative_change", "min_volume", "direction", "holidays",
                   "holiday_country", "max_latency"}
_LATENCY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(hour|day|week)s?\s*$")


def parse_latency(value: Any, grain: str) -> timedelta:
    """``max_latency``: a number of buckets of the metric's grain, or ``"36 hours"``,
    ``"2 days"``, ``"1 week"``.

    >>> parse_latency("36 hours", "day"), parse_latency(2, "day")
    (datetime.timedelta(days=1, seconds=43200), datetime.timedelta(days=2))
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("must be >= 0")
        return GRAIN_STEP[grain] * value
    match = _LATENCY.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a number of buckets or a duration such as '2 days'")
    return GRAIN_STEP[match.group(2)] * float(match.group(1))


def detection_from_mapping(raw: Any, grain: str, fail: Any) -> DetectionSpec:
    """Validate a metric's ``detection:`` block; ``fail(key, why)`` names the metric and key."""
    if raw is None:
        return DetectionSpec()
    if not isinstance(raw, dict):
        raise fail("detection", "must be a mapping of detection settings")
    unknown = set(raw) - _DETECTION_KEYS
    if unknown:
        raise fail(f"detection.{min(unknown)}",
                   f"unknown key (allowed: {', '.join(sorted(_DETECTION_KEYS))})")

    def number(key: str, positive: bool) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"detection.{key}", "must be a number")
        if (value <= 0) if positive else (value < 0):
            raise fail(f"detection.{key}", f"must be {'>' if positive else '>='} 0, not {value}")
        return float(value)

    direction = raw.get("direction")
    if direction is not None and direction not in DIRECTION_WORDS:
        raise fail("detection.direction", f"{direction!r} is not one of down, up, both")
    holidays = raw.get("holidays") or []
    if not isinstance(holidays, list):
        raise fail("detection.holidays", "must be a list of dates (YYYY-MM-DD)")
    days = []
    for item in holidays:
        try:
            days.append(item if isinstance(item, date) else date.fromisoformat(str(item)))
        except ValueError:
            raise fail("detection.holidays", f"{item!r} is not a date (YYYY-MM-DD)") from None
    country = raw.get("holiday_country")
    if country is not None and not (isinstance(country, str) and country.strip()):
        raise fail("detection.holiday_country", "must be a country code such as US or DE")
    latency = None
    if raw.get("max_latency") is not None:
        try:
            latency = parse_latency(raw["max_latency"], grain)
        except ValueError as err:
            raise fail("detection.max_latency", str(err)) from None
    return DetectionSpec(
        sigma=number("sigma", True), min_relative_change=number("min_relative_change", False),
        min_volume=number("min_volume", False),
        direction=DIRECTION_WORDS[direction] if direction is not None else None,
        holidays=tuple(sorted(set(days))), holiday_country=country.strip() if country else None,
        max_latency=latency,
    )


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
    #: when the monitor alarms on this metric (its ``detection:`` block)
    detection: DetectionSpec = field(default_factory=DetectionSpec)
    #: dimensions searched through thresholds found from the data (``numeric: true``); an
    #: investigation turns each into a derived dimension of its thresholds (localize.thresholds)
    numeric: tuple[str, ...] = ()
    #: numeric dimension -> the thresholds this run chose (set by the investigation, not the user)
    thresholds: dict[str, tuple[float, ...]] = field(default_factory=dict)
    #: operational measures read inside each root cause (name -> expression, None: the column)
    drivers: dict[str, str | None] = field(default_factory=dict)

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
    "description", "hierarchies", "dimension_groups", "group_priority", "detection", "drivers",
    "exclude_dimensions",
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
    if raw.get("sql"):  # refused when the project is read, before any run is recorded
        sql_text.parse_source_select(raw["sql"], f"{origin}: metric {name!r}, key 'sql'")
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
        numeric=framework.numeric,
        drivers=framework.drivers,
        filters=tuple(filters),
        higher_is_better=hib,
        label=raw.get("label"),
        format=fmt,
        expected_column=raw.get("expected_column"),
        actual_column=raw.get("actual_column"),
        origin=origin,
        detection=detection_from_mapping(raw.get("detection"), grain, fail),
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
    if raw.get("sql"):  # refused when the project is read, before any run is recorded
        sql_text.parse_source_select(raw["sql"], f"{origin}: events, key 'sql'")
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
    #: metrics a semantic layer defines that are not mapped, with the reason (spec.dbt, .lookml)
    not_mapped: dict[str, str] = field(default_factory=dict)
    #: how each semantic-layer metric was mapped (`warehouse-rca metrics`)
    notes: dict[str, str] = field(default_factory=dict)

    def metric(self, name: str) -> MetricSpec:
        if name not in self.metrics and name in self.not_mapped:
            raise ConfigError(f"metric {name!r} is not mapped, because {self.not_mapped[name]}")
        if name not in self.metrics:
            known = ", ".join(sorted(self.metrics)) or "none"
            raise ConfigError(f"{self.path}: no metric named {name!r} (defined: {known})")
        return self.metrics[name]


def load_project(path: str | os.PathLike[str] | None) -> Project:
    """Load and validate the project file (default ``warehouse_rca.yml`` in the working dir),
    with the metrics of the dbt project and LookML folder it (or the command line) names.

    A project-level ``dimensions:`` list is every metric's framework unless the metric gives its
    own; ``exclude_dimensions:`` (project-level, or per metric) leaves dimensions out, also of the
    metrics a semantic layer exposes. A metric of the file wins over one of the same name from a
    semantic layer."""
    dbt_cli, lookml_cli = SEMANTIC_LAYERS.get()
    file = Path(path) if path else Path.cwd() / DEFAULT_PROJECT_FILE
    if not file.is_file():
        if path is None and (dbt_cli or lookml_cli):
            doc: Any = {"metrics": {}}
        else:
            raise ConfigError(
                f"project file {file} not found: pass --project, --dbt-project or --lookml, or "
                "use ad-hoc mode (--table, --time-column, --measure|--numerator/--denominator, "
                "--dimensions)"
            )
    else:
        try:
            doc = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{file}: not valid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics", {}), dict) or (
            "metrics" not in doc and not (doc.get("dbt_project") or doc.get("lookml")
                                          or dbt_cli or lookml_cli)):
        raise ConfigError(f"{file}: expected a top-level 'metrics:' mapping of name -> definition")
    shared = doc.get("dimensions")
    excluded = doc.get("exclude_dimensions") or []
    if shared is not None and (not isinstance(shared, list) or not shared):
        raise ConfigError(f"{file}: key 'dimensions' must be a non-empty list (every metric's "
                          "framework unless it gives its own)")
    if not isinstance(excluded, list) or not all(isinstance(d, str) for d in excluded):
        raise ConfigError(f"{file}: key 'exclude_dimensions' must be a list of dimension names")
    metrics: dict[str, MetricSpec] = {}
    for name, raw in (doc.get("metrics") or {}).items():
        if isinstance(raw, dict):
            raw = _inherit(raw, shared, excluded)
        metrics[str(name)] = metric_from_mapping(str(name), raw, str(file))
    not_mapped: dict[str, str] = {}
    notes: dict[str, str] = {}
    base = file.parent if file.is_file() else Path.cwd()
    layers = []
    for key, cli_value, loader in (("dbt_project", dbt_cli, load_dbt_metrics),
                                   ("lookml", lookml_cli, load_lookml_metrics)):
        value = cli_value or doc.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"{file}: key {key!r} must be a directory")
        folder = Path(value) if cli_value or Path(value).is_absolute() else base / value
        layers.append(loader(folder))
    for mapped in layers:
        for name, raw in mapped.metrics.items():
            if name in metrics:
                continue
            try:
                metrics[name] = metric_from_mapping(name, _inherit(raw, None, excluded),
                                                    mapped.origin)
                notes[name] = f"{mapped.origin}: {mapped.notes.get(name, '')}"
            except ConfigError as err:
                not_mapped[name] = f"{mapped.origin}: its translation was refused: {err}"
        for name, why in mapped.not_mapped.items():
            if name not in metrics:
                not_mapped[name] = f"{mapped.origin}: {why}"
    schema = doc.get("findings_schema")
    if schema is not None and not isinstance(schema, str):
        raise ConfigError(f"{file}: key 'findings_schema' must be a string")
    events = (
        events_from_mapping(doc["events"], str(file)) if doc.get("events") is not None else None
    )
    return Project(metrics=metrics, findings_schema=schema, path=str(file), events=events,
                   not_mapped=not_mapped, notes=notes)


def _inherit(raw: dict[str, Any], shared: list[Any] | None, excluded: list[str]) -> dict[str, Any]:
    """A metric's mapping with the project's dimensions when it has none, exclusions applied."""
    raw = dict(raw)
    if raw.get("dimensions") is None and shared is not None:
        raw["dimensions"] = list(shared)
    own = raw.pop("exclude_dimensions", None) or []
    if not isinstance(own, list):
        own = [own]
    drop = set(excluded) | {str(d) for d in own}
    if drop and isinstance(raw.get("dimensions"), list):
        raw["dimensions"] = [d for d in raw["dimensions"]
                             if (d if isinstance(d, str) else (d or {}).get("name")) not in drop]
    return raw
