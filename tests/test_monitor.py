"""Detection and monitoring on real DuckDB, and the detector on synthetic series."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import Webhook
from warehouse_rca.cli import main
from warehouse_rca.detect import DetectionSettings, detect
from warehouse_rca.errors import InsufficientHistoryError

INCIDENT_DAY = pd.Timestamp("2026-11-20")
PROJECT = """
metrics:
  conversion_rate:
    table: sessions
    time_column: ts
    grain: day
    numerator: sum(converted)
    denominator: count(*)
    dimensions: [device, region]
    higher_is_better: true
"""


def seasonal_daily(days: int = 90, drop_at: int | None = 80, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2026-08-01", periods=days, freq="D")
    weekly = np.where(idx.day_of_week >= 5, 0.8, 1.0)
    values = 1000 * weekly * (1 + rng.normal(0, 0.02, days))
    if drop_at is not None:
        values[drop_at] *= 0.6
    return pd.Series(values, index=idx)


def test_seasonal_drop_is_flagged_once_on_the_right_day() -> None:
    series = seasonal_daily()
    result = detect(series)
    assert result.model == "stl" and result.period == 7
    assert [e.start for e in result.excursions] == [series.index[80]]
    assert result.excursions[0].direction == "down"
    assert set(result.points.columns) == {"value", "expected", "lower", "upper", "score", "flag"}


def test_flat_noisy_series_raises_nothing() -> None:
    assert detect(seasonal_daily(drop_at=None, seed=3)).excursions == []


def test_direction_and_volume_rules() -> None:
    spike = seasonal_daily(drop_at=None)
    spike.iloc[80] *= 1.6
    assert detect(spike, DetectionSettings(direction="higher_is_better")).excursions == []
    assert len(detect(spike, DetectionSettings(direction="lower_is_better")).excursions) == 1
    tiny = seasonal_daily() / 1e6
    assert detect(tiny, DetectionSettings(min_volume=1.0)).excursions == []


def test_hourly_daily_cycle_picks_a_seasonal_model() -> None:
    idx = pd.date_range("2026-10-01", periods=24 * 21, freq="h")
    values = 100 + 30 * np.sin(2 * np.pi * idx.hour / 24) + np.random.default_rng(1).normal(0, 2, len(idx))
    result = detect(pd.Series(values, index=idx))
    assert result.model == "stl" and result.period == 24


def test_too_little_history_is_a_clear_error() -> None:
    with pytest.raises(InsufficientHistoryError, match="has 5 point"):
        detect(seasonal_daily(days=5, drop_at=None))


# --------------------------------------------------------------------------- monitor, end to end


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    rng = np.random.default_rng(8)
    days = pd.date_range("2026-08-01", "2026-11-25", freq="D")
    frames = []
    for day in days:
        n = 1500 if day.day_of_week < 5 else 1100
        f = pd.DataFrame({
            "ts": day + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
            # iOS holds half the sessions, so the incident roughly halves the day's rate: far
            # outside the detector's band (these tests are about the job, not the threshold)
            "device": rng.choice(["iOS", "Android", "desktop"], n, p=[0.5, 0.3, 0.2]),
            "region": rng.choice(["north", "south"], n),
        })
        rate = np.where((day == INCIDENT_DAY) & (f["device"] == "iOS"), 0.005, 0.10)
        f["converted"] = (rng.random(n) < rate).astype(int)
        frames.append(f)
    con = duckdb.connect(str(tmp_path / "warehouse_rca.duckdb"))
    con.register("incoming", pd.concat(frames))
    con.execute("CREATE TABLE sessions AS SELECT * FROM incoming")
    con.close()
    (tmp_path / "warehouse_rca.yml").write_text(PROJECT)
    return tmp_path


def cli(folder: Path, *args: str) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def counts(folder: Path) -> tuple[int, int, int]:
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"), read_only=True)
    try:
        return tuple(con.execute(f"SELECT COUNT(*) FROM rca.{t}").fetchone()[0]
                     for t in ("anomalies", "runs", "root_causes"))
    finally:
        con.close()


def test_monitor_detects_investigates_and_is_idempotent(warehouse: Path) -> None:
    code, out = cli(warehouse, "monitor", "--as-of", "2026-11-20", "--format", "json")
    assert code == 10, out
    import json

    doc = json.loads(out)[0]
    assert [a["start"][:10] for a in doc["anomalies"]] == ["2026-11-20"]
    assert doc["anomalies"][0]["direction"] == "down"
    con = duckdb.connect(str(warehouse / "warehouse_rca.duckdb"), read_only=True)
    top = con.execute("SELECT segment FROM rca.root_causes WHERE rank = 1").fetchone()[0]
    con.close()
    assert json.loads(top) == {"device": "iOS"}
    before = counts(warehouse)
    code, _ = cli(warehouse, "monitor", "--backfill", "2026-11-20:2026-11-20")
    assert code == 10
    assert counts(warehouse) == before  # rerunning the window replaces, never duplicates


def test_missed_days_are_caught_up_and_quiet_days_exit_zero(warehouse: Path) -> None:
    code, out = cli(warehouse, "detect", "conversion_rate", "--as-of", "2026-11-17")
    assert code == 0, out
    # two days later: the run covers 11-18 .. 11-19 (nothing), then 11-20 has the incident
    code, out = cli(warehouse, "detect", "conversion_rate", "--as-of", "2026-11-19")
    assert code == 0 and "2026-11-18 00:00 .. 2026-11-20 00:00" in out, out
    code, out = cli(warehouse, "detect", "conversion_rate", "--as-of", "2026-11-21", "--no-investigate")
    assert code == 10 and "2026-11-20" in out, out


def test_unknown_metric_is_exit_code_two(warehouse: Path) -> None:
    code, out = cli(warehouse, "detect", "revenue", "--as-of", "2026-11-20")
    assert code == 2 and "no metric named 'revenue'" in out


def test_monitor_alerts_once_per_incident_records_framework_and_writes_reports(
        warehouse: Path, webhook: Webhook) -> None:
    """The scheduled job end to end: the incident goes to the webhook once (not again on a rerun),
    the investigation's framework is recorded for drift, and its HTML report is written."""
    import json

    bodies = webhook.bodies
    project = (warehouse / "warehouse_rca.yml").read_text()
    (warehouse / "warehouse_rca.yml").write_text(project + f"alerts:\n  webhook:\n    url: {webhook.url}\n")
    (warehouse / "reports").mkdir()
    code, out = cli(warehouse, "monitor", "--as-of", "2026-11-20", "--report-dir", "reports",
                    "--report", "incident.html")
    assert code == 10, out
    assert len(bodies) == 1 and "conversion_rate" in json.dumps(bodies[0])
    reports = list((warehouse / "reports").glob("*.html"))
    assert len(reports) == 1 and "iOS" in reports[0].read_text()
    assert (warehouse / "incident.html").read_text() == reports[0].read_text()
    code, out = cli(warehouse, "monitor", "--backfill", "2026-11-20:2026-11-20")
    assert code == 10, out
    assert len(bodies) == 1  # the same incident is never alerted twice
    con = duckdb.connect(str(warehouse / "warehouse_rca.duckdb"), read_only=True)
    try:
        frameworks = con.execute("SELECT metric, dimensions FROM rca.dimension_frameworks").fetchall()
        sent = con.execute("SELECT COUNT(*) FROM rca.alerts_sent").fetchone()[0]
    finally:
        con.close()
    assert frameworks and frameworks[0][0] == "conversion_rate"
    assert json.loads(frameworks[0][1])["dimensions"] == ["device", "region"]
    assert sent == 1


def test_additive_anomaly_is_investigated_against_the_detectors_expected_value(warehouse: Path) -> None:
    """The monitor's investigation explains actual vs. forecast: for an additive metric its
    baseline is rescaled to the detector's expected value (weekday seasonality included), so the
    change it explains is the anomaly's, not the gap to a plain 28-day average."""
    import json

    (warehouse / "warehouse_rca.yml").write_text(
        "metrics:\n  conversions:\n    table: sessions\n    time_column: ts\n    grain: day\n"
        "    measure: sum(converted)\n    dimensions: [device, region]\n    higher_is_better: true\n")
    code, out = cli(warehouse, "monitor", "--as-of", "2026-11-20", "--format", "json", "--no-alerts", "--sigma", "3")
    assert code == 10, out
    doc = json.loads(out)[0]
    anomaly = doc["anomalies"][0]
    assert anomaly["start"][:10] == "2026-11-20"
    con = duckdb.connect(str(warehouse / "warehouse_rca.duckdb"), read_only=True)
    try:
        base, cur, parameters = con.execute(
            "SELECT baseline_value, current_value, parameters FROM rca.runs WHERE status = 'succeeded'").fetchone()
        top = con.execute("SELECT segment FROM rca.root_causes WHERE rank = 1").fetchone()[0]
        plain = con.execute("SELECT SUM(converted) / 28.0 FROM sessions WHERE ts >= '2026-10-23' AND ts < '2026-11-20'").fetchone()[0]
    finally:
        con.close()
    assert base == pytest.approx(anomaly["expected"], rel=1e-6)  # the forecast, not the average
    assert abs(base - plain) > 1  # a weekday's forecast differs from the 28-day average
    assert cur == pytest.approx(anomaly["actual"], rel=1e-6)
    assert "baseline_scale" in json.loads(parameters)
    assert json.loads(top) == {"device": "iOS"}
