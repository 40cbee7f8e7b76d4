"""One conformance suite, run on every engine the tests can start: same data, same answers.

DuckDB is embedded; PostgreSQL is a real server started by the test session (tests/pgserver.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from warehouse_rca.config import Period, Target, metric_from_mapping
from warehouse_rca.cube import cube_sql, label_cube, plan_cube, source_expression
from warehouse_rca.engines import connect
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import InputError
from warehouse_rca.findings import write_investigation
from warehouse_rca.investigate import investigate

BASE = Period.parse("2026-11-10:2026-11-16")
CUR = Period.parse("2026-11-17:2026-11-23")
CAUSE = {"device": "iOS", "region": "Southeast"}


def generated_sessions(n: int = 24_000, seed: int = 42) -> pd.DataFrame:
    """Two weeks of sessions; iOS users in the Southeast stop converting in the second week."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "device": rng.choice(["iOS", "Android", "desktop"], n, p=[0.35, 0.35, 0.3]),
        "region": rng.choice(["Northeast", "Southeast", "West"], n),
        "channel": rng.choice(["organic", "paid", "email", None], n, p=[0.4, 0.3, 0.2, 0.1]),
    })
    rate = np.where(
        (frame["ts"] >= pd.Timestamp("2026-11-17")) & (frame["device"] == "iOS") & (frame["region"] == "Southeast"),
        0.02, 0.12,
    )
    frame["converted"] = (rng.random(n) < rate).astype(int)
    frame["revenue"] = np.round(frame["converted"] * rng.gamma(2.0, 30.0, n), 2)
    return frame


def load_sessions(engine: Engine, frame: pd.DataFrame) -> None:
    """Create and fill the test table (test fixture SQL): DuckDB reads the frame directly, servers
    get bind parameters."""
    engine.execute("DROP TABLE IF EXISTS sessions")
    if engine.DIALECT == "duckdb":
        engine.connection.register("incoming", frame)
        engine.connection.execute("CREATE TABLE sessions AS SELECT * FROM incoming")
        engine.connection.unregister("incoming")
        return
    engine.execute(
        "CREATE TABLE sessions (ts TIMESTAMP, device VARCHAR(20), region VARCHAR(20), "
        "channel VARCHAR(20), converted INTEGER, revenue DOUBLE PRECISION)"
    )
    marker = "%s" if engine.DIALECT == "postgres" else "?"
    rows = [
        (r.ts.to_pydatetime(), r.device, r.region, None if pd.isna(r.channel) else r.channel,
         int(r.converted), float(r.revenue))
        for r in frame.itertuples(index=False)
    ]
    engine.executemany(f"INSERT INTO sessions VALUES ({', '.join([marker] * 6)})", rows)


METRIC = metric_from_mapping("conversion_rate", {
    "table": "sessions", "time_column": "ts", "numerator": "sum(converted)",
    "denominator": "count(*)", "dimensions": ["device", "region", "channel"],
}, "conformance")


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=[pytest.mark.slow, pytest.mark.engine])])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "duckdb":
        target = Target("duck", "duckdb", {"path": str(tmp_path_factory.mktemp("duck") / "w.duckdb")}, "tests")
    else:
        target = request.getfixturevalue("postgres_target")
    eng = connect(target)
    load_sessions(eng, generated_sessions())
    # findings from an earlier parametrisation on the same server must not leak in
    eng.execute("DROP SCHEMA IF EXISTS rca CASCADE")
    yield eng
    eng.close()


def test_cube_matches_pandas(engine: Engine) -> None:
    frame = generated_sessions()
    plan = plan_cube(METRIC, engine.columns_of(source_expression(METRIC)), baseline=BASE, current=CUR, max_depth=2)
    cube = label_cube(engine.query(cube_sql(plan, engine.DIALECT)), plan)
    cur = frame[frame["ts"] >= pd.Timestamp("2026-11-17")]
    total = cube.total
    assert total["cur_num"] == cur["converted"].sum()
    assert total["cur_den"] == len(cur)
    by_channel = cube.frame[(cube.frame["depth"] == 1) & cube.frame["channel"].notna()]
    nulls = by_channel[by_channel["channel"] == "(null)"]
    assert len(nulls) == 1 and nulls["cur_den"].iloc[0] == cur["channel"].isna().sum()


def test_same_root_cause_on_every_engine(engine: Engine) -> None:
    doc = investigate(engine, METRIC, baseline=BASE, current=CUR).to_json()
    assert doc["root_causes"][0]["segment"] == CAUSE
    assert doc["root_causes"][0]["effect"] == "rate"


def test_findings_rerun_is_idempotent(engine: Engine) -> None:
    for _ in range(2):
        write_investigation(engine, investigate(engine, METRIC, baseline=BASE, current=CUR))
    runs = engine.query("SELECT COUNT(*) AS n FROM rca.runs").iloc[0, 0]
    causes = engine.query("SELECT COUNT(*) AS n FROM rca.latest_root_causes").iloc[0, 0]
    assert runs == 1 and causes >= 1
    assert engine.query("SELECT COUNT(*) AS n FROM rca.root_causes").iloc[0, 0] == causes


def test_bad_input_is_a_clear_error(engine: Engine) -> None:
    bad = metric_from_mapping("m", {"table": "sessions", "time_column": "ts", "measure": "count(*)",
                                    "dimensions": ["device", "colour"]}, "conformance")
    with pytest.raises(InputError, match="unknown column 'colour'"):
        investigate(engine, bad, baseline=BASE, current=CUR)
    missing = metric_from_mapping("m", {"table": "no_such_table", "time_column": "ts", "measure": "count(*)",
                                        "dimensions": ["device"]}, "conformance")
    with pytest.raises(InputError):
        investigate(engine, missing, baseline=BASE, current=CUR)
    with pytest.raises(InputError, match="has no rows"):
        investigate(engine, METRIC, baseline=Period.parse("2025-01-01:2025-01-07"), current=CUR)
