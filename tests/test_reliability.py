"""Failures mid-run, killed writers, concurrent schedules and transient errors, on real engines.

The CLI runs in a subprocess where a process must die (SIGKILL) or hold a lock; the test-only hook
``WAREHOUSE_RCA_TEST_PAUSE_IN_WRITE`` makes a write stop inside its swap transaction, between the
delete and the insert, until the test removes the marker file or kills the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.engines.retry import retry
from warehouse_rca.findings.store import TEST_PAUSE_ENV
from warehouse_rca.spec.profiles import Target

BASELINE, CURRENT = "2026-11-10:2026-11-16", "2026-11-17:2026-11-23"
REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- fixtures and helpers


def sessions(n: int = 6000, seed: int = 1, broken: str = "iOS") -> pd.DataFrame:
    """Two weeks of sessions; ``broken`` devices stop converting in the second week."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "device": rng.choice(["iOS", "Android", "desktop"], n),
        "region": rng.choice(["north", "south"], n),
    })
    late = frame["ts"] >= pd.Timestamp("2026-11-17")
    frame["converted"] = (rng.random(n) < np.where(late & (frame["device"] == broken), 0.02, 0.2)).astype(int)
    frame["revenue"] = frame["converted"] * 10.0
    return frame


class Warehouse:
    """One test's warehouse: a DuckDB file, or its own schemas on the session's PostgreSQL server."""

    def __init__(self, kind: str, folder: Path, pg: Target | None) -> None:
        self.kind, self.folder = kind, folder
        tag = uuid.uuid4().hex[:8]
        self.data_schema = f"data_{tag}" if kind == "postgres" else "main"
        self.findings = f"rca_{tag}" if kind == "postgres" else "rca"
        if kind == "duckdb":
            self.settings: dict[str, Any] = {"type": "duckdb", "path": str(folder / "wh.duckdb"),
                                             "schema": self.findings}
        else:
            assert pg is not None
            self.settings = {"type": "postgres", **pg.settings, "schema": self.findings}
            self.admin(f'CREATE SCHEMA "{self.data_schema}"')
        self.write_profile()

    def write_profile(self, **extra: Any) -> Path:
        import yaml

        outputs = {"t": {**self.settings, **extra}}
        (self.folder / "profiles.yml").write_text(yaml.safe_dump({"warehouse_rca": {"target": "t", "outputs": outputs}}))
        return self.folder

    def table(self, name: str = "sessions") -> str:
        return f"{self.data_schema}.{name}"

    def admin(self, statement: str, params: list[Any] | None = None, fetch: bool = False) -> Any:
        """Test fixture SQL with full rights (never the tool's code path)."""
        if self.kind == "duckdb":
            con = duckdb.connect(self.settings["path"])
            try:
                cur = con.execute(statement, params or [])
                return cur.fetchall() if fetch else None
            finally:
                con.close()
        import psycopg

        s = self.settings
        with psycopg.connect(host=s["host"], port=s["port"], user=s["user"], dbname=s["dbname"], autocommit=True) as con:
            cur = con.execute(statement, params)
            return cur.fetchall() if fetch else None

    def load(self, frame: pd.DataFrame, name: str = "sessions") -> None:
        if self.kind == "duckdb":
            con = duckdb.connect(self.settings["path"])
            con.register("incoming", frame)
            con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM incoming')
            con.close()
            return
        import psycopg

        s = self.settings
        with psycopg.connect(host=s["host"], port=s["port"], user=s["user"], dbname=s["dbname"], autocommit=True) as con:
            con.execute(f'DROP TABLE IF EXISTS "{self.data_schema}"."{name}"')
            con.execute(f'CREATE TABLE "{self.data_schema}"."{name}" (ts TIMESTAMP, device TEXT, region TEXT, '
                        "converted INTEGER, revenue DOUBLE PRECISION)")
            with con.cursor() as cur:
                cur.executemany(
                    f'INSERT INTO "{self.data_schema}"."{name}" VALUES (%s, %s, %s, %s, %s)',
                    [(r.ts.to_pydatetime(), r.device, r.region, int(r.converted), float(r.revenue))
                     for r in frame.itertuples(index=False)],
                )

    def rows(self, statement: str) -> list[tuple[Any, ...]]:
        return self.admin(statement.replace("{rca}", f'"{self.findings}"'), fetch=True)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=[pytest.mark.slow, pytest.mark.engine])])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    pg = request.getfixturevalue("postgres_target") if request.param == "postgres" else None
    yield Warehouse(request.param, tmp_path, pg)


@pytest.fixture
def pg_warehouse(postgres_target: Target, tmp_path: Path) -> Warehouse:
    return Warehouse("postgres", tmp_path, postgres_target)


def args_for(wh: Warehouse, table: str | None = None, *extra: str) -> list[str]:
    return ["investigate", "--table", table or wh.table(), "--time-column", "ts",
            "--numerator", "sum(converted)", "--denominator", "count(*)", "--dimensions", "device,region",
            "--baseline", BASELINE, "--current", CURRENT, "--profiles-dir", str(wh.folder), *extra]


def run_cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result.exit_code, result.output


def spawn(args: list[str], marker: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if marker is not None:
        env[TEST_PAUSE_ENV] = str(marker)
    return subprocess.Popen([sys.executable, "-m", "warehouse_rca.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(marker: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended before pausing ({proc.returncode}): {out}{err}")
        assert time.monotonic() < deadline, "write never reached the pause"
        time.sleep(0.05)


def findings_snapshot(wh: Warehouse) -> dict[str, Any]:
    return {
        "causes": wh.rows("SELECT run_id, rank, segment, current_value FROM {rca}.root_causes ORDER BY run_id, rank"),
        "latest": wh.rows("SELECT run_id, status, current_value, finished_at FROM {rca}.latest_runs"),
        "latest_causes": wh.rows("SELECT run_id, rank, current_value FROM {rca}.latest_root_causes ORDER BY rank"),
    }


# --------------------------------------------------------------------------- killed mid-write


def test_sigkill_in_the_middle_of_a_write_keeps_previous_findings(warehouse: Warehouse) -> None:
    wh = warehouse
    wh.load(sessions(broken="iOS"))
    code, out = run_cli(args_for(wh))
    assert code == 0, out
    before = findings_snapshot(wh)
    assert before["causes"] and before["latest"][0][1] == "succeeded"

    # The same question on changed data: same run id, different findings.
    wh.load(sessions(seed=2, broken="Android"))
    marker = wh.folder / "paused"
    proc = spawn(args_for(wh), marker)
    try:
        wait_for(marker, proc)  # inside the swap transaction: old rows deleted, new not inserted
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    after = findings_snapshot(wh)
    assert after == before  # previous findings intact, nothing of the killed write visible
    statuses = sorted(r[0] for r in wh.rows("SELECT status FROM {rca}.runs"))
    assert statuses == ["running", "succeeded"]  # the killed attempt: never in the latest views

    code, out = run_cli(args_for(wh))  # a rerun then completes and replaces everything
    assert code == 0, out
    rerun = findings_snapshot(wh)
    assert rerun["causes"] != before["causes"]
    assert "Android" in rerun["causes"][0][2]
    assert sorted(r[0] for r in wh.rows("SELECT status FROM {rca}.runs")) == ["succeeded"]
    assert len(rerun["latest_causes"]) == len(rerun["causes"])


def test_duckdb_single_writer_gets_a_clear_error_not_a_corrupted_file(tmp_path: Path) -> None:
    wh = Warehouse("duckdb", tmp_path, None)
    wh.load(sessions())
    marker = tmp_path / "paused"
    first = spawn(args_for(wh), marker)
    try:
        wait_for(marker, first)  # holds the file (and a write transaction)
        second = spawn(args_for(wh))
        out, err = second.communicate(timeout=120)
        assert second.returncode == 3, out + err
        assert "single writer" in err and "Traceback" not in err
        marker.unlink()  # let the first writer finish
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, out + err
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    snapshot = findings_snapshot(wh)
    assert snapshot["latest"][0][1] == "succeeded" and snapshot["causes"]


# --------------------------------------------------------------------------- concurrent schedules


@pytest.mark.slow
@pytest.mark.engine
def test_postgres_concurrent_schedules_neither_collide_nor_duplicate(pg_warehouse: Warehouse) -> None:
    wh = pg_warehouse
    wh.load(sessions())
    wh.load(sessions(seed=5, broken="desktop"), "orders")
    # Four schedules of the same investigation and two of another, started together on an empty
    # findings schema: the DDL, the staging tables and the swaps must all serialize correctly.
    jobs = [args_for(wh) for _ in range(4)] + [args_for(wh, wh.table("orders")) for _ in range(2)]
    procs = [spawn(a) for a in jobs]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, out + err
    runs = wh.rows("SELECT run_id, status FROM {rca}.runs ORDER BY run_id")
    assert [r[1] for r in runs] == ["succeeded", "succeeded"]  # one row per question
    dupes = wh.rows("SELECT run_id, rank, COUNT(*) FROM {rca}.root_causes GROUP BY run_id, rank HAVING COUNT(*) > 1")
    assert dupes == []
    per_run = dict(wh.rows("SELECT run_id, COUNT(*) FROM {rca}.root_causes GROUP BY run_id"))
    n_causes = dict(wh.rows("SELECT run_id, n_root_causes FROM {rca}.runs"))
    assert per_run == n_causes
    assert not wh.rows("SELECT relname FROM pg_class WHERE relname LIKE 'rca_stage_%'")  # no staging left


@pytest.mark.slow
@pytest.mark.engine
def test_postgres_lock_is_per_investigation(pg_warehouse: Warehouse) -> None:
    """A writer paused inside its swap holds its run's lock: the same run waits for it, another
    metric's run goes through meanwhile."""
    wh = pg_warehouse
    wh.load(sessions())
    wh.load(sessions(seed=5, broken="desktop"), "orders")
    code, out = run_cli(args_for(wh, wh.table("orders")))  # tables exist; DDL is not the point here
    assert code == 0, out
    marker = wh.folder / "paused"
    holder = spawn(args_for(wh), marker)
    try:
        wait_for(marker, holder)
        same = spawn(args_for(wh))
        other_code, other_out = run_cli(args_for(wh, wh.table("orders"), "--max-depth", "2"))
        assert other_code == 0, other_out  # a different investigation is not blocked
        time.sleep(1.0)
        assert same.poll() is None  # the same investigation waits for the lock
        marker.unlink()
        assert holder.wait(timeout=120) == 0
        out, err = same.communicate(timeout=120)
        assert same.returncode == 0, out + err
    finally:
        for p in (holder,):
            if p.poll() is None:
                p.kill()
            p.communicate()
    dupes = wh.rows("SELECT run_id, rank, COUNT(*) FROM {rca}.root_causes GROUP BY run_id, rank HAVING COUNT(*) > 1")
    assert dupes == []
    assert [r[0] for r in wh.rows("SELECT status FROM {rca}.runs")] == ["succeeded"] * 3


# --------------------------------------------------------------------------- failures


def slow_source(wh: Warehouse, seconds: float) -> str:
    """A project file whose metric reads a view that sleeps: a query that runs long enough to be
    killed or timed out. The view is the admin's (a project's `sql:` may not call pg_sleep)."""
    # an uncorrelated scalar subquery is an InitPlan: one sleep per statement, not per row
    wh.admin(f'CREATE OR REPLACE VIEW "{wh.data_schema}".slow_sessions AS SELECT s.* FROM '
             f'"{wh.data_schema}".sessions AS s WHERE (SELECT pg_sleep({seconds})::text) IS NOT NULL')
    project = wh.folder / "project.yml"
    project.write_text(
        "metrics:\n  slow_rate:\n"
        f"    table: {wh.data_schema}.slow_sessions\n"
        "    time_column: ts\n    numerator: sum(converted)\n    denominator: count(*)\n"
        "    dimensions: [device, region]\n"
    )
    return str(project)


def kill_backends(wh: Warehouse, times: int, seen: list[str]) -> threading.Thread:
    """Terminate the tool's session while it runs the slow cube query, ``times`` times."""

    def loop() -> None:
        deadline = time.monotonic() + 60
        while len(seen) < times and time.monotonic() < deadline:
            rows = wh.admin(
                "SELECT pid, query FROM pg_stat_activity WHERE application_name = 'warehouse-rca' "
                "AND state = 'active' AND query ILIKE '%%slow_sessions%%' AND query NOT ILIKE '%%LIMIT 0%%'",
                fetch=True,
            )
            for pid, query in rows:
                wh.admin("SELECT pg_terminate_backend(%s)", [pid])
                seen.append(query)
            time.sleep(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.engine
def test_connection_lost_mid_query_fails_clearly_with_a_failed_run_row(pg_warehouse: Warehouse) -> None:
    wh = pg_warehouse
    wh.load(sessions())
    wh.write_profile(retries=0)
    project = slow_source(wh, 1.5)
    seen: list[str] = []
    killer = kill_backends(wh, 1, seen)
    code, out = run_cli(["investigate", "slow_rate", "--project", project, "--baseline", BASELINE,
                         "--current", CURRENT, "--profiles-dir", str(wh.folder)])
    killer.join(timeout=5)
    assert code == 3, out
    assert "connection was lost" in out and "Traceback" not in out
    assert seen and "/* warehouse-rca run_id=" in seen[0]  # the query tag admins see
    (status, error), = wh.rows("SELECT status, error FROM {rca}.runs")
    assert status == "failed" and "connection was lost" in error
    assert wh.rows("SELECT COUNT(*) FROM {rca}.latest_runs") == [(0,)]


@pytest.mark.slow
@pytest.mark.engine
def test_transient_connection_loss_is_retried_with_backoff(pg_warehouse: Warehouse) -> None:
    wh = pg_warehouse
    wh.load(sessions())
    wh.write_profile(retries=2, retry_delay=0.1)
    project = slow_source(wh, 1.0)
    seen: list[str] = []
    killer = kill_backends(wh, 1, seen)
    code, out = run_cli(["investigate", "slow_rate", "--project", project, "--baseline", BASELINE,
                         "--current", CURRENT, "--profiles-dir", str(wh.folder)])
    killer.join(timeout=5)
    assert len(seen) == 1
    assert code == 0, out
    assert "transient error on postgres query (attempt 1 of 3)" in out
    assert [r[0] for r in wh.rows("SELECT status FROM {rca}.runs")] == ["succeeded"]


@pytest.mark.slow
@pytest.mark.engine
def test_statement_timeout_fails_clearly_and_is_not_retried(pg_warehouse: Warehouse) -> None:
    wh = pg_warehouse
    wh.load(sessions())
    wh.write_profile(statement_timeout=0.5)
    project = slow_source(wh, 3)
    started = time.monotonic()
    code, out = run_cli(["investigate", "slow_rate", "--project", project, "--baseline", BASELINE,
                         "--current", CURRENT, "--profiles-dir", str(wh.folder)])
    assert code == 3, out
    assert "statement timeout" in out and "retrying" not in out
    assert time.monotonic() - started < 10
    (status, error), = wh.rows("SELECT status, error FROM {rca}.runs")
    assert status == "failed" and "statement timeout" in error


@pytest.mark.slow
@pytest.mark.engine
def test_permission_denied_on_findings_schema(pg_warehouse: Warehouse) -> None:
    """A role that can read the data but not write findings: a clear error before any costly
    query, exit 3; with --no-write the same role investigates fine."""
    wh = pg_warehouse
    wh.load(sessions())
    role = f"reader_{uuid.uuid4().hex[:8]}"
    wh.admin(f'CREATE ROLE "{role}" LOGIN')
    wh.admin(f'GRANT USAGE ON SCHEMA "{wh.data_schema}" TO "{role}"')
    wh.admin(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{wh.data_schema}" TO "{role}"')
    wh.admin(f'CREATE SCHEMA "{wh.findings}"')  # exists, owned by the admin: no CREATE for the role
    wh.admin(f'GRANT USAGE ON SCHEMA "{wh.findings}" TO "{role}"')
    wh.write_profile(user=role)
    code, out = run_cli(args_for(wh))
    assert code == 3, out
    assert "permission denied" in out and "--no-write" in out and "Traceback" not in out
    code, out = run_cli(args_for(wh, None, "--no-write"))
    assert code == 0, out


def test_table_renamed_under_the_spec(warehouse: Warehouse) -> None:
    wh = warehouse
    wh.load(sessions())
    code, out = run_cli(args_for(wh))
    assert code == 0, out
    renamed = '"sessions_old"' if wh.kind == "duckdb" else "sessions_old"
    target = "sessions" if wh.kind == "duckdb" else f'"{wh.data_schema}"."sessions"'
    wh.admin(f"ALTER TABLE {target} RENAME TO {renamed}")
    code, out = run_cli(args_for(wh))
    assert code == 2, out
    assert "sessions" in out and "Traceback" not in out
    statuses = sorted(r[0] for r in wh.rows("SELECT status FROM {rca}.runs"))
    assert statuses == ["failed", "succeeded"]
    (error,), = wh.rows("SELECT error FROM {rca}.runs WHERE status = 'failed'")
    assert "sessions" in error
    # the previous findings stay the latest ones
    assert wh.rows("SELECT status FROM {rca}.latest_runs") == [("succeeded",)]


def test_statements_carry_the_run_id_as_a_query_tag(tmp_path: Path) -> None:
    wh = Warehouse("duckdb", tmp_path, None)
    wh.load(sessions())
    code, out = run_cli(["--debug", *args_for(wh), "--format", "json"])
    assert code == 0, out
    import json

    run_id = json.loads(out[out.index("{\n"):out.rindex("}") + 1])["run_id"]
    tagged = out.count(f"/* warehouse-rca run_id={run_id} */")
    assert tagged >= 5  # probe, cube, DDL probes, staging, swap: all tagged
    assert "GROUPING SETS" in out  # --debug shows the statements themselves


# --------------------------------------------------------------------------- retry policy


def test_retry_is_bounded_and_backs_off() -> None:
    waits: list[float] = []
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise ConnectionError("dropped")

    with pytest.raises(ConnectionError):
        retry(always, is_transient=lambda e: True, attempts=4, base_delay=1.0, max_delay=3.0, sleep=waits.append)
    assert len(calls) == 4 and len(waits) == 3
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and 1.5 <= waits[2] <= 3.0  # capped


def test_non_transient_errors_are_not_retried() -> None:
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise PermissionError("permission denied")

    with pytest.raises(PermissionError):
        retry(refused, is_transient=lambda e: isinstance(e, ConnectionError), sleep=lambda _: None)
    assert calls == [1]


def test_a_findings_probe_that_loses_a_deadlock_is_probed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent first runs on PostgreSQL: a probe of latest_root_causes can be the deadlock victim
    of another schedule's CREATE OR REPLACE VIEW. The probe is retried like the DDL, never fatal;
    a refusal that is not transient still fails at once."""
    from warehouse_rca.engines import connect
    from warehouse_rca.errors import WarehouseError
    from warehouse_rca.findings import store

    engine = connect(Target(name="t", type="duckdb", settings={"path": str(tmp_path / "wh.duckdb"), "schema": "rca"}, source="test"))
    real = engine.column_types
    failures = {"left": 2, "calls": 0}

    class Deadlock(Exception):
        pass

    def flaky(source: Any) -> dict[str, str]:
        failures["calls"] += 1
        if failures["left"] and "latest_root_causes" in str(source):
            failures["left"] -= 1
            raise WarehouseError("deadlock detected") from Deadlock()
        return real(source)

    monkeypatch.setattr(engine, "column_types", flaky)
    monkeypatch.setattr(engine, "_is_transient", lambda err: isinstance(err, Deadlock))
    monkeypatch.setattr(store.time, "sleep", lambda _: None)
    store.ensure_tables(engine, "rca")  # creates everything, then the probes see it
    failures["left"] = 2
    store.ensure_tables(engine, "rca")  # two lost probes, then a clean one: no error
    assert failures["left"] == 0
    assert engine.columns_of(store.findings_tables("rca")["latest_incidents"])

    monkeypatch.setattr(engine, "_is_transient", lambda err: False)
    failures["left"] = 1
    with pytest.raises(WarehouseError, match="deadlock"):
        store.ensure_tables(engine, "rca")
