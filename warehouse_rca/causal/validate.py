"""Stage 4: causal validation. A segment that moved with the metric is only a candidate.

Before a candidate is called a root cause it must pass four checks, all on compact aggregates
(row-level data never leaves the warehouse):

1. **Temporal ordering.** Every candidate's own series at the metric's grain comes from ONE pushed
   down query (``sql_templates/segment_series.sql.j2``: conditional sums per candidate, grouped by
   the time bucket) over a window with history before the baseline. The onset of a change is the
   CUSUM change-point estimate (Page, *Biometrika* 1954; the onset is the last time the one-sided
   CUSUM was zero before it crossed its threshold), on the candidate's *contribution* to the metric
   (for ratios, its shift-share term ``(N_s - R_ref D_s) / D``, which captures rate and mix effects
   and sums to the aggregate's change) after removing a weekday / hour-of-day profile fitted on the
   history. A candidate whose change starts more than ``ordering_tolerance`` buckets after the
   aggregate's is demoted: it cannot have started the change.
2. **Difference-in-differences** of the segment against a control: the gap ``segment - control``
   regressed on a post-period indicator (with two units, two-way fixed-effects DiD reduces to
   this), weighted by the segment's volume, with Newey-West HAC standard errors (lags by the
   ``floor(4 (T/100)^(2/9))`` rule) and t-based inference, so serial correlation in the buckets
   does not overstate significance (Bertrand, Duflo & Mullainathan, *QJE* 2004). The pre-period
   parallel-trends check regresses the pre-period gap on time (HAC) and reports the slope's
   p-value. Mix (traffic-share) candidates have no within-segment rate to compare; they get an
   interrupted time series on their contribution instead.
3. **Synthetic control** (Abadie, Diamond & Hainmueller, *JASA* 2010): non-negative weights over
   sibling segments (other values of the candidate's dimensions), summing to one for ratios,
   fitted on the pre-period with ``scipy.optimize.nnls``. Used instead of the complement ("all
   other rows") when it tracks the segment's pre-period clearly better.
4. **Confounding between candidates**, on the cube already fetched (no new query): for two
   overlapping candidates A and B (a release rolled out mostly in one region), A's effect holding
   B fixed is the difference between A and not-A *within* each stratum of B (B and not-B), averaged
   over A's traffic: coarsened exact matching on the other candidate (Iacus, King & Porro 2012).
   The candidate whose effect vanishes once the other is held fixed is explained away and demoted.

Change events (an optional project table) precede and touch a cause are linked to it; a global
event is tested with a segmented-regression interrupted time series on the aggregate (Wagner et
al., *J Clin Pharm Ther* 2002), with HAC errors.

Each finding gets a counterfactual: the current value with the DiD effect removed (for ratios
``R_cur - w_cur * delta`` where ``w_cur`` is the segment's current share of the denominator), with
the DiD interval carried through.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps
from scipy.optimize import nnls

from warehouse_rca.causal.series import (
    SEASON,
    STEPS,
    _events_source,
    analysis_window,
    events_sql,
    folded_dimensions,
    series_sql,
)
from warehouse_rca.cube.plan import COMPONENTS, OTHER, CubePlan
from warehouse_rca.engines.base import Engine
from warehouse_rca.localize.segments import Key, Localization, RootCause, effect_of
from warehouse_rca.narrative import segment_label
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import EventsSpec
from warehouse_rca.stats import describe
from warehouse_rca.stats import finite_or_none as _num


@dataclass(frozen=True)
class CausalSettings:
    """Knobs of the causal checks (defaults suit daily metrics with weekly baselines)."""

    #: history before the baseline, in baseline lengths (the DiD pre-period and CUSUM noise scale)
    history: float = 3.0
    alpha: float = 0.05
    #: root causes plus overlapping strong segments checked (each costs 2 sums in the one query)
    max_candidates: int = 10
    max_siblings: int = 8
    #: a candidate starting more than this many buckets after the aggregate is demoted
    ordering_tolerance: int = 1
    #: an effect that keeps less than this fraction of itself once the other candidate is held
    #: fixed is "explained away"
    explained_ratio: float = 0.5
    #: smallest overlap (share of either candidate's traffic) for a confounding check
    min_overlap: float = 0.2
    #: the synthetic control is used when its pre-period RMSE is below this fraction of the
    #: complement's
    synthetic_gain: float = 0.8
    cusum_k: float = 0.5
    cusum_h: float = 4.0
    events: EventsSpec | None = None


@dataclass
class CausalEvidence:
    """What the causal checks found for one candidate segment."""

    segment: dict[str, str]
    root_cause: bool
    effect_type: str | None = None
    change_start: datetime | None = None
    aggregate_change_start: datetime | None = None
    lag_buckets: int | None = None
    ordering: str = "unknown"  # leads | coincides | lags | unknown
    method: str | None = None  # did | its
    control: str | None = None  # complement | synthetic | none
    control_weights: dict[str, float] = field(default_factory=dict)
    pre_fit_rmse: float | None = None
    did_estimate: float | None = None
    did_std_error: float | None = None
    did_p_value: float | None = None
    pre_trend_slope: float | None = None
    pre_trend_p_value: float | None = None
    parallel_trends: bool | None = None
    effect_on_metric: float | None = None
    counterfactual_value: float | None = None
    counterfactual_interval: tuple[float, float] | None = None
    confounding: list[dict[str, Any]] = field(default_factory=list)
    explained_by: dict[str, str] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    causal_score: float = 1.0
    verdict: str = "inconclusive"  # confirmed | supported | inconclusive | demoted
    reasons: list[str] = field(default_factory=list)

    @property
    def key(self) -> Key:
        return frozenset(self.segment.items())

    @property
    def demoted(self) -> bool:
        return self.verdict == "demoted"

    def to_json(self) -> dict[str, Any]:
        iso = (lambda t: t.isoformat() if t is not None else None)
        return {
            "verdict": self.verdict,
            "causal_score": _num(round(self.causal_score, 3)),
            "effect_type": self.effect_type,
            "change_start": iso(self.change_start),
            "aggregate_change_start": iso(self.aggregate_change_start),
            "lag_buckets": self.lag_buckets,
            "ordering": self.ordering,
            "method": self.method,
            "control": self.control,
            "control_weights": {k: round(v, 4) for k, v in self.control_weights.items()},
            "pre_fit_rmse": _num(self.pre_fit_rmse),
            "did_estimate": _num(self.did_estimate),
            "did_std_error": _num(self.did_std_error),
            "did_p_value": _num(self.did_p_value),
            "pre_trend_slope": _num(self.pre_trend_slope),
            "pre_trend_p_value": _num(self.pre_trend_p_value),
            "parallel_trends": self.parallel_trends,
            "effect_on_metric": _num(self.effect_on_metric),
            "counterfactual_value": _num(self.counterfactual_value),
            "counterfactual_interval": (
                [_num(self.counterfactual_interval[0]), _num(self.counterfactual_interval[1])]
                if self.counterfactual_interval else None
            ),
            "confounding": self.confounding,
            "explained_by": self.explained_by,
            "events": self.events,
            "reasons": list(self.reasons),
        }


@dataclass
class CausalReport:
    """Result of :func:`validate`: evidence per candidate (root causes first), the re-ranked
    localization, checked events, and what it cost."""

    evidence: list[CausalEvidence]
    localization: Localization
    demoted: list[CausalEvidence]
    events: list[dict[str, Any]]
    aggregate_change_start: datetime | None
    window: Period | None
    grain: str
    queries: int
    note: str | None = None

    def for_segment(self, segment: dict[str, str]) -> CausalEvidence | None:
        key = frozenset(segment.items())
        return next((e for e in self.evidence if e.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "grain": self.grain,
            "window": self.window.to_json() if self.window else None,
            "aggregate_change_start": (
                self.aggregate_change_start.isoformat() if self.aggregate_change_start else None
            ),
            "queries": self.queries,
            "events": self.events,
            "demoted_candidates": [
                {"segment": e.segment, **e.to_json()} for e in self.demoted if not e.root_cause
            ],
            "note": self.note,
        }




def _label(segment: dict[str, str]) -> str:
    return segment_label(segment)


# --------------------------------------------------------------------------- time-series tools


def _hac_lags(n: int) -> int:
    """Newey-West rule of thumb: floor(4 (n/100)^(2/9)), at least 1."""
    return max(1, math.floor(4 * (n / 100.0) ** (2.0 / 9.0)))


def _fit(y: np.ndarray, x: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """(W)LS with HAC (Newey-West) covariance and t-based inference."""
    model = sm.WLS(y, x, weights=weights) if weights is not None else sm.OLS(y, x)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        res = model.fit(cov_type="HAC", cov_kwds={"maxlags": _hac_lags(len(y))}, use_t=True)
        # standard errors and p-values are computed lazily: here, so that a degenerate fit (a
        # flat pre-period) warns nobody on stderr and reads as NaN
        _ = res.bse, res.pvalues
        return res


def _deseasonalize(
    x: np.ndarray, buckets: pd.DatetimeIndex, grain: str, history: np.ndarray
) -> np.ndarray:
    """Remove a weekday (daily grain) or hour-of-day (hourly grain) profile estimated, robustly
    (medians), on the history before the baseline, so a weekend dip is not read as an onset."""
    period = SEASON.get(grain)
    valid = history & np.isfinite(x)
    if period is None or valid.sum() < 2 * period:
        return x
    phase = (buckets.day_of_week if grain == "day" else buckets.hour).to_numpy()
    groups = [x[valid & (phase == p)] for p in range(period)]
    groups = [g for g in groups if len(g) >= 2]
    # Only a clear profile is removed (one-way ANOVA on the history, p < 0.01): medians of a few
    # weeks per weekday are noisy and would add noise where there is no seasonality.
    if len(groups) < 2 or sps.f_oneway(*groups).pvalue >= 0.01:
        return x
    level = float(np.median(x[valid]))
    out = x.copy()
    for p in range(period):
        sel = valid & (phase == p)
        if sel.any():
            out[phase == p] -= float(np.median(x[sel])) - level
    return out


def cusum_onset(x: np.ndarray, scan: np.ndarray, reference: np.ndarray, direction: float,
                k: float = 0.5, h: float = 4.0, noise: np.ndarray | None = None) -> int | None:
    """Index where a sustained move in ``direction`` starts, or None (Page's one-sided CUSUM).

    The reference level is the median over ``reference`` buckets; the noise scale is the MAD of
    first differences over the non-scanned history and reference (robust to one level shift).
    The onset estimate is the bucket after the CUSUM was last zero before crossing ``h``.
    """
    finite = np.isfinite(x)
    ref = reference & finite
    if ref.sum() < 2 or direction == 0:
        return None
    mu = float(np.median(x[ref]))
    # The noise scale comes from ``noise`` (the series before any seasonal adjustment) when given:
    # a profile fitted on the same few weeks would make those weeks look too calm.
    raw = x if noise is None else noise
    calm = (~scan | reference) & np.isfinite(raw)
    diffs = np.diff(raw[calm])
    sigma = 1.4826 * float(np.median(np.abs(diffs))) / math.sqrt(2) if len(diffs) >= 3 else 0.0
    if not sigma > 0:
        sigma = float(np.std(x[ref])) or max(abs(mu) * 1e-3, 1e-12)
    z = np.where(finite, direction * (x - mu) / np.where(finite, sigma, 1.0), 0.0)
    scanned = np.flatnonzero(scan)
    s, alarm = 0.0, None
    for t in scanned:
        s = max(0.0, s + z[t] - k) if finite[t] else s
        if s > h:
            alarm = int(t)
            break
    if alarm is None:
        return None
    # The onset: the maximum-likelihood change time for a shift of the size seen right after the
    # alarm, argmax_tau sum_{tau..alarm} (z_t - delta/2). With k standing in for delta/2 this is
    # the classic "last zero of the CUSUM", which is early whenever the reference period's noise
    # left the CUSUM above zero; the estimated shift size removes that bias for clear changes.
    after = z[alarm: alarm + 3][finite[alarm: alarm + 3]]
    delta = max(2 * k, float(np.median(after)) if len(after) else 2 * k)
    span = scanned[scanned <= alarm]
    gains = np.cumsum((z[span] - delta / 2)[::-1])[::-1]  # sum from each tau to the alarm
    return int(span[int(np.argmax(gains))])


def synthetic_weights(y: np.ndarray, donors: np.ndarray, convex: bool) -> np.ndarray:
    """Non-negative donor weights fitting ``y`` (pre-period) by least squares; ``convex`` adds a
    heavily weighted sum-to-one row (the classical synthetic control for rates)."""
    a, b = donors, y
    if convex:
        scale = 1e3 * max(float(np.abs(donors).max()), 1e-12)
        a = np.vstack([donors, np.full((1, donors.shape[1]), scale)])
        b = np.concatenate([y, [scale]])
    w, _ = nnls(a, b)
    return w


# --------------------------------------------------------------------------- confounding (cube)


class _CubeCells:
    """Component vectors of any cell the cube holds, and of set differences built from them."""

    def __init__(self, loc: Localization, dims: tuple[str, ...], kind: str, scale: float) -> None:
        frame = loc.stats
        self.kind, self.scale = kind, scale
        self.phi = float(frame.attrs.get("dispersion", 1.0))
        comp = frame[list(COMPONENTS)].to_numpy(dtype="float64")
        self.cells: dict[Key, np.ndarray] = {}
        self.stats = frame
        self.positions: dict[Key, int] = {}  # a segment's row in loc.stats (the first)
        self.by_names: dict[frozenset[str], list[int]] = {}  # rows per dimension combination
        for i, row in enumerate(frame[list(dims)].itertuples(index=False)):
            key = frozenset((d, v) for d, v in zip(dims, row) if v is not None and not pd.isna(v))
            self.cells.setdefault(key, comp[i])
            self.positions.setdefault(key, i)
            self.by_names.setdefault(frozenset(d for d, _ in key), []).append(i)
        self.total = self.cells[frozenset()]
        self.total_row = pd.Series(self.total, index=list(COMPONENTS))

    def get(self, key: Key) -> np.ndarray | None:
        return self.cells.get(key)

    def row(self, key: Key) -> pd.Series | None:
        """The segment's row of the localization's statistics (None: not in the cube)."""
        at = self.positions.get(key)
        return self.stats.iloc[at] if at is not None else None

    def intensity(self, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Relative change of each cell's rate (ratio) or value (additive), its sd and support."""
        frame = pd.DataFrame(np.vstack(rows), columns=list(COMPONENTS))
        d = describe(frame, self.total_row, self.kind, self.scale)
        support = frame["base_den"].to_numpy() + frame["cur_den"].to_numpy()
        ok = (frame["base_den"].to_numpy() > 0) & (frame["cur_den"].to_numpy() > 0)
        val = np.where(ok, d["rate_intensity"].to_numpy(dtype="float64"), np.nan)
        sd = d["rate_intensity_sd"].to_numpy(dtype="float64") * math.sqrt(self.phi)
        return val, sd, support


def _den(v: np.ndarray) -> float:
    return float(v[COMPONENTS.index("cur_den")] + v[COMPONENTS.index("base_den")])


def confounding_pairs(
    cells: _CubeCells, pairs: list[tuple[Key, Key]]
) -> list[dict[str, Any] | None]:
    """Per pair (A, B): A's and B's effects (relative change against their complements), marginal
    and each holding the other fixed (within strata of the other), or None when the cube lacks
    their intersection. Every pair's cells are described in one vectorised call."""
    found: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for i, (a, b) in enumerate(pairs):
        va, vb, vab = cells.get(a), cells.get(b), cells.get(a | b)
        if va is not None and vb is not None and vab is not None:
            found.append((i, va, vb, vab))
    out: list[dict[str, Any] | None] = [None] * len(pairs)
    if not found:
        return out
    tot = cells.total
    rows = []
    for _, va, vb, vab in found:
        for x, y in ((va, vb), (vb, va)):
            # strata of the other candidate y: (x&y vs ~x&y) and (x&~y vs ~x&~y)
            rows += [x, tot - x, vab, y - vab, x - vab, tot - x - y + vab]
    val, sd, sup = cells.intensity(rows)

    def effects(k: int) -> tuple[float, float, float, float]:
        v, e, n = val[k:k + 6], sd[k:k + 6], sup[k:k + 6]
        marginal, marginal_sd = v[0] - v[1], math.hypot(e[0], e[1])
        parts = [
            (n[one], v[one] - v[zero], e[one] ** 2 + e[zero] ** 2)
            for one, zero in ((2, 3), (4, 5))
            if np.isfinite(v[one]) and np.isfinite(v[zero]) and n[one] > 0 and n[zero] > 0
        ]
        if not parts:
            return float(marginal), float(marginal_sd), float("nan"), float("nan")
        w = np.array([p[0] for p in parts]) / sum(p[0] for p in parts)
        held = float(sum(wi * p[1] for wi, p in zip(w, parts)))
        held_sd = float(math.sqrt(sum(wi**2 * p[2] for wi, p in zip(w, parts))))
        return float(marginal), float(marginal_sd), held, held_sd

    for j, (i, va, vb, vab) in enumerate(found):
        out[i] = {"overlap_a": _den(vab) / max(_den(va), 1e-300),
                  "overlap_b": _den(vab) / max(_den(vb), 1e-300),
                  "a": effects(12 * j), "b": effects(12 * j + 6)}
    return out


def _survives(marginal: float, held: float, held_sd: float, z: float, ratio: float) -> bool:
    """The effect stays once the other candidate is held fixed: significant, same sign as the
    marginal effect, and at least ``ratio`` of it."""
    if not (np.isfinite(held) and np.isfinite(marginal)) or marginal == 0:
        return False
    same_sign = np.sign(held) == np.sign(marginal)
    significant = not np.isfinite(held_sd) or abs(held) >= z * held_sd
    return bool(same_sign and significant and abs(held) >= ratio * abs(marginal))


# --------------------------------------------------------------------------- validation


def _nested(a: Key, b: Key) -> bool:
    return a <= b or b <= a


def _disjoint(a: Key, b: Key) -> bool:
    da, db = dict(a), dict(b)
    return any(d in db and db[d] != v for d, v in da.items())


def _pick_candidates(
    loc: Localization,
    cells: _CubeCells,
    dims: tuple[str, ...],
    settings: CausalSettings,
    min_share: float,
) -> list[tuple[dict[str, str], bool]]:
    """Root causes first, then strong segments overlapping one of them (possible confounders)."""
    roots = [(dict(c.segment), True) for c in loc.root_causes if OTHER not in c.segment.values()]
    keys = {frozenset(s.items()) for s, _ in roots}
    stats = loc.stats
    total_change = float(loc.total["change"])
    sign = np.sign(total_change)
    mask = ((stats["depth"] >= 1) & (stats["depth"] <= 2) & (stats["q_value"] < settings.alpha)
            & (np.sign(stats["change"]) == sign))
    if abs(total_change) > 0:
        mask &= (stats["change"] / total_change).abs() >= min_share
    extra: list[tuple[float, dict[str, str]]] = []
    for i in np.flatnonzero(mask.to_numpy()):
        row = stats.iloc[i]
        seg = {d: row[d] for d in dims if row[d] is not None and not pd.isna(row[d])}
        key = frozenset(seg.items())
        if OTHER in seg.values() or key in keys:
            continue
        overlaps = [r for r in keys if not _nested(key, r) and not _disjoint(key, r)
                    and (cell := cells.get(key | r)) is not None and _den(cell) > 0]
        if overlaps:
            extra.append((abs(float(row["change"])), seg))
    extra.sort(key=lambda t: -t[0])
    room = max(0, settings.max_candidates - len(roots))
    return roots[: settings.max_candidates] + [(s, False) for _, s in extra[:room]]


def _siblings(cells: _CubeCells, dims: tuple[str, ...], seg: dict[str, str], exclude: set[Key],
              limit: int) -> list[dict[str, str]]:
    """Other segments of the same dimension combination (donors for a synthetic control), the
    largest first, skipping candidates (possibly affected) and the folded tail."""
    names = set(seg)
    out = []
    frame = cells.stats.iloc[cells.by_names.get(frozenset(names), [])]
    order = (frame["base_den"] + frame["cur_den"]).sort_values(ascending=False).index
    for i in order:
        s = {d: frame.at[i, d] for d in dims if d in names}
        key = frozenset(s.items())
        if s == seg or OTHER in s.values() or key in exclude:
            continue
        out.append(s)
        if len(out) >= limit:
            break
    return out


def _complete_buckets(raw: pd.DataFrame, window: Period, grain: str) -> pd.DataFrame:
    """Every bucket of the window, zeros where the source had no rows."""
    raw = raw.copy()
    raw["bucket"] = (
        pd.to_datetime(raw["bucket"]).dt.tz_localize(None) if len(raw) else pd.to_datetime([])
    )
    freq = {"hour": "h", "day": "D", "week": "W-MON"}[grain]
    index = pd.date_range(window.start, window.end_exclusive - timedelta(microseconds=1), freq=freq)
    if grain == "week":
        index = pd.DatetimeIndex([window.start]).append(index).unique()
    frame = (
        raw.set_index("bucket").reindex(index.union(pd.DatetimeIndex(raw["bucket"]))).fillna(0.0)
    )
    return frame.sort_index()


def validate(
    engine: Engine,
    plan: CubePlan,
    localization: Localization,
    periods: dict[str, Period | None],
    settings: CausalSettings | None = None,
    *,
    min_share: float = 0.02,
) -> CausalReport:
    """Check every root cause (and overlapping strong segments) for ordering, a DiD effect against
    a control, confounding and linked events; re-rank the localization. Costs one aggregate query
    over the fact table (all series at once) plus one on the events table when declared."""
    settings = settings or CausalSettings()
    baseline, current = periods.get("baseline"), periods.get("current")
    grain = plan.metric.grain
    z_crit = float(sps.norm.isf(settings.alpha / 2))
    if baseline is None or current is None or plan.time is None or not localization.significant:
        why = ("no time periods (expected-vs-actual mode)" if baseline is None or current is None
               else "no significant change to validate")
        return CausalReport(
            [], localization, [], [], None, None, grain, 0, note=f"causal checks skipped: {why}"
        )

    dims = plan.dimensions
    kind = plan.metric.kind
    cells = _CubeCells(localization, dims, kind, plan.scale)
    candidates = _pick_candidates(localization, cells, dims, settings, min_share)
    window = analysis_window(baseline, current, grain, settings.history)
    cand_keys = {frozenset(s.items()) for s, _ in candidates}
    series: list[dict[str, str]] = [s for s, _ in candidates]
    donors: dict[Key, list[int]] = {}
    for seg, _ in candidates:
        idx = []
        for sib in _siblings(cells, dims, seg, cand_keys, settings.max_siblings):
            if sib not in series:
                series.append(sib)
            idx.append(series.index(sib))
        donors[frozenset(seg.items())] = idx

    raw = engine.query(series_sql(plan, series, window,
                                  fold=folded_dimensions(localization.stats, dims)))
    frame = _complete_buckets(raw, window, grain)
    queries = 1
    step = STEPS[grain]
    buckets = pd.DatetimeIndex(frame.index)
    ends = buckets + step
    post = np.asarray(ends > current.start) & np.asarray(buckets < current.end_exclusive)
    scan = np.asarray(ends > baseline.start)
    reference = scan & ~post
    history = ~scan
    pre = ~post
    total_num, total_den = frame["num"].to_numpy(), frame["den"].to_numpy()
    ratio = kind == "ratio"
    with np.errstate(divide="ignore", invalid="ignore"):
        agg = total_num / total_den if ratio else total_num.astype(float)
        agg = np.where(total_den > 0, agg, np.nan)
        pre_den = total_den[pre].sum()
        r_ref = (
            float(total_num[reference].sum() / total_den[reference].sum())
            if total_den[reference].sum() > 0
            else (float(total_num[pre].sum() / pre_den) if pre_den > 0 else 0.0)
        )
    direction = float(np.sign(float(localization.total["change"])))
    agg_adj = _deseasonalize(agg, buckets, grain, history)
    agg_onset = cusum_onset(agg_adj, scan, reference, direction, settings.cusum_k, settings.cusum_h,
                            noise=agg)
    agg_start = buckets[agg_onset].to_pydatetime() if agg_onset is not None else None

    cur_value = float(localization.total["cur_value"])
    evidence: list[CausalEvidence] = []
    for i, (seg, is_root) in enumerate(candidates):
        key = frozenset(seg.items())
        ev = CausalEvidence(segment=seg, root_cause=is_root, aggregate_change_start=agg_start)
        row = cells.row(key)
        ev.effect_type = effect_of(row, kind, settings.alpha) if row is not None else None
        num_s, den_s = frame[f"s{i}_num"].to_numpy(), frame[f"s{i}_den"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            if ratio:
                # a bucket without the segment's rows contributes nothing (a value launched
                # inside the current period steps up from zero)
                contrib = np.where(total_den > 0, (num_s - r_ref * den_s) / total_den, np.nan)
            else:
                contrib = np.where(total_den > 0, num_s.astype(float), np.nan)
        onset = cusum_onset(_deseasonalize(contrib, buckets, grain, history), scan, reference,
                            direction, settings.cusum_k, settings.cusum_h, noise=contrib)
        _ordering(ev, onset, agg_onset, buckets, settings,
                  first_current=int(np.argmax(post)) if post.any() else 0)
        # The "comparable rest": the complement without the other candidates disjoint from this
        # one (another affected segment in the control would bias the DiD toward zero).
        others = [j for j, (o, _) in enumerate(candidates)
                  if j != i and _disjoint(key, frozenset(o.items()))]
        _effect(ev, frame, i, donors[key], others, series, post, pre, ratio, contrib, cur_value,
                total_den, settings, z_crit)
        evidence.append(ev)

    _confounding(evidence, cells, settings, z_crit)
    events: list[dict[str, Any]] = []
    if settings.events is not None:
        events = _check_events(engine, settings.events, window, evidence, agg_adj, buckets, post,
                               direction, step, settings)
        queries += 1
    for ev in evidence:
        _score(ev, settings)
    new_loc, demoted = _rerank(localization, evidence, cells)
    note = None
    if not candidates:
        note = "no segment candidate to validate"
    return CausalReport(evidence, new_loc, demoted, events, agg_start, window, grain, queries, note)


def _ordering(ev: CausalEvidence, onset: int | None, agg_onset: int | None,
              buckets: pd.DatetimeIndex, settings: CausalSettings, first_current: int = 0) -> None:
    """Ordering of the segment's change start against the aggregate's. The change investigated is
    the current period's against the baseline's, so an aggregate onset detected inside the
    baseline (a stormy day of the baseline week) counts as the current period's start: a cause
    starting with the current period has not lagged the change it explains."""
    if agg_onset is not None:
        agg_onset = max(agg_onset, first_current)
    if onset is None:
        ev.ordering = "unknown"
        ev.reasons.append("no sustained change detected in the segment's own series")
        return
    ev.change_start = buckets[onset].to_pydatetime()
    if agg_onset is None:
        ev.ordering = "unknown"
        return
    lag = int(onset - agg_onset)
    ev.lag_buckets = lag
    if lag > settings.ordering_tolerance:
        ev.ordering = "lags"
        ev.reasons.append(
            f"its change started {ev.change_start:%Y-%m-%d %H:%M}, "
            f"{lag} buckets after the metric's "
            f"({buckets[agg_onset]:%Y-%m-%d %H:%M}): it cannot have started the change"
        )
    elif lag < -settings.ordering_tolerance:
        ev.ordering = "leads"
    else:
        ev.ordering = "coincides"


def _effect(ev: CausalEvidence, frame: pd.DataFrame, i: int, donor_idx: list[int],
            others: list[int], series: list[dict[str, str]], post: np.ndarray, pre: np.ndarray,
            ratio: bool, contrib: np.ndarray, cur_value: float, total_den: np.ndarray,
            settings: CausalSettings, z_crit: float) -> None:
    """DiD (rate or value) against the better of complement and synthetic control; for mix
    effects an interrupted time series on the segment's contribution."""
    num_s, den_s = frame[f"s{i}_num"].to_numpy(), frame[f"s{i}_den"].to_numpy()
    tot_num, tot_den = frame["num"].to_numpy(), frame["den"].to_numpy()
    time = np.arange(len(frame), dtype=float)
    if ev.effect_type == "mix":
        ok = np.isfinite(contrib)
        if ok[post].sum() < 1 or ok[pre].sum() < 3:
            ev.reasons.append("too few buckets with data for an interrupted time series")
            return
        ev.method, ev.control = "its", "none"
        gap, weights = contrib, None
        scale_to_metric = 1.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = num_s / den_s if ratio else num_s.astype(float)
            rest_n, rest_d = tot_num - num_s, tot_den - den_s
            for j in others:
                rest_n = rest_n - frame[f"s{j}_num"].to_numpy()
                rest_d = rest_d - frame[f"s{j}_den"].to_numpy()
            comp = rest_n / rest_d if ratio else rest_n.astype(float)
        valid = np.isfinite(y) & np.isfinite(comp) & (den_s > 0 if ratio else np.ones_like(y, bool))
        if valid[post].sum() < 1 or valid[pre].sum() < 3:
            ev.reasons.append(
                "too few buckets with data before and after for a difference-in-differences"
            )
            return
        fit_pre = valid & pre
        # proportional control: the complement scaled to the segment's pre-period size
        if not ratio:
            kappa = y[fit_pre].sum() / comp[fit_pre].sum() if comp[fit_pre].sum() else 1.0
            comp = comp * kappa
        comp_rmse = float(np.sqrt(np.mean((y[fit_pre] - comp[fit_pre]) ** 2)))
        control, control_name, weights_out, rmse = comp, "complement", {}, comp_rmse
        if donor_idx:
            with np.errstate(divide="ignore", invalid="ignore"):
                mats = [frame[f"s{j}_num"].to_numpy() / frame[f"s{j}_den"].to_numpy() if ratio
                        else frame[f"s{j}_num"].to_numpy().astype(float) for j in donor_idx]
            usable = [k for k, m in enumerate(mats) if np.isfinite(m[valid]).all()]
            if usable:
                donors = np.column_stack([mats[k] for k in usable])
                w = synthetic_weights(y[fit_pre], donors[fit_pre], convex=ratio)
                synth = donors @ w
                syn_rmse = float(np.sqrt(np.mean((y[fit_pre] - synth[fit_pre]) ** 2)))
                if syn_rmse < settings.synthetic_gain * comp_rmse:
                    control, control_name, rmse = synth, "synthetic", syn_rmse
                    weights_out = {_label(series[donor_idx[usable[k]]]): float(w[k])
                                   for k in np.argsort(-w) if w[k] > 1e-3}
        ev.method, ev.control, ev.control_weights, ev.pre_fit_rmse = (
            "did", control_name, weights_out, rmse
        )
        gap = np.where(valid, y - control, np.nan)
        weights = den_s if ratio else None
        if ratio:  # effect on the metric: the segment's current share of the denominator
            scale_to_metric = den_s[post].sum() / max(total_den[post].sum(), 1e-300)
        else:  # per-bucket effect summed over the current period's buckets
            scale_to_metric = float(post.sum())
    ok = np.isfinite(gap)
    x = np.column_stack([np.ones(ok.sum()), post[ok].astype(float)])
    fit_weights = (None if weights is None
                   else weights[ok] / max(float(np.mean(weights[ok])), 1e-300))
    res = _fit(gap[ok], x, fit_weights)
    delta, se, p = float(res.params[1]), float(res.bse[1]), float(res.pvalues[1])
    t_crit = float(sps.t.isf(settings.alpha / 2, max(1, int(res.df_resid))))
    ev.did_estimate, ev.did_std_error, ev.did_p_value = delta, se, p
    pre_ok = ok & pre
    if pre_ok.sum() >= 4:
        xt = np.column_stack([np.ones(pre_ok.sum()), time[pre_ok]])
        wt = (
            None if weights is None
            else weights[pre_ok] / max(float(np.mean(weights[pre_ok])), 1e-300)
        )
        trend = _fit(gap[pre_ok], xt, wt)
        ev.pre_trend_slope, ev.pre_trend_p_value = float(trend.params[1]), float(trend.pvalues[1])
        # a flat pre-period (a value that did not exist yet) has no trend to test
        ev.parallel_trends = (bool(ev.pre_trend_p_value >= settings.alpha)
                              if np.isfinite(ev.pre_trend_p_value) else None)
        if not np.isfinite(ev.pre_trend_p_value):
            ev.pre_trend_p_value = None
        if ev.parallel_trends is False:
            ev.reasons.append(
                f"pre-period trends differ from the control (p = {ev.pre_trend_p_value:.3g})"
            )
    effect = delta * scale_to_metric
    half = t_crit * se * abs(scale_to_metric)
    ev.effect_on_metric = effect
    ev.counterfactual_value = cur_value - effect
    ev.counterfactual_interval = (cur_value - effect - half, cur_value - effect + half)
    if p >= settings.alpha:
        control = {"complement": "the rest of the traffic", "synthetic": "a synthetic control"}.get(
            str(ev.control), "a control")
        ev.reasons.append(f"no significant effect against {control} (p = {p:.3g})")


def _confounding(evidence: list[CausalEvidence], cells: _CubeCells, settings: CausalSettings,
                 z_crit: float) -> None:
    """Pairwise: hold the other candidate fixed; demote the one explained away."""
    candidates = [
        (a, b) for ia, a in enumerate(evidence) for b in evidence[ia + 1:]
        if not (_nested(a.key, b.key) or _disjoint(a.key, b.key))
        # share moves are not within-stratum rate differences
        and "mix" not in (a.effect_type, b.effect_type)
    ]
    for (a, b), pair in zip(
        candidates, confounding_pairs(cells, [(a.key, b.key) for a, b in candidates])
    ):
        if pair is None or max(pair["overlap_a"], pair["overlap_b"]) < settings.min_overlap:
            continue
        a_m, _, a_h, a_hsd = pair["a"]
        b_m, _, b_h, b_hsd = pair["b"]
        a_ok = _survives(a_m, a_h, a_hsd, z_crit, settings.explained_ratio)
        b_ok = _survives(b_m, b_h, b_hsd, z_crit, settings.explained_ratio)
        verdict = (
            "independent" if a_ok and b_ok
            else f"{_label(b.segment)} explained by {_label(a.segment)}" if a_ok
            else f"{_label(a.segment)} explained by {_label(b.segment)}" if b_ok
            else "inseparable"
        )
        for me, other, ov, m, h, hsd in ((a, b, pair["overlap_a"], a_m, a_h, a_hsd),
                                          (b, a, pair["overlap_b"], b_m, b_h, b_hsd)):
            me.confounding.append({
                "other": other.segment, "overlap": _num(round(ov, 4)),
                "effect_alone": _num(m), "effect_holding_other_fixed": _num(h),
                "effect_holding_other_fixed_se": _num(hsd), "verdict": verdict,
            })
        loser, winner, share = (b, a, pair["overlap_b"]) if a_ok and not b_ok else (
            (a, b, pair["overlap_a"]) if b_ok and not a_ok else (None, None, 0.0))
        if loser is not None and winner is not None and loser.explained_by is None:
            loser.explained_by = dict(winner.segment)
            loser.reasons.append(
                f"explained by {_label(winner.segment)}: {share:.0%} of its traffic is in that "
                f"segment, and its own effect vanishes once {_label(winner.segment)} is held fixed"
            )


def _score(ev: CausalEvidence, settings: CausalSettings) -> None:
    """A 0..1 score of the causal evidence and the verdict. Multiplicative penalties: each failed
    check weakens, none alone proves (ordering and confounding failures weigh most)."""
    score = 1.0
    if ev.ordering == "lags":
        score *= 0.25
    elif ev.ordering == "unknown":
        score *= 0.8
    if ev.did_p_value is not None:
        score *= max(0.2, 1.0 - ev.did_p_value)
    else:
        score *= 0.7
    if ev.parallel_trends is False:
        score *= 0.7
    if ev.explained_by is not None:
        score *= 0.2
    ev.causal_score = float(min(1.0, max(0.0, score)))
    if ev.explained_by is not None or ev.ordering == "lags":
        ev.verdict = "demoted"
    elif (ev.did_p_value is not None and ev.did_p_value < settings.alpha
          and ev.ordering in ("coincides", "leads") and ev.parallel_trends is not False):
        ev.verdict = "confirmed"
    elif ev.did_p_value is not None and ev.did_p_value < settings.alpha:
        ev.verdict = "supported"
    else:
        ev.verdict = "inconclusive"


def _rerank(loc: Localization, evidence: list[CausalEvidence],
            cells: _CubeCells) -> tuple[Localization, list[CausalEvidence]]:
    """Demoted root causes move after the others (their order kept); a root cause explained by a
    non-root candidate that itself stands is replaced by it at the same rank."""
    by_key = {e.key: e for e in evidence}
    kept: list[RootCause] = []
    dropped: list[RootCause] = []
    seen: set[Key] = set()
    for cause in loc.root_causes:
        ev = by_key.get(cause.key)
        if ev is not None and ev.demoted:
            winner = by_key.get(frozenset((ev.explained_by or {}).items()))
            if (
                winner is not None
                and not winner.root_cause
                and not winner.demoted
                and winner.key not in seen
            ):
                row = cells.row(winner.key)
                if row is not None:
                    promoted = RootCause(dict(winner.segment), row, 1.0,
                                         [f"promoted: explains {_label(cause.segment)}"],
                                         float(row["change"]))
                    winner.root_cause = True
                    kept.append(promoted)
                    seen.add(winner.key)
            dropped.append(cause)
            continue
        if cause.key not in seen:
            kept.append(cause)
            seen.add(cause.key)
    import dataclasses

    new_loc = dataclasses.replace(loc, root_causes=kept + dropped)
    demoted = [e for e in evidence if e.demoted]
    return new_loc, demoted


def _check_events(engine: Engine, spec: EventsSpec, window: Period, evidence: list[CausalEvidence],
                  agg: np.ndarray, buckets: pd.DatetimeIndex, post: np.ndarray, direction: float,
                  step: timedelta, settings: CausalSettings) -> list[dict[str, Any]]:
    """Link segment events to the causes they touched and preceded; test global events with an
    interrupted time series (level and slope change, HAC errors) on the aggregate."""
    columns = engine.columns_of(_events_source(spec))
    raw = engine.query(events_sql(spec, list(columns), window))
    out = []
    for rec in raw.itertuples(index=False):
        stamp = pd.Timestamp(rec.event_time)
        when = (stamp.tz_convert(None) if stamp.tzinfo else stamp).to_pydatetime()
        dim = None if rec.dimension is None or pd.isna(rec.dimension) else str(rec.dimension)
        val = None if rec.value is None or pd.isna(rec.value) else str(rec.value)
        item: dict[str, Any] = {"time": when.isoformat(), "description": str(rec.description),
                                "dimension": dim, "value": val, "linked_findings": []}
        if dim is None:
            item.update(_its(agg, buckets, when, direction, step, settings))
        else:
            for ev in evidence:
                seg_dims = {d.lower(): v for d, v in ev.segment.items()}
                if seg_dims.get(dim.lower()) != val:
                    continue
                if ev.change_start is not None and when > ev.change_start + step:
                    continue  # after the segment changed: not its cause
                ev.events.append({"time": when.isoformat(), "description": str(rec.description)})
                ev.reasons.append(
                    f"preceded by the change event {str(rec.description)!r} "
                    f"({when:%Y-%m-%d %H:%M})"
                )
                item["linked_findings"].append(ev.segment)
        out.append(item)
    return out


def _its(agg: np.ndarray, buckets: pd.DatetimeIndex, when: datetime, direction: float,
         step: timedelta, settings: CausalSettings) -> dict[str, Any]:
    """Segmented regression y = a + b t + c step + d (t - t0) step on the (deseasonalized)
    aggregate; the level change c is the event's immediate effect."""
    # the bucket holding the event counts as after it (its end is past the event)
    after = np.asarray((buckets + step) > pd.Timestamp(when))
    ok = np.isfinite(agg)
    if (ok & ~after).sum() < 4 or (ok & after).sum() < 1:
        return {"kind": "global", "its_level_change": None, "its_p_value": None, "detected": False,
                "note": "too few buckets before or after the event for an interrupted time series"}
    t = np.arange(len(agg), dtype=float)
    t0 = float(np.argmax(after))
    cols = [np.ones(len(agg)), t, after.astype(float)]
    if (ok & after).sum() >= 3:
        cols.append((t - t0) * after)
    x = np.column_stack(cols)[ok]
    res = _fit(agg[ok], x)
    level, p = float(res.params[2]), float(res.pvalues[2])
    before = float(np.nanmean(agg[ok & ~after][-max(3, int((ok & ~after).sum() // 2)):]))
    detected = bool(p < settings.alpha and np.sign(level) == direction)
    return {"kind": "global", "its_level_change": _num(level), "its_std_error": _num(res.bse[2]),
            "its_p_value": _num(p), "its_relative_change": _num(level / before) if before else None,
            "detected": detected}
