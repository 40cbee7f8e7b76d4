"""DuckDB, the embedded default warehouse."""

from __future__ import annotations

from typing import Any

import duckdb

from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import WarehouseError


class DuckDBEngine(Engine):
    DIALECT = "duckdb"

    def _connect(self) -> Any:
        path = str(self.target.settings.get("path") or ":memory:")
        try:
            conn = duckdb.connect(
                path, read_only=bool(self.target.settings.get("read_only", False))
            )
        except duckdb.IOException as err:
            # DuckDB allows one writing process per file: say so instead of a lock dump.
            raise WarehouseError(
                f"cannot open DuckDB file {path}: another process holds it "
                f"(DuckDB allows a single writer): {str(err).splitlines()[0]}"
            ) from None
        return conn

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
