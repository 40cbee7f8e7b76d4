"""A real PostgreSQL server for the tests: started on a temporary directory and a free port.

initdb refuses to run as root, so when the tests run as root the server runs as an unprivileged
system user (created if missing). The server is stopped and its directory removed afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_USER = "rca_pg"


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    if subprocess.run(["id", "-u", PG_USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True)
    return ["runuser", "-u", PG_USER, "--", *args]


@contextmanager
def postgres_server() -> Iterator[dict[str, object]]:
    """Yield connection settings (host, port, user, dbname) of a fresh server."""
    with logged_postgres_server() as (settings, _):
        yield settings


@contextmanager
def logged_postgres_server(conf: str = "") -> Iterator[tuple[dict[str, object], Path]]:
    """A fresh server with ``conf`` appended to its postgresql.conf: its connection settings and
    the path of its log file (readable while it runs)."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="rca-pg-"))
    data = root / "data"
    port = _free_port()
    if os.geteuid() == 0:
        _as_server_user(["true"])
        shutil.chown(root, user=PG_USER)
    root.chmod(0o755)
    try:
        subprocess.run(_as_server_user([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
                       check=True, capture_output=True)
        if conf:
            with open(data / "postgresql.conf", "a") as handle:
                handle.write("\n" + conf + "\n")
        subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
                             "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
            check=True, capture_output=True,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        yield ({"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "postgres"},
               root / "server.log")
    finally:
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
