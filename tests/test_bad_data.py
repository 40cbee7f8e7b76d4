"""Bad data: each case has a documented behaviour (README "Bad data") and a test that holds it.

* NULL dimension values are their own segment, labelled ``(null)``;
* empty strings are a segment of their own (``''``), distinct from NULL;
* dimension values are compared as text: a numeric or boolean dimension works, 1 and '1' are one
  segment; a measure over a text column is refused by the warehouse with a clear error (exit 3);
* negative values in a sum (refunds) are data: contributions still add up to the change;
* NULL measure values count as nothing (SQL SUM); a zero or all-NULL denominator over a period is
  an error naming the denominator (exit 2); a segment with no denominator on one side has no rate
  there (null), never a division error;
* a period with no rows is an error naming the period (exit 2);
* a dimension with a million distinct values: the warehouse returns a bounded cube (the long tail
  is folded into ``(other)``);
* a time column with time zones (TIMESTAMPTZ): period bounds are UTC when written with an offset
  (converted first), and otherwise read in the warehouse session's time zone;
* a dimension named like an internal analysis column is refused with a clear error.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.errors import InputError, WarehouseError
from warehouse_rca.investigate import RESERVED_NAMES, investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import Target
from warehouse_rca.spec.project import metric_from_mapping

BASE, CUR = Period.parse("2026-11-10:2026-11-16"), Period.parse("2026-11-17:2026-11-23")


def engine_with(tmp_path: Path, frame: pd.DataFrame, name: str = "t") -> DuckDBEngine:
    engine = DuckDBEngine(Target("bad", "duckdb", {"path": str(tmp_path / "bad.duckdb")}, "tests"))
    engine.connection.register("incoming", frame)
    engine.connection.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM incoming')
    engine.connection.unregister("incoming")
    return engine


def base_frame(n: int = 6000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "u": rng.random(n),
    })


def metric(**raw: object) -> object:
    return metric_from_mapping("m", {"table": "t", "time_column": "ts", **raw}, "tests")


def test_null_dimension_values_are_their_own_labelled_segment(tmp_path: Path) -> None:
    frame = base_frame()
    frame["channel"] = np.where(frame["u"] < 0.3, None, np.where(frame["u"] < 0.65, "email", "ads"))
    late = frame["ts"] >= "2026-11-17"
    frame["converted"] = ((frame["u"] * 7919) % 1 < np.where(late & frame["channel"].isna(), 0.01, 0.2)).astype(int)
    engine = engine_with(tmp_path, frame)
    doc = investigate(engine, metric(numerator="sum(converted)", denominator="count(*)", dimensions=["channel"]),
                      baseline=BASE, current=CUR).to_json()
    engine.close()
    assert doc["root_causes"][0]["segment"] == {"channel": "(null)"}
    assert doc["root_causes"][0]["segment_label"] == "channel = (null)"


def test_empty_strings_are_distinct_from_null(tmp_path: Path) -> None:
    frame = base_frame()
    frame["code"] = np.where(frame["u"] < 0.3, "", np.where(frame["u"] < 0.6, None, "x"))
    late = frame["ts"] >= "2026-11-17"
    frame["amount"] = np.where(late & (frame["code"] == ""), 0.0, 10.0)
    engine = engine_with(tmp_path, frame)
    doc = investigate(engine, metric(measure="sum(amount)", dimensions=["code"]),
                      baseline=BASE, current=CUR).to_json()
    segments = engine.query(
        "SELECT DISTINCT COALESCE(CAST(code AS VARCHAR), '(null)') AS v FROM t ORDER BY v"  # fixture check
    )["v"].tolist()
    engine.close()
    assert segments == ["", "(null)", "x"]
    assert doc["root_causes"][0]["segment"] == {"code": ""}


def test_numeric_and_boolean_dimensions_are_compared_as_text(tmp_path: Path) -> None:
    frame = base_frame()
    frame["plan"] = (frame["u"] * 3).astype(int)  # 0, 1, 2 as integers
    frame["flag"] = frame["u"] > 0.5
    late = frame["ts"] >= "2026-11-17"
    frame["amount"] = np.where(late & (frame["plan"] == 1), 1.0, 10.0)
    engine = engine_with(tmp_path, frame)
    doc = investigate(engine, metric(measure="sum(amount)", dimensions=["plan", "flag"]),
                      baseline=BASE, current=CUR).to_json()
    engine.close()
    assert doc["root_causes"][0]["segment"] == {"plan": "1"}


def test_a_measure_over_text_is_a_clear_warehouse_error(tmp_path: Path) -> None:
    frame = base_frame()
    frame["d"] = "a"
    frame["amount"] = np.where(frame["u"] < 0.5, "12", "n/a")  # mixed content in a text column
    engine = engine_with(tmp_path, frame)
    with pytest.raises(WarehouseError, match="duckdb refused a statement"):
        investigate(engine, metric(measure="sum(amount)", dimensions=["d"]), baseline=BASE, current=CUR)
    engine.close()


def test_negative_values_in_a_sum_are_data(tmp_path: Path) -> None:
    frame = base_frame(8000)
    frame["kind"] = np.where(frame["u"] < 0.2, "refund", np.where(frame["u"] < 0.6, "web", "store"))
    late = frame["ts"] >= "2026-11-17"
    # refunds are negative and triple in the current period
    frame["revenue"] = np.where(frame["kind"] == "refund", np.where(late, -30.0, -10.0), 20.0)
    engine = engine_with(tmp_path, frame)
    inv = investigate(engine, metric(measure="sum(revenue)", dimensions=["kind"]), baseline=BASE, current=CUR)
    engine.close()
    doc = inv.to_json()
    assert doc["root_causes"][0]["segment"] == {"kind": "refund"}
    assert doc["root_causes"][0]["change"] < 0
    # one-dimensional segments partition the rows: their contributions add up to the total change
    depth1 = inv.localization.stats[inv.localization.stats["depth"] == 1]
    assert math.isclose(float(depth1["change"].sum()), doc["change"], rel_tol=1e-6)


def test_null_measures_count_as_nothing_and_null_denominators_are_an_error(tmp_path: Path) -> None:
    frame = base_frame()
    frame["d"] = np.where(frame["u"] < 0.5, "a", "b")
    frame["x"] = np.where(frame["u"] < 0.25, np.nan, 1.0)
    frame["den"] = np.nan
    engine = engine_with(tmp_path, frame)
    doc = investigate(engine, metric(measure="sum(x)", dimensions=["d"]), baseline=BASE, current=CUR).to_json()
    expected = engine.query(
        "SELECT SUM(x) AS s FROM t WHERE ts >= TIMESTAMP '2026-11-17' AND ts < TIMESTAMP '2026-11-24'"
    )["s"][0]
    assert doc["current_value"] == pytest.approx(expected)
    with pytest.raises(InputError, match=r"denominator \(sum\(den\)\) is zero"):
        investigate(engine, metric(numerator="sum(x)", denominator="sum(den)", dimensions=["d"]),
                    baseline=BASE, current=CUR)
    engine.close()


def test_segment_with_zero_denominator_on_one_side_has_no_rate(tmp_path: Path) -> None:
    frame = base_frame()
    late = frame["ts"] >= "2026-11-17"
    # 'new' exists only in the current period: no baseline denominator, no baseline rate
    frame["d"] = np.where(late & (frame["u"] < 0.4), "new", np.where(frame["u"] < 0.7, "a", "b"))
    frame["converted"] = (frame["u"] * 104729 % 1 < np.where(frame["d"] == "new", 0.02, 0.2)).astype(int)
    engine = engine_with(tmp_path, frame)
    doc = investigate(engine, metric(numerator="sum(converted)", denominator="count(*)", dimensions=["d"]),
                      baseline=BASE, current=CUR).to_json()
    engine.close()
    json.dumps(doc, allow_nan=False)  # no NaN/inf leaks into the output
    new = [c for c in doc["root_causes"] if c["segment"] == {"d": "new"}]
    assert new and new[0]["baseline_value"] is None and new[0]["effect"] in ("mix", "both")


def test_a_period_with_no_rows_is_a_clear_error(tmp_path: Path) -> None:
    frame = base_frame()
    frame["d"] = "a"
    frame = frame[frame["ts"] < "2026-11-17"]  # nothing in the current period
    engine = engine_with(tmp_path, frame)
    with pytest.raises(InputError, match="current period 2026-11-17:2026-11-23 has no rows"):
        investigate(engine, metric(measure="count(*)", dimensions=["d"]), baseline=BASE, current=CUR)
    engine.close()


@pytest.mark.slow
def test_a_dimension_with_a_million_distinct_values(tmp_path: Path) -> None:
    engine = DuckDBEngine(Target("big", "duckdb", {"path": str(tmp_path / "big.duckdb")}, "tests"))
    # test fixture SQL: 2M rows, user_id unique per row (1M distinct per period), and a device
    engine.connection.execute(
        "CREATE TABLE t AS SELECT TIMESTAMP '2026-11-10' + to_seconds(CAST(i % (14 * 86400) AS BIGINT)) AS ts, "
        "'user-' || CAST(i % 1000000 AS VARCHAR) AS user_id, "
        "CASE WHEN i % 3 = 0 THEN 'iOS' ELSE 'web' END AS device, "
        "CASE WHEN i % 3 = 0 AND i % (14 * 86400) >= 7 * 86400 THEN 0 ELSE 1 END AS converted "
        "FROM range(2000000) AS r(i)"
    )
    inv = investigate(engine, metric(numerator="sum(converted)", denominator="count(*)",
                                     dimensions=["user_id", "device"]), baseline=BASE, current=CUR)
    engine.close()
    doc = inv.to_json()
    assert len(inv.cube.frame) < 2000  # bounded by the pruning, not by the million values
    assert (inv.cube.frame["user_id"] == "(other)").any()
    assert doc["root_causes"][0]["segment"] == {"device": "iOS"}


def test_time_column_with_time_zones(tmp_path: Path) -> None:
    # Offsets in period bounds are converted to UTC whatever the machine's zone.
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    try:
        import time

        time.tzset()
        period = Period.parse("2026-11-17T00:00+02:00:2026-11-23T23:59:59+02:00")
    finally:
        if old is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old
        time.tzset()
    assert period.start == pd.Timestamp("2026-11-16 22:00").to_pydatetime()

    # A TIMESTAMPTZ column: naive bounds are read in the session's zone (here set to UTC).
    frame = base_frame()
    frame["d"] = np.where(frame["u"] < 0.5, "a", "b")
    engine = engine_with(tmp_path, frame)
    engine.connection.execute("SET TimeZone = 'UTC'")
    engine.connection.execute("CREATE OR REPLACE TABLE tz AS SELECT CAST(ts AS TIMESTAMPTZ) AS ts, d FROM t")
    engine.connection.execute("INSERT INTO tz VALUES (TIMESTAMPTZ '2026-11-16 23:30:00+00', 'late')")
    m = metric_from_mapping("m", {"table": "tz", "time_column": "ts", "measure": "count(*)", "dimensions": ["d"]}, "t")
    keep_all = InvestigationOptions(min_support=0.0)  # keep the one-row segment un-pruned
    naive = investigate(engine, m, baseline=BASE, current=CUR, options=keep_all)
    late = naive.cube.frame[naive.cube.frame["d"] == "late"]
    shifted = investigate(engine, m, baseline=Period.parse("2026-11-10T00:00+01:00:2026-11-16T23:00+01:00"),
                          current=Period.parse("2026-11-16T23:00:01+01:00:2026-11-23T23:59:59+01:00"),
                          options=keep_all)
    engine.close()
    assert late[["base_rows", "cur_rows"]].values.tolist() == [[1.0, 0.0]]  # 23:30 UTC: baseline day
    moved = shifted.cube.frame[shifted.cube.frame["d"] == "late"]
    assert moved[["base_rows", "cur_rows"]].values.tolist() == [[0.0, 1.0]]  # = 00:30+01:00: current


def test_reserved_dimension_names_are_refused_and_the_list_is_complete(tmp_path: Path) -> None:
    frame = base_frame()
    frame["change"] = np.where(frame["u"] < 0.5, "a", "b")
    frame["d"] = frame["change"]
    engine = engine_with(tmp_path, frame)
    with pytest.raises(InputError, match="'change' is reserved"):
        investigate(engine, metric(measure="count(*)", dimensions=["change"]), baseline=BASE, current=CUR)
    inv = investigate(engine, metric(measure="count(*)", dimensions=["d"]), baseline=BASE, current=CUR)
    engine.close()
    produced = (set(inv.cube.frame.columns) | set(inv.localization.stats.columns)) - {"d"}
    assert produced <= RESERVED_NAMES, sorted(produced - RESERVED_NAMES)


def test_bad_data_through_the_cli_exits_2_with_a_message(tmp_path: Path) -> None:
    frame = base_frame()
    frame["d"] = "a"
    frame = frame[frame["ts"] >= "2026-11-17"]  # baseline empty
    con = duckdb.connect(str(tmp_path / "warehouse_rca.duckdb"))
    con.register("incoming", frame)
    con.execute("CREATE TABLE t AS SELECT * FROM incoming")
    con.close()
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ["investigate", "--table", "t", "--time-column", "ts", "--measure", "count(*)",
                                           "--dimensions", "d", "--baseline", BASE.text, "--current", CUR.text])
    finally:
        os.chdir(old)
    assert result.exit_code == 2 and "baseline period 2026-11-10:2026-11-16 has no rows" in result.output


def test_a_filter_sqlglot_cannot_parse_at_all_is_a_clean_config_error() -> None:
    """Found by the hostile-input property on PostgreSQL: sqlglot raised TypeError on "->"."""
    import pytest

    from warehouse_rca import sql
    from warehouse_rca.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot parse"):
        sql.parse_condition("->", ["a"], "filters")
