"""Warehouse servers the engine tests start themselves: fakesnow (Snowflake emulator) and Spark
Connect. PostgreSQL lives in tests/pgserver.py.

fakesnow pins sqlglot and duckdb versions of its own (and needs snowflake-connector-python < 5),
so it runs from a separate virtualenv that scripts/test.sh creates; the tests only talk to it over
HTTP with the real connector, exactly as they would to Snowflake.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FAKESNOW_VENV = Path(os.environ.get("RCA_FAKESNOW_VENV", Path.home() / ".cache" / "warehouse-rca" / "fakesnow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The server was started in its own process group: end it and its children (the JVM).
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def fakesnow_binary() -> Path | None:
    binary = FAKESNOW_VENV / "bin" / "fakesnow"
    return binary if binary.exists() else None


@contextmanager
def fakesnow_server() -> Iterator[dict[str, object]]:
    """Yield snowflake.connector settings for a fresh in-memory fakesnow server."""
    binary = fakesnow_binary()
    if binary is None:
        raise FileNotFoundError(f"no fakesnow in {FAKESNOW_VENV} (scripts/test.sh installs it)")
    root = Path(tempfile.mkdtemp(prefix="rca-fakesnow-"))
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(binary), "-s", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=root)
    try:
        _wait_for_port(port, proc, log, 60, "fakesnow server")
        yield {
            "account": "fakesnow", "user": "fake", "password": "snow", "host": "127.0.0.1", "port": port,
            "protocol": "http", "database": "RCA_TEST", "source_schema": "PUBLIC", "network_timeout": 30,
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def spark_home() -> Path | None:
    try:
        import pyspark
    except ImportError:
        return None
    home = Path(pyspark.__file__).parent
    return home if (home / "bin" / "spark-submit").exists() and shutil.which("java") else None


@contextmanager
def spark_connect_server() -> Iterator[str]:
    """Start a Spark Connect server in local mode from the pyspark wheel; yield its sc:// URL."""
    home = spark_home()
    if home is None:
        raise FileNotFoundError("pyspark (with bin/spark-submit) or java not found")
    root = Path(tempfile.mkdtemp(prefix="rca-spark-"))
    port = free_port()
    log = root / "server.log"
    command = [
        str(home / "bin" / "spark-submit"),
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name", "warehouse-rca tests",
        # Two cores: the test machines are small and shared.
        "--master", "local[2]", "--driver-memory", "1g",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", f"spark.sql.warehouse.dir={root / 'warehouse'}",
        "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={root}",
        "--conf", "spark.ui.enabled=false",
        # Small test data: a handful of shuffle partitions instead of 200 keeps each query fast.
        "--conf", "spark.sql.shuffle.partitions=4",
        "--conf", "spark.sql.session.timeZone=UTC",
        "spark-internal",
    ]
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=root, env=env)
    try:
        _wait_for_port(port, proc, log, 180, "Spark Connect server")
        yield f"sc://127.0.0.1:{port}"
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)
