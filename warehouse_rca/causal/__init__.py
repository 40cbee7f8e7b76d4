"""Stage 4, causal validation of the localized causes: temporal ordering, difference-in-
differences against the complement or a synthetic control, confounding between candidates,
change events and counterfactuals (:mod:`.validate`); their one series query (:mod:`.series`).
"""

from __future__ import annotations

from warehouse_rca.causal.series import (
    FOLD_ABOVE,
    SEASON,
    STEPS,
    analysis_window,
    events_sql,
    folded_dimensions,
    series_groups,
    series_sql,
)
from warehouse_rca.causal.validate import (
    CausalEvidence,
    CausalReport,
    CausalSettings,
    confounding_pairs,
    cusum_onset,
    synthetic_weights,
    validate,
)

__all__ = [
    "FOLD_ABOVE",
    "SEASON",
    "STEPS",
    "CausalEvidence",
    "CausalReport",
    "CausalSettings",
    "analysis_window",
    "confounding_pairs",
    "cusum_onset",
    "events_sql",
    "folded_dimensions",
    "series_groups",
    "series_sql",
    "synthetic_weights",
    "validate",
]
