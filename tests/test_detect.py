"""The anomaly detector on synthetic series whose anomalies (or their absence) are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from warehouse_rca.detect import DetectionSettings, Excursion, detect, per_day_threshold
from warehouse_rca.errors import ConfigError, InsufficientHistoryError


def weekly_daily(days: int = 100, drop_at: int | None = 85, seed: int = 0) -> pd.Series:
    """Daily values with a weekend dip (a weekly cycle) and 2 % noise; optionally a 40 % drop."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2026-06-01", periods=days, freq="D")
    values = 5000 * np.where(idx.day_of_week >= 5, 0.7, 1.0) * (1 + rng.normal(0, 0.02, days))
    if drop_at is not None:
        values[drop_at] *= 0.6
    return pd.Series(values, index=idx)


def hourly_daily_cycle(days: int = 21, seed: int = 1) -> pd.Series:
    idx = pd.date_range("2026-10-01", periods=24 * days, freq="h")
    rng = np.random.default_rng(seed)
    return pd.Series(200 + 60 * np.sin(2 * np.pi * idx.hour / 24) + rng.normal(0, 3, len(idx)), index=idx)


def test_weekly_seasonal_drop_is_one_excursion_on_the_right_day() -> None:
    series = weekly_daily()
    result = detect(series)
    assert result.model == "stl" and result.period == 7
    assert len(result.excursions) == 1
    excursion = result.excursions[0]
    assert isinstance(excursion, Excursion)
    assert excursion.start == excursion.peak == series.index[85]
    assert excursion.direction == "down"
    assert excursion.actual == pytest.approx(series.iloc[85])
    assert excursion.expected == pytest.approx(series.iloc[85] / 0.6, rel=0.05)
    assert list(result.points.columns) == ["value", "expected", "lower", "upper", "score", "flag"]
    assert result.points["flag"].sum() == 1  # the weekend dips themselves are the model, not anomalies


def test_flat_noisy_and_seasonal_series_without_anomalies_raise_nothing() -> None:
    rng = np.random.default_rng(7)
    idx = pd.date_range("2026-01-01", periods=2000, freq="5min")
    flat = pd.Series(100 + rng.normal(0, 1, len(idx)), index=idx)
    assert detect(flat).excursions == []
    assert detect(weekly_daily(drop_at=None, seed=3)).excursions == []
    assert detect(hourly_daily_cycle()).excursions == []


def test_direction_ignores_the_harmless_side() -> None:
    spike = weekly_daily(drop_at=None)
    spike.iloc[85] *= 1.6
    assert detect(spike, DetectionSettings(direction="higher_is_better")).excursions == []
    (up,) = detect(spike, DetectionSettings(direction="lower_is_better")).excursions
    assert up.direction == "up" and up.start == spike.index[85]
    drop = weekly_daily()
    assert detect(drop, DetectionSettings(direction="lower_is_better")).excursions == []
    assert len(detect(drop, DetectionSettings(direction="higher_is_better")).excursions) == 1


def test_min_volume_and_min_relative_change_suppress_alarms() -> None:
    tiny = weekly_daily() / 1e6  # same shape, values around 0.005
    assert len(detect(tiny).excursions) == 1
    assert detect(tiny, DetectionSettings(min_volume=1.0)).excursions == []
    # a 40 % drop is below a 50 % minimum relative change
    assert detect(weekly_daily(), DetectionSettings(min_relative_change=0.5)).excursions == []


def test_too_short_history_names_what_exists_and_what_is_needed() -> None:
    with pytest.raises(InsufficientHistoryError, match=r"has 5 point.*at least 21"):
        detect(weekly_daily(days=5, drop_at=None), grain="day")
    short = weekly_daily(days=30, drop_at=None)
    short.iloc[3:20] = np.nan  # missing buckets do not count as history
    with pytest.raises(InsufficientHistoryError, match="has 13 point"):
        detect(short)
    with pytest.raises(ConfigError):
        DetectionSettings(direction="up")


def test_hourly_data_with_a_daily_cycle_picks_a_seasonal_model() -> None:
    result = detect(hourly_daily_cycle())
    assert result.model == "stl" and result.period == 24
    # the same data without its cycle gets the non-seasonal model
    rng = np.random.default_rng(2)
    idx = pd.date_range("2026-10-01", periods=24 * 21, freq="h")
    assert detect(pd.Series(200 + rng.normal(0, 3, len(idx)), index=idx)).model == "robust_rolling"


def test_daily_and_weekly_cycles_pick_mstl() -> None:
    idx = pd.date_range("2026-01-05", periods=24 * 7 * 4, freq="h")
    weekly = np.where(idx.day_of_week >= 5, 0.5, 1.0)
    rng = np.random.default_rng(4)
    values = 100 * weekly * (1 + 0.5 * np.sin(2 * np.pi * idx.hour / 24)) + rng.normal(0, 1, len(idx))
    result = detect(pd.Series(values, index=idx))
    assert result.model == "mstl" and result.periods == (24, 168)


def test_missing_points_are_never_flagged_and_do_not_break_the_model() -> None:
    series = weekly_daily()
    series.iloc[[40, 41, 60]] = np.nan
    result = detect(series)
    assert not result.points["flag"].iloc[[40, 41, 60]].any()
    assert [e.start for e in result.excursions] == [series.index[85]]


def test_a_level_shift_is_one_excursion_not_one_alarm_per_point() -> None:
    rng = np.random.default_rng(5)
    idx = pd.date_range("2026-01-01", periods=3000, freq="5min")
    values = 50 + rng.normal(0, 1, len(idx))
    values[2000:] += 15  # a lasting step up
    result = detect(pd.Series(values, index=idx))
    assert len(result.excursions) == 1
    assert result.excursions[0].start == idx[2000] and result.excursions[0].direction == "up"


def test_detection_is_online_correct() -> None:
    """A point's verdict never depends on later points: prefix runs agree with the full run."""
    series = hourly_daily_cycle(days=12)
    series.iloc[200] += 80
    full = detect(series).points
    for cut in (150, 200, 201, 260):
        prefix = detect(series.iloc[:cut]).points
        pd.testing.assert_frame_equal(prefix, full.iloc[:cut])
    assert full["flag"].iloc[200]


def test_per_day_threshold_keeps_false_alarms_per_day() -> None:
    assert per_day_threshold(4.0, pd.Timedelta(days=1)) == 4.0
    assert per_day_threshold(4.0, pd.Timedelta(days=7)) == 4.0
    hourly, five_minutes = per_day_threshold(4.0, pd.Timedelta(hours=1)), per_day_threshold(4.0, pd.Timedelta(minutes=5))
    # Sidak on the daily tail of sigma + 1 (sub-daily residuals are heavier-tailed than Gaussian)
    assert 5.5 < hourly < five_minutes < 6.1
    assert per_day_threshold(3.0, pd.Timedelta(minutes=5)) == pytest.approx(5.18, abs=0.01)


def test_sub_daily_threshold_is_continuous_and_grows_with_points_per_day() -> None:
    steps = ["1D", "12h", "6h", "2h", "1h", "30min", "5min", "1min"]
    thresholds = [per_day_threshold(4.0, pd.Timedelta(s)) for s in steps]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(steps)
    assert 4.0 < thresholds[1] < 4.5  # 12-hour data get only part of the extra sigma


def test_five_minute_spike_between_the_gaussian_and_the_stricter_threshold_does_not_alarm() -> None:
    rng = np.random.default_rng(11)
    idx = pd.date_range("2026-01-01", periods=2000, freq="5min")
    values = 100 + rng.normal(0, 2, len(idx))
    values[1500] += 11.2  # ~5.8 robust sigmas: over the Gaussian Sidak 5.2, under 6.0
    values[1800] += 15.0  # ~8.8 robust sigmas
    result = detect(pd.Series(values, index=idx))
    assert 5.2 < result.points["score"].iloc[1500] < 6.0
    assert [e.start for e in result.excursions] == [idx[1800]]
    row = result.points.iloc[1500]
    scale = (row["value"] - row["expected"]) / row["score"]
    assert row["upper"] - row["expected"] == pytest.approx(
        per_day_threshold(4.0, pd.Timedelta(minutes=5)) * scale, rel=1e-6)


def test_quiet_daily_series_raise_nothing_right_after_the_warm_up() -> None:
    """The sustained test learns from scored points only: the unscored warm-up is not 'calm'."""
    for seed in range(30):
        assert detect(weekly_daily(drop_at=None, seed=seed)).excursions == [], seed


def test_nab_benchmark_halves_are_fixed_by_the_file_name() -> None:
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "detection.py"
    spec = importlib.util.spec_from_file_location("nab_detection_benchmark", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    assert bench.half_of("nyc_taxi.csv") == "tune"  # crc32 even
    assert bench.half_of("machine_temperature_system_failure.csv") == "holdout"  # crc32 odd
    names = [f"series_{i}.csv" for i in range(200)]
    halves = [bench.half_of(n) for n in names]
    assert halves == [bench.half_of(n) for n in names]  # deterministic, no state
    assert 60 < halves.count("tune") < 140
