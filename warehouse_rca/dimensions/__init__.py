"""The dimensional framework at work: profiling a table for dimensions (:mod:`.profile`),
arranging causes by hierarchies and groups (:mod:`.arrange`), and drift between runs
(:mod:`.drift`). The declared framework itself is :mod:`warehouse_rca.spec.framework`.
"""

from __future__ import annotations

from warehouse_rca.dimensions.arrange import (
    PARENT_SHARE,
    Arrangement,
    CauseContext,
    arrange_causes,
    findings_by_group,
    group_of,
    hierarchy_paths,
    prior_of,
)
from warehouse_rca.dimensions.drift import (
    DriftItem,
    DriftReport,
    detect_drift,
    drift_run_id,
    framework_of,
    previous_framework,
    with_new_dimensions,
    write_drift,
)
from warehouse_rca.dimensions.profile import (
    FRACTIONAL_TYPES,
    NUMERIC_TYPES,
    TIME_TYPES,
    ColumnProfile,
    profile,
    yaml_block,
)

__all__ = [
    "FRACTIONAL_TYPES",
    "NUMERIC_TYPES",
    "PARENT_SHARE",
    "TIME_TYPES",
    "Arrangement",
    "CauseContext",
    "ColumnProfile",
    "DriftItem",
    "DriftReport",
    "arrange_causes",
    "detect_drift",
    "drift_run_id",
    "findings_by_group",
    "framework_of",
    "group_of",
    "hierarchy_paths",
    "previous_framework",
    "prior_of",
    "profile",
    "with_new_dimensions",
    "write_drift",
    "yaml_block",
]
