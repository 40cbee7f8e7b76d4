"""Numeric dimensions: thresholds found from the data, then searched like any categorical value.

A dimension declared ``numeric: true`` (``employees``, ``price``, ``page_load_ms``) is not
bucketed by hand. Before the first level the warehouse returns one histogram per numeric column
(``numeric_histogram.sql.j2``: bins of the logarithm of the magnitude, a few percent wide at any
scale, per side, with the metric's additive components), and Python chooses, decision-tree
style, where the change concentrates:

* every threshold between two bins splits the rows in two, every pair of thresholds cuts an
  interval out of the middle; each candidate's *deviation* is its contribution to the total
  change minus what a uniform move of the total would give it (as in
  :func:`~warehouse_rca.localize.levelwise.value_deviations`), computed exactly from the
  bins' sums;
* the threshold whose side deviates most wins; an interval replaces it only when it deviates
  by more than two of its standard errors beyond it (a narrower band must earn its extra cut);
* the threshold itself is the roundest number (fewest significant digits) inside the gap between
  the two bins, widened by half a bin, so the cause reads ``employees >= 500`` and not
  ``employees >= 487.3``;
* a best split that is not significant after a Bonferroni correction over the candidates of its
  kind (half the error rate for thresholds, half for intervals) is not a finding but a fishing
  trip: the dimension is split at its weighted median instead
  (a fixed rule, nothing selected), so a column unrelated to the change cannot produce a cause
  by the choice of its cut.

The dimension then becomes a derived dimension of its predicate (``CASE WHEN employees < 500
THEN '< 500' WHEN employees >= 500 THEN '>= 500' END``): every number the investigation reports
about it comes from the warehouse grouping by that predicate (level 1, level 2 combined with
categorical values, the causal series, the verification SQL), so it is exact; the histogram only
chose where to cut. One query for all numeric dimensions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube.plan import COMPONENTS, CubePlan, period_bounds
from warehouse_rca.cube.predicates import labels_for, split_expression
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.stats import describe

#: Histogram bins per factor e of a value's magnitude: each bin is exp(1/32) - 1 = 3.2% wide.
RESOLUTION = 32
#: Family-wise error rate of the threshold search (Bonferroni over the candidates tried).
SPLIT_ALPHA = 0.05
#: At most this many near-best cuts, each within this many bins (13%) of the best's, are
#: compared for roundness.
MAX_NEAR = 200
NEAR_BINS = 4
#: The sign key of the NULL bin while it is sorted (after 1: last).
NULL_KEY = 9.0
#: Each side of a threshold holds at least this share of each period's rows.
MIN_SIDE = 0.01


@dataclass(frozen=True)
class Split:
    """What the search chose for one numeric dimension."""

    dimension: str
    thresholds: tuple[float, ...]
    labels: tuple[str, ...]
    #: "concentrated": where the change concentrates; "median": nothing significant, a fixed cut
    rule: str
    #: the chosen side's deviation from a uniform move, as a share of the total change, and its z
    deviation_share: float
    z: float

    def to_json(self) -> dict[str, object]:
        return {"dimension": self.dimension, "thresholds": list(self.thresholds),
                "values": list(self.labels), "rule": self.rule,
                "deviation_share": _finite(self.deviation_share), "z": _finite(self.z)}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def roundest(low: float, high: float) -> float:
    """The number with the fewest significant digits in ``(low, high]`` (``low < high``).

    >>> roundest(480.2, 520.0), roundest(2.02, 2.08), roundest(-3.0, 7.0), roundest(-9.0, -2.5)
    (500.0, 2.08, 0.0, -9.0)
    """
    if low < 0 <= high:
        return 0.0
    if high <= 0:  # mirrored (the ends' open and closed sides do not matter at this precision)
        return -_roundest_positive(-high, -low)
    return _roundest_positive(low, high)


def _roundest_positive(low: float, high: float) -> float:
    top = math.floor(math.log10(high))
    for digits in range(1, 17):
        places = top - digits + 1
        candidate = round(math.floor(high / 10.0 ** places) * 10.0 ** places, -places)
        if low < candidate <= high:
            return float(candidate)
    return high


def significant_digits(value: float) -> int:
    """How many significant digits a threshold is written with.

    >>> significant_digits(500.0), significant_digits(487.0), significant_digits(0.015)
    (1, 3, 2)
    """
    mantissa = f"{abs(value):.12e}".split("e")[0].replace(".", "").rstrip("0")
    return max(1, len(mantissa))


def histogram_sql(plan: CubePlan, values: list[exp.Expr]) -> sql.Template:
    return sql.template(
        "numeric_histogram.sql.j2", source=plan.source, time=plan.time, values=values,
        num=plan.num, den=plan.den, condition=plan.condition, resolution=RESOLUTION,
        **period_bounds(plan),
    )


def _integral(x: float) -> float:
    return float(int(x)) if x == int(x) and abs(x) < 1e15 else x


def split_numeric(engine: Engine, plan: CubePlan) -> tuple[CubePlan, list[Split]]:
    """One query: each numeric dimension's histogram; returns the plan whose numeric dimensions
    are derived dimensions of their chosen thresholds (and its metric, for every later query and
    the verification SQL), and what was chosen."""
    metric = plan.metric
    names = [n for n in metric.numeric if n in plan.dimensions]
    if not names:
        return plan, []
    if plan.mode != "periods":
        raise ConfigError(f"{metric.where('dimensions')}: numeric dimensions ({names[0]!r}) "
                          "are searched between two periods, not in expected-vs-actual mode")
    values = [plan.dim_exprs[plan.dimensions.index(n)] for n in names]
    raw = engine.query(histogram_sql(plan, values))
    sets = raw["rca_set"].astype("int64").to_numpy()
    full = 2 ** len(names) - 1
    splits: list[Split] = []
    exprs = list(plan.dim_exprs)
    derived = dict(metric.derived)
    thresholds: dict[str, tuple[float, ...]] = {}
    for i, name in enumerate(names):
        part = raw.loc[sets == full - 2 ** i]
        split = choose_split(name, _bins(part, i), plan.metric.kind, plan.scale)
        if split is None:
            raise InputError(f"{metric.where('dimensions')}: numeric dimension {name!r} holds no "
                             "finite value in either period")
        splits.append(split)
        at = plan.dimensions.index(name)
        exprs[at] = split_expression(values[i], split.thresholds)
        derived[name] = exprs[at].sql()
        thresholds[name] = split.thresholds
    metric = dataclasses.replace(metric, derived=derived, numeric=(),
                                 thresholds={**metric.thresholds, **thresholds})
    return dataclasses.replace(plan, metric=metric, dim_exprs=tuple(exprs)), splits


def _bins(part: pd.DataFrame, i: int) -> pd.DataFrame:
    """One column's histogram: a row per bin (ordered along the real line; the NULL bin last)
    with both sides' components and the bin's smallest and largest value."""
    frame = pd.DataFrame({
        "s": pd.to_numeric(part[f"rca_s{i}"]).astype("float64").fillna(NULL_KEY).to_numpy(),
        "k": pd.to_numeric(part[f"rca_k{i}"]).astype("float64").fillna(0.0).to_numpy(),
        "side": pd.to_numeric(part["rca_side"]).astype("int64").to_numpy(),
        "lo": pd.to_numeric(part[f"rca_lo{i}"]).astype("float64").to_numpy(),
        "hi": pd.to_numeric(part[f"rca_hi{i}"]).astype("float64").to_numpy(),
        **{c: pd.to_numeric(part[f"s_{c}"]).astype("float64").to_numpy()
           for c in ("num", "den", "rows", "nn", "dd", "nd")},
    })
    keys = ["s", "k"]
    frame = frame.sort_values([*keys, "side"], kind="stable")  # one order, one answer
    bins = frame.groupby(keys, sort=False).agg(lo=("lo", "min"), hi=("hi", "max"))
    for side, prefix in ((0, "base"), (1, "cur")):
        sums = frame.loc[frame["side"] == side].groupby(keys, sort=False)[
            ["num", "den", "rows", "nn", "dd", "nd"]].sum()
        sums.columns = [f"{prefix}_{c}" for c in sums.columns]
        bins = bins.join(sums, how="left")
    bins = bins.fillna({c: 0.0 for c in COMPONENTS}).reset_index()
    # along the real line: negatives from the largest magnitude, zero, positives; NULL last
    order = np.lexsort((np.where(bins["s"] < 0, -bins["k"], bins["k"]), bins["s"]))
    bins = bins.iloc[order].reset_index(drop=True)
    bins.loc[bins["s"] == NULL_KEY, "s"] = np.nan
    return bins


def choose_split(name: str, bins: pd.DataFrame, kind: str, scale: float) -> Split | None:
    """The threshold (or interval) of ``bins`` where the change concentrates (module docstring)."""
    null = bins["s"].isna().to_numpy()
    valued = bins.loc[~null].reset_index(drop=True)
    n = len(valued)
    if n == 0:
        return None
    total = bins[list(COMPONENTS)].sum().to_numpy(dtype="float64")
    comps = valued[list(COMPONENTS)].to_numpy(dtype="float64")
    cum = np.vstack([np.zeros(len(COMPONENTS)), np.cumsum(comps, axis=0)])
    if n == 1:  # one value (or one bin): nothing to cut
        only = _integral(float(valued["lo"].iloc[0]))
        return Split(name, (only,), labels_for((only,)), "median", math.nan, math.nan)
    # candidates: prefixes [0, j) (a threshold at j, 1 <= j < n) and inner intervals [i, j)
    i_idx, j_idx = np.triu_indices(n + 1, k=1)
    keep = (j_idx <= n - 1) & ((i_idx == 0) | (i_idx >= 1))
    i_idx, j_idx = i_idx[keep], j_idx[keep]
    inside = cum[j_idx] - cum[i_idx]
    outside = total[None, :] - inside
    score = split_scores(inside, outside, kind, scale)
    # a side needs a real share of both periods' rows: a tail of a few rows is no threshold
    for side in ("base_rows", "cur_rows"):
        floor = MIN_SIDE * total[COMPONENTS.index(side)]
        score = np.where((_column(inside, side) >= floor) & (_column(outside, side) >= floor),
                         score, 0.0)
    is_prefix = i_idx == 0
    best = int(np.flatnonzero(is_prefix)[np.argmax(score[is_prefix])])
    if (~is_prefix).any():
        best_i = int(np.flatnonzero(~is_prefix)[np.argmax(score[~is_prefix])])
        if score[best_i] - score[best] > 2:  # an extra cut must earn two standard errors
            best = best_i
    # Bonferroni within each kind, half the error rate each: n thresholds, ~n^2/2 intervals
    tried = int(is_prefix.sum() if is_prefix[best] else (~is_prefix).sum())
    z_crit = float(sps.norm.isf(SPLIT_ALPHA / 2 / (2 * max(tried, 1))))
    z_best = float(score[best])
    share = _share(inside[best], total, kind, scale)
    if z_best >= z_crit:
        # Cuts a bin apart score alike within noise: of those within one standard error of the
        # best (of its kind: threshold or interval) and NEAR_BINS of its cuts, the roundest reads
        # as people set thresholds (500 employees, not 487), the higher score breaking ties.
        same_kind = ((is_prefix == is_prefix[best]) & (np.abs(i_idx - i_idx[best]) <= NEAR_BINS)
                     & (np.abs(j_idx - j_idx[best]) <= NEAR_BINS))
        near = np.flatnonzero(same_kind & (score >= score[best] - 1))
        near = near[np.argsort(-score[near])][:MAX_NEAR]
        options = []
        for c in near.tolist():
            edges = ([int(i_idx[c])] if i_idx[c] > 0 else []) + [int(j_idx[c])]
            cuts = tuple(_cut(valued, e) for e in edges)
            if len(set(cuts)) == len(cuts) and list(cuts) == sorted(cuts):
                options.append((sum(significant_digits(t) for t in cuts), -score[c], cuts))
        if options:
            cuts = min(options)[2]
            return Split(name, cuts, labels_for(cuts), "concentrated", share, z_best)
    # nothing significant: the weighted median of the baseline (or the current period) rows
    weight = valued["base_rows"].to_numpy(dtype="float64")
    if weight.sum() <= 0:
        weight = valued["cur_rows"].to_numpy(dtype="float64")
    edge = int(np.searchsorted(np.cumsum(weight), weight.sum() / 2)) + 1
    edge = min(max(edge, 1), n - 1)
    cut = _cut(valued, edge)
    return Split(name, (cut,), labels_for((cut,)), "median", share, z_best)


def _column(block: np.ndarray, name: str) -> np.ndarray:
    return block[..., COMPONENTS.index(name)]


def split_scores(inside: np.ndarray, outside: np.ndarray, kind: str, scale: float) -> np.ndarray:
    """How clearly each candidate's rows changed differently from the rest: the z of the
    difference between the two sides' changes (a regression tree's two-sample split criterion
    on the change). Ratio metrics: the change of the rate (delta-method variances over rows;
    binomial for 0/1 events); additive metrics: the change of the log of the sum (compound
    Poisson variances), so a threshold is judged by how differently its side moved, not by its
    size."""
    def rate(block: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
        num, den = _column(block, f"{side}_num"), _column(block, f"{side}_den")
        nn, dd, nd = (_column(block, f"{side}_{c}") for c in ("nn", "dd", "nd"))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = num / den
            v = (nn - 2 * r * nd + r * r * dd) / (den * den)
            # no side reads less noisy per unit than all the rows do (a cell of ten rows without
            # a single conversion has a sample variance of zero, not a certain rate)
            v = np.maximum(v, floors[side] / den)
        bad = ~(den > 0)
        return np.where(bad, np.nan, r), np.where(bad, np.nan, v)

    whole = inside[:1] + outside[:1]  # every candidate's two sides add up to all the rows
    floors = {}
    for side in ("base", "cur"):
        num, den = _column(whole, f"{side}_num")[0], _column(whole, f"{side}_den")[0]
        r = num / den if den > 0 else 0.0
        nn, dd, nd = (_column(whole, f"{side}_{c}")[0] for c in ("nn", "dd", "nd"))
        floors[side] = max((nn - 2 * r * nd + r * r * dd) / den, 0.0) if den > 0 else 0.0

    def log_sum(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        base, cur = scale * _column(block, "base_num"), _column(block, "cur_num")
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.log(cur / base)
            v = (_column(block, "cur_nn") / (cur * cur)
                 + scale * scale * _column(block, "base_nn") / (base * base))
        bad = ~((base > 0) & (cur > 0))
        return np.where(bad, np.nan, change), np.where(bad, np.nan, v)

    def change(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if kind == "ratio":
            (rb, vb), (rc, vc) = rate(block, "base"), rate(block, "cur")
            return rc - rb, vb + vc
        return log_sum(block)

    (d_in, v_in), (d_out, v_out) = change(inside), change(outside)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(d_in - d_out) / np.sqrt(v_in + v_out)
    return np.nan_to_num(z, nan=0.0, posinf=0.0)


def _share(inside: np.ndarray, total: np.ndarray, kind: str, scale: float) -> float:
    """The candidate's contribution to the total change, as a share of it."""
    frame = pd.DataFrame([inside, total], columns=list(COMPONENTS))
    described = describe(frame, frame.iloc[1], kind, scale)
    part, whole = float(described["change"].iloc[0]), float(described["change"].iloc[1])
    return part / whole if whole != 0 and math.isfinite(part) and math.isfinite(whole) \
        else math.nan


def _cut(valued: pd.DataFrame, edge: int) -> float:
    """The roundest threshold between bins ``edge - 1`` and ``edge``: inside the gap between their
    values, widened by half a bin (a few rows may change sides; the investigation reads the
    predicate itself, so its numbers stay exact)."""
    below, above = float(valued["hi"].iloc[edge - 1]), float(valued["lo"].iloc[edge])
    half = math.exp(1 / (2 * RESOLUTION)) - 1
    mid = (below + above) / 2
    low = min(below, mid - abs(mid) * half)
    high = max(above, mid + abs(mid) * half)
    if not low < high:  # one value on both sides cannot happen between bins; be safe
        return _integral(above)
    return _integral(roundest(low, high))
