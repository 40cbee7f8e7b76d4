"""Engine rules that need no server: which errors are retried, how result names fold, how profiles
are refused. (Behaviour against real engines is in test_conformance.py.)"""

from __future__ import annotations

import pytest

from warehouse_rca.engines import ENGINES, connect
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.profiles import Target


def test_every_engine_module_is_registered() -> None:
    assert {"duckdb", "postgres", "snowflake", "spark", "databricks"} <= set(ENGINES)


def test_spark_retries_a_lost_channel_but_never_an_analysis_error() -> None:
    pytest.importorskip("pyspark.sql.connect")
    import grpc
    from pyspark.errors.exceptions.connect import AnalysisException, SparkConnectGrpcException

    from warehouse_rca.engines.spark import SparkEngine

    engine = SparkEngine.__new__(SparkEngine)  # rules only: no session
    assert engine._is_transient(SparkConnectGrpcException("gone", grpc_status_code=grpc.StatusCode.UNAVAILABLE))
    missing = AnalysisException("[TABLE_OR_VIEW_NOT_FOUND] x", errorClass="TABLE_OR_VIEW_NOT_FOUND",
                                grpc_status_code=grpc.StatusCode.INTERNAL)
    assert not engine._is_transient(missing)
    assert engine._is_missing_relation(missing)


def test_spark_profile_needs_a_connect_url() -> None:
    pytest.importorskip("pyspark.sql.connect")
    with pytest.raises(ConfigError, match="Spark Connect address"):
        connect(Target("s", "spark", {"host": "localhost"}, "profiles.yml"))


def test_snowflake_folds_only_upper_case_result_names() -> None:
    pytest.importorskip("snowflake.connector")
    from warehouse_rca.engines.snowflake import SnowflakeEngine

    engine = SnowflakeEngine.__new__(SnowflakeEngine)
    assert [engine._result_name(n) for n in ("RCA_SET", "D0", "Mixed", "lower")] == ["rca_set", "d0", "Mixed", "lower"]
