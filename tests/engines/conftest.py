"""Per-engine fixtures: each warehouse is a real engine started for the test session.

PostgreSQL: ``postgres_target`` (tests/conftest.py). Snowflake: fakesnow's server mode, the real
snowflake-connector-python over HTTP to a local emulator (Snowflake itself cannot be reached
here). Spark: a Spark Connect server in local mode from the pyspark wheel.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engineservers import fakesnow_binary, fakesnow_server, spark_connect_server, spark_home
from warehouse_rca.spec.profiles import Target


@pytest.fixture(scope="session")
def snowflake_target() -> Iterator[Target]:
    pytest.importorskip("snowflake.connector", reason="pip install 'warehouse-rca[snowflake]'")
    if fakesnow_binary() is None:
        pytest.skip("fakesnow server not installed (scripts/test.sh creates its virtualenv)")
    with fakesnow_server() as settings:
        yield Target("fakesnow", "snowflake", {**settings, "schema": "rca"}, "tests (fakesnow server)")


@pytest.fixture(scope="session")
def spark_target() -> Iterator[Target]:
    pytest.importorskip("pyspark.sql.connect", reason="pip install 'warehouse-rca[spark]'")
    if spark_home() is None:
        pytest.skip("pyspark's spark-submit or java not found")
    with spark_connect_server() as url:
        yield Target("spark", "spark", {"url": url, "schema": "rca"}, "tests (Spark Connect, local)")


def pytest_configure(config: pytest.Config) -> None:
    # pyspark 4.x warns on every frame conversion under pandas 3 (its own code, not ours).
    config.addinivalue_line("filterwarnings", "ignore:PySpark does not yet fully support pandas:FutureWarning")
    config.addinivalue_line("filterwarnings", "ignore:The copy keyword is deprecated")
