"""The demo warehouse: a DuckDB file with e-commerce sessions and an incident to find.

``warehouse-rca demo`` builds it (``sql_templates/demo_sessions.sql.j2``), writes a project file
that declares its metrics, and investigates the conversion rate's drop between the last two weeks.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from warehouse_rca import sql
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.spec.periods import Period

DEMO_TABLE = "shop.sessions"
DEMO_START = date(2026, 10, 13)
DEMO_DAYS = 42
BASELINE = "2026-11-10:2026-11-16"
CURRENT = "2026-11-17:2026-11-23"
#: The injected incident the demo must find at rank 1.
INCIDENT = {"app_version": "5.2"}

DEMO_PROJECT = {
    "findings_schema": "rca",
    "metrics": {
        "conversion_rate": {
            "label": "Conversion rate",
            "table": DEMO_TABLE,
            "time_column": "session_start",
            "grain": "day",
            "numerator": "sum(converted)",
            "denominator": "count(*)",
            "dimensions": ["device", "app_version", "region", "channel", "customer_type",
                           "product_category"],
            "higher_is_better": True,
            "format": "percent",
            # the operational measure behind a cause (causal.drivers)
            "drivers": ["checkout_latency_ms"],
        },
        "revenue": {
            "label": "Revenue",
            "table": DEMO_TABLE,
            "time_column": "session_start",
            "grain": "day",
            "measure": "sum(revenue)",
            "dimensions": ["device", "app_version", "region", "channel", "customer_type",
                           "product_category"],
            "higher_is_better": True,
            "format": "currency",
        },
    },
}


def build_demo_warehouse(engine: DuckDBEngine, sessions_per_day: int = 72_000) -> int:
    """Create ``shop.sessions``; returns its row count (about 2.8M rows at the default size)."""
    engine.execute_all(sql.template(
        "demo_sessions.sql.j2",
        schema=sql.identifier(DEMO_TABLE.split(".")[0]),
        table=sql.table_ref(DEMO_TABLE),
        start=sql.literal(DEMO_START.isoformat()),
        n_days=DEMO_DAYS,
        sessions_per_day=sessions_per_day,
    ))
    count = engine.query(
        sql.template("count_rows.sql.j2", source=sql.table_ref(DEMO_TABLE))
    )
    return int(count.iloc[0, 0])


def write_demo_project(path: Path) -> Path:
    path.write_text(
        "# warehouse-rca project file written by `warehouse-rca demo`: the dimensional framework.\n"
        + yaml.safe_dump(DEMO_PROJECT, sort_keys=False)
    )
    return path


def demo_periods() -> tuple[Period, Period]:
    return Period.parse(BASELINE, option="--baseline"), Period.parse(CURRENT, option="--current")

