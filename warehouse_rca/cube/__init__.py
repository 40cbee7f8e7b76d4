"""Stage 1, the cube (pushdown): the plan of one aggregation over the metric's dimension
combinations, its query builders and the compact frame the warehouse returns; the verification
query of a finding.
"""

from __future__ import annotations

from warehouse_rca.cube.plan import (
    CLUSTER_COMPONENTS,
    COMPONENTS,
    OTHER,
    SOURCE_ALIAS,
    Cube,
    CubePlan,
    cube_sql,
    grouping_sets,
    label_cube,
    period_bounds,
    plan_cube,
    segment_condition,
    source_expression,
)
from warehouse_rca.cube.verify import verification_sql, verification_sqls

__all__ = [
    "CLUSTER_COMPONENTS",
    "COMPONENTS",
    "OTHER",
    "SOURCE_ALIAS",
    "Cube",
    "CubePlan",
    "cube_sql",
    "grouping_sets",
    "label_cube",
    "period_bounds",
    "plan_cube",
    "segment_condition",
    "source_expression",
    "verification_sql",
    "verification_sqls",
]
