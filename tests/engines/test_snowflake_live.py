"""A small suite against a real Snowflake account, for teams that have one (CI has none: these
skip unless SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD, SNOWFLAKE_DATABASE and
SNOWFLAKE_WAREHOUSE are set). It creates RCA_LIVE_TEST.SESSIONS and findings in RCA_LIVE_TEST_FINDINGS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.engines.test_conformance import (
    BASE,
    CAUSE,
    CUR,
    METRIC,
    _load_bound,
    count,
    generated_sessions,
)
from warehouse_rca import sql
from warehouse_rca.engines import connect
from warehouse_rca.engines.base import Engine
from warehouse_rca.findings.store import findings_tables, write_investigation
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.profiles import Target

REQUIRED = ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_DATABASE", "SNOWFLAKE_WAREHOUSE")
pytestmark = [
    pytest.mark.slow, pytest.mark.engine,
    pytest.mark.skipif(not all(os.environ.get(v) for v in REQUIRED),
                       reason=f"real Snowflake not configured ({', '.join(REQUIRED)})"),
]


@pytest.fixture(scope="module")
def live() -> Iterator[Engine]:
    settings = {k.removeprefix("SNOWFLAKE_").lower(): os.environ[k] for k in REQUIRED}
    settings.update(source_schema="RCA_LIVE_TEST", schema="RCA_LIVE_TEST_FINDINGS")
    if os.environ.get("SNOWFLAKE_ROLE"):
        settings["role"] = os.environ["SNOWFLAKE_ROLE"]
    engine = connect(Target("live", "snowflake", settings, "environment"))
    engine.execute(sql.template("findings_ddl.sql.j2", schema=sql.identifier("RCA_LIVE_TEST"),
                              tables=[]))
    _load_bound(engine, generated_sessions())
    yield engine
    engine.close()


def test_live_root_cause_and_findings(live: Engine) -> None:
    found = investigate(live, METRIC, baseline=BASE, current=CUR)
    assert found.to_json()["root_causes"][0]["segment"] == CAUSE
    for _ in range(2):
        write_investigation(live, found, schema="RCA_LIVE_TEST_FINDINGS")
    assert count(live, findings_tables("RCA_LIVE_TEST_FINDINGS")["runs"]) >= 1
