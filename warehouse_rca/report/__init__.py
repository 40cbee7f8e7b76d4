"""The self-contained HTML report of a run (:mod:`.html`) and its charts (:mod:`.charts`)."""

from __future__ import annotations

from warehouse_rca.report.charts import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    RED,
    segments_chart,
    series_chart,
    waterfall_chart,
)
from warehouse_rca.report.html import (
    GRAIN_STEP,
    MAX_SERIES_POINTS,
    TEMPLATE_DIR,
    build_report,
    fetch_series,
    load_run,
    progress,
    render_report,
    write_report,
)

__all__ = [
    "BLUE",
    "GRAIN_STEP",
    "GREEN",
    "GREY",
    "MAX_SERIES_POINTS",
    "ORANGE",
    "RED",
    "TEMPLATE_DIR",
    "build_report",
    "fetch_series",
    "load_run",
    "progress",
    "render_report",
    "segments_chart",
    "series_chart",
    "waterfall_chart",
    "write_report",
]
