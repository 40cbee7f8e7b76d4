"""Snowflake (snowflake-connector-python): ``pip install 'warehouse-rca[snowflake]'``.

Tested offline against fakesnow's server mode (the real connector over HTTP to a local emulator)
and through golden SQL; a small suite runs against a real account when SNOWFLAKE_* variables are
set (tests/engines/test_snowflake_live.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import snowflake.connector
from snowflake.connector import errors as sf_errors
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.engines.base import Engine, Statement
from warehouse_rca.errors import WarehouseError

#: Profile keys passed to snowflake.connector.connect as they are.
_CONNECT_KEYS = (
    "account", "user", "password", "role", "warehouse", "database", "authenticator",
    "private_key_file", "private_key_file_pwd", "token", "host", "port", "protocol",
    "login_timeout", "network_timeout", "client_session_keep_alive",
)


class SnowflakeEngine(Engine):
    DIALECT = "snowflake"
    #: Snowflake commits DDL implicitly, even inside a transaction.
    TRANSACTIONAL_DDL = False

    def _connect(self) -> Any:
        s = self.target.settings
        params: dict[str, Any] = {k: s[k] for k in _CONNECT_KEYS if s.get(k) is not None}
        # The connection's schema is where unqualified source tables resolve, not the findings
        # schema (profile key `schema`), which is always written qualified.
        if s.get("source_schema"):
            params["schema"] = s["source_schema"]
        params["session_parameters"] = {
            # Every identifier the tool writes is quoted (it is a sqlglot identifier, never pasted
            # text); Snowflake would then match "sessions" only to a table created as quoted
            # lower case. With this setting quoted names resolve like unquoted ones (upper-cased),
            # so `table: analytics.sessions` finds ANALYTICS.SESSIONS, as users expect.
            "QUOTED_IDENTIFIERS_IGNORE_CASE": True,
            # Statements carry the tool's name in QUERY_HISTORY, for cost attribution.
            "QUERY_TAG": "warehouse-rca",
            **(s.get("session_parameters") or {}),
        }
        try:
            # qmark: the `?` placeholders sqlglot keeps for Snowflake are bound by the server.
            conn = snowflake.connector.connect(**params, paramstyle="qmark", autocommit=True)
            self._home = (conn.database, conn.schema)
            return conn
        except sf_errors.Error as err:
            raise WarehouseError(
                f"cannot connect to snowflake account {s.get('account')!r} as {s.get('user')!r}: "
                f"{str(err).strip().splitlines()[0]}"
            ) from None

    def execute(self, statement: Statement, params: Sequence[Any] | None = None) -> None:
        statement = self.render(statement)
        super().execute(statement, params)
        # CREATE SCHEMA (the findings schema) also makes it the session's current schema, after
        # which unqualified source tables would no longer resolve: switch back.
        home = (getattr(self, "_home", None) or (None, None))
        if home[1] and (self._conn.database, self._conn.schema) != home:
            super().execute(sql.render("use_schema.sql.j2", self.DIALECT, schema=exp.Table(
                this=sql.identifier(home[1]), db=sql.identifier(home[0]) if home[0] else None)))

    def reconnect(self) -> None:
        super().reconnect()
        self._home = (self._conn.database, self._conn.schema)

    def _result_name(self, name: str) -> str:
        # Unquoted aliases (rca_set, d0, base_num) come back upper-cased; the tool reads them by
        # their lower-case names. Mixed-case names were quoted on purpose and stay as they are.
        return name.lower() if name.isupper() else name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # The connector opens a transaction when autocommit is switched off and ends it with
        # commit()/rollback(); no BEGIN text needed.
        self._tx_depth += 1
        self._conn.autocommit(False)
        try:
            yield
            self._conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.rollback()
            raise
        finally:
            self._tx_depth -= 1
            with contextlib.suppress(Exception):
                self._conn.autocommit(True)

    def _is_missing_relation(self, err: Exception) -> bool:
        # 002003: "Object ... does not exist or not authorized"; 000904: invalid identifier.
        errno = getattr(err, "errno", None)
        return errno in (2003, 904) or super()._is_missing_relation(err)

    def _is_transient(self, err: BaseException) -> bool:
        return isinstance(err, (sf_errors.OperationalError, sf_errors.InterfaceError))

    def _is_disconnected(self) -> bool:
        return bool(getattr(self._conn, "is_closed", lambda: False)())

    def _type_name(self, type_code: Any) -> str:
        # The connector reports an index into its FIELD_TYPES table.
        from snowflake.connector.constants import FIELD_ID_TO_NAME

        return str(FIELD_ID_TO_NAME.get(type_code, type_code)).upper()
