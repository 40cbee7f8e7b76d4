"""DuckDB, the embedded default warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import WarehouseError

MEMORY = ":memory:"


class DuckDBEngine(Engine):
    DIALECT = "duckdb"

    def _connect(self) -> Any:
        path = str(self.target.settings.get("path") or MEMORY)
        # Read-only when the run writes nothing (or the profile says so): DuckDB then lets any
        # number of readers share the file instead of one process at a time. An in-memory
        # database cannot be opened read-only (there would be nothing to read).
        read_only = (self.read_only or bool(self.target.settings.get("read_only", False))) \
            and path != MEMORY
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.ConnectionException as err:
            if read_only and "different configuration" in str(err):
                # This process already has the file open read-write (a notebook, a test): DuckDB
                # shares one database per process, so join it as it is.
                try:
                    return duckdb.connect(path)
                except duckdb.Error as again:
                    raise WarehouseError(_open_error(path, again, read_only=False)) from None
            raise WarehouseError(_open_error(path, err, read_only)) from None
        except duckdb.Error as err:
            raise WarehouseError(_open_error(path, err, read_only)) from None

    def _begin(self) -> None:
        self._conn.begin()

    def _cursor(self) -> Any:
        # A DuckDB cursor is a duplicate *connection* with its own transaction: statements run on
        # it would escape transaction() (autocommitted one by one) and would not see TEMPORARY
        # tables. Run everything on the connection itself.
        return self._conn

    def _release(self, cur: Any) -> None:
        """Nothing to close: the 'cursor' is the connection."""

    def _is_missing_relation(self, err: Exception) -> bool:
        return isinstance(err, duckdb.CatalogException) or super()._is_missing_relation(err)

    @property
    def connection(self) -> Any:
        """The raw DuckDB connection (demo data generation, tests)."""
        return self._conn


def _open_error(path: str, err: Exception, read_only: bool) -> str:
    """What is wrong when DuckDB cannot open ``path``, in words (not only a lock dump).

    >>> _open_error("/no/such/dir/w.duckdb", OSError("IO Error: Cannot open file"), False)
    'cannot open DuckDB file /no/such/dir/w.duckdb: folder /no/such/dir does not exist'
    """
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    where = f"cannot open DuckDB file {path}"
    file = Path(path)
    if "Conflicting lock" in text or "Could not set lock" in text:
        mode = "read it" if read_only else "write it"
        return (f"{where}: another process holds it, so this one cannot {mode} (DuckDB allows "
                "a single writer, or any number of read-only processes such as --no-write "
                f"runs): {first}")
    if not file.parent.is_dir():
        return f"{where}: folder {file.parent} does not exist"
    if file.is_dir():
        return f"{where}: it is a folder, not a database file"
    if read_only and not file.exists():
        return (f"{where}: the file does not exist (a read-only run does not create it; "
                "check the profile's path)")
    if "not a valid DuckDB database file" in text:
        return f"{where}: the file exists but is not a DuckDB database"
    if "different configuration" in text:
        return (f"{where}: this process already has it open with other settings "
                f"(read-only vs read-write): {first}")
    if "Permission denied" in text:
        return f"{where}: permission denied"
    return f"{where}: {first}"
