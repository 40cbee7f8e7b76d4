"""Scheduling on real DuckDB: a stale source is reported and never skipped, per-metric detection
settings from the project file, and the detector's band stored for every examined bucket."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import Webhook
from tests.test_monitor import cli
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.project import metric_from_mapping

LAST_DAY = pd.Timestamp("2026-11-25")
DROP_DAY = pd.Timestamp("2026-11-20")
PROJECT = """
metrics:
  orders:
    table: orders
    time_column: ts
    grain: day
    measure: count(*)
    dimensions: [region]
    higher_is_better: true
{detection}
"""


def _orders(days: pd.DatetimeIndex, seed: int = 4) -> pd.DataFrame:
    """About 400 orders a weekday (300 on weekends); half of them on DROP_DAY."""
    rng = np.random.default_rng(seed)
    frames = []
    for day in days:
        n = int((400 if day.day_of_week < 5 else 300) * (0.5 if day == DROP_DAY else 1.0))
        n = max(1, n + int(rng.integers(-10, 10)))
        frames.append(pd.DataFrame({
            "ts": day + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
            "region": rng.choice(["north", "south"], n),
        }))
    return pd.concat(frames)


def _load(folder: Path, frame: pd.DataFrame, replace: bool = True) -> None:
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"))
    try:
        con.register("incoming", frame)
        if replace:
            con.execute("CREATE OR REPLACE TABLE orders AS SELECT * FROM incoming")
        else:
            con.execute("INSERT INTO orders SELECT * FROM incoming")
    finally:
        con.close()


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    _load(tmp_path, _orders(pd.date_range("2026-08-01", LAST_DAY, freq="D")))
    (tmp_path / "warehouse_rca.yml").write_text(PROJECT.format(detection=""))
    return tmp_path


def query(folder: Path, text: str) -> list[tuple]:
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"), read_only=True)
    try:
        return con.execute(text).fetchall()
    finally:
        con.close()


def test_a_stale_source_is_reported_and_its_late_data_examined_later(shop: Path) -> None:
    # The data ends on 11-25; the schedule runs for 11-30: stale, exit 11, and the bookmark
    # stops at the data instead of jumping to 11-30.
    code, out = cli(shop, "monitor", "--as-of", "2026-11-24", "--no-investigate")
    assert code in (0, 10), out
    code, out = cli(shop, "monitor", "--as-of", "2026-11-30", "--no-investigate",
                    "--format", "json")
    assert code == 11, out
    doc = json.loads(out)[0]
    assert doc["freshness"] == {
        "last_data": "2026-11-25T00:00:00", "stale": True,
        "message": "orders: no data since 2026-11-25 (expected up to 2026-11-30)",
    }
    assert doc["window"] == ["2026-11-25T00:00:00", "2026-11-26T00:00:00"]
    state = query(shop, "SELECT last_bucket, examined_start, examined_end, last_data_bucket, stale,"
                        " as_of FROM rca.monitor_state WHERE metric = 'orders'")
    assert state == [(pd.Timestamp("2026-11-25"), pd.Timestamp("2026-11-25"),
                      pd.Timestamp("2026-11-26"), pd.Timestamp("2026-11-25"), True,
                      pd.Timestamp("2026-11-30"))]
    # Still nothing new: nothing examined, still stale, the bookmark stays.
    code, out = cli(shop, "monitor", "--as-of", "2026-11-30", "--no-investigate")
    assert code == 11 and "nothing new to examine after 2026-11-26" in out, out
    assert "stale source: orders: no data since 2026-11-25" in out
    # The late rows arrive: the next run examines 11-26 .. 11-30 and is fresh again.
    _load(shop, _orders(pd.date_range("2026-11-26", "2026-11-30", freq="D"), seed=5), replace=False)
    code, out = cli(shop, "monitor", "--as-of", "2026-11-30", "--no-investigate",
                    "--format", "json")
    assert code in (0, 10), out
    doc = json.loads(out)[0]
    assert doc["window"] == ["2026-11-26T00:00:00", "2026-12-01T00:00:00"]
    assert doc["freshness"]["stale"] is False and doc["freshness"]["message"] is None
    assert query(shop, "SELECT last_bucket, stale FROM rca.monitor_state") == [
        (pd.Timestamp("2026-11-30"), False)]


def test_a_source_silent_for_its_whole_history_window_says_since_when(shop: Path) -> None:
    code, out = cli(shop, "monitor", "--as-of", "2027-06-30", "--no-investigate")
    assert code == 11, out
    assert "orders: no data since 2026-11-25 (expected up to 2027-06-30)" in out
    assert query(shop, "SELECT last_bucket, stale FROM rca.monitor_state") == [(None, True)]


def test_max_latency_from_the_project_decides_what_is_stale(shop: Path) -> None:
    (shop / "warehouse_rca.yml").write_text(PROJECT.format(
        detection="    detection:\n      max_latency: 7 days\n"))
    code, out = cli(shop, "monitor", "--as-of", "2026-11-30", "--no-investigate")
    assert code in (0, 10) and "stale" not in out, out


def test_a_stale_source_alerts_once(shop: Path, webhook: Webhook) -> None:
    (shop / "warehouse_rca.yml").write_text(
        PROJECT.format(detection="") + f"alerts:\n  webhook:\n    url: {webhook.url}\n")
    for _ in range(2):
        code, out = cli(shop, "monitor", "--backfill", "2026-11-22:2026-11-30", "--no-investigate")
        assert code == 11, out
    stale = [b for b in webhook.bodies if "no data since 2026-11-25" in json.dumps(b)]
    assert len(stale) == 1, webhook.bodies


def test_detection_settings_from_the_project_change_what_alarms(shop: Path) -> None:
    code, out = cli(shop, "monitor", "--backfill", "2026-11-15:2026-11-24", "--no-investigate")
    assert code == 10 and "2026-11-20" in out, out
    # Only rises alarm for this metric now: the drop is quiet.
    (shop / "warehouse_rca.yml").write_text(PROJECT.format(
        detection="    detection:\n      direction: up\n"))
    code, out = cli(shop, "monitor", "--backfill", "2026-11-15:2026-11-24", "--no-investigate")
    assert code == 0, out
    # The command line overrides the file.
    code, out = cli(shop, "monitor", "--backfill", "2026-11-15:2026-11-24", "--no-investigate",
                    "--direction", "down")
    assert code == 10, out
    # A 50 % drop, but the metric only alarms beyond 60 %.
    (shop / "warehouse_rca.yml").write_text(PROJECT.format(
        detection="    detection:\n      min_relative_change: 0.6\n"))
    code, out = cli(shop, "monitor", "--backfill", "2026-11-15:2026-11-24", "--no-investigate")
    assert code == 0, out


def test_the_band_of_every_examined_bucket_is_stored_for_bi(shop: Path) -> None:
    code, out = cli(shop, "monitor", "--backfill", "2026-11-15:2026-11-24", "--no-investigate")
    assert code == 10, out
    rows = query(shop, "SELECT bucket_start, bucket_end, actual, expected, lower, upper, is_anomaly"
                       " FROM rca.detection_series ORDER BY bucket_start")
    assert [r[0] for r in rows] == list(pd.date_range("2026-11-15", "2026-11-24", freq="D"))
    assert all(r[1] - r[0] == pd.Timedelta(days=1) for r in rows)  # [start, end)
    assert all(r[4] <= r[3] <= r[5] for r in rows)
    actual = dict(query(shop, "SELECT CAST(ts AS DATE), COUNT(*) FROM orders GROUP BY 1"))
    assert all(r[2] == actual[r[0].date()] for r in rows)  # the actual is the source's count
    assert [r[0] for r in rows if r[6]] == [DROP_DAY]
    ((start, end),) = query(shop, "SELECT bucket_start, bucket_end FROM rca.anomalies")
    assert (start, end) == (DROP_DAY, DROP_DAY + pd.Timedelta(days=1))  # same end convention
    # A rerun of the window replaces its band, never duplicates it.
    cli(shop, "monitor", "--backfill", "2026-11-15:2026-11-24", "--no-investigate")
    assert query(shop, "SELECT COUNT(*) FROM rca.detection_series") == [(10,)]


@pytest.mark.parametrize(("block", "message"), [
    ({"sigma": 0}, "key 'detection.sigma': must be > 0"),
    ({"direction": "sideways"}, "key 'detection.direction': 'sideways' is not one of"),
    ({"holidays": ["2026-13-01"]}, "key 'detection.holidays': '2026-13-01' is not a date"),
    ({"max_latency": "soon"}, "key 'detection.max_latency': 'soon' is not"),
    ({"sigmas": 3}, "key 'detection.sigmas': unknown key"),
    ("strict", "key 'detection': must be a mapping"),
])
def test_detection_settings_are_validated_naming_metric_and_key(block: object, message: str) -> None:
    raw = {"table": "t", "time_column": "ts", "measure": "count(*)", "dimensions": ["a"],
           "detection": block}
    with pytest.raises(ConfigError, match="metric 'orders', " + message.replace("(", r"\(")):
        metric_from_mapping("orders", raw, "warehouse_rca.yml")


def test_lookml_describes_every_monitoring_column() -> None:
    """Parsed with lkml, as Looker would read it: one view per monitoring table, every column."""
    import lkml

    from warehouse_rca.monitor import ANOMALY_COLUMNS, SERIES_COLUMNS, STATE_COLUMNS

    looker = Path(__file__).resolve().parent.parent / "bi" / "looker"
    views = {v["name"]: v for v in lkml.load((looker / "warehouse_rca_monitoring.view.lkml")
                                             .read_text())["views"]}
    for name, columns in (("rca_anomalies", ANOMALY_COLUMNS),
                          ("rca_detection_series", SERIES_COLUMNS),
                          ("rca_monitor_state", STATE_COLUMNS)):
        view = views[name]
        fields = view.get("dimensions", []) + view.get("dimension_groups", []) + view.get("measures", [])
        documented = {f["sql"].strip() for f in fields if "sql" in f and f.get("description")}
        for column, _ in columns:
            assert f"${{TABLE}}.{column}" in documented, (name, column)
    explores = lkml.load((looker / "warehouse_rca.explore.lkml").read_text())["explores"]
    assert "rca_detection_series" in {e["name"] for e in explores}


def test_holidays_come_from_the_list_and_the_country_calendar() -> None:
    from datetime import date, datetime

    from warehouse_rca.monitor import holidays_for, settings_for

    raw = {"table": "t", "time_column": "ts", "measure": "count(*)", "dimensions": ["a"],
           "detection": {"holidays": ["2026-11-27"], "holiday_country": "US", "sigma": 3}}
    metric = metric_from_mapping("orders", raw, "warehouse_rca.yml")
    days = holidays_for(metric, datetime(2026, 11, 1), datetime(2026, 12, 31))
    assert date(2026, 11, 26) in days and date(2026, 12, 25) in days  # Thanksgiving, Christmas
    assert date(2026, 11, 27) in days and date(2026, 10, 12) not in days  # the list; the window
    settings = settings_for(metric, days, sigma=5)
    assert settings.holidays == days and settings.sigma == 5  # the command line wins
    with pytest.raises(ConfigError, match="no holiday calendar for 'XX'"):
        holidays_for(metric_from_mapping("orders", {**raw, "detection": {"holiday_country": "XX"}},
                                         "f"), datetime(2026, 1, 1), datetime(2026, 2, 1))
