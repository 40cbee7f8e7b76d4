"""PostgreSQL (psycopg 3): ``pip install 'warehouse-rca[postgres]'``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from warehouse_rca import sql
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import WarehouseError


class PostgresEngine(Engine):
    DIALECT = "postgres"
    _reading = False

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
        options = []
        if s.get("statement_timeout") is not None:
            # Seconds in the profile; a server-side limit, so a runaway cube query is cancelled by
            # PostgreSQL itself (passed as a connection option, not as SQL).
            options.append(f"-c statement_timeout={int(float(s['statement_timeout']) * 1000)}")
        if s.get("work_mem") is not None:
            # Memory per sort or hash of a query (the cube's grouping sets spill to disk under
            # the server's default 4MB); a size checked by the profile (spec.profiles._memory).
            options.append(f"-c work_mem={s['work_mem']}")
        if self.read_only or self._reading:
            # A run that writes nothing reads in read-only transactions: the server refuses any
            # write (INSERT, DDL, nextval, ...) whatever the statement says.
            options.append("-c default_transaction_read_only=on")
        if options:
            params["options"] = " ".join(options)
        try:
            # Autocommit: every statement stands alone unless inside transaction(), so DDL such as
            # CREATE SCHEMA IF NOT EXISTS never leaves an idle transaction holding locks.
            return psycopg.connect(
                **{k: v for k, v in params.items() if v is not None}, autocommit=True
            )
        except psycopg.OperationalError as err:
            # The message names host/port/user, never the password.
            raise WarehouseError(f"cannot connect to postgres at "
                                 f"{params['host']}:{params['port']}: "
                                 f"{str(err).strip().splitlines()[0]}") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._tx_depth += 1  # no retries inside: see Engine._retrying
        try:
            with self._conn.transaction():
                yield
        finally:
            self._tx_depth -= 1

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        if self.read_only or self._reading or self._tx_depth:
            yield
            return
        self._set_read_only(True)
        self._reading = True  # a reconnect inside the phase opens a read-only session again
        try:
            yield
        except BaseException:
            # Never mask the error: the connection may be gone (a reconnect opens a writable
            # session again, as _reading is off), and fail_run writes through it.
            self._reading = False
            with contextlib.suppress(Exception):
                self._set_read_only(False)
            raise
        self._reading = False
        self._set_read_only(False)

    def _set_read_only(self, on: bool) -> None:
        value = sql.literal("on" if on else "off")
        self.execute(sql.template("session_read_only.sql.j2", on=value))

    def lock(self, key: int) -> None:
        # A transaction-scoped advisory lock: released at COMMIT/ROLLBACK or when the session dies,
        # so a killed writer never leaves it behind.
        self.execute(sql.render("lock_advisory.sql.j2", self.DIALECT, key=sql.literal(int(key))))

    def _is_transient(self, err: BaseException) -> bool:
        # A lost connection or a serialization/deadlock abort may succeed on a retry; a statement
        # timeout (QueryCanceled) would only time out again, and costs the warehouse each time.
        if isinstance(err, psycopg.errors.QueryCanceled):
            return False
        return isinstance(err, (psycopg.OperationalError, psycopg.errors.SerializationFailure,
                                psycopg.errors.DeadlockDetected))

    def _type_name(self, type_code: Any) -> str:
        # psycopg reports type OIDs; name them through the connection's type registry
        info = self._conn.adapters.types.get(type_code)
        return (info.name if info else str(type_code)).upper()

    def _is_missing_relation(self, err: Exception) -> bool:
        return isinstance(err, (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn))
