"""The detector's inputs beyond the values: a ratio metric's volume and the holiday calendar."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from warehouse_rca.detect import DetectionSettings, detect
from warehouse_rca.errors import ConfigError


def rate_series(days: int = 120, seed: int = 0) -> tuple[pd.Series, pd.Series]:
    """A daily proportion around 2 % on ~1,000 trials a day (binomial noise), and its volume."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2026-01-01", periods=days, freq="D")
    volume = pd.Series(rng.integers(900, 1100, days).astype(float), index=idx)
    rate = pd.Series(rng.binomial(volume.astype(int), 0.02) / volume, index=idx)
    return rate, volume


def test_a_rate_on_a_small_volume_is_judged_with_its_denominator() -> None:
    rate, volume = rate_series(days=140)
    rate.iloc[100], volume.iloc[100] = 0.1, 10.0  # 1 failure in 10: weak evidence
    rate.iloc[125] = 0.1                          # 100 failures in ~1,000: strong evidence
    flags = detect(rate, volume=volume).points["flag"]
    assert not flags.iloc[100] and flags.iloc[125]
    # without the volume both look alike
    plain = detect(rate).points["flag"]
    assert plain.iloc[100] and plain.iloc[125]


def test_a_proportion_band_stays_in_its_units_and_bounds() -> None:
    rate, volume = rate_series()
    points = detect(rate, volume=volume).points.dropna()
    assert (points["lower"] >= 0).all() and (points["upper"] <= 1).all()
    assert ((points["lower"] <= points["expected"]) & (points["expected"] <= points["upper"])).all()
    assert points["expected"].median() == pytest.approx(0.02, rel=0.15)


def test_holidays_learn_their_own_effect_and_do_not_disturb_ordinary_days() -> None:
    rng = np.random.default_rng(3)
    idx = pd.date_range("2026-01-01", periods=150, freq="D")
    values = pd.Series(1000 * (1 + rng.normal(0, 0.02, len(idx))), index=idx)
    holidays = tuple(d.date() for d in idx[[40, 70, 100, 130]])
    values.iloc[[40, 70, 100, 130]] *= 0.6  # every holiday is 40 % down
    plain = detect(values).points["flag"]
    assert plain.iloc[[40, 70, 100, 130]].all()  # without the calendar, each is an anomaly
    flags = detect(values, DetectionSettings(holidays=holidays)).points["flag"]
    # the first two teach the effect; the later ones are expected
    assert flags.iloc[40] and flags.iloc[70] and not flags.iloc[100] and not flags.iloc[130]
    assert flags.sum() == 2
    with pytest.raises(ConfigError, match="holidays"):
        DetectionSettings(holidays=("2026-12-25",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="holidays"):
        DetectionSettings(holidays=[datetime.date(2026, 12, 25)])  # type: ignore[arg-type]


def test_detection_with_volume_and_holidays_is_online_correct() -> None:
    rate, volume = rate_series(days=90, seed=5)
    rate.iloc[70] = 0.08
    volume.iloc[50] = 20.0
    settings = DetectionSettings(
        direction="lower_is_better",
        holidays=tuple(d.date() for d in rate.index[[25, 45, 60, 75]]),
    )
    full = detect(rate, settings, volume=volume).points
    for cut in (40, 61, 70, 71, 85):
        prefix = detect(rate.iloc[:cut], settings, volume=volume.iloc[:cut]).points
        pd.testing.assert_frame_equal(prefix, full.iloc[:cut])
    assert full["flag"].iloc[70]
