"""Stage 0: baselines and anomaly detection on a KPI time series (compact: one value per bucket).

The series comes from one pushed-down aggregate query per metric (``sql_templates/series.sql.j2``).
Detection is *online-correct*: every point is judged by a model fitted only on the points before
it (refitted in chunks), as a scheduled job would see it, so backtests such as NAB are honest.

Models, chosen automatically by the length and seasonality of the history:

* ``stl``: statsmodels STL (Cleveland et al., 1990) on the trailing four seasons of history
  when a seasonal period is detected (autocorrelation at the grain's natural periods) and at
  least three full cycles exist; the forecast is the last trend level plus the seasonal profile.
* ``robust_rolling``: a trailing median level, for short or non-seasonal history.

Scores are robust z-scores: the residual over 1.4826 x the median absolute residual of the
history (MAD), or the 99th percentile's Gaussian equivalent when the history is heavy-tailed. A point is flagged when it is
beyond ``sigma`` *and* differs from the expected value by at least ``min_relative_change`` *and*
has at least ``min_volume`` (so near-zero baselines do not alarm), in the harmful direction only
when the metric says which direction is good. Flagged points are grouped into excursions, and an
excursion raises one alarm at its first point (NAB-style suppression: repeats are false alarms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from warehouse_rca.errors import ConfigError, InsufficientHistoryError

DIRECTIONS = ("both", "higher_is_better", "lower_is_better")

#: Natural seasonal periods (in points) per sampling interval, tried in order.
_TRAILING_POINTS = 288  # residual history for scale and novelty without a seasonal period

_PERIODS_BY_STEP = (
    (pd.Timedelta(minutes=15), ("1D", "7D")),
    (pd.Timedelta(hours=1), ("1D", "7D")),
    (pd.Timedelta(days=1), ("7D",)),
    (pd.Timedelta(days=7), ("364D",)),
)


@dataclass(frozen=True)
class DetectionSettings:
    sigma: float = 4.0
    min_relative_change: float = 0.10
    min_volume: float = 0.0
    direction: str = "both"
    min_history: int = 14
    #: consecutive normal points that end an excursion
    quiet_points: int = 12

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {', '.join(DIRECTIONS)}")
        if self.sigma <= 0 or self.min_relative_change < 0 or self.min_history < 3:
            raise ConfigError("sigma must be > 0, min_relative_change >= 0, min_history >= 3")


@dataclass(frozen=True)
class Excursion:
    start: pd.Timestamp
    end: pd.Timestamp
    peak: pd.Timestamp
    direction: str
    expected: float
    actual: float
    score: float


@dataclass
class DetectionResult:
    model: str
    period: int | None
    points: pd.DataFrame
    excursions: list[Excursion] = field(default_factory=list)


def _step(index: pd.DatetimeIndex) -> pd.Timedelta:
    return pd.Series(index).diff().median() if len(index) > 1 else pd.Timedelta(days=1)


def seasonal_period(values: np.ndarray, index: pd.DatetimeIndex) -> int | None:
    """The natural period (in points) with clear autocorrelation, if the history covers 3 cycles."""
    step = _step(index)
    candidates: tuple[str, ...] = ()
    for limit, periods in _PERIODS_BY_STEP:
        if step <= limit:
            candidates = periods
            break
    x = pd.Series(values).interpolate(limit_direction="both").to_numpy()
    if len(x) == 0 or not np.isfinite(x).all() or np.nanstd(x) == 0:
        return None
    x = x - x.mean()
    denom = float(np.dot(x, x))
    for text in candidates:
        period = int(round(pd.Timedelta(text) / step))
        if period < 2 or len(x) < 3 * period:
            continue
        acf = float(np.dot(x[:-period], x[period:]) / denom)
        if acf >= 0.3:
            return period
    return None


def _forecast_chunk(history: np.ndarray, horizon: int, period: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Expected values for the next ``horizon`` points and the history's residuals."""
    h = pd.Series(history).interpolate(limit_direction="both").to_numpy()
    if period is not None and len(h) >= 3 * period:
        from statsmodels.tsa.seasonal import STL

        # robust=False: 6x faster, and outliers are handled by the robust scale and novelty rule
        fit = STL(h, period=period, robust=False).fit()
        seasonal = fit.seasonal[-period:]
        level = float(np.median(fit.trend[-max(1, period // 8):]))
        phase = np.arange(horizon) % period
        return level + seasonal[phase], h - fit.trend - fit.seasonal
    window = min(len(h), 24)
    level = float(np.median(h[-window:]))
    resid = h[1:] - pd.Series(h).rolling(window, min_periods=1).median().to_numpy()[:-1]
    return np.full(horizon, level), resid


def detect(series: pd.Series, settings: DetectionSettings | None = None, grain: str | None = None) -> DetectionResult:
    """Score every point of ``series`` against a model fitted on the points before it."""
    settings = settings or DetectionSettings()
    s = series.sort_index().astype("float64")
    n = len(s)
    if n < settings.min_history:
        raise InsufficientHistoryError(
            f"the series has {n} point(s); detection needs at least {settings.min_history} "
            f"(more history, or a coarser grain than {grain or 'this one'})"
        )
    values = s.to_numpy()
    index = pd.DatetimeIndex(s.index)
    period = seasonal_period(values, index)
    model = "stl" if period is not None else "robust_rolling"
    start = min(n, max(settings.min_history, 3 * period if period else settings.min_history))
    if period:
        # Online evaluation in chunks of one season: refit on the trailing history, forecast ahead.
        expected = np.full(n, np.nan)
        for t0 in range(start, n, period):
            hist = values[max(0, t0 - 4 * period):t0]
            horizon = min(period, n - t0)
            expected[t0:t0 + horizon] = _forecast_chunk(hist, horizon, period)[0]
    else:
        # Trailing median level of the points before each one (causal, vectorised).
        level = pd.Series(values).interpolate(limit_direction="both")
        expected = level.rolling(24, min_periods=settings.min_history // 2).median().shift(1).to_numpy().copy()
        expected[:start] = np.nan
    resid = pd.Series(np.abs(values - expected))
    trailing = 4 * period if period else _TRAILING_POINTS
    past = resid.rolling(trailing, min_periods=settings.min_history // 2)
    # Gaussian-equivalent scale of the recent residuals: the larger of the MAD's and the 99th
    # percentile's, so a heavy-tailed history (regular spikes) does not make each spike extreme.
    scale = np.fmax(1.4826 * past.median().shift(1).to_numpy(),
                    past.quantile(0.99).shift(1).to_numpy() / 2.576)
    scale = np.where(scale > 0, scale, np.nan)
    # Novelty: an anomaly is more extreme than anything in the recent history.
    recent_max = past.max().shift(1).to_numpy()
    score = (values - expected) / scale
    rel = np.abs(values - expected) / np.maximum(np.abs(expected), 1e-12)
    flag = (np.abs(score) >= settings.sigma) & (rel >= settings.min_relative_change)
    flag &= resid.to_numpy() > np.nan_to_num(recent_max, nan=np.inf)
    flag &= np.maximum(np.abs(values), np.abs(expected)) >= settings.min_volume
    if settings.direction == "higher_is_better":
        flag &= score < 0
    elif settings.direction == "lower_is_better":
        flag &= score > 0
    flag &= np.isfinite(score)
    points = pd.DataFrame(
        {
            "value": values,
            "expected": expected,
            "lower": expected - settings.sigma * scale,
            "upper": expected + settings.sigma * scale,
            "score": score,
            "flag": flag,
        },
        index=index,
    )
    return DetectionResult(model=model, period=period, points=points, excursions=_excursions(points, settings))


def _excursions(points: pd.DataFrame, settings: DetectionSettings) -> list[Excursion]:
    """Group flagged points into excursions: one alarm each, ended by ``quiet_points`` normal ones."""
    out: list[Excursion] = []
    flags = points["flag"].to_numpy()
    i, n = 0, len(points)
    while i < n:
        if not flags[i]:
            i += 1
            continue
        start = end = i
        quiet = 0
        j = i + 1
        while j < n and quiet < settings.quiet_points:
            if flags[j]:
                end, quiet = j, 0
            else:
                quiet += 1
            j += 1
        span = points.iloc[start:end + 1]
        peak_pos = int(np.nanargmax(np.abs(span["score"].to_numpy())))
        peak = span.iloc[peak_pos]
        out.append(Excursion(
            start=points.index[start], end=points.index[end], peak=span.index[peak_pos],
            direction="up" if peak["score"] > 0 else "down",
            expected=float(peak["expected"]), actual=float(peak["value"]),
            score=float(peak["score"]) if math.isfinite(peak["score"]) else 0.0,
        ))
        i = j
    return out
