"""PostgreSQL (psycopg 3): ``pip install 'warehouse-rca[postgres]'``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import WarehouseError


class PostgresEngine(Engine):
    DIALECT = "postgres"

    def _connect(self) -> Any:
        s = self.target.settings
        params = {
            "host": s.get("host", "localhost"),
            "port": int(s.get("port", 5432)),
            "user": s.get("user"),
            "password": s.get("password"),
            "dbname": s.get("dbname") or s.get("database"),
            "connect_timeout": int(s.get("connect_timeout", 10)),
            "application_name": "warehouse-rca",
        }
        try:
            # Autocommit: every statement stands alone unless inside transaction(), so DDL such as
            # CREATE SCHEMA IF NOT EXISTS never leaves an idle transaction holding locks.
            return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, autocommit=True)
        except psycopg.OperationalError as err:
            # The message names host/port/user, never the password.
            raise WarehouseError(f"cannot connect to postgres at {params['host']}:{params['port']}: "
                                 f"{str(err).strip().splitlines()[0]}") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def _type_name(self, type_code: Any) -> str:
        # psycopg reports type OIDs; name them through the connection's type registry
        info = self._conn.adapters.types.get(type_code)
        return (info.name if info else str(type_code)).upper()

    def _is_missing_relation(self, err: Exception) -> bool:
        return isinstance(err, (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn))
