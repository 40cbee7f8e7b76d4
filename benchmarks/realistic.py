"""Root-cause diagnosis on realistic row-level fact tables with seeded, known incidents.

    python benchmarks/realistic.py                          # the held-out half, 3 seeds per kind
    python benchmarks/realistic.py --half tune --verbose    # the tuning half, every case shown
    python benchmarks/realistic.py --half all --seeds 10 --json
    python benchmarks/realistic.py --kinds mix_shift,noise --half all --verbose

Data. Every incident gets its own embedded DuckDB file (a temporary directory) holding one fact
table generated with numpy from the incident's seed: five weeks of rows (three weeks of history,
which the causal checks read, then the baseline week 2026-11-09:2026-11-15 and the current week
2026-11-16:2026-11-22), weekday seasonality in volume and some day-to-day noise:

* ``sessions`` (about 340K rows): one row per session, ``ts``, ``converted`` (0/1, drawn from a
  logit model: an effect per value of every dimension, jittered per seed, and a weekday effect;
  about 15 % overall, from 4 % on display traffic to 30 % on email), and the dimensions device
  (4 values), channel (5), region (6), customer_type (3, correlated with channel: email traffic
  is mostly loyal customers, display traffic mostly new ones), app_version (5, set by the
  device: 8.3 exists only on iOS, 8.4 only on Android, web only on desktops and tablets) and
  country (200 Zipf-distributed values, s=1.1). Metric: ``sum(converted) / count(*)``.
* ``orders`` (about 260K rows): one row per order, ``ts``, ``amount`` (lognormal per tier times a
  category factor: enterprise is 2 % of orders and over a third of revenue), and the dimensions
  tier (4), store (12), region (6, set by the store), category (6), payment_method (5, correlated
  with tier: invoices are mostly mid-market and enterprise) and city (200 Zipf values). Metrics:
  ``sum(amount)`` or ``count(*)``.

Incidents (``KINDS``), injected into the current week only, each with a ground-truth set of
root-cause elements (a segment, dimension -> value). Segments and magnitudes are drawn from the
seed among the generated world's segments, and a drawn rate change is kept only when it alone
moves the total rate by at least ``MIN_Z`` = 3.5 standard errors (3 for depth-3 segments, which
hold only 5-9 % of sessions): a change a person would see on the chart. The kinds:

* ``rate_depth1/2/3``: one segment's conversion -30-70 % (depth 3: -55-80 %), 5-30 % of sessions;
* ``mix_shift``: a low-converting channel's traffic grows to 20-30 % of sessions, rate unchanged;
* ``launched_value``: app_version=8.5 appears in the current week on part of iOS (or Android),
  converting at half the rate; ``removed_value``: a high-converting value has no current rows;
* ``additive_tier``: enterprise loses 35-60 % of its orders (``sum(amount)``);
  ``additive_count``: one payment method or store loses 40-70 % of its orders (``count(*)``);
* ``two_causes``: two segments on different dimensions drop (truth: both); ``offsetting``: one
  segment drops, another rises by 50-75 % of it, the net change modest (truth: both);
* ``global_change``: every segment -15-30 % (conversion, or orders); ``noise``: nothing injected
  (conversion, or revenue): truth empty for both, and a global change is to be answered as one;
* ``confounded``: app_version=8.3 (iOS-only, a third of iOS) drops, or channel=email or
  customer_type=loyal (most email sessions are loyal customers) does: truth the injected one;
* ``high_cardinality``: one of the 2nd-6th largest of the 200 countries drops 50-75 %.

Kinds with two variants alternate them in pairs of seeds (0-1, 4-5: the first; 2-3: the second),
so that both halves hold both.

Every incident runs through the CLI's code path (``benchmarks.harness.investigate_cli``:
``warehouse-rca investigate --table ... --format json --no-write``, default options, causal checks
included; if the harness's profiles.yml is refused, the same command with one the CLI reads); the
prediction is the ``root_causes`` segments in rank order. Scoring (``benchmarks.harness.Score``),
per kind and overall: exact-set TP/FP/FN and F1 (elements normalised as sorted ``dim=value``
pairs), the exact rank-1 rate over cases with a true cause, the causes reported on the controls
(noise and global change, whose truth is empty), median seconds per investigation, and how many
global changes were answered as global (no root cause and ``global_change`` true in the JSON).

Tuning and held-out halves: incident seeds run 0..N-1 per kind (``--seeds N``, default 6); even
seeds are the tuning half, odd seeds the held-out half (``--half tune|holdout|all``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

# Benchmark the working tree this script belongs to, whatever copy of the package is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Score, element, investigate_cli

BASELINE = "2026-11-09:2026-11-15"
CURRENT = "2026-11-16:2026-11-22"
FIRST_DAY = np.datetime64("2026-10-19", "us")  # a Monday: three weeks of history, then the two
DAYS = 35
BASELINE_START = np.datetime64("2026-11-09", "us")
CURRENT_START = np.datetime64("2026-11-16", "us")
WEEKDAY_TRAFFIC = np.array([1.0, 1.03, 1.01, 0.97, 0.92, 0.74, 0.80])  # Monday .. Sunday
MIN_Z = 3.5  # a drawn rate change must move the total rate by this many standard errors

# --- sessions: dimension -> value -> (share, logit effect on conversion) -----------------------
SESSION_DIMS = ["device", "channel", "region", "customer_type", "app_version", "country"]
RATE_DIMS = ["device", "channel", "region", "customer_type"]  # where rate-drop segments are drawn
SESSIONS_PER_DAY = 10_500
BASE_RATE = 0.11
WEEKDAY_CONVERSION = np.array([0.0, 0.02, 0.03, 0.0, -0.06, 0.15, 0.12])  # logit, Monday .. Sunday
DEVICE = {"iOS": (0.45, 0.10), "Android": (0.30, -0.15), "Desktop": (0.20, 0.35),
          "Tablet": (0.05, 0.0)}
CHANNEL = {"search": (0.40, 0.15), "direct": (0.25, 0.30), "social": (0.15, -0.45),
           "email": (0.12, 0.65), "display": (0.08, -0.80)}
REGION = {"Northeast": (0.30, 0.10), "Southeast": (0.22, -0.10), "Midwest": (0.17, 0.0),
          "Southwest": (0.13, -0.20), "West": (0.11, 0.15), "Northwest": (0.07, 0.05)}
CUSTOMER_EFFECT = {"new": -0.50, "returning": 0.15, "loyal": 0.70}
CUSTOMER_GIVEN_CHANNEL = {  # new, returning, loyal
    "search": (0.50, 0.30, 0.20), "direct": (0.30, 0.40, 0.30), "social": (0.60, 0.30, 0.10),
    "email": (0.10, 0.25, 0.65), "display": (0.75, 0.20, 0.05),
}
VERSION_GIVEN_DEVICE = {
    "iOS": {"8.1": 0.25, "8.2": 0.40, "8.3": 0.35},
    "Android": {"8.1": 0.45, "8.2": 0.35, "8.4": 0.20},
    "Desktop": {"web": 1.0}, "Tablet": {"web": 1.0},
}
VERSION_EFFECT = {"web": 0.0, "8.1": -0.10, "8.2": 0.05, "8.3": 0.05, "8.4": -0.10}
COUNTRIES, COUNTRY_ZIPF = 200, 1.1

# --- orders ------------------------------------------------------------------------------------
ORDER_DIMS = ["tier", "region", "store", "category", "payment_method", "city"]
ORDERS_PER_DAY = 8_000
TIER = {  # share of orders, lognormal mu and sigma of the amount
    "consumer": (0.72, 3.4, 0.7), "smb": (0.21, 4.8, 0.8), "mid": (0.05, 6.0, 0.9),
    "enterprise": (0.02, 7.4, 1.0),
}
STORE_WEIGHTS = [14, 12, 11, 10, 9, 8, 8, 7, 6, 6, 5, 4]  # store s01..s12, in region i % 6
CATEGORY = {"electronics": (0.18, 1.6), "home": (0.20, 1.2), "apparel": (0.22, 0.9),
            "grocery": (0.20, 0.6), "toys": (0.10, 0.8), "sports": (0.10, 1.0)}
PAYMENT_GIVEN_TIER = {
    "consumer": {"card": 0.55, "paypal": 0.25, "apple_pay": 0.15, "gift_card": 0.05},
    "smb": {"card": 0.50, "paypal": 0.15, "apple_pay": 0.05, "invoice": 0.30},
    "mid": {"card": 0.30, "paypal": 0.05, "invoice": 0.65},
    "enterprise": {"card": 0.15, "invoice": 0.85},
}
CITIES = 200

Segment = dict[str, str]


def label(segment: Segment) -> str:
    return " & ".join(f"{k}={v}" for k, v in segment.items()) or "every segment"


# --- generated rows ----------------------------------------------------------------------------


@dataclass
class Facts:
    """Generated rows before their outcome is drawn: the dimension columns, ``ts``, and per row
    the conversion probability (sessions) or the amount (orders)."""

    table: str
    dims: list[str]
    cols: dict[str, np.ndarray]
    ts: np.ndarray
    value: np.ndarray

    def mask(self, segment: Segment) -> np.ndarray:
        rows = np.ones(len(self.ts), dtype=bool)
        for dim, val in segment.items():
            rows &= self.cols[dim] == val
        return rows

    def current(self) -> np.ndarray:
        return self.ts >= CURRENT_START

    def baseline(self) -> np.ndarray:
        return (self.ts >= BASELINE_START) & (self.ts < CURRENT_START)

    def share(self, segment: Segment) -> float:
        base = self.baseline()
        return float(self.mask(segment)[base].mean())

    def rate(self, segment: Segment) -> float:
        """The segment's expected conversion rate in the baseline (sessions)."""
        rows = self.mask(segment) & self.baseline()
        return float(self.value[rows].mean())

    def rate_z(self, changes: list[tuple[Segment, float]]) -> float:
        """How many standard errors the total rate moves between the periods once each segment's
        current conversion probability is multiplied by its factor (expected rates)."""
        p = self.value.copy()
        cur, base = self.current(), self.baseline()
        for segment, factor in changes:
            p[self.mask(segment) & cur] *= factor
        rb, rc = p[base].mean(), np.clip(p[cur], 0, 0.95).mean()
        se = math.sqrt(rb * (1 - rb) / base.sum() + rc * (1 - rc) / cur.sum())
        return float((rc - rb) / se)

    def scale(self, segment: Segment, factor: float) -> None:
        """The segment's conversion probability (or amount) times ``factor`` in the current week."""
        self.value[self.mask(segment) & self.current()] *= factor

    def thin(self, rng: np.random.Generator, segment: Segment, fraction: float) -> None:
        """Remove ``fraction`` of the segment's rows in the current week."""
        drop = self.mask(segment) & self.current() & (rng.random(len(self.ts)) < fraction)
        self.keep(~drop)

    def grow(self, rng: np.random.Generator, segment: Segment, factor: float) -> None:
        """``factor`` times the segment's current-week traffic: extra rows resampled from its own
        rows (same days and composition, a new time of day), so its rate does not move."""
        source = np.flatnonzero(self.mask(segment) & self.current())
        extra = rng.choice(source, round(len(source) * (factor - 1)))
        day = self.ts[extra].astype("datetime64[D]").astype(self.ts.dtype)
        seconds = rng.integers(0, 86_400, len(extra)).astype("timedelta64[s]")
        self.ts = np.concatenate([self.ts, day + seconds])
        self.value = np.concatenate([self.value, self.value[extra]])
        self.cols = {d: np.concatenate([c, c[extra]]) for d, c in self.cols.items()}

    def keep(self, rows: np.ndarray) -> None:
        self.ts, self.value = self.ts[rows], self.value[rows]
        self.cols = {d: c[rows] for d, c in self.cols.items()}

    def frame(self, rng: np.random.Generator) -> pd.DataFrame:
        """The table's rows in time order, with the outcome drawn (sessions) or rounded (orders)."""
        order = np.argsort(self.ts, kind="stable")
        data: dict[str, np.ndarray] = {"ts": self.ts[order]}
        if self.table == "sessions":
            p = np.clip(self.value[order], 0, 0.95)
            data["converted"] = (rng.random(len(p)) < p).astype(np.int32)
        else:
            data["amount"] = np.round(self.value[order], 2)
        data |= {d: self.cols[d][order] for d in self.dims}
        return pd.DataFrame(data)


def draw(rng: np.random.Generator, dist: dict[str, float], n: int) -> np.ndarray:
    values = np.array(list(dist), dtype=object)
    weights = np.array(list(dist.values()), dtype=float)
    return values[rng.choice(len(values), n, p=weights / weights.sum())]


def draw_given(rng: np.random.Generator, parent: np.ndarray,
               dists: dict[str, dict[str, float]]) -> np.ndarray:
    out = np.empty(len(parent), dtype=object)
    for value, dist in dists.items():
        rows = np.flatnonzero(parent == value)
        out[rows] = draw(rng, dist, len(rows))
    return out


def zipf_values(rng: np.random.Generator, prefix: str, n: int, s: float) -> dict[str, float]:
    """``n`` values with Zipf(s) popularity; names are shuffled so a name does not give its rank."""
    weights = 1 / np.arange(1, n + 1) ** s
    names = [f"{prefix}{i}" for i in rng.permutation(n)]
    return dict(zip(names, weights / weights.sum()))


def days_and_times(rng: np.random.Generator, per_day: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows per day with weekday seasonality and day-to-day noise; a timestamp for each."""
    expected = per_day * WEEKDAY_TRAFFIC[np.arange(DAYS) % 7] * rng.lognormal(0, 0.04, DAYS)
    days = np.repeat(np.arange(DAYS), rng.poisson(expected))
    seconds = rng.integers(0, 86_400, len(days)).astype("timedelta64[s]")
    return days, FIRST_DAY + days.astype("timedelta64[D]") + seconds


def jitter(rng: np.random.Generator, effects: dict[str, float], sd: float = 0.08) -> dict:
    return {k: v + rng.normal(0, sd) for k, v in effects.items()}


def sessions(rng: np.random.Generator) -> Facts:
    days, ts = days_and_times(rng, SESSIONS_PER_DAY)
    n = len(ts)
    country = zipf_values(rng, "c", COUNTRIES, COUNTRY_ZIPF)
    cols = {
        "device": draw(rng, {k: v[0] for k, v in DEVICE.items()}, n),
        "channel": draw(rng, {k: v[0] for k, v in CHANNEL.items()}, n),
        "region": draw(rng, {k: v[0] for k, v in REGION.items()}, n),
        "country": draw(rng, country, n),
    }
    cols["customer_type"] = draw_given(rng, cols["channel"], {
        ch: dict(zip(CUSTOMER_EFFECT, w)) for ch, w in CUSTOMER_GIVEN_CHANNEL.items()})
    cols["app_version"] = draw_given(rng, cols["device"], VERSION_GIVEN_DEVICE)
    effects = {
        "device": jitter(rng, {k: v[1] for k, v in DEVICE.items()}),
        "channel": jitter(rng, {k: v[1] for k, v in CHANNEL.items()}),
        "region": jitter(rng, {k: v[1] for k, v in REGION.items()}),
        "customer_type": jitter(rng, CUSTOMER_EFFECT),
        "app_version": jitter(rng, VERSION_EFFECT),
        "country": {c: rng.normal(0, 0.2) for c in country},
    }
    logit = math.log(BASE_RATE / (1 - BASE_RATE)) + WEEKDAY_CONVERSION[days % 7]
    for dim, eff in effects.items():
        logit = logit + pd.Series(cols[dim]).map(eff).to_numpy(dtype=float)
    return Facts("sessions", SESSION_DIMS, cols, ts, 1 / (1 + np.exp(-logit)))


def orders(rng: np.random.Generator) -> Facts:
    _, ts = days_and_times(rng, ORDERS_PER_DAY)
    n = len(ts)
    regions = list(REGION)
    stores = {f"s{i + 1:02d}": w for i, w in enumerate(STORE_WEIGHTS)}
    store_region = {s: regions[i % len(regions)] for i, s in enumerate(stores)}
    cols = {
        "tier": draw(rng, {k: v[0] for k, v in TIER.items()}, n),
        "store": draw(rng, stores, n),
        "category": draw(rng, {k: v[0] for k, v in CATEGORY.items()}, n),
        "city": draw(rng, zipf_values(rng, "city", CITIES, COUNTRY_ZIPF), n),
    }
    cols["region"] = pd.Series(cols["store"]).map(store_region).to_numpy(dtype=object)
    cols["payment_method"] = draw_given(rng, cols["tier"], PAYMENT_GIVEN_TIER)
    tier = pd.Series(cols["tier"])
    mu = tier.map({k: v[1] for k, v in TIER.items()}).to_numpy(dtype=float)
    sigma = tier.map({k: v[2] for k, v in TIER.items()}).to_numpy(dtype=float)
    factor = pd.Series(cols["category"]).map({k: v[1] for k, v in CATEGORY.items()})
    amount = rng.lognormal(mu, sigma) * factor.to_numpy(dtype=float)
    return Facts("orders", ORDER_DIMS, cols, ts, amount)


def segments(facts: Facts, dims: list[str], depth: int, lo: float, hi: float,
             ) -> list[tuple[Segment, float]]:
    """Every segment of ``depth`` dimensions among ``dims`` whose baseline share of rows is in
    [lo, hi], with that share."""
    base = facts.baseline()
    frame = pd.DataFrame({d: facts.cols[d][base] for d in dims})
    out = []
    for combo in itertools.combinations(dims, depth):
        for key, share in (frame.groupby(list(combo)).size() / len(frame)).items():
            if lo <= share <= hi:
                key = key if isinstance(key, tuple) else (key,)
                out.append((dict(zip(combo, key)), float(share)))
    return out


# --- incidents ---------------------------------------------------------------------------------


@dataclass
class Incident:
    facts: Facts
    truth: list[Segment]
    description: str
    measure: str | None = None  # additive metrics: "sum(amount)" or "count(*)"; None: the rate


def visible_drops(rng: np.random.Generator, facts: Facts, candidates: list[tuple[Segment, float]],
                  drops: tuple[float, float], count: int = 1, min_z: float = MIN_Z,
                  ) -> list[tuple[Segment, float, float]]:
    """``count`` candidates on different dimensions, each with a relative rate drop drawn from
    ``drops``, such that each drop alone moves the total rate by at least ``min_z`` standard
    errors (the most visible draw if 300 tries find none). Returns (segment, share, factor)."""
    best: tuple[float, list] = (-1.0, [])
    for _ in range(300):
        picks = [candidates[i] for i in rng.choice(len(candidates), count, replace=False)]
        if len({d for seg, _ in picks for d in seg}) < sum(len(seg) for seg, _ in picks):
            continue  # two causes on one dimension
        chosen = [(seg, share, 1 - rng.uniform(*drops)) for seg, share in picks]
        z = min(abs(facts.rate_z([(seg, f)])) for seg, _, f in chosen)
        if z >= min_z:
            return chosen
        best = max(best, (z, chosen), key=lambda b: b[0])
    return best[1]


def apply_drops(facts: Facts, chosen: list[tuple[Segment, float, float]]) -> str:
    for seg, _, factor in chosen:
        facts.scale(seg, factor)
    z = facts.rate_z([])  # already applied
    parts = [f"{label(seg)} ({share:.0%} of sessions) conversion {factor - 1:+.0%}"
             for seg, share, factor in chosen]
    return "; ".join(parts) + f" (total z {z:+.1f})"


def rate_drop(depth: int) -> Callable[[np.random.Generator, int], Incident]:
    def build(rng: np.random.Generator, variant: int) -> Incident:
        facts = sessions(rng)
        # depth-3 segments are small (5-9 %): a deeper drop, and 3 standard errors on the total
        drops, min_z = ((0.3, 0.7), MIN_Z) if depth < 3 else ((0.55, 0.8), 3.0)
        candidates = segments(facts, RATE_DIMS, depth, 0.05, 0.30)
        chosen = visible_drops(rng, facts, candidates, drops, min_z=min_z)
        description = apply_drops(facts, chosen)
        return Incident(facts, [seg for seg, _, _ in chosen], description)
    return build


def mix_shift(rng: np.random.Generator, variant: int) -> Incident:
    """A low-converting segment's traffic grows (a campaign), its own rate unchanged."""
    facts = sessions(rng)
    overall = facts.rate({})
    candidates = [(seg, share) for seg, share in segments(facts, RATE_DIMS, 1, 0.05, 0.16)
                  if facts.rate(seg) <= 0.75 * overall]
    seg, share = candidates[rng.integers(len(candidates))]
    target = rng.uniform(0.2, 0.3)  # its current share of sessions
    factor = target * (1 - share) / (share * (1 - target))
    facts.grow(rng, seg, factor)
    return Incident(facts, [seg], f"{label(seg)} (rate {facts.rate(seg):.1%} vs {overall:.1%}) "
                                  f"traffic x{factor:.1f}: share {share:.0%} -> {target:.0%}")


def launched_value(rng: np.random.Generator, variant: int) -> Incident:
    """A new app version, only in the current week, on part of one platform, converting at half."""
    facts = sessions(rng)
    device = ["iOS", "Android"][variant]
    new = "8.5"
    rows = facts.mask({"device": device}) & facts.current()
    upgraded = rows & (rng.random(len(rows)) < rng.uniform(0.4, 0.65))
    facts.cols["app_version"][upgraded] = new
    facts.value[upgraded] *= 0.5
    share = upgraded.sum() / facts.current().sum()
    return Incident(facts, [{"app_version": new}],
                    f"app_version={new} launched on {device}: {share:.0%} of current sessions, "
                    "half the conversion rate")


def removed_value(rng: np.random.Generator, variant: int) -> Incident:
    """A high-converting value vanishes in the current week (its traffic stops)."""
    facts = sessions(rng)
    overall = facts.rate({})
    base, cur = facts.baseline(), facts.current()
    rb = facts.value[base].mean()
    candidates = []
    for seg, _ in segments(facts, ["device", "channel", "region"], 1, 0.06, 0.25):
        rest = cur & ~facts.mask(seg)
        rc = facts.value[rest].mean()
        z = (rc - rb) / math.sqrt(rb * (1 - rb) / base.sum() + rc * (1 - rc) / rest.sum())
        if facts.rate(seg) >= 1.15 * overall and z <= -MIN_Z:
            candidates.append(seg)
    seg = candidates[rng.integers(len(candidates))]
    description = (f"{label(seg)} ({facts.share(seg):.0%} of sessions, rate "
                   f"{facts.rate(seg):.1%} vs {overall:.1%}) has no rows in the current week")
    facts.thin(rng, seg, 1.0)
    return Incident(facts, [seg], description)


def additive_tier(rng: np.random.Generator, variant: int) -> Incident:
    """Fewer orders in the small, valuable enterprise tier: revenue drops."""
    facts = orders(rng)
    seg = {"tier": "enterprise"}
    base = facts.baseline()
    revenue = facts.value[facts.mask(seg) & base].sum() / facts.value[base].sum()
    fraction = rng.uniform(0.35, 0.6)
    facts.thin(rng, seg, fraction)
    return Incident(facts, [seg], f"tier=enterprise ({facts.share(seg):.1%} of orders, "
                                  f"{revenue:.0%} of revenue) loses {fraction:.0%} of its orders",
                    measure="sum(amount)")


def additive_count(rng: np.random.Generator, variant: int) -> Incident:
    """A payment method's outage or a store's closure: fewer orders in one segment."""
    facts = orders(rng)
    candidates = (segments(facts, ["payment_method"], 1, 0.08, 0.30) if variant == 0
                  else segments(facts, ["store"], 1, 0.06, 0.15))
    seg, share = candidates[rng.integers(len(candidates))]
    fraction = rng.uniform(0.4, 0.7)
    facts.thin(rng, seg, fraction)
    return Incident(facts, [seg], f"{label(seg)} ({share:.0%} of orders) loses {fraction:.0%} "
                                  "of its orders", measure="count(*)")


def two_causes(rng: np.random.Generator, variant: int) -> Incident:
    facts = sessions(rng)
    chosen = visible_drops(rng, facts, segments(facts, RATE_DIMS, 1, 0.08, 0.30), (0.3, 0.6), 2)
    description = apply_drops(facts, chosen)
    return Incident(facts, [seg for seg, _, _ in chosen], description)


def offsetting(rng: np.random.Generator, variant: int) -> Incident:
    """One segment's rate drops while another's rises by 50-75 % of it: a modest net change."""
    facts = sessions(rng)
    candidates = segments(facts, RATE_DIMS, 1, 0.08, 0.30)
    cur = facts.current()
    for _ in range(300):
        (down, down_share, down_f), = visible_drops(rng, facts, candidates, (0.35, 0.6))
        up, up_share = candidates[rng.integers(len(candidates))]
        if set(up) & set(down):
            continue
        lost = facts.value[facts.mask(down) & cur].sum() * (1 - down_f)
        rise = rng.uniform(0.5, 0.75) * lost / facts.value[facts.mask(up) & cur].sum()
        net = abs(facts.rate_z([(down, down_f), (up, 1 + rise)]))
        if (rise <= 0.9 and abs(facts.rate_z([(up, 1 + rise)])) >= MIN_Z
                and net <= 0.5 * abs(facts.rate_z([(down, down_f)]))):
            changes = [(down, down_share, down_f), (up, up_share, 1 + rise)]
            return Incident(facts, [down, up], apply_drops(facts, changes))
    raise RuntimeError("no offsetting pair of segments found")


def global_change(rng: np.random.Generator, variant: int) -> Incident:
    """Every segment moves by the same relative amount: no root cause, a global change."""
    change = rng.uniform(0.15, 0.3)
    if variant == 0:
        facts = sessions(rng)
        facts.scale({}, 1 - change)
        return Incident(facts, [], f"every session's conversion -{change:.0%} "
                                   f"(total z {facts.rate_z([]):+.1f})")
    facts = orders(rng)
    facts.thin(rng, {}, change)
    return Incident(facts, [], f"every segment loses {change:.0%} of its orders",
                    measure="sum(amount)")


def noise(rng: np.random.Generator, variant: int) -> Incident:
    """No incident: the current week is the same generator as the baseline."""
    if variant == 0:
        return Incident(sessions(rng), [], "nothing injected (conversion rate)")
    return Incident(orders(rng), [], "nothing injected (revenue)", measure="sum(amount)")


def confounded(rng: np.random.Generator, variant: int) -> Incident:
    """The cause overlaps a correlated value of another dimension, which moves too but less:
    app_version=8.3 (only on iOS, a third of it), or channel=email vs customer_type=loyal."""
    facts = sessions(rng)
    if variant == 0:
        candidates = [({"app_version": "8.3"}, facts.share({"app_version": "8.3"}))]
    else:
        pairs = [{"channel": "email"}, {"customer_type": "loyal"}]
        seg = pairs[rng.integers(2)]
        candidates = [(seg, facts.share(seg))]
    chosen = visible_drops(rng, facts, candidates, (0.4, 0.65))
    return Incident(facts, [seg for seg, _, _ in chosen], apply_drops(facts, chosen))


def high_cardinality(rng: np.random.Generator, variant: int) -> Incident:
    """A rate drop inside one value of the 200-value country dimension (one of its 2nd-6th
    largest)."""
    facts = sessions(rng)
    ranked = sorted(segments(facts, ["country"], 1, 0.0, 1.0), key=lambda c: -c[1])
    chosen = visible_drops(rng, facts, ranked[1:6], (0.5, 0.75))
    return Incident(facts, [seg for seg, _, _ in chosen], apply_drops(facts, chosen))


KINDS: dict[str, Callable[[np.random.Generator, int], Incident]] = {
    "rate_depth1": rate_drop(1),
    "rate_depth2": rate_drop(2),
    "rate_depth3": rate_drop(3),
    "mix_shift": mix_shift,
    "launched_value": launched_value,
    "removed_value": removed_value,
    "additive_tier": additive_tier,
    "additive_count": additive_count,
    "two_causes": two_causes,
    "offsetting": offsetting,
    "global_change": global_change,
    "noise": noise,
    "confounded": confounded,
    "high_cardinality": high_cardinality,
}


# --- running and scoring -----------------------------------------------------------------------


def cli_args(incident: Incident) -> list[str]:
    facts = incident.facts
    metric = (["--measure", incident.measure] if incident.measure else
              ["--numerator", "sum(converted)", "--denominator", "count(*)"])
    return ["--table", facts.table, "--time-column", "ts", *metric,
            "--dimensions", ",".join(facts.dims), "--baseline", BASELINE, "--current", CURRENT]


def write_table(db_path: Path, table: str, frame: pd.DataFrame) -> None:
    con = duckdb.connect(str(db_path))
    try:
        con.register("frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS "
                    "SELECT * REPLACE (CAST(ts AS TIMESTAMP) AS ts) FROM frame")
    finally:
        con.close()  # one writer per file: the CLI opens it next


@dataclass
class Outcome:
    kind: str
    seed: int
    truth: set[str]
    predicted: list[str]
    seconds: float
    answered_global: bool
    doc: dict
    incident: Incident
    observed: str  # the total's change as drawn, to tell an invisible incident from a miss


def observed(frame: pd.DataFrame, measure: str | None) -> str:
    """The metric's change between the periods in the generated rows (ratio: with its z)."""
    base = (frame["ts"] >= BASELINE_START) & (frame["ts"] < CURRENT_START)
    cur = frame["ts"] >= CURRENT_START
    if measure is None:
        (rb, nb), (rc, nc) = ((frame["converted"][m].mean(), m.sum()) for m in (base, cur))
        z = (rc - rb) / math.sqrt(rb * (1 - rb) / nb + rc * (1 - rc) / nc)
        return f"rate {rb:.2%} -> {rc:.2%} ({rc / rb - 1:+.1%}, z {z:+.1f})"
    col = frame["amount"] if measure.startswith("sum") else pd.Series(1.0, index=frame.index)
    vb, vc = col[base].sum(), col[cur].sum()
    return f"{measure} {vb:,.0f} -> {vc:,.0f} ({vc / vb - 1:+.1%})"


def run_case(workdir: Path, kind: str, seed: int) -> Outcome:
    rng = np.random.default_rng([zlib.crc32(kind.encode()), seed])
    incident = KINDS[kind](rng, (seed // 2) % 2)
    db_path = workdir / f"{kind}_{seed}.duckdb"
    frame = incident.facts.frame(rng)
    seen = observed(frame, incident.measure)
    write_table(db_path, incident.facts.table, frame)
    del frame
    start = time.perf_counter()
    try:
        doc = investigate_cli(db_path, cli_args(incident))
    except RuntimeError as exc:  # scored as no answer, and shown
        doc = {"root_causes": [], "summary": f"ERROR {exc}"}
    seconds = time.perf_counter() - start
    db_path.unlink(missing_ok=True)
    predicted = [element(c["segment"]) for c in doc["root_causes"]]
    answered_global = not predicted and doc.get("global_change") is True
    return Outcome(kind, seed, {element(s) for s in incident.truth}, predicted, seconds,
                   answered_global, doc, incident, seen)


def show(o: Outcome) -> None:
    ok = set(o.predicted) == o.truth and (o.kind != "global_change" or o.answered_global)
    half = "tune" if o.seed % 2 == 0 else "holdout"
    rows = o.incident.facts.ts.size
    print(f"{'ok  ' if ok else 'MISS'} {o.kind} seed={o.seed} ({half}, {o.incident.facts.table}, "
          f"{rows:,} rows): {o.incident.description}")
    print(f"     observed  {o.observed}")
    print(f"     truth     {sorted(o.truth)}")
    print(f"     predicted {o.predicted}  global_change={o.doc.get('global_change')}  "
          f"{o.seconds:.2f} s")
    print(f"     summary   {o.doc.get('summary')}")
    if o.doc.get("message"):
        print(f"     message   {o.doc['message']}")


def summarise(outcomes: list[Outcome]) -> dict[str, dict]:
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.kind, []).append(o)
    groups["all"] = outcomes
    out = {}
    for name, group in groups.items():
        score = Score()
        for o in group:
            score.add(o.truth, o.predicted, o.seconds)
        globals_ = [o for o in group if o.kind == "global_change"]
        out[name] = score.to_json() | {
            "global_cases": len(globals_),
            "answered_global": sum(o.answered_global for o in globals_),
            "errors": sum(str(o.doc.get("summary", "")).startswith("ERROR") for o in group),
        }
    return out


def markdown(table: dict[str, dict]) -> str:
    lines = [("| kind | cases | TP | FP | FN | F1 | rank-1 | false causes (controls) "
              "| answered as global | median s |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in table.items():
        rank1 = f"{s['rank1']:.2f}" if s["rank1"] is not None else "–"
        false = f"{s['false_causes']} on {s['control_cases']}" if s["control_cases"] else "–"
        glob = f"{s['answered_global']} of {s['global_cases']}" if s["global_cases"] else "–"
        kind = f"**{name}**" if name == "all" else name
        lines.append(f"| {kind} | {s['cases']} | {s['tp']} | {s['fp']} | {s['fn']} | "
                     f"{s['f1']:.3f} | {rank1} | {false} | {glob} | {s['median_s']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=["tune", "holdout", "all"], default="holdout",
                        help="even seeds (tune), odd seeds (holdout) or both")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated incident kinds")
    parser.add_argument("--seeds", type=int, default=6, help="seeds 0..N-1 per kind, both halves")
    parser.add_argument("--verbose", action="store_true", help="print every incident's answer")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    seeds = [s for s in range(args.seeds)
             if args.half == "all" or (s % 2 == 0) == (args.half == "tune")]
    started = time.perf_counter()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="rca_realistic_") as workdir:
        for kind in kinds:
            for seed in seeds:
                outcome = run_case(Path(workdir), kind, seed)
                outcomes.append(outcome)
                if args.verbose:
                    show(outcome)
    wall = time.perf_counter() - started
    table = summarise(outcomes)
    if args.json:
        print(json.dumps({"half": args.half, "seeds": seeds, "wall_seconds": round(wall, 1),
                          "kinds": table}, indent=2))
        return 0
    print(f"\nhalf={args.half}, seeds {seeds} per kind, {len(outcomes)} incidents, "
          f"{wall:.0f} s in all\n")
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
