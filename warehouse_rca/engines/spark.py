"""Spark through Spark Connect: ``pip install 'warehouse-rca[spark]'``.

The same client reaches a local server (tests start one from the pyspark wheel), a cluster's
Connect endpoint or Databricks: only the profile's ``url`` changes. Spark is not DB-API: SQL runs
through ``spark.sql(statement, args)`` (positional ``?`` markers bound by Spark) and results come
back as pandas frames (small: the cube, never fact rows).

Plain Spark tables (parquet) have neither transactions nor DELETE/UPDATE/MERGE: the engine's write
strategy is ``PARTITION_OVERWRITE``. Findings and drift tables are partitioned by ``run_id`` and a
run's rows are replaced by overwriting its partition, one statement per table
(``overwrite_partition``); the monitor's ``anomalies`` and ``monitor_state`` tables are partitioned
by ``metric`` and a window is replaced by rewriting the metric's partition with the rows it keeps
plus the new ones (``Engine.replace_where``).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.engines.base import Engine, Statement, WriteStrategy
from warehouse_rca.errors import ConfigError, InputError, WarehouseError


class SparkEngine(Engine):
    DIALECT = "spark"
    TRANSACTIONAL_DDL = False
    WRITE_STRATEGY = WriteStrategy.PARTITION_OVERWRITE

    def _connect(self) -> Any:
        try:
            from pyspark.errors import PySparkException  # noqa: F401  (driver present?)
            from pyspark.sql import SparkSession
        except ImportError as err:
            raise ConfigError(
                f"the spark engine needs an extra: pip install 'warehouse-rca[spark]' ({err})"
            ) from None
        s = self.target.settings
        url = str(s.get("url") or s.get("host") or "")
        if not url.startswith("sc://"):
            raise ConfigError(
                f"{self.target.source}: target {self.target.name!r}: 'url' must be a Spark Connect "
                "address such as sc://spark-host:15002 (Databricks: sc://<workspace>:443/;token=...)"
            )
        if s.get("token"):
            # Kept out of `url` in the profile so that it is redacted like every secret.
            url = (f"{url.rstrip('/')}/;token={s['token']}" if ";" not in url
                   else f"{url};token={s['token']}")
        # The client logs every failed statement with the server's JVM stack trace; the tool
        # reports the error itself, in one line.
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
        try:
            session = SparkSession.builder.remote(url).create()
            session.range(1).collect()  # the client connects lazily: fail here, clearly
        except Exception as err:  # noqa: BLE001  (grpc and PySpark raise various types when unreachable)
            raise WarehouseError(f"cannot reach Spark Connect at {url.split(';')[0]}: "
                                 f"{str(err).strip().splitlines()[0]}") from None
        return session

    @property
    def session(self) -> Any:
        """The Spark Connect session (tests load data through its DataFrame writer)."""
        return self._conn

    # -- running SQL: spark.sql instead of a cursor -----------------------------------------------
    def _sql(self, statement: str, params: Sequence[Any] | None) -> Any:
        started = time.perf_counter()
        try:
            if params is not None:
                return self._conn.sql(statement, args=list(params))
            return self._conn.sql(statement)
        except Exception as err:
            raise self._wrap(err, statement) from err
        finally:
            self._log(statement, started)

    def _query_once(self, statement: str, params: Sequence[Any] | None) -> pd.DataFrame:
        frame = self._sql(statement, params)
        try:
            return frame.toPandas()
        except Exception as err:
            raise self._wrap(err, statement) from err

    def execute(self, statement: Statement, params: Sequence[Any] | None = None) -> None:
        statement = self.render(statement)
        # Commands run eagerly through spark.sql on Connect; collect() also runs a plain query.
        df = self._sql(statement, params)
        try:
            df.collect()
        except Exception as err:
            raise self._wrap(err, statement) from err

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        # Small writes only (a run row): one bound statement per row. Bulk data goes through
        # overwrite_partition's DataFrame.
        for row in rows:
            self.execute(statement, list(row))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # No multi-statement transactions in Spark: each statement commits on its own, which is
        # why findings are replaced by one partition overwrite per table.
        self._tx_depth += 1
        try:
            yield
        finally:
            self._tx_depth -= 1

    def overwrite_partition(self, table: exp.Table, columns: Sequence[tuple[str, str]], key: str,
                            value: str, rows: Sequence[dict[str, Any]]) -> None:
        # The rows travel as a DataFrame (Arrow batches), staged as a session-scoped temp view.
        schema = ", ".join(  # a DDL schema string for createDataFrame, names quoted by sqlglot
            sql.identifier(name).sql(self.DIALECT) + " "
            + exp.DataType.build(kind).sql(self.DIALECT)
            for name, kind in columns
        )
        data = [tuple(row.get(name) for name, _ in columns) for row in rows]
        view = f"rca_stage_{uuid.uuid4().hex}"
        try:
            self._conn.createDataFrame(data, schema=schema).createOrReplaceTempView(view)
        except Exception as err:
            raise WarehouseError(
                f"spark: cannot stage findings: {str(err).strip().splitlines()[0]}"
            ) from err
        try:
            self.execute(sql.render(
                "overwrite_partition.sql.j2", self.DIALECT, table=table, key=sql.identifier(key),
                value=sql.literal(value), stage=exp.Table(this=sql.identifier(view)),
                columns=[sql.identifier(name) for name, _ in columns if name != key],
            ))
        finally:
            with contextlib.suppress(Exception):
                self._conn.catalog.dropTempView(view)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.stop()

    # -- errors and catalog -----------------------------------------------------------------------
    def _is_missing_relation(self, err: Exception) -> bool:
        condition = getattr(err, "getCondition", None) or getattr(err, "getErrorClass", None)
        code = str(condition() or "") if callable(condition) else ""
        return code.startswith(
            ("TABLE_OR_VIEW_NOT_FOUND", "UNRESOLVED_COLUMN", "SCHEMA_NOT_FOUND")
        ) \
            or super()._is_missing_relation(err)

    def _is_transient(self, err: BaseException) -> bool:
        import grpc
        from pyspark.errors.exceptions.connect import SparkConnectGrpcException

        # the channel itself failed (the client's own retries spent)
        if isinstance(err, grpc.RpcError):
            code = err.code() if callable(getattr(err, "code", None)) else None
            return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        # Every server-side error (AnalysisException for a missing table included) is a
        # SparkConnectGrpcException too: only a lost or overloaded channel is worth a retry.
        code = err.getGrpcStatusCode() if isinstance(err, SparkConnectGrpcException) else None
        return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

    def _is_disconnected(self) -> bool:
        return bool(getattr(self._conn, "is_stopped", False))

    def _wrap(self, err: Exception, statement: str) -> Exception:
        if isinstance(err, (InputError, WarehouseError)):
            return err
        return super()._wrap(err, statement)

    def column_types(self, source: exp.Expr) -> dict[str, str]:
        # Analysis only: the schema of the LIMIT 0 probe, no job runs.
        statement = sql.render("probe_columns.sql.j2", self.DIALECT, source=source)
        try:
            fields = self._sql(statement, None).schema.fields
        except Exception as err:
            raise self._wrap(err, statement) from err
        return {f.name: f.dataType.simpleString().upper() for f in fields}


class DatabricksEngine(SparkEngine):
    """Databricks over the same Spark Connect protocol (Databricks Connect's transport).

    Delta tables support DELETE, so findings are replaced like on other warehouses (each statement
    atomic; Spark still has no multi-statement transactions). Not tested against a workspace here:
    its SQL is covered by golden files only.
    """

    DIALECT = "databricks"
    WRITE_STRATEGY = WriteStrategy.DELETE_INSERT
