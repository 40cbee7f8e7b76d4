"""The validation loop: analysts confirm or reject findings; confirmed causes form a knowledge base.

``warehouse-rca feedback RUN_ID FINDING --confirm|--reject`` appends one row to the ``feedback``
table of the findings schema (who, when, why). Views ``latest_feedback`` (the latest verdict per
finding) and ``knowledge_base`` (per metric and segment) expose it to BI tools.

Ranking rule (applied by :meth:`KnowledgeBase.rank` to every new investigation of the metric):

1. a verdict counts once per finding: the latest feedback row of a ``(run_id, finding_id)`` wins,
   so an analyst can change their mind;
2. per metric and *exact* segment (the same ``dimension = value`` pairs), count the findings whose
   latest verdict is ``confirmed`` (C) and ``rejected`` (R);
3. the segment's prior is ``3`` when C > R (a confirmed pattern), ``1/3`` when R > C (a rejected
   one), ``1.0`` otherwise (never reviewed, or a tie);
4. causes are ordered by ``|contribution| x prior``, largest first; ties keep the drill-down's
   order. Ranks are renumbered; contributions, confidences and finding ids do not change.

Each cause's JSON gains ``prior``, ``ranking_score``, ``knowledge`` (``confirmed``,
``rejected`` or null) and ``seen_before`` (earlier incidents of the metric where the same segment
was a root cause, with their verdicts), and its narrative says so
("Seen before: also the cause on 2026-10-03, confirmed by alice.").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.contract import (
    CONFIRMED,
    REJECTED,
    KnowledgeBase,
    PastIncident,
    canonical_segment,
)
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import InputError
from warehouse_rca.findings.store import (
    FEEDBACK_COLUMNS,
    create_feedback_objects,
    findings_table,
    missing_columns,
)


def select(engine: Engine, table: exp.Table, *, columns: Sequence[str] | None = None,
           where: exp.Expr | None = None, order: Sequence[exp.Expr] = (),
           limit: int | None = None) -> pd.DataFrame:
    """Read rows of a findings table (small by design); None for a table that does not exist."""
    cols: list[exp.Expr] = [exp.Star()] if not columns else [sql.identifier(c) for c in columns]
    return engine.query(sql.template("feedback_select.sql.j2", columns=cols,
                                   table=table, condition=where, order=list(order), limit=limit))


def table_exists(engine: Engine, table: exp.Table) -> bool:
    try:
        engine.columns_of(table)
    except InputError:
        return False
    return True


def eq(column: str, value: Any) -> exp.Expr:
    """``column = value`` with a quoted name and a literal value."""
    return exp.EQ(this=sql.column_ref(column), expression=sql.literal(value))


def ensure_feedback_table(engine: Engine, schema: str) -> exp.Table:
    """Create the feedback table and its views when missing (no DDL when they exist)."""
    table = findings_table(schema, "feedback")
    latest = findings_table(schema, "latest_feedback")
    # Views of an older version leaked their helper column (rn): those are replaced.
    if (table_exists(engine, table)
            and all(table_exists(engine, findings_table(schema, v))
                    for v in ("knowledge_base", "open_incidents"))
            and "rn" not in {c.lower() for c in engine.columns_of(latest)}
            and not missing_columns(engine, table, FEEDBACK_COLUMNS)):
        return table
    create_feedback_objects(engine, schema)
    return table


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def find_finding(engine: Engine, schema: str, run_id: str, finding: str) -> dict[str, Any]:
    """A finding of a run by rank (``1``) or finding id (or a unique prefix of it)."""
    if not str(finding).strip():
        raise InputError("FINDING is empty: give its rank (1, 2, ...) or its finding id")
    causes_table = findings_table(schema, "root_causes")
    if not table_exists(engine, causes_table):
        raise InputError(f"no findings tables in schema {schema!r}: run an investigation first")
    causes = select(engine, causes_table, where=eq("run_id", run_id),
                    order=[sql.column_ref("rank")])
    if causes.empty:
        raise InputError(f"run {run_id!r} has no findings in {schema}.root_causes "
                         "(`warehouse-rca history METRIC` lists runs)")
    text = str(finding).strip()
    if text.isdigit():
        match = causes[causes["rank"].astype(int) == int(text)]
    else:
        match = causes[causes["finding_id"].astype(str).str.startswith(text)]
    if len(match) != 1:
        known = ", ".join(f"{int(r['rank'])} ({r['finding_id']}: {r['segment_label']})"
                          for _, r in causes.iterrows())
        what = "matches several findings" if len(match) > 1 else "is not a finding of this run"
        raise InputError(f"finding {text!r} {what}; run {run_id} has: {known}")
    return {k: (None if pd.isna(v) else v) for k, v in match.iloc[0].to_dict().items()}


def record_feedback(engine: Engine, schema: str, run_id: str, finding: str, verdict: str,
                    author: str, note: str | None = None,
                    valid_until: datetime | None = None) -> dict[str, Any]:
    """Append one verdict (``confirmed`` or ``rejected``) on a finding; returns the row written.
    ``valid_until``: the verdict holds for incidents starting before it (None: always)."""
    if verdict not in (CONFIRMED, REJECTED):
        raise InputError(f"verdict must be {CONFIRMED!r} or {REJECTED!r}, not {verdict!r}")
    if not author or not author.strip():
        raise InputError("feedback needs an author (--by NAME or WAREHOUSE_RCA_USER)")
    cause = find_finding(engine, schema, run_id, finding)
    incident_start = None
    runs = findings_table(schema, "runs")
    if table_exists(engine, runs):
        frame = select(engine, runs, columns=["current_start"],
                       where=exp.and_(eq("run_id", run_id), eq("status", "succeeded")))
        if not frame.empty and not pd.isna(frame.iloc[0, 0]):
            incident_start = pd.Timestamp(frame.iloc[0, 0]).to_pydatetime()
    table = ensure_feedback_table(engine, schema)
    row = {
        "feedback_id": uuid.uuid4().hex,
        "run_id": run_id,
        "finding_id": cause["finding_id"],
        "metric": cause["metric"],
        "segment": canonical_segment(cause["segment"]),
        "segment_label": cause["segment_label"],
        "verdict": verdict,
        "author": author.strip(),
        "note": note,
        "incident_start": incident_start,
        "created_at": _naive_utc(datetime.now(timezone.utc)),
        "valid_until": valid_until,
    }
    engine.insert_rows(table, FEEDBACK_COLUMNS, [row])
    return row


def load_knowledge(engine: Engine, schema: str, metric: str,
                   at: datetime | None = None) -> KnowledgeBase:
    """The metric's knowledge base from the findings schema: two small reads of the findings
    tables (never fact rows). Missing tables mean an empty knowledge base; nothing is created.
    ``at``: the incident's start; verdicts valid only until before it do not rank it."""
    kb = KnowledgeBase(metric)
    tables = {n: findings_table(schema, n) for n in ("runs", "root_causes", "feedback")}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    if table_exists(engine, tables["feedback"]):
        rows = select(engine, tables["feedback"], where=eq("metric", metric),
                      order=[sql.column_ref("created_at"), sql.column_ref("feedback_id")])
        for _, row in rows.iterrows():
            latest[(str(row["run_id"]), str(row["finding_id"]))] = row.to_dict()
        directions: dict[str, str] = {}
        if table_exists(engine, tables["runs"]):
            moved = select(engine, tables["runs"], columns=["run_id", "change"],
                           where=exp.and_(eq("metric", metric), eq("status", "succeeded")))
            directions = {str(r["run_id"]): ("up" if r["change"] > 0 else "down")
                          for _, r in moved.iterrows()
                          if not pd.isna(r["change"]) and r["change"] != 0}
        for row in latest.values():
            until = row.get("valid_until")
            if at is not None and until is not None and not pd.isna(until) \
                    and pd.Timestamp(until) <= pd.Timestamp(at):
                continue  # the verdict was given for a while, and that while is over
            key = canonical_segment(row["segment"])
            hit = (int(row["verdict"] == CONFIRMED), int(row["verdict"] == REJECTED))
            c, r = kb.verdicts.get(key, (0, 0))
            kb.verdicts[key] = (c + hit[0], r + hit[1])
            direction = directions.get(str(row["run_id"]))
            if direction is not None:
                c, r = kb.scoped.get((key, direction), (0, 0))
                kb.scoped[(key, direction)] = (c + hit[0], r + hit[1])
    if table_exists(engine, tables["runs"]) and table_exists(engine, tables["root_causes"]):
        runs = select(engine, tables["runs"], columns=["run_id", "current_start"],
                      where=exp.and_(eq("metric", metric), eq("status", "succeeded")))
        dates = {str(r["run_id"]): (None if pd.isna(r["current_start"])
                                    else pd.Timestamp(r["current_start"]).to_pydatetime())
                 for _, r in runs.iterrows()}
        causes = select(engine, tables["root_causes"], columns=["run_id", "finding_id", "segment"],
                        where=eq("metric", metric))
        for _, row in causes.iterrows():
            run_id = str(row["run_id"])
            if run_id not in dates:
                continue
            verdict = latest.get((run_id, str(row["finding_id"])), {})
            kb.incidents.setdefault(canonical_segment(row["segment"]), []).append(PastIncident(
                run_id=run_id, date=dates[run_id], verdict=verdict.get("verdict"),
                author=verdict.get("author"), note=verdict.get("note"),
            ))
        for items in kb.incidents.values():
            items.sort(key=lambda i: i.date or datetime.min, reverse=True)
    return kb


def feedback_for_run(engine: Engine, schema: str, run_id: str) -> dict[str, dict[str, Any]]:
    """finding_id -> its latest feedback row, for one run (empty without a feedback table)."""
    table = findings_table(schema, "feedback")
    if not table_exists(engine, table):
        return {}
    rows = select(engine, table, where=eq("run_id", run_id),
                  order=[sql.column_ref("created_at"), sql.column_ref("feedback_id")])
    return {str(r["finding_id"]): {k: (None if pd.isna(v) else v) for k, v in r.to_dict().items()}
            for _, r in rows.iterrows()}
