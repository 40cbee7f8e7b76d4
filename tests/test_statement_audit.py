"""What the tool sends to the warehouse, read back from the engine's own statement log: PostgreSQL's
``log_statement=all`` and DuckDB's query log (``enable_logging('QueryLog')`` to files).

A hostile workload (a project whose ``sql:`` joins and filters, the functions an attacker would
call from it, hostile names, values and filters through the CLI, investigations that write,
monitor, feedback, history and the report) runs against a server that logs every statement.
The audit reads every statement of the tool's sessions (PostgreSQL: ``application_name =
warehouse-rca``; DuckDB: every connection but the test's own) and checks that each is a SELECT,
transaction control or a write into the findings schema (or a temporary staging table), and that no function outside the project-SQL allow-list and the tool's own two
PostgreSQL session functions (its advisory lock, its read-only switch) is ever called.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlglot
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cli import main
from warehouse_rca.spec.profiles import Target

FINDINGS = "audit_rca"
PERIODS = ["--baseline", "2026-11-10:2026-11-16", "--current", "2026-11-17:2026-11-23"]
#: The tool's own session functions, each only with these first arguments.
TOOL_FUNCTIONS = {"PG_ADVISORY_XACT_LOCK": None, "SET_CONFIG": {"default_transaction_read_only"}}
#: What an attacker would call from a project's sql: each must be refused before it is sent.
FORBIDDEN_CALLS = {
    "postgres": [
        "pg_terminate_backend(pg_backend_pid())", "nextval('data.audit_seq')",
        "set_config('statement_timeout', '0', false)", "pg_advisory_lock(1)",
        "pg_read_file('/etc/passwd')", "current_setting('data_directory')", "pg_sleep(1)",
        "lo_import('/etc/passwd')", "dblink('host=x', 'select 1')", "version()",
    ],
    "duckdb": [
        "(SELECT content FROM read_text('/proc/self/environ'))", "getenv('HOME')",
        "(SELECT COUNT(*) FROM read_csv('/etc/passwd'))", "(SELECT COUNT(*) FROM glob('/*'))",
        "nextval('data.audit_seq')", "current_setting('threads')", "getvariable('x')",
        "(SELECT COUNT(*) FROM duckdb_settings())", "version()",
    ],
}
#: Words none of the forbidden calls may leave in what was sent.
NEVER_SENT = {
    "postgres": ("pg_terminate_backend", "nextval", "pg_read_file", "pg_sleep", "lo_import", "dblink"),
    "duckdb": ("read_text", "read_csv", "getenv", "glob(", "nextval", "getvariable", "duckdb_settings"),
}
PREFIX = re.compile(r"^\S+ \S+ \S+ \[\d+\] app=(?P<app>[^ ]*) db=\S* (?P<level>[A-Z]+):  (?P<text>.*)$")


@dataclass
class Audited:
    """One engine under audit: the tool's profile for it, fixture SQL outside the audit, and what
    the tool's sessions sent."""

    kind: str
    profile: dict[str, Any]
    admin: Callable[[str, list[tuple[Any, ...]] | None], None]
    statements: Callable[[], list[str]]
    #: DuckDB: opens a database file for fixture SQL with the query log on (the hostile CLI cases).
    connect: Callable[[str], Any] | None = None
    target: Target | None = None

    @property
    def dialect(self) -> str:
        return self.kind


@pytest.fixture(scope="module")
def postgres_audited() -> Iterator[Audited]:
    from tests.pgserver import logged_postgres_server, pg_bin

    if not pg_bin("initdb"):
        pytest.skip("PostgreSQL server binaries not installed (scripts/test.sh installs them)")
    conf = "log_statement = 'all'\nlog_line_prefix = '%m [%p] app=%a db=%d '\n"
    with logged_postgres_server(conf) as (settings_, log):
        target = Target("audit", "postgres", {**settings_, "schema": FINDINGS}, "tests")
        yield Audited("postgres", {"type": "postgres", **target.settings},
                      lambda statement, rows=None: _pg_admin(target, statement, rows),
                      lambda: _pg_statements(log), target=target)


@dataclass
class DuckDBLog:
    """DuckDB's query log, one folder per database instance (a file opened in this process is one
    instance that the tool's connections join), read back without the test's own connections."""

    root: Path
    instances: list[tuple[Path, set[int]]] = field(default_factory=list)
    held: list[Any] = field(default_factory=list)

    def connect(self, path: str) -> Any:
        """A fixture connection to ``path`` whose instance logs every query from now on."""
        con = duckdb.connect(path)
        folder = self.root / f"instance-{len(self.instances)}"
        con.execute("CALL enable_logging('QueryLog', storage = 'file', storage_config = {'path': ?})",
                    [str(folder)])
        own = con.execute("SELECT current_connection_id()").fetchone()[0]
        self.instances.append((folder, {int(own)}))
        return con

    def statements(self) -> list[str]:
        out: list[str] = []
        for folder, own in self.instances:
            entries = folder / "duckdb_log_entries.csv"
            if not entries.exists():
                continue
            contexts = pd.read_csv(folder / "duckdb_log_contexts.csv")
            rows = pd.read_csv(entries, keep_default_na=False).merge(contexts, on="context_id")
            rows = rows[(rows["type"] == "QueryLog") & ~rows["connection_id"].isin(own)]
            out += [m for m in rows.sort_values("timestamp")["message"] if str(m).strip()]
        return out


@pytest.fixture
def duckdb_audited(tmp_path: Path) -> Iterator[Audited]:
    log = DuckDBLog(tmp_path / "query-log")
    path = str(tmp_path / "audit.duckdb")
    admin = log.connect(path)  # held open: the tool's connections join this instance
    yield Audited("duckdb", {"type": "duckdb", "path": path, "schema": FINDINGS},
                  lambda statement, rows=None: admin.executemany(statement.replace("%s", "?"), rows)
                  if rows is not None else admin.execute(statement),
                  log.statements, connect=log.connect)
    admin.close()


def _pg_admin(target: Target, statement: str, rows: list[tuple[Any, ...]] | None = None) -> None:
    """Fixture SQL with full rights, in a session the audit does not read."""
    import psycopg

    s = target.settings
    with psycopg.connect(host=s["host"], port=s["port"], user=s["user"], dbname=s["dbname"],
                         autocommit=True, application_name="rca-test-admin") as con:
        if rows is None:
            con.execute(statement)
        else:
            con.cursor().executemany(statement, rows)


def _load(admin: Callable[[str, list[tuple[Any, ...]] | None], None]) -> None:
    rng = np.random.default_rng(7)
    n = 4000
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-10-01") + pd.to_timedelta(rng.integers(0, 54 * 86400, n), unit="s"),
        "device": rng.choice(["iOS", "Android", "desktop"], n),
        "region": rng.choice(["north", "south", "x'); DROP TABLE data.sessions; --"], n),
        "account": rng.integers(1, 40, n),
    })
    late = frame["ts"] >= pd.Timestamp("2026-11-17")
    frame["converted"] = (rng.random(n) < np.where(late & (frame["device"] == "iOS"), 0.03, 0.2)).astype(int)
    admin("CREATE SCHEMA data", None)
    admin("CREATE SEQUENCE data.audit_seq", None)
    admin("CREATE TABLE data.sessions (ts TIMESTAMP, device TEXT, region TEXT, account INT, converted INT)", None)
    admin("CREATE TABLE data.accounts (account INT, tier TEXT)", None)
    admin("INSERT INTO data.sessions VALUES (%s, %s, %s, %s, %s)",
          [(r.ts.to_pydatetime(), r.device, r.region, int(r.account), int(r.converted))
           for r in frame.itertuples(index=False)])
    admin("INSERT INTO data.accounts VALUES (%s, %s)",
          [(a, "enterprise" if a % 3 == 0 else "self-serve") for a in range(1, 40)])


def _project(folder: Path, source_sql: str, name: str = "project.yml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({
        "findings_schema": FINDINGS,
        "metrics": {"conversion": {
            "sql": source_sql, "time_column": "ts", "grain": "day",
            "numerator": "sum(converted)", "denominator": "count(*)",
            "dimensions": ["device", "region", "tier"],
        }},
    }))
    return path


def _cli(folder: Path, *args: str) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, [*args, "--profiles-dir", str(folder)], catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def _pg_statements(log: Path) -> list[str]:
    """Every statement the tool's PostgreSQL sessions sent, in order (multi-line statements joined)."""
    out: list[str] = []
    current: list[str] | None = None
    for line in log.read_text(errors="replace").splitlines():
        match = PREFIX.match(line)
        if match is None:
            if current is not None:  # the next line of a multi-line statement
                current.append(line)
            continue
        if current is not None:
            out.append("\n".join(current))
            current = None
        if match["app"] != "warehouse-rca" or match["level"] != "LOG":
            continue
        text = match["text"]
        for head in ("statement: ", "execute "):
            if text.startswith(head):
                body = text[len(head):]
                if head == "execute ":  # execute <name>: SQL
                    body = body.split(": ", 1)[1] if ": " in body else ""
                current = [body]
    if current is not None:
        out.append("\n".join(current))
    return [s for s in out if s.strip()]


def _allowed_function(node: exp.Func) -> str | None:
    """Why a function call in a logged statement is not allowed, or None."""
    name = sql._function_name(node)
    if isinstance(node, sql._SOURCE_FUNCTIONS) or (isinstance(node, exp.Anonymous) and name in sql._SOURCE_ANONYMOUS):
        return None
    if name in TOOL_FUNCTIONS:
        first = TOOL_FUNCTIONS[name]
        args = node.expressions if isinstance(node, exp.Anonymous) else list(node.args.values())
        if first is None or (args and isinstance(args[0], exp.Literal) and args[0].name in first):
            return None
    return f"function {name}"


def _write_target(tree: exp.Expr) -> exp.Table | None:
    if isinstance(tree, exp.Drop) and len(tree.args.get("tables") or []) == 1:
        return tree.args["tables"][0]
    target = tree.this if isinstance(tree, (exp.Insert, exp.Delete, exp.Update, exp.Create, exp.Drop, exp.Alter)) else None
    if isinstance(target, exp.Schema):
        target = target.this
    return target if isinstance(target, exp.Table) else None


def _audit(statement: str, dialect: str = "postgres") -> str | None:
    """What is wrong with one logged statement, or None."""
    text = statement.strip().rstrip(";")
    # Transaction control, and psycopg's cleanup of its prepared statements.
    if text.upper() in {"BEGIN", "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "DEALLOCATE ALL"} or re.fullmatch(r"(SAVEPOINT|RELEASE|ROLLBACK TO) \S+", text, re.IGNORECASE):
        return None
    try:
        trees = [t for t in sqlglot.parse(text, read=dialect) if t is not None]
    except sqlglot.errors.ParseError as err:
        return f"unparsable: {err}"
    for tree in trees:
        if isinstance(tree, exp.Create) and tree.kind == "SCHEMA":
            if {i.name for i in tree.this.find_all(exp.Identifier)} != {FINDINGS}:
                return "CREATE SCHEMA outside the findings schema"
            continue
        if isinstance(tree, (exp.Select, exp.SetOperation)):
            pass
        elif isinstance(tree, (exp.Insert, exp.Delete, exp.Update, exp.Create, exp.Drop, exp.Alter)):
            table = _write_target(tree)
            if table is None:
                return f"{tree.key.upper()} without a table"
            temporary = isinstance(tree, exp.Create) and any(
                isinstance(p, exp.TemporaryProperty) for p in tree.find_all(exp.TemporaryProperty))
            staged = not table.db and table.name.startswith("rca_stage_")
            if table.db != FINDINGS and not temporary and not staged:
                return f"{tree.key.upper()} of {table.sql(dialect)} outside the findings schema"
        else:
            return f"{type(tree).__name__} statement"
        for node in tree.find_all(exp.Func):
            if isinstance(node, (exp.Binary, exp.Unary, exp.Connector, exp.Predicate)):
                continue
            problem = _allowed_function(node)
            if problem:
                return problem
    return None


@pytest.mark.parametrize("dialect, statement, problem", [
    ("postgres", "SELECT pg_sleep(1)", "function PG_SLEEP"),
    ("postgres", "SELECT set_config('statement_timeout', '0', FALSE)", "function SET_CONFIG"),
    ("postgres", "SELECT nextval('s')", "function NEXTVAL"),
    ("postgres", "INSERT INTO data.sessions VALUES (1)", "outside the findings schema"),
    ("postgres", "DELETE FROM data.sessions", "outside the findings schema"),
    ("postgres", "DROP TABLE data.sessions", "outside the findings schema"),
    ("postgres", "CREATE SCHEMA evil", "outside the findings schema"),
    ("postgres", "VACUUM", "statement"),
    ("postgres", "SELECT set_config('default_transaction_read_only', 'on', FALSE)", None),
    ("postgres", "SELECT COUNT(*) FROM data.sessions WHERE LOWER(device) = 'x'", None),
    ("postgres", f'DELETE FROM "{FINDINGS}".runs WHERE run_id = \'r\'', None),
    ("postgres", "COMMIT", None),
    ("duckdb", "BEGIN TRANSACTION", None),
    ("duckdb", "SELECT content FROM read_text('/proc/self/environ')", "function READ_TEXT"),
    ("duckdb", "SELECT getenv('HOME')", "function GETENV"),
    ("duckdb", "CREATE TABLE data.copy AS SELECT 1", "outside the findings schema"),
    ("duckdb", "PRAGMA enable_profiling", "statement"),
    ("duckdb", f'CREATE TEMPORARY TABLE rca_stage_x AS SELECT * FROM "{FINDINGS}".runs', None),
])
def test_the_audit_names_what_it_refuses(dialect: str, statement: str, problem: str | None) -> None:
    found = _audit(statement, dialect)
    assert (found is None) if problem is None else (found is not None and problem in found), found


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.engine)])
def test_every_statement_of_a_hostile_workload_is_a_select_or_a_findings_write(
    engine: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    audited: Audited = request.getfixturevalue(f"{engine}_audited")
    _load(audited.admin)
    folder = tmp_path_factory.mktemp("audit")
    (folder / "profiles.yml").write_text(yaml.safe_dump(
        {"warehouse_rca": {"target": "a", "outputs": {"a": audited.profile}}}))
    source = ("WITH t AS (SELECT account, tier FROM data.accounts) "
              "SELECT s.ts, s.device, s.region, COALESCE(t.tier, 'none') AS tier, s.converted "
              "FROM data.sessions AS s LEFT JOIN t ON s.account = t.account WHERE s.ts IS NOT NULL")
    project = _project(folder, source)

    # Investigations that write, then everything that reads or writes the findings.
    code, out = _cli(folder, "investigate", "conversion", "--project", str(project), *PERIODS,
                     "--report", str(folder / "report.html"), "--format", "json")
    assert code == 0, out
    run_id = json.loads(out[out.index("{"):])["run_id"]  # after the report line (stderr)
    assert _cli(folder, "feedback", run_id, "1", "--confirm", "--note", "<!channel> x'; --",
                "--project", str(project))[0] == 0
    assert _cli(folder, "history", "conversion", "--project", str(project))[0] == 0
    assert _cli(folder, "report", run_id, "--project", str(project), "--output", str(folder / "r.html"))[0] == 0
    code, out = _cli(folder, "monitor", "--project", str(project), "--as-of", "2026-11-23")
    assert code in (0, 10), out

    # The functions an attacker would call from the project's sql: refused before anything is sent.
    for call in FORBIDDEN_CALLS[engine]:
        bad = _project(folder, f"SELECT s.*, 'x' AS tier, {call} AS leak FROM data.sessions AS s", "bad.yml")
        code, out = _cli(folder, "investigate", "conversion", "--project", str(bad), *PERIODS)
        assert code == 2, (call, out)

    # Hostile names, values and filters through the CLI (the property test's cases, fewer of them).
    from tests.test_security import _hostile_cli_case, _names, _values, hostile_filters

    case_folder = tmp_path_factory.mktemp("audit-cli")

    @settings(max_examples=int(os.environ.get("RCA_AUDIT_EXAMPLES", "40")), deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(name=_names, value=_values, condition=hostile_filters)
    def case(name: str, value: str, condition: str) -> None:
        _hostile_cli_case(engine, case_folder, audited.target, name, value, condition,
                          connect=audited.connect)

    before = len(audited.statements())
    case()

    statements = audited.statements()
    assert len(statements) > max(100, before)  # the log holds the workload and the CLI cases
    assert any("INSERT INTO" in s.upper() for s in statements)
    if engine == "postgres":
        assert any("default_transaction_read_only" in s for s in statements)  # the read phase
    problems = [(problem, s[:300]) for s in statements if (problem := _audit(s, audited.dialect))]
    assert problems == [], "\n".join(f"{p}: {s}" for p, s in problems)
    sent = "\n".join(statements).lower()
    for word in NEVER_SENT[engine]:
        assert word not in sent
