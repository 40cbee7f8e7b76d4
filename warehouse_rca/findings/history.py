"""A metric's past incidents: its succeeded runs with their causes and analysts' verdicts."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.engines.base import Engine
from warehouse_rca.findings.feedback import eq, select, table_exists
from warehouse_rca.findings.store import findings_table


def history(engine: Engine, schema: str, metric: str, limit: int = 20) -> list[dict[str, Any]]:
    """Past succeeded runs of ``metric`` (newest incident first) with their causes and verdicts."""
    runs_table, causes_table = findings_table(schema, "runs"), findings_table(schema, "root_causes")
    if not table_exists(engine, runs_table):
        return []
    runs = select(
        engine, runs_table, where=exp.and_(eq("metric", metric), eq("status", "succeeded")),
        order=[exp.Ordered(this=sql.column_ref("current_start"), desc=True),
               exp.Ordered(this=sql.column_ref("finished_at"), desc=True)],
        limit=limit,
    )
    causes = select(
        engine, causes_table, where=eq("metric", metric), order=[sql.column_ref("rank")]
    )
    verdicts: dict[tuple[str, str], dict[str, Any]] = {}
    feedback_table = findings_table(schema, "feedback")
    if table_exists(engine, feedback_table):
        for row in select(
            engine, feedback_table, where=eq("metric", metric),
            order=[sql.column_ref("created_at"), sql.column_ref("feedback_id")],
        ).to_dict("records"):
            verdicts[(str(row["run_id"]), str(row["finding_id"]))] = _clean(row)
    out = []
    for run in (_clean(r) for r in runs.to_dict("records")):
        mine = [_clean(c) for c in causes.to_dict("records") if c["run_id"] == run["run_id"]]
        out.append({
            "run_id": run["run_id"],
            "baseline": [_iso(run.get("baseline_start")), _iso(run.get("baseline_end"))],
            "current": [_iso(run.get("current_start")), _iso(run.get("current_end"))],
            "baseline_value": run.get("baseline_value"), "current_value": run.get("current_value"),
            "relative_change": run.get("relative_change"), "summary": run.get("summary"),
            "finished_at": _iso(run.get("finished_at")),
            "root_causes": [{
                "rank": c["rank"], "finding_id": c["finding_id"],
                "segment": json.loads(c["segment"] or "{}"),
                "segment_label": c["segment_label"], "effect": c.get("effect"),
                "share_of_change": c.get("share_of_change"), "confidence": c.get("confidence"),
                "feedback": {k: _iso(v) if isinstance(v, datetime) else v
                             for k, v in verdicts.get((run["run_id"], c["finding_id"]), {}).items()
                             if k in ("verdict", "author", "note", "created_at")} or None,
            } for c in mine],
        })
    return out


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            out[key] = None
        elif isinstance(value, pd.Timestamp):
            out[key] = value.to_pydatetime()
        elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
            out[key] = value.item()
        else:
            out[key] = value
    return out
