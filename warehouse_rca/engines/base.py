"""The engine layer: one small class per warehouse, differences as class attributes.

An engine runs SQL that :mod:`warehouse_rca.sql` generated for its ``DIALECT`` and returns compact
results as pandas frames. Nothing here builds SQL from strings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.config import Target
from warehouse_rca.errors import InputError, WarehouseError


class Engine:
    """A DB-API connection to one warehouse target."""

    DIALECT = ""
    #: CREATE SCHEMA IF NOT EXISTS is supported (all engines here).
    SUPPORTS_SCHEMAS = True
    #: DDL can run inside a transaction and be rolled back with the data.
    TRANSACTIONAL_DDL = True

    def __init__(self, target: Target) -> None:
        self.target = target
        self.findings_schema: str = str(target.settings.get("schema") or "rca")
        self._conn = self._connect()

    # -- subclass hooks -------------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _is_missing_relation(self, err: Exception) -> bool:
        text = str(err).lower()
        return "does not exist" in text or "not found" in text or "no such table" in text

    # -- running SQL ------------------------------------------------------------------------------
    def query(self, statement: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a query and return its (small) result as a frame."""
        cur = self._conn.cursor()
        try:
            cur.execute(statement, params) if params is not None else cur.execute(statement)
            names = [d[0] for d in cur.description or []]
            rows = cur.fetchall()
        except Exception as err:  # noqa: BLE001 - every driver has its own hierarchy
            raise self._wrap(err, statement) from err
        finally:
            with contextlib.suppress(Exception):
                cur.close()
        return pd.DataFrame.from_records(rows, columns=names)

    def execute(self, statement: str, params: Sequence[Any] | None = None) -> None:
        cur = self._conn.cursor()
        try:
            cur.execute(statement, params) if params is not None else cur.execute(statement)
        except Exception as err:  # noqa: BLE001
            raise self._wrap(err, statement) from err
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        cur = self._conn.cursor()
        try:
            cur.executemany(statement, rows)
        except Exception as err:  # noqa: BLE001
            raise self._wrap(err, statement) from err
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all."""
        self._begin()
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.rollback()
            raise
        self._conn.commit()

    def _begin(self) -> None:
        """Start a transaction (drivers in autocommit mode need an explicit BEGIN)."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    def _wrap(self, err: Exception, statement: str) -> Exception:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if self._is_missing_relation(err):
            return InputError(f"{self.target.type}: {first}")
        return WarehouseError(f"{self.target.type} refused a statement: {first}")

    # -- catalog ----------------------------------------------------------------------------------
    def columns_of(self, source: exp.Expression) -> list[str]:
        """The column names of a table or subquery, as the warehouse spells them."""
        return list(self.column_types(source))

    def column_types(self, source: exp.Expression) -> dict[str, str]:
        """Column name -> type name, from a probe that reads no rows."""
        statement = sql.render("probe_columns.sql.j2", self.DIALECT, source=source)
        cur = self._conn.cursor()
        try:
            cur.execute(statement)
            described = {d[0]: self._type_name(d[1]) for d in cur.description or []}
            cur.fetchall()
        except Exception as err:  # noqa: BLE001
            raise self._wrap(err, statement) from err
        finally:
            with contextlib.suppress(Exception):
                cur.close()
        return described

    def _type_name(self, type_code: Any) -> str:
        return str(type_code).upper()
