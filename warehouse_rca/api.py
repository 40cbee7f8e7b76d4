"""The Python entry points a notebook, an Airflow task or a Dagster asset calls; the CLI calls the
same ones.

    from warehouse_rca import load_project, load_target, connect, run_investigation, Period

    project = load_project("warehouse_rca.yml")
    with connect(load_target()) as engine:
        run = run_investigation(engine, project.metric("conversion_rate"),
                                baseline=Period.parse("2026-11-09:2026-11-15"),
                                current=Period.parse("2026-11-16:2026-11-22"))
    run.document["summary"]       # what `investigate --format json` prints

``investigate`` (read-only: it writes nothing) and ``run_monitor`` are re-exported from their
stages; :func:`run_investigation` is the run's whole lifecycle as ``investigate`` runs it, and
:func:`monitor_project` is ``warehouse-rca monitor``'s (detection, investigations, reports,
alerts), so a scheduler calling Python gets what the CLI gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import lkml

from warehouse_rca.alerts import (
    ALERT_CLAIMS_COLUMNS,
    ALERTS_SENT_COLUMNS,
    AlertResult,
    incidents_from_outcome,
    send_incidents,
)
from warehouse_rca.contract import Investigation, InvestigationOptions, run_id_for, value_format
from warehouse_rca.dimensions.drift import DRIFT_COLUMNS, FRAMEWORK_COLUMNS
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import RcaError
from warehouse_rca.findings.feedback import FEEDBACK_COLUMNS, load_knowledge
from warehouse_rca.findings.store import (
    ROOT_CAUSE_COLUMNS,
    RUNS_COLUMNS,
    RunAttempt,
    fail_run,
    start_run,
    write_investigation,
)
from warehouse_rca.investigate import investigate
from warehouse_rca.monitor import (
    ANOMALY_COLUMNS,
    SERIES_COLUMNS,
    STATE_COLUMNS,
    MonitorResult,
    run_monitor,
)
from warehouse_rca.report.html import build_report, write_report
from warehouse_rca.spec.alerts import load_alert_settings
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec, Project


@dataclass
class InvestigationRun:
    """What :func:`run_investigation` did: the investigation, and the findings written (None when
    ``write`` was off)."""

    investigation: Investigation
    written: Any = None

    @property
    def document(self) -> dict[str, Any]:
        """The JSON document (``investigate --format json``)."""
        return self.investigation.to_json()


def run_investigation(engine: Engine, metric: MetricSpec, *, baseline: Period | None,
                      current: Period | None, options: InvestigationOptions | None = None,
                      schema: str | None = None, write: bool = True) -> InvestigationRun:
    """Investigate ``metric`` and store the findings, as ``warehouse-rca investigate`` does.

    With ``write``, the run is recorded as running first (a role that cannot write findings
    fails here, before the costly queries), the analysts' verdicts on earlier findings of the
    metric re-rank the causes, the findings replace the run's earlier ones, and a run that
    fails leaves a ``failed`` row with its error before the error is raised again."""
    options = options or InvestigationOptions()
    attempt: RunAttempt | None = None
    if write:
        run_id = run_id_for(metric, {"baseline": baseline, "current": current}, options)
        attempt = start_run(engine, run_id, metric.name, schema)
    try:
        with engine.reading():  # the metric's SQL runs in a read-only session where possible
            knowledge = load_knowledge(engine, schema or engine.findings_schema, metric.name,
                                       at=current.start if current is not None else None)
            found = investigate(engine, metric, baseline=baseline, current=current,
                                options=options, knowledge=knowledge)
        written = write_investigation(engine, found, schema, attempt=attempt) if write else None
    except RcaError as err:
        if attempt is not None:
            fail_run(engine, attempt, err)
        raise
    return InvestigationRun(found, written)


@dataclass
class MonitorRun:
    """What :func:`monitor_project` did: the monitor's result (``result.to_json()`` is what
    ``monitor --format json`` prints), the reports written and the alerts sent."""

    result: MonitorResult
    reports: list[Path] = field(default_factory=list)
    alerts: list[AlertResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return int(self.result.exit_code)


def monitor_project(engine: Engine, project: Project, *, as_of: datetime,
                    backfill: Period | None = None, metrics: list[str] | None = None,
                    investigate_anomalies: bool = True, sigma: float | None = None,
                    min_relative_change: float | None = None, min_volume: float | None = None,
                    direction: str | None = None, include_new_dimensions: bool = False,
                    alerts: bool = True,
                    report_dir: str | Path | None = None,
                    report_path: str | Path | None = None) -> MonitorRun:
    """Monitor the project's metrics (or ``metrics``) up to ``as_of``, as ``warehouse-rca monitor``
    does: anomalies and their investigations, one HTML report per investigated anomaly (into
    ``report_dir``, or ``report_path``), and one alert per incident through the project's alert
    channels (never twice for the same incident)."""

    chosen = [project.metric(n) for n in metrics] if metrics else list(project.metrics.values())
    alert_settings = load_alert_settings(project.path) if alerts and project.path else None
    schema = project.findings_schema or engine.findings_schema
    result = run_monitor(engine, chosen, schema, as_of=as_of, backfill=backfill,
                         investigate_anomalies=investigate_anomalies, sigma=sigma,
                         min_relative_change=min_relative_change, min_volume=min_volume,
                         direction=direction, events=project.events,
                         include_new_dimensions=include_new_dimensions)
    run = MonitorRun(result)
    if report_dir is not None or report_path is not None:
        run.reports = write_reports(engine, schema, project, result, report_dir, report_path)
    if alert_settings is not None and alert_settings.channels:
        by_name = {m.name: m for m in chosen}
        for outcome in result.outcomes:
            incidents = incidents_from_outcome(outcome, value_format(by_name[outcome.metric]))
            run.alerts.extend(send_incidents(incidents, alert_settings, engine=engine,
                                             schema=schema))
    return run


def write_reports(engine: Engine, schema: str, project: Project | None, result: MonitorResult,
                  folder: str | Path | None, path: str | Path | None) -> list[Path]:
    """One self-contained HTML report per investigated anomaly of a monitor ``result``:
    ``<folder>/<run_id>.html``, or ``path`` (``<stem>-<run_id><suffix>`` when there are several).
    Returns the files written."""
    # matplotlib: only when reports are asked for
    run_ids = [d["run_id"] for o in result.outcomes for d in o.investigations if d.get("run_id")]
    written: list[Path] = []
    for run_id in run_ids:
        html = build_report(engine, schema, run_id, project)
        if folder is not None:
            written.append(Path(write_report(Path(folder) / (run_id + ".html"), html)))
        if path is not None:
            target = Path(path) if len(run_ids) == 1 else Path(path).with_name(
                f"{Path(path).stem}-{run_id}{Path(path).suffix or '.html'}")
            written.append(Path(write_report(target, html)))
    return written


# --------------------------------------------------------------------------- dbt sources

#: The findings tables a dbt ``sources.yml`` describes (with their columns) and the views (no
#: column list: they carry their tables' columns).
_FINDINGS_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "runs": RUNS_COLUMNS, "root_causes": ROOT_CAUSE_COLUMNS, "feedback": FEEDBACK_COLUMNS,
    "anomalies": ANOMALY_COLUMNS, "detection_series": SERIES_COLUMNS,
    "monitor_state": STATE_COLUMNS, "alerts_sent": ALERTS_SENT_COLUMNS,
    "alert_claims": ALERT_CLAIMS_COLUMNS, "dimension_drift": DRIFT_COLUMNS,
    "dimension_frameworks": FRAMEWORK_COLUMNS,
}
_FINDINGS_VIEWS = ("latest_runs", "latest_root_causes", "latest_incidents", "latest_feedback",
                   "knowledge_base")
BI_DIR = next((d for d in (Path(__file__).resolve().parent / "bi",
                           Path(__file__).resolve().parent.parent / "bi") if d.is_dir()),
              Path(__file__).resolve().parent.parent / "bi")


def findings_sources(schema: str = "rca", source_name: str = "warehouse_rca") -> dict[str, Any]:
    """A dbt ``sources.yml`` document for the findings tables: every table with its columns and
    their descriptions (the LookML views' ``description`` of the same column), every table and
    view with its description from ``bi/README.md``, so dbt docs and lineage show them and dbt
    models can build on them (``{{ source('warehouse_rca', 'root_causes') }}``)."""
    described: dict[str, str] = {}
    for path in sorted((BI_DIR / "looker").glob("*.lkml")):
        for view in lkml.load(path.read_text(encoding="utf-8")).get("views") or []:
            for field_ in [*(view.get("dimensions") or []), *(view.get("dimension_groups") or [])]:
                column = str(field_.get("sql") or "").replace("${TABLE}.", "").strip(" ;")
                if column.isidentifier() and field_.get("description"):
                    described.setdefault(column, str(field_["description"]))
    tables: dict[str, str] = {}
    readme = BI_DIR / "README.md"
    for line in (readme.read_text(encoding="utf-8").splitlines() if readme.is_file() else []):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            tables[cells[0].split("`")[1]] = cells[1].replace("`", "")
    entries: list[dict[str, Any]] = []
    for name, columns in _FINDINGS_TABLES.items():
        entry: dict[str, Any] = {"name": name, "description": tables.get(name, "")}
        entry["columns"] = [{"name": c, "data_type": t.lower(),
                             **({"description": described[c]} if c in described else {})}
                            for c, t in columns]
        entries.append(entry)
    for name in _FINDINGS_VIEWS:
        entries.append({"name": name, "description": tables.get(name, "") + " (a view)"})
    return {"version": 2, "sources": [{
        "name": source_name, "schema": schema,
        "description": "warehouse-rca's findings: investigations, root causes, verdicts, "
                       "monitoring (written by warehouse-rca, read by BI tools).",
        "tables": entries,
    }]}
