"""The BI layer against real findings tables: the demo warehouse after a monitor backfill, an ad-hoc
investigation and a verdict; every LookML field's SQL run as Looker would run it, the Tableau
data source's tables and columns, the incident views."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import lkml
import pytest
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.spec.lookml import _Explore

BI = Path(__file__).resolve().parent.parent / "bi"


@pytest.fixture(scope="module")
def findings(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bi")
    shutil.copy(demo_dir / "warehouse_rca.duckdb", folder / "warehouse_rca.duckdb")
    shutil.copy(demo_dir / "warehouse_rca_demo.yml", folder / "warehouse_rca.yml")
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(folder)
    try:
        done = runner.invoke(main, ["monitor", "--as-of", "2026-11-23", "--backfill",
                                    "2026-11-17:2026-11-23", "--no-alerts"], catch_exceptions=False)
        assert done.exit_code in (0, 10), done.output
        done = runner.invoke(main, ["investigate", "conversion_rate", "--baseline",
                                    "2026-10-27:2026-11-02", "--current", "2026-11-03:2026-11-09"],
                             catch_exceptions=False)
        assert done.exit_code == 0, done.output
        con = duckdb.connect(str(folder / "warehouse_rca.duckdb"), read_only=True)
        run_id = con.execute("SELECT run_id FROM rca.latest_incidents "
                             "WHERE metric = 'conversion_rate'").fetchone()[0]
        con.close()
        done = runner.invoke(main, ["feedback", run_id, "1", "--confirm", "--by", "tester"],
                             catch_exceptions=False)
        assert done.exit_code == 0, done.output
    finally:
        os.chdir(old)
    return folder / "warehouse_rca.duckdb"


def _views() -> dict[str, dict]:
    views = {}
    for path in sorted((BI / "looker").glob("*.lkml")):
        for view in lkml.load(path.read_text()).get("views") or []:
            views[view["name"]] = view
    return views


def test_every_lookml_field_runs_against_real_findings_tables(findings: Path) -> None:
    views = _views()
    assert {"rca_knowledge_base", "rca_dimension_drift", "rca_incidents", "rca_anomalies",
            "rca_monitor_state"} <= set(views)
    con = duckdb.connect(str(findings), read_only=True)
    ran = 0
    try:
        for name, view in views.items():
            resolve = _Explore({"name": name}, view, views)
            table = view["sql_table_name"].strip()
            for kind in ("dimensions", "dimension_groups", "measures"):
                for field in view.get(kind) or []:
                    if kind == "measures":
                        sql = {"count": "COUNT(*)", "sum": "SUM({})", "average": "AVG({})"}.get(
                            field.get("type", "count"), "{}").format(
                                resolve.sql_of(view, field.get("sql") or "1"))
                    else:
                        sql = resolve.sql_of(view, field.get("sql") or "${TABLE}." + field["name"])
                    try:
                        con.execute(f"SELECT {sql} FROM {table} AS b LIMIT 1").fetchall()
                    except duckdb.Error as err:
                        pytest.fail(f"{name}.{field['name']}: {sql}: {err}")
                    ran += 1
    finally:
        con.close()
    assert ran > 150


def test_the_incident_views_show_the_monitors_incident_and_the_open_ones(findings: Path) -> None:
    con = duckdb.connect(str(findings), read_only=True)
    try:
        latest = con.execute("SELECT metric, current_start, origin FROM rca.latest_incidents "
                             "ORDER BY metric").fetchall()
        assert "conversion_rate" in {m for m, _, _ in latest}
        assert all(o == "monitor" for _, _, o in latest)  # the ad-hoc run of early November: not
        assert all(str(s) >= "2026-11-17" for _, s, _ in latest)
        reviewed = con.execute("SELECT DISTINCT run_id FROM rca.latest_feedback").fetchall()
        open_ids = {r for (r,) in con.execute("SELECT run_id FROM rca.open_incidents").fetchall()}
        assert reviewed and not open_ids & {r for (r,) in reviewed}
        cols = [d[0] for d in con.execute("SELECT * FROM rca.open_incidents LIMIT 0").description]
        assert "rca_rank" not in cols and "metric_format" in cols
        units = con.execute("SELECT DISTINCT metric, metric_format FROM rca.runs "
                            "WHERE status = 'succeeded'").fetchall()
        assert ("conversion_rate", "percent") in units
    finally:
        con.close()


def test_the_tableau_data_source_names_real_tables_and_columns(findings: Path) -> None:
    tree = ET.parse(BI / "tableau" / "warehouse_rca.tds")
    root = tree.getroot()
    assert root.tag == "datasource"
    con = duckdb.connect(str(findings), read_only=True)
    try:
        tables = {}
        for rel in root.iter("relation"):
            if rel.get("type") == "table":
                schema, table = rel.get("table").strip("[]").split("].[")
                tables[rel.get("name")] = {d[0] for d in con.execute(
                    f"SELECT * FROM {schema}.{table} LIMIT 0").description}
        assert set(tables) == {"latest_incidents", "latest_root_causes", "latest_feedback"}
        user = "{http://www.tableausoftware.com/xml/user}table"
        for column in root.findall("column"):
            name = column.get("name").strip("[]")
            assert name in tables[column.get(user)], (column.get(user), name)
    finally:
        con.close()
