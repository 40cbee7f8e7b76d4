"""The project file's ``sql:`` (a metric's source, the change events) is one SELECT that reads named
tables and calls allow-listed pure functions (issue 19); runs that write nothing open read-only
sessions; DuckDB open errors say what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.causal.series import events_sql
from warehouse_rca.cli import main
from warehouse_rca.engines import connect
from warehouse_rca.errors import ConfigError, RcaError, WarehouseError
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import Target
from warehouse_rca.spec.project import EventsSpec

WHERE = "metric m: key 'sql'"

# --------------------------------------------------------------------------- the allow-list

#: Calls that read files, URLs, the environment or session state, or change the server: each
#: with the name the refusal must show.
FORBIDDEN: list[tuple[str, str]] = [
    ("read_text('/proc/self/environ')", "READ_TEXT"),
    ("read_csv('/etc/passwd')", "READ_CSV"),
    ("read_csv_auto('/etc/passwd')", "READ_CSV"),
    ("read_parquet('s3://bucket/x.parquet')", "READ_PARQUET"),
    ("read_json('x.json')", "READ_JSON"),
    ("read_blob('/etc/shadow')", "READ_BLOB"),
    ("glob('/*')", "GLOB"),
    ("getenv('RCA_WEBHOOK')", "GETENV"),
    ("getvariable('x')", "GETVARIABLE"),
    ("current_setting('statement_timeout')", "CURRENT_SETTING"),
    ("set_config('statement_timeout', '0', false)", "SET_CONFIG"),
    ("nextval('orders_id_seq')", "NEXTVAL"),
    ("setval('orders_id_seq', 1)", "SETVAL"),
    ("pg_advisory_lock(42)", "PG_ADVISORY_LOCK"),
    ("pg_try_advisory_lock(42)", "PG_TRY_ADVISORY_LOCK"),
    ("pg_terminate_backend(1234)", "PG_TERMINATE_BACKEND"),
    ("pg_cancel_backend(1234)", "PG_CANCEL_BACKEND"),
    ("pg_sleep(5)", "PG_SLEEP"),
    ("pg_catalog.pg_sleep(5)", "PG_SLEEP"),
    ("pg_read_file('/etc/passwd')", "PG_READ_FILE"),
    ("pg_ls_dir('.')", "PG_LS_DIR"),
    ("pg_reload_conf()", "PG_RELOAD_CONF"),
    ("lo_import('/etc/passwd')", "LO_IMPORT"),
    ("dblink('host=evil', 'select 1')", "DBLINK"),
    ("txid_current()", "TXID_CURRENT"),
    ("current_user", "CURRENT_USER"),
    ("version()", "VERSION"),
    ("random()", "RAND"),
    ("uuid()", "UUID"),
    ("sqlite_scan('x.db', 't')", "SQLITE_SCAN"),
    ("query('SELECT 1')", "QUERY"),
    ("query_table('t')", "QUERY_TABLE"),
    ("system$whitelist()", "SYSTEM$WHITELIST"),
]
#: Table functions only (their natural place is FROM / JOIN).
TABLE_FUNCTIONS = [f for f in FORBIDDEN if f[0].split("(")[0] in (
    "read_text", "read_csv", "read_csv_auto", "read_parquet", "read_json", "read_blob", "glob",
    "sqlite_scan", "query", "query_table", "pg_ls_dir", "dblink")] + [
    ("generate_series(1, 1000000)", "GENERATE_SERIES"),
    ("range(1000000)", "GENERATE_SERIES"),
    ("unnest([1, 2])", "UNNEST"),
]
#: Where an expression can sit in a SELECT: ``{}`` is the expression.
EXPRESSION_POSITIONS = [
    "SELECT {} AS leak FROM t",
    "SELECT a, {} FROM t",
    "SELECT a FROM t WHERE {} IS NOT NULL",
    "SELECT a FROM t WHERE b = 1 AND ({} IS NULL OR c > 2)",
    "SELECT a FROM t JOIN u ON u.id = t.id AND u.k = {}",
    "WITH c AS (SELECT {} AS v FROM t) SELECT v FROM c",
    "WITH c AS (SELECT a FROM t), d AS (SELECT a FROM c WHERE a = {}) SELECT * FROM d",
    "SELECT * FROM (SELECT {} AS v FROM t) AS s",
    "SELECT a FROM t WHERE a IN (SELECT {} FROM u)",
    "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = {})",
    "SELECT a, (SELECT max(b) FROM u WHERE u.x = {}) AS m FROM t",
    "SELECT a FROM t ORDER BY {}",
    "SELECT a, count(*) AS n FROM t GROUP BY a HAVING count(*) > length({})",
    "SELECT a FROM t GROUP BY a, {}",
    "SELECT CASE WHEN a > 1 THEN {} ELSE 'x' END AS v FROM t",
    "SELECT coalesce(lower(CAST({} AS VARCHAR)), 'x') AS v FROM t",
    "SELECT a FROM t UNION ALL SELECT {} FROM u",
    "SELECT a FROM t UNION SELECT b FROM u WHERE b = {}",
    "SELECT row_number() OVER (PARTITION BY {} ORDER BY a) AS r FROM t",
    "SELECT sum(a) FILTER (WHERE {} > 0) AS s FROM t",
    "SELECT a FROM t LIMIT 10",  # placeholder-free control, replaced below
]
EXPRESSION_POSITIONS.remove("SELECT a FROM t LIMIT 10")
TABLE_POSITIONS = [
    "SELECT * FROM {}",
    "SELECT * FROM {} AS x",
    "SELECT t.a FROM t JOIN {} AS x ON TRUE",
    "SELECT t.a FROM t LEFT JOIN {} AS x ON x.a = t.a",
    "SELECT t.a FROM t, {} AS x",
    "SELECT t.a FROM t CROSS JOIN {} AS x",
    "WITH c AS (SELECT * FROM {}) SELECT * FROM c",
    "SELECT * FROM (SELECT * FROM {}) AS s",
    "SELECT a FROM t WHERE a IN (SELECT * FROM {})",
    "SELECT a FROM t UNION ALL SELECT * FROM {}",
]


def _case(text: str, flips: list[bool]) -> str:
    """The function name's letters in random case (SQL names are case-insensitive)."""
    name, rest = text.split("(", 1) if "(" in text else (text, None)
    name = "".join(c.upper() if f else c.lower() for c, f in zip(name, flips + [False] * len(name)))
    return name if rest is None else f"{name}({rest}"


def _refused(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        sql.parse_source_select(text, WHERE)
    return str(err.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(FORBIDDEN), position=st.sampled_from(EXPRESSION_POSITIONS),
       flips=st.lists(st.booleans(), max_size=30),
       wrap=st.sampled_from(["{}", "lower({})", "coalesce({}, 'x')", "CAST({} AS VARCHAR)",
                             "({})", "abs(length({}))", "{} || 'x'"]))
def test_a_forbidden_function_is_refused_at_every_position(
    call: tuple[str, str], position: str, flips: list[bool], wrap: str
) -> None:
    text, name = call
    statement = position.format(wrap.format(_case(text, flips)))
    message = _refused(statement)
    assert message.startswith(WHERE), message
    assert name in message and "not allowed" in message, (statement, message)


@settings(max_examples=150, deadline=None)
@given(call=st.sampled_from(TABLE_FUNCTIONS), position=st.sampled_from(TABLE_POSITIONS),
       flips=st.lists(st.booleans(), max_size=30))
def test_a_table_function_is_refused_in_from_join_cte_and_subquery(
    call: tuple[str, str], position: str, flips: list[bool]
) -> None:
    text, name = call
    statement = position.format(_case(text, flips))
    message = _refused(statement)
    assert name in message and "not allowed" in message, (statement, message)


#: Pure functions a metric's SELECT may call, at the same positions.
ALLOWED_CALLS = [
    "lower(b)", "upper(trim(b))", "substring(b, 1, 2)", "concat(b, '-x')", "length(b)",
    "replace(b, 'a', 'b')", "coalesce(b, 'none')", "nullif(b, '')", "CAST(a AS VARCHAR)",
    "abs(a)", "round(a, 2)", "floor(a)", "ceil(a)", "ln(a + 1)", "exp(a)", "power(a, 2)",
    "sqrt(a)", "greatest(a, 1)", "least(a, 1)", "a % 7", "a // 2", "a / 2 + 1",
    "date_trunc('day', ts)", "EXTRACT(dow FROM ts)", "date_part('hour', ts)", "date(ts)",
    "year(ts)", "month(ts)", "dayofweek(ts)", "CASE WHEN a > 1 THEN 'hi' ELSE 'lo' END",
    "ts - INTERVAL 1 DAY", "current_date", "ts AT TIME ZONE 'UTC'",
]


@settings(max_examples=200, deadline=None)
@given(call=st.sampled_from(ALLOWED_CALLS), position=st.sampled_from(EXPRESSION_POSITIONS))
def test_pure_functions_are_accepted_at_every_position(call: str, position: str) -> None:
    tree = sql.parse_source_select(position.format(call), WHERE)
    assert tree.sql("postgres")  # and it renders


@pytest.mark.parametrize("text", [
    # the README's and the tests' own
    "select s.* from analytics.sessions s",
    "SELECT happened_at, title FROM ops.releases WHERE env = 'prod'",
    # benchmarks/localization.py's: epoch seconds to a UTC timestamp
    "SELECT *, to_timestamp(\"min\") AT TIME ZONE 'UTC' AS ts FROM rca.cases",
    # CTEs, joins, subqueries, set operations, windows, aggregates
    ("WITH o AS (SELECT customer_id, sum(amount) AS total FROM shop.orders GROUP BY 1) "
    "SELECT s.*, o.total FROM shop.sessions AS s LEFT JOIN o ON o.customer_id = s.customer_id"),
    "SELECT * FROM a.t UNION ALL SELECT * FROM b.t",
    ("SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE NOT flagged) "
    "AND EXISTS (SELECT 1 FROM v WHERE v.id = t.id)"),
    ("SELECT ts, device, row_number() OVER (PARTITION BY device ORDER BY ts) AS n, "
    "lag(amount) OVER (ORDER BY ts) AS prev, count(DISTINCT customer) OVER () AS c FROM t"),
    "SELECT device, count(*) AS n, avg(amount) AS a FROM t GROUP BY device HAVING count(*) > 10",
    "SELECT * FROM t WHERE ts >= current_date - INTERVAL 90 DAY ORDER BY ts LIMIT 1000",
    "SELECT \"user\", \"current_user\" FROM t",  # quoted: columns, not session functions
    "SELECT * FROM t WHERE note LIKE 'a;b%'",  # a semicolon inside a literal is not a statement
    "(SELECT a FROM t)",
])
def test_ordinary_selects_are_accepted(text: str) -> None:
    sql.parse_source_select(text, WHERE)


@pytest.mark.parametrize(("text", "fragment"), [
    ("SELECT * INTO stolen FROM t", "SELECT ... INTO"),
    ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
    ("SELECT * FROM t FOR SHARE", "FOR UPDATE/FOR SHARE"),
    ("INSERT INTO t SELECT 1", "not INSERT"),
    ("UPDATE t SET a = 1", "not UPDATE"),
    ("DELETE FROM t", "not DELETE"),
    ("DROP TABLE t", "not DROP"),
    ("CREATE TABLE x AS SELECT 1", "not CREATE"),
    ("COPY t TO '/tmp/x.csv'", "not COPY"),
    ("ATTACH '/tmp/other.db' AS o", "not ATTACH"),
    ("SET statement_timeout = 0", "not SET"),
    ("PRAGMA enable_external_access", "not PRAGMA"),
    ("CALL pg_sleep(1)", "not CALL"),
    ("SELECT 1; SELECT 2", "not several statements"),
    ("SELECT * FROM t; DROP TABLE t", "not several statements"),
    ("SELECT * FROM 'data.csv'", "looks like a file or URL"),
    ("SELECT * FROM '/etc/passwd'", "looks like a file or URL"),
    ("SELECT * FROM \"s3://bucket/key.parquet\"", "looks like a file or URL"),
    ("SELECT * FROM \"https://evil.example/x.csv\"", "looks like a file or URL"),
    ("SELECT user FROM t", "session function"),
    ("SELECT a FROM t WHERE b = current_role", "session function"),
    ("SELECT a FROM t WHERE b = ?", "bind parameter"),
    ("SELECT list_transform([1], x -> x + 1)", "not allowed"),
])
def test_other_constructs_are_refused_by_name(text: str, fragment: str) -> None:
    message = _refused(text)
    assert fragment in message, message


def test_events_sql_is_checked_like_a_metric() -> None:
    window = Period.parse("2026-11-01:2026-11-30")
    good = EventsSpec(sql="SELECT happened_at, title FROM ops.releases", time_column="happened_at",
                      description_column="title")
    assert "ops" in events_sql(good, ["happened_at", "title"], window).sql("postgres")
    bad = EventsSpec(sql="SELECT now() AS happened_at, getenv('TOKEN') AS title FROM ops.releases",
                     time_column="happened_at", description_column="title")
    with pytest.raises(ConfigError, match=r"events, key 'sql': function GETENV\(\) is not allowed"):
        events_sql(bad, ["happened_at", "title"], window)


def _sessions_warehouse(folder: Path) -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "device": rng.choice(["iOS", "Android"], n),
        "converted": (rng.random(n) < 0.1).astype(int),
    })
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"))
    con.register("incoming", frame)
    con.execute("CREATE TABLE sessions AS SELECT * FROM incoming")
    con.close()


def _project(folder: Path, source_sql: str) -> Path:
    path = folder / "project.yml"
    quoted = source_sql.replace('"', '\\"')
    path.write_text(
        "metrics:\n  rate:\n"
        f"    sql: \"{quoted}\"\n"
        "    time_column: ts\n    numerator: sum(converted)\n    denominator: count(*)\n"
        "    dimensions: [device, leak]\n"
    )
    return path


def _cli(args: list[str], cwd: Path) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.output


PERIODS = ["--baseline", "2026-11-10:2026-11-16", "--current", "2026-11-17:2026-11-23"]


@pytest.mark.parametrize("command", ["investigate", "sql"])
def test_a_project_reading_the_environment_exits_2_naming_the_function(
    tmp_path: Path, command: str
) -> None:
    _sessions_warehouse(tmp_path)
    project = _project(tmp_path, "SELECT s.*, read_text('/proc/self/environ') AS leak FROM sessions s")
    os.environ["RCA_TEST_SECRET_MARKER"] = "sekrit-419"
    try:
        code, out = _cli([command, "rate", "--project", str(project), *PERIODS], tmp_path)
    finally:
        del os.environ["RCA_TEST_SECRET_MARKER"]
    assert code == 2, out
    assert "READ_TEXT() is not allowed" in out and "Traceback" not in out
    assert "sekrit-419" not in out
    con = duckdb.connect(str(tmp_path / "warehouse_rca.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'rca'"
            " AND table_name = 'root_causes'").fetchall()}
        if tables:
            assert con.execute("SELECT COUNT(*) FROM rca.root_causes").fetchone() == (0,)
    finally:
        con.close()


def test_an_allowed_source_select_investigates(tmp_path: Path) -> None:
    _sessions_warehouse(tmp_path)
    project = _project(tmp_path, "SELECT s.*, CASE WHEN hour(ts) < 12 THEN 'am' ELSE 'pm' END AS leak "
                                 "FROM sessions AS s WHERE s.device IS NOT NULL")
    code, out = _cli(["investigate", "rate", "--project", str(project), *PERIODS, "--no-write"],
                     tmp_path)
    assert code == 0, out


# --------------------------------------------------------------------------- read-only sessions


def _hold(path: Path, read_only: bool) -> subprocess.Popen[str]:
    """Another process holding the DuckDB file (read-only or read-write) until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c",
         ("import duckdb, sys, time\n"
         f"c = duckdb.connect({str(path)!r}, read_only={read_only})\n"
         "print('held', flush=True)\n"
         "time.sleep(120)\n")],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_no_write_runs_share_the_duckdb_file_with_other_readers(tmp_path: Path) -> None:
    _sessions_warehouse(tmp_path)
    project = _project(tmp_path, "SELECT s.*, s.device AS leak FROM sessions AS s")
    reader = _hold(tmp_path / "warehouse_rca.duckdb", read_only=True)
    try:
        code, out = _cli(["investigate", "rate", "--project", str(project), *PERIODS,
                          "--no-write"], tmp_path)
        assert code == 0, out
        # a writing run cannot share it, and says why
        code, out = _cli(["investigate", "rate", "--project", str(project), *PERIODS], tmp_path)
        assert code == 3, out
        assert "another process holds it" in out and "read-only" in out
    finally:
        reader.kill()
        reader.wait()


def test_a_read_only_duckdb_engine_refuses_writes(tmp_path: Path) -> None:
    _sessions_warehouse(tmp_path)
    target = Target("t", "duckdb", {"path": str(tmp_path / "warehouse_rca.duckdb")}, "tests")
    with connect(target, read_only=True) as engine:
        assert engine.read_only
        assert len(engine.query("SELECT * FROM sessions LIMIT 3")) == 3
        with pytest.raises(WarehouseError, match="read-only"):
            engine.execute("CREATE TABLE stolen AS SELECT 1 AS a")


def test_read_only_joins_a_connection_this_process_already_has_open(tmp_path: Path) -> None:
    _sessions_warehouse(tmp_path)
    target = Target("t", "duckdb", {"path": str(tmp_path / "warehouse_rca.duckdb")}, "tests")
    with connect(target) as writer, connect(target, read_only=True) as reader:
        assert writer.query("SELECT COUNT(*) AS n FROM sessions").iloc[0, 0] == \
            reader.query("SELECT COUNT(*) AS n FROM sessions").iloc[0, 0]


def test_an_in_memory_duckdb_ignores_read_only() -> None:
    with connect(Target("m", "duckdb", {"path": ":memory:"}, "tests"), read_only=True) as engine:
        assert engine.query("SELECT 1 AS a").iloc[0, 0] == 1


@pytest.mark.parametrize(("make", "read_only", "fragment"), [
    (lambda d: d / "no" / "such" / "w.duckdb", False, "folder"),
    (lambda d: d / "no" / "such" / "w.duckdb", True, "folder"),
    (lambda d: d / "missing.duckdb", True, "does not exist"),
    (lambda d: (d / "notes.duckdb", (d / "notes.duckdb").write_text("not a database " * 100))[0],
     False, "not a DuckDB database"),
    (lambda d: (d / "adir", (d / "adir").mkdir())[0], False, "folder, not a database file"),
])
def test_duckdb_open_errors_say_what_is_wrong(
    tmp_path: Path, make: Callable[[Path], Path], read_only: bool, fragment: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(WarehouseError) as err:
        connect(Target("t", "duckdb", {"path": str(path)}, "tests"), read_only=read_only)
    message = str(err.value)
    assert fragment in message and str(path) in message, message
    assert "another process" not in message


def test_a_lock_held_by_a_writer_names_the_lock(tmp_path: Path) -> None:
    _sessions_warehouse(tmp_path)
    path = tmp_path / "warehouse_rca.duckdb"
    writer = _hold(path, read_only=False)
    try:
        for read_only in (False, True):
            with pytest.raises(WarehouseError, match="another process holds it"):
                connect(Target("t", "duckdb", {"path": str(path)}, "tests"), read_only=read_only)
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.slow
@pytest.mark.engine
def test_a_read_only_postgres_session_refuses_every_write(postgres_target: Target) -> None:
    with connect(postgres_target) as admin:
        admin.execute("DROP TABLE IF EXISTS rca_ro_probe")
        admin.execute("CREATE TABLE rca_ro_probe (a INTEGER)")
        admin.execute("DROP SEQUENCE IF EXISTS rca_ro_seq")
        admin.execute("CREATE SEQUENCE rca_ro_seq")
    try:
        with connect(postgres_target, read_only=True) as engine:
            assert engine.query("SELECT COUNT(*) AS n FROM rca_ro_probe").iloc[0, 0] == 0
            for statement in ("INSERT INTO rca_ro_probe VALUES (1)",
                              "CREATE TABLE rca_ro_other (a INTEGER)",
                              "SELECT nextval('rca_ro_seq')",
                              "CREATE SCHEMA rca_ro_schema"):
                with pytest.raises(RcaError, match="read-only transaction"):
                    engine.query(statement) if statement.startswith("SELECT") \
                        else engine.execute(statement)
        with connect(postgres_target) as admin:
            assert admin.query("SELECT COUNT(*) AS n FROM rca_ro_probe").iloc[0, 0] == 0
            assert admin.query("SELECT last_value FROM rca_ro_seq").iloc[0, 0] == 1
    finally:
        with connect(postgres_target) as admin:
            admin.execute("DROP TABLE IF EXISTS rca_ro_probe")
            admin.execute("DROP SEQUENCE IF EXISTS rca_ro_seq")


@pytest.mark.slow
@pytest.mark.engine
def test_the_read_phase_of_a_writing_postgres_run_refuses_writes(postgres_target: Target) -> None:
    """A run that writes findings reads the metric in a read-only session (Engine.reading), also
    after a reconnect inside the phase; writes work again after it."""
    with connect(postgres_target) as engine:
        engine.execute("DROP TABLE IF EXISTS rca_phase_probe")
        engine.execute("CREATE TABLE rca_phase_probe (a INTEGER)")
        try:
            with engine.reading():
                assert engine.query("SELECT COUNT(*) AS n FROM rca_phase_probe").iloc[0, 0] == 0
                with pytest.raises(RcaError, match="read-only transaction"):
                    engine.execute("INSERT INTO rca_phase_probe VALUES (1)")
                engine.reconnect()
                with pytest.raises(RcaError, match="read-only transaction"):
                    engine.execute("INSERT INTO rca_phase_probe VALUES (2)")
            engine.execute("INSERT INTO rca_phase_probe VALUES (3)")
            assert engine.query("SELECT SUM(a) AS s FROM rca_phase_probe").iloc[0, 0] == 3
        finally:
            engine.execute("DROP TABLE IF EXISTS rca_phase_probe")


# --------------------------------------------------------------------------- derived dimensions


@pytest.mark.parametrize(("text", "fragment"), [
    ("EXTRACT(epoch FROM ts)", "EXTRACT(EPOCH ...) is not allowed"),
    ("date_trunc('millennium', ts)", "date_trunc unit 'millennium' is not allowed"),
    ("read_text('/etc/passwd')", "READ_TEXT() is not allowed"),
])
def test_derived_dimension_parts_outside_the_list_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        sql.parse_dimension_expr(text, ["ts"], "d")


@pytest.mark.parametrize(("text", "dialect", "expected"), [
    ("dayofweek(ts) IN (0, 6)", "postgres", 'CAST(EXTRACT(DOW FROM "ts") AS BIGINT) IN (0, 6)'),
    ("quarter(ts)", "postgres", 'CAST(EXTRACT(QUARTER FROM "ts") AS BIGINT)'),
    ("week(ts)", "postgres", 'CAST(EXTRACT(WEEK FROM "ts") AS BIGINT)'),
    ("EXTRACT(dow FROM ts)", "postgres", 'CAST(EXTRACT(DOW FROM "ts") AS BIGINT)'),
    ("x % 3", "postgres", 'CAST("x" AS DECIMAL) % CAST(3 AS DECIMAL)'),
    ("dayofweek(ts)", "spark", "(DAYOFWEEK(`ts`) - 1)"),
    ("isodow(ts)", "spark", "(WEEKDAY(`ts`) + 1)"),
    ("week(ts)", "snowflake", 'WEEKISO("ts")'),
    ("dayofweek(ts)", "snowflake", '(DAYOFWEEKISO("ts") % 7)'),
])
def test_derived_dimensions_render_through_the_templates_per_dialect(
    text: str, dialect: str, expected: str
) -> None:
    """The template path (DuckDB text, parsed back, written for the dialect) keeps the rewrite."""
    tree = sql.parse_dimension_expr(text, ["ts", "x"], "d")
    probe = exp.select(exp.alias_(tree, "v")).from_(sql.table_ref("t")).subquery("q")
    text_out = " ".join(sql.render("probe_columns.sql.j2", dialect, source=probe).split())
    assert " ".join(expected.split()) in text_out.replace("( ", "(").replace(" )", ")"), text_out
