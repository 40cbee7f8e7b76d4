"""Stage 0, the spec: profiles (where the warehouse is), the project file (what to analyse:
metrics, their dimensional framework, change events, alert settings) and periods, read from YAML
into frozen, validated dataclasses. No warehouse I/O.

>>> p = Period.parse("2026-11-10:2026-11-16")
>>> p.start.isoformat(), p.end_exclusive.isoformat()
('2026-11-10T00:00:00', '2026-11-17T00:00:00')
"""

from __future__ import annotations

from warehouse_rca.spec.alerts import (
    AlertSettings,
    EmailSettings,
    WebhookSettings,
    load_alert_settings,
    settings_from_mapping,
)
from warehouse_rca.spec.framework import MIN_PRIORITY, Framework, parse_framework
from warehouse_rca.spec.periods import GRAINS, Period
from warehouse_rca.spec.profiles import (
    DEFAULT_DUCKDB_PATH,
    DEFAULT_FINDINGS_SCHEMA,
    PROFILE_NAME,
    Target,
    load_target,
)
from warehouse_rca.spec.project import (
    DEFAULT_PROJECT_FILE,
    EventsSpec,
    MetricSpec,
    Project,
    events_from_mapping,
    load_project,
    metric_from_mapping,
)

__all__ = [
    "DEFAULT_DUCKDB_PATH",
    "DEFAULT_FINDINGS_SCHEMA",
    "DEFAULT_PROJECT_FILE",
    "GRAINS",
    "MIN_PRIORITY",
    "PROFILE_NAME",
    "AlertSettings",
    "EmailSettings",
    "EventsSpec",
    "Framework",
    "MetricSpec",
    "Period",
    "Project",
    "Target",
    "WebhookSettings",
    "events_from_mapping",
    "load_alert_settings",
    "load_project",
    "load_target",
    "metric_from_mapping",
    "parse_framework",
    "settings_from_mapping",
]
