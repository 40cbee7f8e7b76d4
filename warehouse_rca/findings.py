"""Stage 5: findings written back to the warehouse, for Looker, Tableau and scheduled jobs.

Tables (in the findings schema, default ``rca``):

* ``runs``: one row per investigation run (``run_id`` is a hash of what was asked, so rerunning
  the same investigation replaces its rows instead of adding new ones);
* ``root_causes``: one row per finding, keyed by ``(run_id, rank)`` with a stable ``finding_id``;
* views ``latest_runs`` and ``latest_root_causes``: the latest succeeded run per metric.

A run's rows are replaced in one transaction (delete + insert), so a failure leaves the previous
findings as they were.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.engines.base import Engine

if TYPE_CHECKING:
    from warehouse_rca.investigate import Investigation

RUNS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("metric_kind", "VARCHAR"),
    ("baseline_start", "TIMESTAMP"),
    ("baseline_end", "TIMESTAMP"),
    ("current_start", "TIMESTAMP"),
    ("current_end", "TIMESTAMP"),
    ("baseline_value", "DOUBLE"),
    ("current_value", "DOUBLE"),
    ("change", "DOUBLE"),
    ("relative_change", "DOUBLE"),
    ("p_value", "DOUBLE"),
    ("significant", "BOOLEAN"),
    ("n_root_causes", "INTEGER"),
    ("summary", "VARCHAR"),
    ("status", "VARCHAR"),
    ("started_at", "TIMESTAMP"),
    ("finished_at", "TIMESTAMP"),
    ("tool_version", "VARCHAR"),
    ("parameters", "VARCHAR"),
)

ROOT_CAUSE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("finding_id", "VARCHAR"),
    ("rank", "INTEGER"),
    ("metric", "VARCHAR"),
    ("segment", "VARCHAR"),
    ("segment_label", "VARCHAR"),
    ("dimensions", "VARCHAR"),
    ("depth", "INTEGER"),
    ("baseline_value", "DOUBLE"),
    ("current_value", "DOUBLE"),
    ("change", "DOUBLE"),
    ("contribution", "DOUBLE"),
    ("share_of_change", "DOUBLE"),
    ("effect", "VARCHAR"),
    ("rate_effect", "DOUBLE"),
    ("mix_effect", "DOUBLE"),
    ("baseline_support", "DOUBLE"),
    ("current_support", "DOUBLE"),
    ("p_value", "DOUBLE"),
    ("confidence", "DOUBLE"),
    ("narrative", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
)


def _table(schema: str, name: str) -> exp.Table:
    return exp.Table(this=sql.identifier(name), db=sql.identifier(schema))


def findings_tables(schema: str) -> dict[str, exp.Table]:
    return {
        name: _table(schema, name)
        for name in ("runs", "root_causes", "latest_runs", "latest_root_causes")
    }


def _columns(spec: Sequence[tuple[str, str]]) -> list[dict[str, exp.Expression]]:
    return [{"name": sql.identifier(n), "type": exp.DataType.build(t)} for n, t in spec]


def ensure_tables(engine: Engine, schema: str) -> None:
    """Create the findings schema, tables and views if they do not exist."""
    tables = findings_tables(schema)
    for statement in sql.render_all(
        "findings_ddl.sql.j2",
        engine.DIALECT,
        schema=sql.identifier(schema),
        tables=[
            {"name": tables["runs"], "columns": _columns(RUNS_COLUMNS)},
            {"name": tables["root_causes"], "columns": _columns(ROOT_CAUSE_COLUMNS)},
        ],
    ):
        engine.execute(statement)
    for statement in sql.render_all("findings_views.sql.j2", engine.DIALECT, **tables):
        engine.execute(statement)


def _insert(engine: Engine, table: exp.Table, spec: Sequence[tuple[str, str]],
            rows: Sequence[dict[str, Any]]) -> None:
    statement = sql.render(
        "insert_rows.sql.j2", engine.DIALECT, table=table, columns=[sql.identifier(n) for n, _ in spec]
    )
    engine.executemany(statement, [[row.get(n) for n, _ in spec] for row in rows])


def replace_run(engine: Engine, schema: str, run_row: dict[str, Any],
                cause_rows: Sequence[dict[str, Any]]) -> None:
    """Replace everything stored under ``run_row['run_id']`` in one transaction."""
    tables = findings_tables(schema)
    run_id = sql.literal(run_row["run_id"])
    with engine.transaction():
        for name in ("root_causes", "runs"):
            engine.execute(sql.render("delete_run.sql.j2", engine.DIALECT, table=tables[name], run_id=run_id))
        _insert(engine, tables["root_causes"], ROOT_CAUSE_COLUMNS, cause_rows)
        _insert(engine, tables["runs"], RUNS_COLUMNS, [run_row])


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def write_investigation(engine: Engine, investigation: Investigation, schema: str | None = None) -> str:
    """Write one investigation's run row and findings; returns the schema written to."""
    schema = schema or engine.findings_schema
    ensure_tables(engine, schema)
    doc = investigation.to_json()
    now = _naive_utc(datetime.now(timezone.utc))
    periods = investigation.periods
    run_row = {
        "run_id": doc["run_id"],
        "metric": doc["metric"],
        "metric_kind": doc["kind"],
        "baseline_start": periods["baseline"].start if periods.get("baseline") else None,
        "baseline_end": periods["baseline"].end_exclusive if periods.get("baseline") else None,
        "current_start": periods["current"].start if periods.get("current") else None,
        "current_end": periods["current"].end_exclusive if periods.get("current") else None,
        "baseline_value": doc["baseline_value"],
        "current_value": doc["current_value"],
        "change": doc["change"],
        "relative_change": doc["relative_change"],
        "p_value": doc["p_value"],
        "significant": doc["significant"],
        "n_root_causes": len(doc["root_causes"]),
        "summary": doc["summary"],
        "status": "succeeded",
        "started_at": _naive_utc(investigation.started_at),
        "finished_at": now,
        "tool_version": doc["tool_version"],
        "parameters": json.dumps(doc["parameters"], sort_keys=True),
    }
    cause_rows = [
        {
            "run_id": doc["run_id"],
            "finding_id": c["finding_id"],
            "rank": c["rank"],
            "metric": doc["metric"],
            "segment": json.dumps(c["segment"], sort_keys=True, ensure_ascii=False),
            "segment_label": c["segment_label"],
            "dimensions": ",".join(c["segment"]),
            "depth": len(c["segment"]),
            "baseline_value": c["baseline_value"],
            "current_value": c["current_value"],
            "change": c["change"],
            "contribution": c["contribution"],
            "share_of_change": c["share_of_change"],
            "effect": c["effect"],
            "rate_effect": c["rate_effect"],
            "mix_effect": c["mix_effect"],
            "baseline_support": c["baseline_support"],
            "current_support": c["current_support"],
            "p_value": c["p_value"],
            "confidence": c["confidence"],
            "narrative": c["narrative"],
            "created_at": now,
        }
        for c in doc["root_causes"]
    ]
    replace_run(engine, schema, run_row, cause_rows)
    return schema
