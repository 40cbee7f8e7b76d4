"""Hostile names, values and filters: each is rejected with a clear error or treated as data.

And a warehouse connection that drops in the middle of writing findings loses nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse_rca.cli import main
from warehouse_rca.config import Period, metric_from_mapping
from warehouse_rca.engines import connect
from warehouse_rca.errors import ConfigError, InputError, WarehouseError

HOSTILE = [
    'a"b', "x'; DROP TABLE t; --", "semi;colon", "/* comment */", "ünï-cødé 名前", "a" * 300,
    "back`tick", "new\nline", "$1", "%s", "?",
]
BASELINE, CURRENT = "2026-11-10:2026-11-16", "2026-11-17:2026-11-23"


def build(folder: Path, dim: str, value: str, table: str = "events") -> None:
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        dim: rng.choice([value, "plain", None], n),
    })
    frame["converted"] = (rng.random(n) < np.where((frame["ts"] >= "2026-11-17") & (frame[dim] == value), 0.01, 0.2)).astype(int)
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"))
    con.register("incoming", frame)
    con.execute(f'CREATE OR REPLACE TABLE "{table.replace(chr(34), chr(34) * 2)}" AS SELECT * FROM incoming')
    con.close()


def run(folder: Path, args: list[str]) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def tables(folder: Path) -> set[str]:
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize("name", [n for n in HOSTILE if "\n" not in n])
def test_hostile_dimension_names_and_values_are_data(tmp_path: Path, name: str) -> None:
    build(tmp_path, name, name)
    code, out = run(tmp_path, ["investigate", "--table", "events", "--time-column", "ts",
                               "--numerator", "sum(converted)", "--denominator", "count(*)",
                               "--dimensions", name, "--baseline", BASELINE, "--current", CURRENT,
                               "--format", "json"])
    assert code == 0, out
    doc = json.loads(out)
    assert doc["root_causes"][0]["segment"] == {name: name}
    assert "events" in tables(tmp_path)  # nothing dropped


def test_hostile_table_name_is_a_name(tmp_path: Path) -> None:
    table = 'evil"; DROP TABLE events; --'
    build(tmp_path, "device", "iOS", table="events")
    build(tmp_path, "device", "iOS", table=table)
    code, out = run(tmp_path, ["investigate", "--table", table, "--time-column", "ts", "--measure", "count(*)",
                               "--dimensions", "device", "--baseline", BASELINE, "--current", CURRENT])
    assert code == 0, out
    assert {"events", table} <= tables(tmp_path)


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        ("1=1; DROP TABLE events", "single expression"),
        ("device IN (SELECT device FROM events)", "not allowed"),
        ("read_csv('/etc/passwd') IS NOT NULL", "not allowed"),
        ("device = 'iOS' OR pg_sleep(10) IS NULL", "not allowed"),
        ("secret_column = 1", "unknown column"),
        ("device = 'a' -- comment", None),  # a comment is dropped by the parser: plain data filter
    ],
)
def test_filters_allow_only_comparisons_on_known_columns(tmp_path: Path, condition: str, why: str | None) -> None:
    build(tmp_path, "device", "iOS")
    code, out = run(tmp_path, ["investigate", "--table", "events", "--time-column", "ts", "--measure", "count(*)",
                               "--dimensions", "device", "--baseline", BASELINE, "--current", CURRENT,
                               "--filter", condition, "--no-write"])
    if why is None:
        assert code in (0, 2), out
    else:
        assert code == 2 and why in out, out
    assert "events" in tables(tmp_path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=80), value=st.text(max_size=80))
def test_property_names_and_values_are_rejected_clearly_or_treated_as_data(tmp_path: Path, name: str, value: str) -> None:
    """Any dimension name and filter value: a clean error (exit 2) or a normal run, never SQL."""
    engine = connect(__import__("warehouse_rca.config", fromlist=["Target"]).Target(
        "h", "duckdb", {"path": str(tmp_path / "h.duckdb")}, "tests"))
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        try:  # the test's own fixture SQL; DuckDB itself refuses some names (NUL, reserved)
            engine.connection.execute(f"CREATE OR REPLACE TABLE t (ts TIMESTAMP, d VARCHAR, x INTEGER, {quoted} VARCHAR)")
        except duckdb.Error:
            engine.connection.execute("CREATE OR REPLACE TABLE t (ts TIMESTAMP, d VARCHAR, x INTEGER)")
        columns = len(engine.connection.execute("SELECT * FROM t LIMIT 0").description)
        row = ["a", 1] + [value] * (columns - 3)
        engine.connection.execute(f"INSERT INTO t VALUES (TIMESTAMP '2026-11-11', {', '.join('?' * (columns - 1))})", row)
        engine.connection.execute(f"INSERT INTO t VALUES (TIMESTAMP '2026-11-18', {', '.join('?' * (columns - 1))})", row)
        from warehouse_rca.investigate import investigate

        escaped = value.replace("'", "''")
        metric_raw = {"table": "t", "time_column": "ts", "measure": "sum(x)", "dimensions": [name],
                      "filters": [f"d <> '{escaped}'"]}
        try:
            metric = metric_from_mapping("m", metric_raw, "property")
            doc = investigate(engine, metric, baseline=Period.parse(BASELINE), current=Period.parse(CURRENT)).to_json()
        except (ConfigError, InputError) as err:
            assert str(err)  # a clear message
        else:
            # the name and the value came back as data
            assert doc["dimensions"] == [name]
        rows = engine.connection.execute("SELECT COUNT(*) FROM t").fetchone()[0]
        assert rows == 2
    finally:
        engine.close()


@pytest.mark.slow
@pytest.mark.engine
def test_connection_dropped_mid_write_keeps_previous_findings(postgres_target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server kills our session between the delete and the insert of a rewrite: the
    transaction rolls back, the previous findings stay, and the error is a clear WarehouseError."""
    import psycopg

    from tests.engines.test_conformance import CUR, BASE, METRIC, generated_sessions, load_sessions
    from warehouse_rca import findings
    from warehouse_rca.investigate import investigate

    engine = connect(postgres_target)
    load_sessions(engine, generated_sessions())
    engine.execute("DROP SCHEMA IF EXISTS rca CASCADE")
    investigation = investigate(engine, METRIC, baseline=BASE, current=CUR)
    findings.write_investigation(engine, investigation)
    before = engine.query("SELECT rank, segment FROM rca.root_causes ORDER BY rank")
    pid = engine.query("SELECT pg_backend_pid() AS pid").iloc[0, 0]
    original = findings._insert

    def killed(*args, **kwargs):  # noqa: ANN002, ANN003
        settings_ = postgres_target.settings
        with psycopg.connect(host=settings_["host"], port=settings_["port"], user=settings_["user"],
                             dbname=settings_["dbname"], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [int(pid)])
        return original(*args, **kwargs)

    monkeypatch.setattr(findings, "_insert", killed)
    with pytest.raises(WarehouseError):
        findings.write_investigation(engine, investigation)
    engine.close()
    monkeypatch.setattr(findings, "_insert", original)
    fresh = connect(postgres_target)
    after = fresh.query("SELECT rank, segment FROM rca.root_causes ORDER BY rank")
    assert after.equals(before)
    findings.write_investigation(fresh, investigation)  # a rerun then completes
    assert fresh.query("SELECT COUNT(*) AS n FROM rca.runs").iloc[0, 0] == 1
    fresh.close()
