"""Stage 5: findings written back to the warehouse, for Looker, Tableau and scheduled jobs.

Tables (in the findings schema, default ``rca``):

* ``runs``: one row per investigation run (``run_id`` is a hash of what was asked, so rerunning
  the same investigation replaces its rows instead of adding new ones);
* ``root_causes``: one row per finding, keyed by ``(run_id, rank)`` with a stable ``finding_id``;
* views ``latest_runs`` and ``latest_root_causes``: the latest succeeded run per metric.

Run lifecycle: ``start_run`` records an attempt as ``running`` (its own ``attempt_id``; the views
ignore it, so the previous succeeded findings of the same run id stay visible); the findings are
staged in a private TEMPORARY table, then one transaction (under a per-run lock where the engine
has one) deletes the run's old rows and moves the staged rows in, with the ``succeeded`` run row.
``fail_run`` marks a failed attempt ``failed`` with its error. A process killed at any point leaves
either the old findings or the new ones, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.contract import Investigation, value_format
from warehouse_rca.cube.verify import verification_sqls
from warehouse_rca.engines.base import Engine, RowSwap
from warehouse_rca.errors import InputError, RcaError, WarehouseError
from warehouse_rca.narrative import leading_driver

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
    ("attempt_id", "VARCHAR"),
    ("error", "VARCHAR"),
    # significant with no segment cause: every sizeable segment moved alike
    ("global_change", "BOOLEAN"),
    # who asked: "monitor" (a detected incident) or "ad_hoc" (investigate, the Python API)
    ("origin", "VARCHAR"),
    # the unit of every value of the run and its findings: percent (changes in points),
    # currency or number; a BI measure never adds points of one metric to another's minutes
    ("metric_format", "VARCHAR"),
)
ORIGINS = ("monitor", "ad_hoc")

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
    ("counterfactual_value", "DOUBLE"),
    ("counterfactual_low", "DOUBLE"),
    ("counterfactual_high", "DOUBLE"),
    # causal validation (warehouse_rca.causal); NULL when it was off or not applicable
    ("causal_verdict", "VARCHAR"),
    ("causal_score", "DOUBLE"),
    ("drilldown_confidence", "DOUBLE"),
    ("change_start", "TIMESTAMP"),
    ("aggregate_change_start", "TIMESTAMP"),
    ("ordering", "VARCHAR"),
    ("did_estimate", "DOUBLE"),
    ("did_std_error", "DOUBLE"),
    ("did_p_value", "DOUBLE"),
    ("causal_control", "VARCHAR"),
    ("pre_trend_p_value", "DOUBLE"),
    ("parallel_trends", "BOOLEAN"),
    ("explained_by", "VARCHAR"),
    ("causal_counterfactual_value", "DOUBLE"),
    ("causal_counterfactual_low", "DOUBLE"),
    ("causal_counterfactual_high", "DOUBLE"),
    ("causal_evidence", "VARCHAR"),
    ("narrative", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
    # the query, in the warehouse's dialect, that reproduces the finding's numbers from the source
    ("verification_sql", "VARCHAR"),
    # validation loop (warehouse_rca.feedback): ranking prior and the segment's verdict status
    ("ranking_prior", "DOUBLE"),
    ("knowledge", "VARCHAR"),
    # new (no baseline rows) / vanished (no current rows) / NULL
    ("presence", "VARCHAR"),
    # the driver that explains the cause (causal.drivers), NULL when none does: its means inside
    # the segment and outside it per period, the share of the segment's change its shift
    # explains, the segment's value without the shift; every driver read, as JSON
    ("driver", "VARCHAR"),
    ("driver_baseline_mean", "DOUBLE"),
    ("driver_current_mean", "DOUBLE"),
    ("driver_outside_baseline_mean", "DOUBLE"),
    ("driver_outside_current_mean", "DOUBLE"),
    ("driver_explained_share", "DOUBLE"),
    ("driver_counterfactual_value", "DOUBLE"),
    ("driver_summary", "VARCHAR"),
    ("drivers", "VARCHAR"),
    # the unit of the finding's values (runs.metric_format)
    ("metric_format", "VARCHAR"),
)


#: Analysts' verdicts (findings.feedback writes them; created with the findings tables so the
#: BI views over them exist from the first run).
FEEDBACK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("feedback_id", "VARCHAR"),
    ("run_id", "VARCHAR"),
    ("finding_id", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("segment", "VARCHAR"),
    ("segment_label", "VARCHAR"),
    ("verdict", "VARCHAR"),
    ("author", "VARCHAR"),
    ("note", "VARCHAR"),
    ("incident_start", "TIMESTAMP"),
    ("created_at", "TIMESTAMP"),
    # the verdict holds for incidents starting before this (NULL: always)
    ("valid_until", "TIMESTAMP"),
)


def findings_table(schema: str, name: str) -> exp.Table:
    return exp.Table(this=sql.identifier(name), db=sql.identifier(schema))


def findings_tables(schema: str) -> dict[str, exp.Table]:
    return {
        name: findings_table(schema, name)
        for name in ("runs", "root_causes", "latest_runs", "latest_root_causes",
                     "latest_incidents")
    }


def _columns(spec: Sequence[tuple[str, str]]) -> list[dict[str, exp.Expr]]:
    return [{"name": sql.identifier(n), "type": exp.DataType.build(t)} for n, t in spec]


log = logging.getLogger("warehouse_rca.findings")

#: Read only by tests: a file path; the write creates it between the delete and the insert of its
#: transaction and waits (up to a minute) until the test deletes it or kills the process.
TEST_PAUSE_ENV = "WAREHOUSE_RCA_TEST_PAUSE_IN_WRITE"


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for a run id (or any name)."""
    digest = hashlib.sha256("\x1f".join(("warehouse-rca",) + parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def missing_columns(engine: Engine, table: exp.Table,
                     spec: Sequence[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """Columns of ``spec`` the table lacks, or None when the table does not exist."""
    try:
        have = {c.lower() for c in engine.columns_of(table)}
    except InputError:
        return None
    return [(n, t) for n, t in spec if n.lower() not in have]


def add_columns(engine: Engine, table: exp.Table, columns: Sequence[tuple[str, str]]) -> None:
    """Give a table of an older version the ``columns`` it lacks (``missing_columns``); NULL in
    the rows it holds."""
    for column, kind in columns:
        engine.execute(sql.template("add_column.sql.j2", table=table,
                                    column=sql.identifier(column), type=exp.DataType.build(kind)))


def ensure_tables(engine: Engine, schema: str) -> None:
    """Create the findings schema, tables and views if they do not exist; add new columns.

    Probes first (no rows read): when everything exists no DDL runs, so a role with only
    INSERT/DELETE/UPDATE on existing tables can write. Otherwise the DDL runs in one transaction
    under a lock, because concurrent CREATE ... IF NOT EXISTS races on PostgreSQL's catalog.
    """
    tables = findings_tables(schema)
    specs = {"runs": RUNS_COLUMNS, "root_causes": ROOT_CAUSE_COLUMNS}

    def missing_now() -> dict[str, list[tuple[str, str]] | None] | None:
        missing = {
            name: missing_columns(engine, tables[name], spec) for name, spec in specs.items()
        }
        views_exist = all(
            missing_columns(engine, tables[v], ()) is not None
            for v in ("latest_runs", "latest_root_causes", "latest_incidents")
        )
        return None if views_exist and all(m == [] for m in missing.values()) else missing

    attempts = 5
    for attempt in range(attempts):
        try:
            # Probed outside the transaction (a failed probe would abort it). The probe itself can
            # be a deadlock victim: a probe of latest_root_causes locks that view, then
            # latest_runs, while a concurrent first run's CREATE OR REPLACE VIEW holds latest_runs
            # and waits for latest_root_causes. Either side may be aborted; both roll back as a
            # whole, so probe again (the other schedule has usually created everything by now).
            missing = missing_now()
            if missing is None:
                return
            _create_tables(engine, schema, tables, missing)
            return
        except WarehouseError as err:
            if attempt == attempts - 1 or not engine._is_transient(err.__cause__ or err):
                raise
            log.warning("findings DDL in %s hit a transient error, retrying: %s", schema, err)
            time.sleep(random.uniform(0.1, 0.3) * (attempt + 1))


def _create_tables(engine: Engine, schema: str, tables: dict[str, exp.Table],
                   missing: dict[str, list[tuple[str, str]] | None]) -> None:
    with engine.transaction():
        engine.lock(_lock_key("findings-ddl", schema))
        engine.execute_all(sql.template(
            "findings_ddl.sql.j2",
            schema=sql.identifier(schema),
            # Without DELETE (plain Spark tables) a run is replaced by overwriting its partition.
            partition_by=engine.partition_column("run_id"),
            tables=[
                {"name": tables["runs"], "columns": _columns(RUNS_COLUMNS)},
                {"name": tables["root_causes"], "columns": _columns(ROOT_CAUSE_COLUMNS)},
            ],
        ))
        for name, cols in missing.items():
            if cols:  # tables from an older version
                add_columns(engine, tables[name], cols)
        engine.execute_all(sql.template("findings_views.sql.j2", **tables, run_columns=[
            sql.identifier(n) for n, _ in RUNS_COLUMNS]))
        create_feedback_objects(engine, schema)


def create_feedback_objects(engine: Engine, schema: str) -> None:
    """The feedback table (when missing) and the views over it: the latest verdict per finding,
    the knowledge base, and the open incidents (the monitor's incidents no analyst has given a
    verdict on yet)."""
    feedback = findings_table(schema, "feedback")
    engine.execute_all(sql.template(
        "findings_ddl.sql.j2", schema=sql.identifier(schema), partition_by=None,
        tables=[{"name": feedback, "columns": _columns(FEEDBACK_COLUMNS)}],
    ))
    lacking = missing_columns(engine, feedback, FEEDBACK_COLUMNS)
    if lacking:  # a feedback table of an older version
        add_columns(engine, feedback, lacking)
    engine.execute_all(sql.template(
        "feedback_views.sql.j2", feedback=feedback,
        latest_feedback=findings_table(schema, "latest_feedback"),
        knowledge_base=findings_table(schema, "knowledge_base"),
        open_incidents=findings_table(schema, "open_incidents"),
        runs=findings_table(schema, "runs"),
        columns=[sql.identifier(n) for n, _ in FEEDBACK_COLUMNS],
        run_columns=[sql.identifier(n) for n, _ in RUNS_COLUMNS],
    ))


def _pause_for_tests() -> None:
    marker = os.environ.get(TEST_PAUSE_ENV)
    if not marker:
        return
    with open(marker, "w") as handle:
        handle.write(str(os.getpid()))
    deadline = time.monotonic() + 60
    while os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.05)


def replace_run(engine: Engine, schema: str, run_row: dict[str, Any],
                cause_rows: Sequence[dict[str, Any]]) -> None:
    """Replace everything stored under ``run_row['run_id']``: stage, then swap in one transaction.

    The staging table is TEMPORARY and named after the attempt, so concurrent writers never share
    it and a killed process leaves nothing behind. The swap holds a per-run lock (PostgreSQL
    advisory lock) so two schedules writing the same run take turns instead of duplicating rows.
    """
    tables = findings_tables(schema)
    run_row = {**run_row, "attempt_id": run_row.get("attempt_id") or uuid.uuid4().hex}
    run_id = sql.literal(run_row["run_id"])
    engine.swap_rows([
        RowSwap(tables["root_causes"], ROOT_CAUSE_COLUMNS, cause_rows,
                condition=exp.column("run_id").eq(run_id),
                partition=("run_id", run_row["run_id"])),
        # This attempt's runs row replaces every earlier attempt of the run id (succeeded,
        # failed, or abandoned while running), but not a concurrent attempt that started later.
        RowSwap(tables["runs"], RUNS_COLUMNS, [run_row], condition=exp.and_(
            exp.column("run_id").eq(run_id),
            exp.or_(
                exp.column("attempt_id").eq(sql.literal(run_row["attempt_id"])),
                exp.column("attempt_id").is_(exp.null()),
                exp.column("status").neq(sql.literal("running")),
                exp.column("started_at") <= sql.literal(run_row["started_at"]),
            ),
        ), partition=("run_id", run_row["run_id"])),
    ], lock_key=_lock_key("run", run_row["run_id"]), before_insert=_pause_for_tests)


@dataclass(frozen=True)
class RunAttempt:
    """One attempt at a run, recorded as ``running`` before the investigation starts."""

    run_id: str
    attempt_id: str
    schema: str
    metric: str
    started_at: datetime


def start_run(engine: Engine, run_id: str, metric: str, schema: str | None = None) -> RunAttempt:
    """Record a ``running`` attempt. Fails early (before any costly query) when the findings
    schema cannot be written, with a message that says which privileges are needed."""
    schema = schema or engine.findings_schema
    attempt = RunAttempt(run_id=run_id, attempt_id=uuid.uuid4().hex, schema=schema, metric=metric,
                         started_at=_naive_utc(datetime.now(timezone.utc)))
    try:
        with sql.query_tag(run_id):
            ensure_tables(engine, schema)
            abandon_stale_runs(engine, schema, attempt.started_at)
            engine.insert_rows(findings_tables(schema)["runs"], RUNS_COLUMNS, [{
                "run_id": run_id, "attempt_id": attempt.attempt_id, "metric": metric,
                "status": "running", "started_at": attempt.started_at,
            }])
    except WarehouseError as err:
        raise WarehouseError(
            f"cannot record the run in findings schema {schema!r}: {err} (the role needs CREATE on "
            "the schema, or INSERT/UPDATE/DELETE on its runs and root_causes tables; "
            "--no-write runs without writing)"
        ) from err
    return attempt


#: An attempt still ``running`` this long after it started was killed: the next run on the schema
#: marks it ``abandoned`` (no investigation runs for hours; a scheduler's timeout is shorter).
ABANDON_AFTER = timedelta(hours=6)


def abandon_stale_runs(engine: Engine, schema: str, now: datetime) -> None:
    """Mark attempts ``running`` for longer than :data:`ABANDON_AFTER` as ``abandoned``."""
    table = findings_tables(schema)["runs"]
    cutoff = now - ABANDON_AFTER
    error = f"abandoned: still running {ABANDON_AFTER} after it started (the process was killed)"
    statement = sql.template("runs_abandon.sql.j2", table=table, finished_at=sql.literal(now),
                             error=sql.literal(error), cutoff=sql.literal(cutoff))
    def stale_rows() -> list[dict[str, Any]]:
        # Without UPDATE (plain Spark tables) an abandoned row goes next to each stale running
        # one, once: attempts that already have one are skipped. Only a month of stale attempts
        # is read (older ones were abandoned by an earlier run). Not read where UPDATE runs.
        recent = engine.query(sql.template(
            "feedback_select.sql.j2", table=table, order=[], limit=None,
            columns=[sql.identifier(n) for n in ("run_id", "attempt_id", "metric", "started_at",
                                                 "status")],
            condition=exp.and_(
                exp.column("status").isin(sql.literal("running"), sql.literal("abandoned")),
                exp.column("started_at") < sql.literal(cutoff),
                exp.column("started_at") >= sql.literal(cutoff - timedelta(days=30))),
        )).rename(columns=str.lower)
        done = set(recent.loc[recent["status"] == "abandoned", "attempt_id"])
        stale = recent[(recent["status"] == "running") & ~recent["attempt_id"].isin(done)]
        return [{"run_id": r.run_id, "attempt_id": r.attempt_id, "metric": r.metric,
                 "status": "abandoned", "started_at": pd.Timestamp(r.started_at).to_pydatetime(),
                 "finished_at": now, "error": error} for r in stale.itertuples()]

    engine.update_or_append(statement, table, RUNS_COLUMNS, stale_rows)


def fail_run(engine: Engine, attempt: RunAttempt, error: BaseException | str) -> bool:
    """Mark an attempt ``failed`` with its error; best effort (reconnects once if the connection
    was lost). Returns whether the row was written. The message is the tool's own error text,
    which never holds credentials."""
    message = str(error)[:2000]
    statement = sql.template(
        "runs_fail.sql.j2", table=findings_tables(attempt.schema)["runs"],
        finished_at=sql.literal(_naive_utc(datetime.now(timezone.utc))),
        error=sql.literal(message.replace("\x00", "")),
        run_id=sql.literal(attempt.run_id), attempt_id=sql.literal(attempt.attempt_id),
    )
    failed_row = {
        "run_id": attempt.run_id, "attempt_id": attempt.attempt_id, "metric": attempt.metric,
        "status": "failed", "started_at": attempt.started_at,
        "error": message.replace("\x00", ""),
        "finished_at": _naive_utc(datetime.now(timezone.utc)),
    }
    for _ in range(2):
        try:
            if engine.is_disconnected():
                engine.reconnect()
            with sql.query_tag(attempt.run_id):
                # No UPDATE (plain Spark tables): a failed row next to the running one; the views
                # read succeeded runs only.
                engine.update_or_append(
                    statement, findings_tables(attempt.schema)["runs"], RUNS_COLUMNS, [failed_row]
                )
            return True
        except RcaError as err:
            log.warning("could not record the failed run %s: %s", attempt.run_id, err)
    return False


def _causal_columns(cause: dict[str, Any]) -> dict[str, Any]:
    """The causal evidence of one finding as findings-table columns (all NULL without it)."""
    ev = cause.get("causal")
    if not ev:
        return {}
    when = (lambda t: datetime.fromisoformat(t) if t else None)
    interval = ev.get("counterfactual_interval") or [None, None]
    return {
        "causal_verdict": ev.get("verdict"),
        "causal_score": ev.get("causal_score"),
        "drilldown_confidence": cause.get("drilldown_confidence"),
        "change_start": when(ev.get("change_start")),
        "aggregate_change_start": when(ev.get("aggregate_change_start")),
        "ordering": ev.get("ordering"),
        "did_estimate": ev.get("did_estimate"),
        "did_std_error": ev.get("did_std_error"),
        "did_p_value": ev.get("did_p_value"),
        "causal_control": ev.get("control"),
        "pre_trend_p_value": ev.get("pre_trend_p_value"),
        "parallel_trends": ev.get("parallel_trends"),
        "explained_by": (json.dumps(ev["explained_by"], sort_keys=True, ensure_ascii=False)
                         if ev.get("explained_by") else None),
        "causal_counterfactual_value": ev.get("counterfactual_value"),
        "causal_counterfactual_low": interval[0],
        "causal_counterfactual_high": interval[1],
        "causal_evidence": json.dumps(ev, sort_keys=True, ensure_ascii=False, default=str),
    }


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def write_investigation(engine: Engine, investigation: Investigation, schema: str | None = None,
                        attempt: RunAttempt | None = None, origin: str = "ad_hoc") -> str:
    """Write one investigation's run row and findings; returns the schema written to.

    ``attempt`` (from :func:`start_run`) turns that attempt's ``running`` row into the result;
    ``origin`` says who asked (:data:`ORIGINS`): the ``latest_incidents`` view shows the monitor's.
    """
    if origin not in ORIGINS:
        raise InputError(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
    schema = schema or (attempt.schema if attempt else None) or engine.findings_schema
    with sql.query_tag(investigation.run_id):
        ensure_tables(engine, schema)
        _write(engine, investigation, schema, attempt, origin)
    return schema


def _write(
    engine: Engine, investigation: Investigation, schema: str, attempt: RunAttempt | None,
    origin: str,
) -> None:
    doc = investigation.to_json()
    now = _naive_utc(datetime.now(timezone.utc))
    baseline, current = investigation.periods.get("baseline"), investigation.periods.get("current")
    run_row = {
        "run_id": doc["run_id"],
        "metric": doc["metric"],
        "metric_kind": doc["kind"],
        "baseline_start": baseline.start if baseline else None,
        "baseline_end": baseline.end_exclusive if baseline else None,
        "current_start": current.start if current else None,
        "current_end": current.end_exclusive if current else None,
        "baseline_value": doc["baseline_value"],
        "current_value": doc["current_value"],
        "change": doc["change"],
        "relative_change": doc["relative_change"],
        "p_value": doc["p_value"],
        "significant": doc["significant"],
        "n_root_causes": len(doc["root_causes"]),
        "summary": doc["summary"],
        "status": "succeeded",
        "started_at": attempt.started_at if attempt else _naive_utc(investigation.started_at),
        "finished_at": now,
        "tool_version": doc["tool_version"],
        "parameters": json.dumps(doc["parameters"], sort_keys=True),
        "attempt_id": attempt.attempt_id if attempt else uuid.uuid4().hex,
        "error": None,
        "global_change": bool(doc.get("global_change")),
        "origin": origin,
        "metric_format": value_format(investigation.metric),
    }
    verification = _verification_sql(engine, investigation, doc)
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
            "presence": c.get("presence"),
            "rate_effect": c["rate_effect"],
            "mix_effect": c["mix_effect"],
            "baseline_support": c["baseline_support"],
            "current_support": c["current_support"],
            "p_value": c["p_value"],
            "confidence": c["confidence"],
            "counterfactual_value": c.get("counterfactual_value"),
            "counterfactual_low": (c.get("counterfactual_interval") or [None, None])[0],
            "counterfactual_high": (c.get("counterfactual_interval") or [None, None])[1],
            **_causal_columns(c),
            "narrative": c["narrative"],
            "created_at": now,
            "verification_sql": verification.get(c["finding_id"]),
            "ranking_prior": c.get("prior"),
            "knowledge": c.get("knowledge"),
            **_driver_columns(c),
            "metric_format": value_format(investigation.metric),
        }
        for c in doc["root_causes"]
    ]
    replace_run(engine, schema, run_row, cause_rows)


def _driver_columns(cause: dict[str, Any]) -> dict[str, Any]:
    """The explaining driver's columns (narrative.leading_driver), all drivers as JSON."""
    lead = leading_driver(cause) or {}
    return {
        "driver": lead.get("driver"),
        "driver_baseline_mean": lead.get("baseline_mean"),
        "driver_current_mean": lead.get("current_mean"),
        "driver_outside_baseline_mean": lead.get("outside_baseline_mean"),
        "driver_outside_current_mean": lead.get("outside_current_mean"),
        "driver_explained_share": lead.get("explained_share"),
        "driver_counterfactual_value": lead.get("counterfactual_value"),
        "driver_summary": cause.get("driver_summary"),
        "drivers": (json.dumps(cause["drivers"], sort_keys=True) if cause.get("drivers")
                    else None),
    }


def _verification_sql(
    engine: Engine, investigation: Investigation, doc: dict[str, Any]
) -> dict[str, str]:
    """finding_id -> the SQL (warehouse dialect) reproducing its numbers; best effort."""
    try:
        return verification_sqls(
            engine, investigation.metric, investigation.periods, doc["root_causes"]
        )
    except RcaError as err:
        log.warning("could not build verification SQL: %s", err)
        return {}
