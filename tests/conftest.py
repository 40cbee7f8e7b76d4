"""Shared fixtures: real engines only. DuckDB is embedded; other engines have their own conftest."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.spec.profiles import Target

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBEngine]:
    """A fresh DuckDB file engine (a file, so the CLI can open the same warehouse)."""
    engine = DuckDBEngine(Target("test", "duckdb", {"path": str(tmp_path / "wh.duckdb"), "schema": "rca"}, "test"))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse exactly as `warehouse-rca demo` builds it (2.8M sessions), built once."""
    from warehouse_rca.demo import build_demo_warehouse, write_demo_project

    folder = tmp_path_factory.mktemp("demo")
    engine = DuckDBEngine(Target("demo", "duckdb", {"path": str(folder / "warehouse_rca.duckdb")}, "demo"))
    try:
        build_demo_warehouse(engine)
    finally:
        engine.close()
    write_demo_project(folder / "warehouse_rca_demo.yml")
    return folder


@pytest.fixture(scope="session")
def postgres_target() -> Iterator[Target]:
    """A real PostgreSQL server started for the test session (skipped only without binaries)."""
    from tests.pgserver import pg_bin, postgres_server

    if not pg_bin("initdb"):
        pytest.skip("PostgreSQL server binaries not installed (scripts/test.sh installs them)")
    with postgres_server() as settings:
        yield Target("pg", "postgres", {**settings, "schema": "rca"}, "tests")


@dataclass
class Webhook:
    """A local HTTP endpoint that records the JSON bodies posted to it (alert tests)."""

    url: str
    bodies: list[dict] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
