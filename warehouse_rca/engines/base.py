"""The engine layer: one small class per warehouse, differences as class attributes.

An engine runs SQL that :mod:`warehouse_rca.sql` generated for its ``DIALECT`` and returns compact
results as pandas frames. Nothing here builds SQL from strings.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.engines.retry import retry
from warehouse_rca.errors import InputError, WarehouseError
from warehouse_rca.spec.profiles import Target

log = logging.getLogger("warehouse_rca.sql")

#: What an engine runs: SQL text it was given, or a template it renders for its own dialect.
Statement = str | sql.Template


class WriteStrategy(enum.Enum):
    """How an engine replaces stored rows (the tool's tables: findings, drift, anomalies, state).

    * ``DELETE_INSERT``: ``DELETE`` the rows, ``INSERT`` the new ones, inside the engine's
      transaction (the caller's, when one is open), so readers see the old rows or the new ones.
    * ``PARTITION_OVERWRITE``: no row-level DML (plain Spark tables): the tables are partitioned
      by the replacement key (``partition_column``) and a partition is rewritten by one
      ``INSERT OVERWRITE ... PARTITION`` statement, atomic on its own; no multi-table transaction.
    """

    DELETE_INSERT = "delete+insert"
    PARTITION_OVERWRITE = "partition_overwrite"


@dataclass(frozen=True)
class RowSwap:
    """One table's part of ``Engine.swap_rows``: ``rows`` replace the rows ``condition`` matches,
    which all sit in ``partition`` (key, value) (the partition an overwrite replaces)."""

    table: exp.Table
    columns: Sequence[tuple[str, str]]
    rows: Sequence[dict[str, Any]]
    condition: exp.Expr
    partition: tuple[str, Any]


class Engine:
    """A DB-API connection to one warehouse target.

    Callers never name a dialect or read a capability flag: they hand ``query``/``execute``
    a :class:`sql.Template` (rendered here for ``DIALECT``), and writers call
    ``partition_column`` (DDL), ``swap_rows``, ``replace_rows``, ``replace_where``,
    ``insert_rows`` and ``update_or_append``, which follow ``WRITE_STRATEGY``.
    """

    DIALECT = ""
    #: CREATE SCHEMA IF NOT EXISTS is supported (all engines here).
    SUPPORTS_SCHEMAS = True
    #: DDL can run inside a transaction and be rolled back with the data.
    TRANSACTIONAL_DDL = True
    #: How rows are replaced (see WriteStrategy). Plain Spark tables (parquet) overwrite partitions.
    WRITE_STRATEGY = WriteStrategy.DELETE_INSERT
    #: DELETE/UPDATE on ordinary tables: derived from WRITE_STRATEGY (kept for older callers; a
    #: subclass that sets only ROW_LEVEL_DML gets the matching strategy).
    ROW_LEVEL_DML = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "WRITE_STRATEGY" not in cls.__dict__ and "ROW_LEVEL_DML" in cls.__dict__:
            cls.WRITE_STRATEGY = (WriteStrategy.DELETE_INSERT if cls.ROW_LEVEL_DML
                                  else WriteStrategy.PARTITION_OVERWRITE)
        cls.ROW_LEVEL_DML = cls.WRITE_STRATEGY is WriteStrategy.DELETE_INSERT

    def __init__(self, target: Target, *, read_only: bool = False) -> None:
        self.target = target
        #: The run writes nothing (``--no-write``, dry runs, profiling): the engine opens a
        #: read-only session where it has one (DuckDB ``read_only``, PostgreSQL
        #: ``default_transaction_read_only``), so a write is refused by the warehouse itself.
        self.read_only = bool(read_only)
        self.findings_schema: str = str(target.settings.get("schema") or "rca")
        # Transient errors (a dropped connection, a serialization failure) are retried outside
        # transactions only: inside one, the earlier statements are gone with the connection.
        self.retries = int(target.settings.get("retries", 2))
        self.retry_delay = float(target.settings.get("retry_delay", 0.5))
        self._tx_depth = 0
        self._conn = self._connect()

    # -- subclass hooks -------------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _is_missing_relation(self, err: Exception) -> bool:
        text = str(err).lower()
        return "does not exist" in text or "not found" in text or "no such table" in text

    def _cursor(self) -> Any:
        """Where statements run. Must share the connection's transaction (see DuckDBEngine)."""
        return self._conn.cursor()

    def _release(self, cur: Any) -> None:
        cur.close()

    def _result_name(self, name: str) -> str:
        """A result column's name as the tool's lower-case aliases expect it (see
        SnowflakeEngine)."""
        return name

    def overwrite_partition(self, table: exp.Table, columns: Sequence[tuple[str, str]], key: str,
                            value: str, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the ``key = value`` partition of ``table`` with ``rows`` in one statement; only
        PARTITION_OVERWRITE engines have it (the others replace rows with DELETE + INSERT)."""
        raise NotImplementedError(
            f"{self.target.type} replaces findings with DELETE, not by partition"
        )

    # -- rendering --------------------------------------------------------------------------------
    def render(self, statement: Statement) -> str:
        """SQL text for this engine: a template rendered for ``DIALECT``; text as it is."""
        return statement if isinstance(statement, str) else statement.sql(self.DIALECT)

    def generate(self, tree: exp.Expr) -> str:
        """A sqlglot tree as this engine's SQL (pretty-printed, untagged: for people to read)."""
        return sql.portable(tree, self.DIALECT).sql(dialect=self.DIALECT, pretty=True)

    def execute_all(self, template: sql.Template) -> None:
        """Run every statement of a multi-statement template, in order."""
        for statement in template.sql_all(self.DIALECT):
            self.execute(statement)

    # -- write strategies -------------------------------------------------------------------------
    def partition_column(self, key: str) -> exp.Identifier | None:
        """The ``PARTITIONED BY`` column of a table whose rows are replaced by ``key``: ``key``
        under PARTITION_OVERWRITE, None (an unpartitioned table) under DELETE_INSERT."""
        if self.WRITE_STRATEGY is WriteStrategy.PARTITION_OVERWRITE:
            return sql.identifier(key)
        return None

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[None]:
        """Join the caller's transaction, or open one."""
        if self._tx_depth > 0:
            yield
        else:
            with self.transaction():
                yield

    def insert_rows(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                    rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` (dicts by column name; missing keys are NULL) with bound statements."""
        statement = self.render(sql.template("insert_rows.sql.j2", table=table,
                                             columns=[sql.identifier(n) for n, _ in columns]))
        self.executemany(statement, [[row.get(n) for n, _ in columns] for row in rows])

    def replace_rows(
        self,
        table: exp.Table,
        columns: Sequence[tuple[str, str]],
        key: str,
        value: Any,
        rows: Sequence[dict[str, Any]],
    ) -> None:
        """Make ``rows`` the only rows of ``table`` with ``key = value`` (a run's rows, a metric's
        bookmark). DELETE_INSERT: ``DELETE ... WHERE key = value`` then the inserts, in the
        caller's transaction or one of their own. PARTITION_OVERWRITE: one overwrite of the
        ``key = value`` partition (the table must be partitioned by ``partition_column(key)``)."""
        if self.WRITE_STRATEGY is WriteStrategy.PARTITION_OVERWRITE:
            self.overwrite_partition(table, columns, key, value, rows)
            return
        condition = exp.EQ(this=exp.column(key), expression=sql.literal(value))
        with self._atomic():
            self.execute(sql.template("delete_where.sql.j2", table=table, condition=condition))
            self.insert_rows(table, columns, rows)

    def swap_rows(self, writes: Sequence[RowSwap], *, lock_key: int,
                  before_insert: Callable[[], None] | None = None) -> None:
        """Replace several tables' rows of one key (a run: its causes, then its runs row) so
        readers see all the old rows or all the new ones, in ``writes`` order.

        DELETE_INSERT: every write's rows are first staged in a TEMPORARY table of this session
        (named after a fresh id, so concurrent writers never share one and a killed process
        leaves nothing behind); then one transaction takes ``lock_key`` (concurrent writers of
        the same key take turns), deletes each write's ``condition`` rows, calls
        ``before_insert`` and moves the staged rows in, one statement per table.
        PARTITION_OVERWRITE: one atomic overwrite of each table's ``partition`` (key, value),
        in order, so the last table (the runs row) lands last.
        """
        if self.WRITE_STRATEGY is WriteStrategy.PARTITION_OVERWRITE:
            for write in writes:
                key, value = write.partition
                self.replace_rows(write.table, write.columns, key, value, write.rows)
            return
        attempt = uuid.uuid4().hex
        stages = [exp.Table(this=sql.identifier(f"rca_stage_{attempt}_{i}"))
                  for i in range(len(writes))]
        try:
            for write, stage in zip(writes, stages):
                self.execute(sql.template("findings_stage.sql.j2", stage=stage, columns=[
                    {"name": sql.identifier(n), "type": exp.DataType.build(t)}
                    for n, t in write.columns
                ]))
                self.insert_rows(stage, write.columns, write.rows)
            with self.transaction():
                self.lock(lock_key)
                for write in writes:
                    self.execute(sql.template("delete_where.sql.j2", table=write.table,
                                              condition=write.condition))
                if before_insert is not None:
                    before_insert()
                for write, stage in zip(writes, stages):
                    self.execute(sql.template(
                        "findings_merge.sql.j2", table=write.table, stage=stage,
                        columns=[sql.identifier(n) for n, _ in write.columns],
                    ))
        finally:
            # A lost connection took the TEMPORARY tables with it: nothing to clean up then.
            if not self.is_disconnected():
                for stage in stages:
                    try:
                        self.execute(sql.template("drop_table.sql.j2", table=stage))
                    except WarehouseError as err:
                        log.debug("could not drop staging table: %s", err)

    def replace_where(
        self,
        table: exp.Table,
        columns: Sequence[tuple[str, str]],
        condition: exp.Expr,
        rows: Sequence[dict[str, Any]],
        *,
        partition: tuple[str, Any],
    ) -> None:
        """Replace the rows of ``table`` matching ``condition`` by ``rows`` (a metric's window of
        anomalies). ``condition`` must only match rows of the ``partition`` (key, value) and
        every row of ``rows`` must belong to it.

        DELETE_INSERT: ``DELETE ... WHERE condition`` then the inserts, in a transaction.
        PARTITION_OVERWRITE: the partition's rows the condition does not match are read back
        (``feedback_select.sql.j2``) and the partition is overwritten with them plus ``rows``.
        Cost: every call reads and rewrites the whole partition (a metric's anomaly history:
        small, anomalies are rare), and the read-then-overwrite is not isolated from a
        concurrent writer of the same partition (schedule one monitor per metric at a time)."""
        key, value = partition
        stray = [r for r in rows if r.get(key) != value]
        if stray:
            raise ValueError(
                f"replace_where: {len(stray)} row(s) outside partition {key} = {value!r}"
            )
        if self.WRITE_STRATEGY is WriteStrategy.DELETE_INSERT:
            with self._atomic():
                self.execute(sql.template("delete_where.sql.j2", table=table, condition=condition))
                self.insert_rows(table, columns, rows)
            return
        # The partition's rows the condition does not match (a NULL condition keeps a row, as
        # DELETE would), read back with the findings tables' select.
        rest = exp.and_(
            exp.EQ(this=exp.Column(this=sql.identifier(key)), expression=sql.literal(value)),
            exp.Not(
                this=exp.Coalesce(
                    this=exp.Paren(this=condition.copy()), expressions=[exp.false()]
                )
            ),
        )
        kept = self.query(sql.template(
            "feedback_select.sql.j2", columns=[sql.identifier(n) for n, _ in columns],
            table=table, condition=rest, order=[], limit=None,
        ))
        names = [n for n, _ in columns]
        kept_rows = [
            {n: (None if _is_null(v) else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v))
             for n, v in zip(names, record)}
            for record in kept[names].itertuples(index=False, name=None)
        ] if not kept.empty else []
        self.overwrite_partition(table, columns, key, value, kept_rows + list(rows))

    def update_or_append(self, statement: Statement, table: exp.Table,
                         columns: Sequence[tuple[str, str]],
                         rows: Sequence[dict[str, Any]]
                         | Callable[[], Sequence[dict[str, Any]]]) -> None:
        """Run an UPDATE ``statement`` (DELETE_INSERT engines have row-level DML); without it
        (PARTITION_OVERWRITE) append ``rows`` instead, which readers must then reconcile (the
        findings views read succeeded runs only). ``rows`` may be a function that finds them
        (a query), called only where they are appended."""
        if self.WRITE_STRATEGY is WriteStrategy.DELETE_INSERT:
            self.execute(statement)
        else:
            self.insert_rows(table, columns, rows() if callable(rows) else rows)

    def _is_transient(self, err: BaseException) -> bool:
        """A driver error worth retrying (lost connection, serialization failure): none by
        default."""
        return False

    def _is_disconnected(self) -> bool:
        conn = getattr(self, "_conn", None)
        return bool(getattr(conn, "broken", False) or getattr(conn, "closed", False) is True)

    def is_disconnected(self) -> bool:
        """The connection was lost (the server ended the session, the network dropped)."""
        return self._is_disconnected()

    def reconnect(self) -> None:
        """Open a fresh connection in place of a lost one."""
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = self._connect()

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """The read phase of a run that writes findings before and after it: statements inside
        run in a read-only session where the engine has one (PostgreSQL), so the metric's own
        SQL can never write, whatever it says. A no-op elsewhere and in read-only sessions."""
        yield

    def lock(self, key: int) -> None:
        """Take a lock on ``key`` until the current transaction ends, where the engine has one
        (PostgreSQL advisory locks); a no-op elsewhere. Serializes concurrent writers of one run."""

    def _retrying(self, fn: Callable[[], Any], statement: str) -> Any:
        if self._tx_depth > 0 or self.retries <= 0:
            return fn()

        def reconnect(_: BaseException) -> None:
            if self._is_disconnected():
                self.reconnect()

        return retry(
            fn,
            is_transient=lambda e: self._is_transient(e.__cause__ or e),
            attempts=self.retries + 1,
            base_delay=self.retry_delay,
            before_retry=reconnect,
            what=f"{self.target.type} query",
        )

    def _log(self, statement: str, started: float) -> None:
        # Statements hold names and filter literals the user wrote, never credentials.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s (%.3fs):\n%s", self.target.type, time.perf_counter() - started, statement)

    # -- running SQL ------------------------------------------------------------------------------
    def query(self, statement: Statement, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a query and return its (small) result as a frame; transient errors are retried."""
        text = self.render(statement)
        return self._retrying(lambda: self._query_once(text, params), text)

    def _query_once(self, statement: str, params: Sequence[Any] | None) -> pd.DataFrame:
        started = time.perf_counter()
        cur = self._cursor()
        try:
            cur.execute(statement, params) if params is not None else cur.execute(statement)
            names = [self._result_name(d[0]) for d in cur.description or []]
            rows = cur.fetchall()
        except Exception as err:
            raise self._wrap(err, statement) from err
        finally:
            with contextlib.suppress(Exception):
                self._release(cur)
            self._log(statement, started)
        return pd.DataFrame.from_records(rows, columns=names)

    def execute(self, statement: Statement, params: Sequence[Any] | None = None) -> None:
        statement = self.render(statement)
        started = time.perf_counter()
        cur = self._cursor()
        try:
            cur.execute(statement, params) if params is not None else cur.execute(statement)
        except Exception as err:
            raise self._wrap(err, statement) from err
        finally:
            with contextlib.suppress(Exception):
                self._release(cur)
            self._log(statement, started)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        cur = self._cursor()
        try:
            cur.executemany(statement, rows)
        except Exception as err:
            raise self._wrap(err, statement) from err
        finally:
            with contextlib.suppress(Exception):
                self._release(cur)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all."""
        self._begin()
        self._tx_depth += 1
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.rollback()
            raise
        finally:
            self._tx_depth -= 1
        self._conn.commit()

    def _begin(self) -> None:
        """Start a transaction (drivers in autocommit mode need an explicit BEGIN)."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    def __enter__(self) -> Self:
        """``with connect(target) as engine:`` closes the connection however the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wrap(self, err: Exception, statement: str) -> Exception:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if self._is_missing_relation(err):
            return InputError(f"{self.target.type}: {first}")
        if self._is_disconnected():
            return WarehouseError(
                f"{self.target.type}: the connection was lost during a statement: {first}"
            )
        return WarehouseError(f"{self.target.type} refused a statement: {first}")

    # -- catalog ----------------------------------------------------------------------------------
    def columns_of(self, source: exp.Expr) -> list[str]:
        """The column names of a table or subquery, as the warehouse spells them."""
        return list(self.column_types(source))

    def column_types(self, source: exp.Expr) -> dict[str, str]:
        """Column name -> type name, from a probe that reads no rows."""
        statement = self.render(sql.template("probe_columns.sql.j2", source=source))
        cur = self._cursor()
        try:
            cur.execute(statement)
            described = {d[0]: self._type_name(d[1]) for d in cur.description or []}
            cur.fetchall()
        except Exception as err:
            raise self._wrap(err, statement) from err
        finally:
            with contextlib.suppress(Exception):
                self._release(cur)
        return described

    def _type_name(self, type_code: Any) -> str:
        return str(type_code).upper()


def _is_null(value: Any) -> bool:
    """NULL as a frame returns it (None, NaN, NaT); lists and other values are not."""
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
