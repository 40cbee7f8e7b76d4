"""The monitor's JSON contract: what `warehouse-rca monitor --format json` prints and
MonitorResult.to_json() returns, pinned by a JSON Schema shipped in the package
(warehouse_rca/schemas/monitor.schema.json), checked on real monitor runs on DuckDB.

A change here is a contract change: update the schema on purpose and say so in the change log.
"""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from tests.test_monitor import warehouse  # noqa: F401 (the fixture: a DuckDB file with an incident)
from warehouse_rca.cli import main
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.monitor import MetricOutcome, MonitorResult, run_monitor
from warehouse_rca.spec.profiles import Target
from warehouse_rca.spec.project import load_project


def schema(name: str = "monitor") -> dict:
    return json.loads((resources.files("warehouse_rca") / "schemas" / f"{name}.schema.json")
                      .read_text())


def check(doc: object) -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


def monitor_json(folder: Path, *args: str) -> tuple[int, list[dict]]:
    """`warehouse-rca monitor ... --format json` run in ``folder``: exit code and document
    (stdout only: warnings go to stderr)."""
    result = CliRunner().invoke(main, ["monitor", *args, "--format", "json", "--no-alerts"],
                                catch_exceptions=False, env={"HOME": str(folder)})
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def in_warehouse(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    monkeypatch.chdir(warehouse)
    return warehouse


def test_an_investigated_anomaly_matches_the_schema(in_warehouse: Path) -> None:
    code, doc = monitor_json(in_warehouse, "--as-of", "2026-11-20")
    assert code == 10, doc
    check(doc)
    [outcome] = doc
    assert [a["start"][:10] for a in outcome["anomalies"]] == ["2026-11-20"]
    [investigation] = outcome["investigations"]
    assert investigation["error"] is None and investigation["summary"]
    assert len(investigation["run_id"]) == 16


def test_detection_only_and_quiet_days_match_the_schema(in_warehouse: Path) -> None:
    code, quiet = monitor_json(in_warehouse, "--as-of", "2026-11-17")
    assert code == 0, quiet
    check(quiet)
    assert quiet[0]["anomalies"] == [] and quiet[0]["investigations"] == []
    code, detected = monitor_json(in_warehouse, "--as-of", "2026-11-21", "--no-investigate")
    assert code == 10, detected
    check(detected)
    assert detected[0]["anomalies"] and detected[0]["investigations"] == []


def test_run_monitor_to_json_is_the_document(warehouse: Path) -> None:  # noqa: F811
    """From Python (an orchestrator's call), an investigation that could not run included."""
    metric = load_project(warehouse / "warehouse_rca.yml").metric("conversion_rate")
    target = Target("test", "duckdb", {"path": str(warehouse / "warehouse_rca.duckdb")}, "test")
    with DuckDBEngine(target) as engine:
        result = run_monitor(engine, [metric], "rca", as_of=datetime(2026, 11, 20))
    doc = result.to_json()
    check(doc)
    check(json.loads(json.dumps(doc, default=str)))  # as the CLI prints it
    assert doc[0]["investigations"][0]["run_id"]
    outcome = result.outcomes[0]
    # what monitor_metric records when the investigation fails on bad input
    failed = MonitorResult([MetricOutcome(outcome.metric, outcome.model, outcome.window,
                                          outcome.anomalies, [{"error": "no baseline rows"}])])
    check(failed.to_json())
    assert failed.to_json()[0]["investigations"] == [
        {"run_id": None, "summary": None, "error": "no baseline rows"}]


def test_the_run_id_is_the_investigation_documents() -> None:
    investigated = schema()["$defs"]["investigation"]["oneOf"][0]["properties"]
    investigation = schema("investigation")["properties"]
    assert investigated["run_id"] == investigation["run_id"]
    assert investigated["summary"] == investigation["summary"]


VALID = [{
    "metric": "conversion_rate", "model": "stl",
    "window": ["2026-11-20T00:00:00", "2026-11-21T00:00:00"],
    "freshness": {"last_data": "2026-11-20T00:00:00", "stale": False, "message": None},
    "anomalies": [{"start": "2026-11-20T00:00:00", "end": "2026-11-20T00:00:00",
                   "direction": "down", "expected": 0.1, "actual": 0.07, "score": -6.2}],
    "investigations": [{"run_id": "0123456789abcdef", "summary": "...", "error": None}],
}]


def _changed(path: tuple[str | int, ...], value: object = None, *, drop: bool = False) -> list:
    doc = json.loads(json.dumps(VALID))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if drop:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def test_the_fixed_document_is_valid() -> None:
    check(VALID)


@pytest.mark.parametrize("path", [(0, "surprise"), (0, "anomalies", 0, "surprise"),
                                  (0, "investigations", 0, "surprise")],
                         ids=["outcome", "anomaly", "investigation"])
def test_a_new_key_breaks_the_contract(path: tuple) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check(_changed(path, 1))


@pytest.mark.parametrize("path", [(0, "model"), (0, "anomalies", 0, "score"),
                                  (0, "investigations", 0, "error")],
                         ids=["outcome", "anomaly", "investigation"])
def test_a_missing_key_breaks_the_contract(path: tuple) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check(_changed(path, drop=True))


@pytest.mark.parametrize("path, value", [
    ((0, "window"), ["2026-11-20T00:00:00"]),
    ((0, "anomalies", 0, "direction"), "sideways"),
    ((0, "anomalies", 0, "start"), "yesterday"),
    ((0, "investigations", 0, "error"), "failed too"),  # a run id and an error: not both
    ((0, "investigations", 0, "run_id"), None),  # a summary without its run
], ids=["window", "direction", "timestamp", "both", "orphan-summary"])
def test_a_wrong_value_breaks_the_contract(path: tuple, value: object) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check(_changed(path, value))
