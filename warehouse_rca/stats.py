"""Stage 2, in Python on the compact cube: per-segment change, decomposition and significance.

Every formula works on the additive components the cube query returns (sums, counts, second
moments), so it applies to a segment, to a difference of segments ("the rest of a parent") or to
the total alike.

Ratio metrics (R = N / D, e.g. conversions / sessions). A segment s with traffic share w = D_s / D
and rate r = N_s / D_s contributes exactly

    change_s = w_cur (r_cur - r_base)  +  (w_cur - w_base) (r_base - R_base)
               `------ rate effect ---'   `------------ mix effect -----------'

to R_cur - R_base; the contributions of any partition sum to the total change (a shift-share
decomposition, as in BigQuery contribution analysis' treatment of ratios). A drop caused only by
traffic moving to a low-rate segment is therefore a pure *mix* effect.

Variances use the delta method on the per-row components (Var(r) = sum (n_i - r d_i)^2 / D^2),
which for 0/1 conversions reduces to the two-proportion test p(1-p)/n. Additive metrics use the
compound-Poisson variance sum x_i^2 of each side.

Real metrics are noisier than sampling alone (day-to-day swings, forecast error), so the model
variance is calibrated by a dispersion factor estimated from the data itself, as quasi-likelihood
models do (McCullagh & Nelder, *Generalized Linear Models*, ch. 9), but robustly: a low quantile of
the absolute z-scores (the lower quartile of |z| is 0.319 for pure noise) over the segments with
enough expected events by the baseline, read on all of them and on those the strongest candidates
cannot reach (:func:`untouched_segments`), the smaller reading standing: a large incident or a
background reshuffle can only inflate either. In period mode sampling noise is the floor;
in expected-vs-actual mode the forecast error sets the scale, which may be smaller than the model's.
p-values are two-sided normal; q-values control the false-discovery rate across all segments
tested (Benjamini-Hochberg, statsmodels), each test weighted by its segment's volume.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from warehouse_rca.cube.plan import COMPONENTS, Cube

_EPS = 1e-12


def _div(a: np.ndarray | pd.Series, b: np.ndarray | pd.Series) -> np.ndarray:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(b) > _EPS, a / np.where(np.abs(b) > _EPS, b, 1.0), np.nan)


def _ratio_variance(num: np.ndarray, den: np.ndarray, nn: np.ndarray, dd: np.ndarray,
                    nd: np.ndarray) -> np.ndarray:
    rate = _div(num, den)
    with np.errstate(invalid="ignore"):
        var = _div(np.maximum(nn - 2 * rate * nd + rate**2 * dd, 0.0), den**2)
    return np.where(np.isnan(var), np.inf, var)


def _share_variance(
    share: np.ndarray, dd: np.ndarray, dd_total: float, den_total: float
) -> np.ndarray:
    # Linearised Var(D_s / D) with per-row denominators d_i as the units.
    if den_total <= _EPS:
        return np.full_like(share, np.inf)
    return (dd * (1 - share) ** 2 + np.maximum(dd_total - dd, 0.0) * share**2) / den_total**2


def is_proportion(total: pd.Series) -> bool:
    """A ratio of counts of successes to counts of trials (conversions / sessions): integral sums
    with 0 <= numerator <= denominator on both sides."""
    values = [float(total[k]) for k in ("base_num", "base_den", "cur_num", "cur_den")]
    integral = all(abs(v - round(v)) < 1e-6 for v in values)
    return integral and 0 <= values[0] <= values[1] and 0 <= values[2] <= values[3]


def _binomial_variance(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    p = (num + 0.5) / (den + 1.0)
    return np.where(den > 0, p * (1 - p) / np.maximum(den, _EPS), np.inf)


#: Fewest baseline days for the day-to-day variation to be read (fewer: the model variance stands).
MIN_DAYS = 5


def _day_variance(sq: np.ndarray, cross: np.ndarray, total_sq: np.ndarray, w: np.ndarray,
                  days: float) -> np.ndarray:
    """G/(G-1) sum_d (a_d - w b_d)^2 from its expanded sums (sum a_d^2, sum a_d b_d, sum b_d^2)."""
    with np.errstate(invalid="ignore"):
        v = sq - 2 * w * cross + w**2 * total_sq
    return days / (days - 1) * np.maximum(np.nan_to_num(v), 0.0)


def _day_and_model(g: dict[str, np.ndarray], t: pd.Series, side: str, kind: str, days: float,
                   depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One period's variances of each segment's value with its days as clusters and under the
    model: of the rate (or the additive sum), then of the share of traffic."""
    n = len(depth)
    num, den = g["num"], g["den"]
    if kind == "ratio":
        proportion = is_proportion(t)
        rate = _div(num, den)
        v_rate = (_day_variance(g["cnn"], g["cnd"], g["cdd"], rate, days)
                  / np.maximum(den, _EPS) ** 2)
        m_rate = (_binomial_variance(num, den) if proportion
                  else _ratio_variance(num, den, g["nn"], g["dd"], g["nd"]))
        d_total = float(t[f"{side}_den"])
        share = den / max(d_total, _EPS)
        v_mix = _day_variance(g["cdd"], g["cdt"], np.full(n, float(t[f"{side}_cdd"])), share,
                              days) / max(d_total, _EPS) ** 2
        m_mix = (share * (1 - share) / max(d_total, _EPS) if proportion
                 else _share_variance(share, g["dd"], float(t[f"{side}_dd"]), d_total))
        return v_rate, m_rate, v_mix, m_mix
    n_total = float(t[f"{side}_num"])
    share = _div(num, np.full(n, n_total)) if abs(n_total) > _EPS else np.zeros(n)
    v_rate = _day_variance(g["cnn"], g["cnt"], np.full(n, float(t[f"{side}_cnn"])),
                           np.nan_to_num(share), days)
    # The total keeps the model's variance: its day sums around their mean would count the
    # weekday cycle (Saturdays' fewer orders) as noise, and one week cannot tell them apart.
    m_rate = g["nn"]
    v_rate = np.where(depth == 0, m_rate, v_rate)
    return v_rate, m_rate, np.zeros(n), np.zeros(n)


#: The design-effect columns :func:`describe` reads (of the rate and of the share), for both
#: periods.
DEFF_COLUMNS = ("deff_rate", "deff_mix")


def design_effects(frame: pd.DataFrame, kind: str,
                   dimensions: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per segment, how much more its value varies from day to day inside the baseline than the
    model's sampling variance says (the design effect of days as clusters, Kish): factors >= 1,
    keyed by :data:`DEFF_COLUMNS`, that multiply the model variances in :func:`describe`.

    Events on one day share its weather, its outage, its campaign: a week of flights is 7
    clusters, not 6,000 independent trials, and the larger a segment the more of its noise is the
    day's. Each single value's factors are read from the first level's day-cluster moments
    (:data:`warehouse_rca.cube.CLUSTER_COMPONENTS`) of the baseline, and stand for both periods
    (the current period's days hold the incident: one that starts on Thursday varies from day to
    day by its own step, which would hide it); for a rate's single values the factors read on
    both periods' days are returned too (``both_rate``, ``both_mix``), for
    :func:`segment_stats` to tell a calm value from the scatter across segments: for a rate,
    the variance of the period's rate with days as clusters (the delta method over day sums, as
    over rows in :func:`describe`); for a share of traffic (mix) or of an additive measure, the
    variance of the segment's day sums around its share of each day's total, so a dimension the
    weather reshuffles (flights between visibility values) is as noisy as it is, while a
    schedule-driven one that follows the day's total is not. A deeper segment takes
    the largest extra noise per unit of size of the values it holds, times its size (the day's
    share of the variance grows with the segment's size: Var = p(1-p)/n + tau^2)."""
    n = len(frame)
    out = {c: np.ones(n) for c in DEFF_COLUMNS}
    if "base_days" not in frame or kind not in ("ratio", "additive"):
        return out
    depth = frame["depth"].to_numpy()
    total = frame.loc[frame["depth"] == 0]
    if total.empty:
        return out
    t = total.iloc[0]
    dims = list(dimensions)
    values = frame[dims].to_numpy(dtype=object)
    present = ~pd.isna(values)
    days = float(t["base_days"])
    if not np.isfinite(days) or days < MIN_DAYS:
        return out
    has = np.nan_to_num(frame["base_days"].to_numpy(dtype="float64")) > 0
    moments = {}
    for side in ("base", "cur"):
        if side == "cur" and not (kind == "ratio" and np.isfinite(float(t.get("cur_days", 0.0)))
                                  and float(t.get("cur_days", 0.0)) >= MIN_DAYS):
            continue
        g = {k: frame[f"{side}_{k}"].to_numpy(dtype="float64") for k in
             ("num", "den", "rows", "nn", "dd", "nd", "cnn", "cdd", "cnd", "cdt", "cnt", "days")}
        on = has & (np.nan_to_num(g["days"]) > 0)
        moments[side] = tuple(np.where(on, x, 0.0) for x in
                              _day_and_model(g, t, side, kind, float(t[f"{side}_days"]), depth))
    v_rate, m_rate, v_mix, m_mix = moments["base"]
    # The size that scales a deeper segment's extra noise: the baseline's (the current period's
    # for a value new in it).
    size = (frame["base_den"] if kind == "ratio" else frame["base_rows"]).to_numpy(dtype="float64")

    def factor(v: np.ndarray, m: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(has & (m > 0) & np.isfinite(m), v / np.where(m > 0, m, 1.0), 1.0)
        return np.maximum(np.nan_to_num(f, nan=1.0, posinf=1.0), 1.0)

    if "cur" in moments:
        # A rate's single values read on both periods' days, each around its own period's rate
        # (segment_stats: evidence that a value was calm, which the dispersion across segments,
        # the scatter of the segments storms hit, need not be). Not the factors themselves: an
        # incident that starts inside the current period adds its step to that period's days.
        both = [b + c for b, c in zip(moments["base"], moments["cur"])]
        single = has & (depth == 1) & (np.nan_to_num(frame["cur_days"].to_numpy(
            dtype="float64")) > 0)
        out["both_rate"] = np.where(single, factor(both[0], both[1]), np.nan)
        out["both_mix"] = np.where(single, factor(both[2], both[3]), np.nan)
    f_rate, f_mix = factor(v_rate, m_rate), factor(v_mix, m_mix)
    # A segment without day moments of its own (deeper than the first level, or a value new
    # in the current period) takes the largest extra noise per unit of size of the single
    # values it holds, or for a single value its dimension's largest (a dimension the
    # weather reshuffles makes new values out of noise; a release of an app version does
    # not), times its size; the size of a new segment is the current period's.
    size = np.where(size > 0, size, frame["cur_den" if kind == "ratio" else "cur_rows"]
                    .to_numpy(dtype="float64"))
    per_value: dict[str, dict[object, tuple[float, float]]] = {d: {} for d in dims}
    per_dim: dict[str, tuple[float, float]] = {}
    for j in np.flatnonzero(has & (depth == 1) & (size > 0)):
        k = int(np.flatnonzero(present[j])[0])
        unit = ((f_rate[j] - 1) / size[j], (f_mix[j] - 1) / size[j])
        per_value[dims[k]][values[j, k]] = unit
        old = per_dim.get(dims[k], (0.0, 0.0))
        per_dim[dims[k]] = (max(old[0], unit[0]), max(old[1], unit[1]))
    without = ~has & (depth >= 1)
    extra_rate, extra_mix = np.zeros(n), np.zeros(n)
    for k, name in enumerate(dims):
        deep = without & present[:, k] & (depth >= 2)
        single = without & present[:, k] & (depth == 1)
        for which, extra in enumerate((extra_rate, extra_mix)):
            if deep.any():  # the largest over the values it holds (NaN: a value without one)
                held = pd.Series(values[deep, k], dtype=object).map(
                    {v: u[which] for v, u in per_value[name].items()})
                extra[deep] = np.fmax(extra[deep], held.to_numpy(dtype="float64"))
            if single.any() and name in per_dim:
                extra[single] = np.maximum(extra[single], per_dim[name][which])
    f_rate = np.where(without, 1 + extra_rate * size, f_rate)
    f_mix = np.where(without, 1 + extra_mix * size, f_mix)
    f_mix[depth == 0] = 1.0
    out.update({"deff_rate": f_rate, "deff_mix": f_mix})
    return out


def describe(components: pd.DataFrame, total: pd.Series, kind: str, scale: float) -> pd.DataFrame:
    """Statistics of each row of ``components`` (segments, or differences of segments) relative to
    the ``total`` row. Returns value, change, effect split, z-score and p-value columns. Optional
    deff_* columns (:data:`DEFF_COLUMNS`, :func:`design_effects`) multiply the model variances."""
    c = {k: components[k].to_numpy(dtype="float64") for k in COMPONENTS}
    f = {k: (components[k].to_numpy(dtype="float64") if k in components
             else np.ones(len(components))) for k in DEFF_COLUMNS}
    out: dict[str, Any] = {}  # one frame at the end (a column at a time costs more than the math)
    if kind == "ratio":
        db, dc = float(total["base_den"]), float(total["cur_den"])
        rate_total_b = float(total["base_num"]) / db if db > _EPS else np.nan
        rb, rc = _div(c["base_num"], c["base_den"]), _div(c["cur_num"], c["cur_den"])
        wb, wc = (
            c["base_den"] / db if db > _EPS else np.nan,
            c["cur_den"] / dc if dc > _EPS else np.nan,
        )
        wb, wc = np.asarray(wb, dtype="float64"), np.asarray(wc, dtype="float64")
        new = ~np.isfinite(rb)
        gone = ~np.isfinite(rc)
        rb_eff = np.where(new, rate_total_b, rb)
        rate_effect = np.where(new | gone, 0.0, wc * (np.nan_to_num(rc) - rb_eff))
        mix_effect = np.where(
            gone, -wb * (rb_eff - rate_total_b),
            np.where(
                new, wc * (np.nan_to_num(rc) - rate_total_b), (wc - wb) * (rb_eff - rate_total_b)
            ),
        )
        if is_proportion(total):
            # Successes out of trials: the sampling units are the trials, whether a row holds one
            # trial or an aggregate of many (the delta method over rows would count stable
            # differences between pre-aggregated rows as noise). Agresti-Caffo style +0.5/+1.
            var_rb, var_rc = (
                _binomial_variance(c["base_num"], c["base_den"]),
                _binomial_variance(c["cur_num"], c["cur_den"]),
            )
            var_wb = np.where(db > _EPS, wb * (1 - wb) / max(db, _EPS), np.inf)
            var_wc = np.where(dc > _EPS, wc * (1 - wc) / max(dc, _EPS), np.inf)
        else:
            var_rb = _ratio_variance(
                c["base_num"], c["base_den"], c["base_nn"], c["base_dd"], c["base_nd"]
            )
            var_rc = _ratio_variance(
                c["cur_num"], c["cur_den"], c["cur_nn"], c["cur_dd"], c["cur_nd"]
            )
            var_wb = _share_variance(wb, c["base_dd"], float(total["base_dd"]), db)
            var_wc = _share_variance(wc, c["cur_dd"], float(total["cur_dd"]), dc)
        var_rb, var_rc = var_rb * f["deff_rate"], var_rc * f["deff_rate"]
        var_wb, var_wc = var_wb * f["deff_mix"], var_wc * f["deff_mix"]
        var_rate = np.where(new | gone, np.inf, var_rb + var_rc)
        var_mix = var_wb + var_wc
        z_rate = np.where(
            np.isfinite(var_rate) & (var_rate > 0),
            (np.nan_to_num(rc) - rb_eff) / np.sqrt(np.where(var_rate > 0, var_rate, 1)),
            0.0,
        )
        z_mix = np.where(var_mix > 0, (wc - wb) / np.sqrt(np.where(var_mix > 0, var_mix, 1)), 0.0)
        # Var(change) ~ w_c^2 Var(r_c - r_b) + (r_b - R_b)^2 Var(w_c - w_b), cross terms ignored.
        finite_rate = np.isfinite(var_rate)
        var_change = (np.where(finite_rate, wc**2 * np.where(finite_rate, var_rate, 0.0), 0.0)
                      + (rb_eff - rate_total_b) ** 2 * var_mix)
        # A segment present on one side only: its whole contribution is w (r - R_base) on that
        # side, so its variance comes from that side's rate and share (never zero: a segment of
        # one event is one event's worth of noise, not p = 0).
        var_new = (wc**2 * np.where(np.isfinite(var_rc), var_rc, 0.0)
                   + (np.nan_to_num(rc) - rate_total_b) ** 2 * var_wc)
        var_gone = (wb**2 * np.where(np.isfinite(var_rb), var_rb, 0.0)
                    + (np.nan_to_num(rb) - rate_total_b) ** 2 * var_wb)
        var_change = np.where(new & ~gone, var_new, np.where(gone & ~new, var_gone, var_change))
        out["base_value"], out["cur_value"] = rb, rc
        out["base_share"], out["cur_share"] = wb, wc
        out["rate_effect"], out["mix_effect"] = rate_effect, mix_effect
        out["change"] = rate_effect + mix_effect
        out["z_rate"], out["z_mix"] = z_rate, z_mix
        out["rate_intensity"] = _div(np.nan_to_num(rc) - rb_eff, rb_eff)
        out["mix_intensity"] = _div(wc - wb, wb)
        out["rate_intensity_sd"] = _div(
            np.sqrt(np.where(np.isfinite(var_rate), var_rate, np.inf)), np.abs(rb_eff)
        )
        out["mix_intensity_sd"] = _div(np.sqrt(var_mix), np.abs(wb))
        if is_proportion(total):
            # Rates of events compared on the log scale (smoothed log relative risk): a rare
            # event's relative change from a near-zero base (0.2% -> 5.4% is +2,600%) says little
            # about whether two parts of one segment moved alike (0.5% -> 5% is +900%).
            bn, bd, cn, cd = c["base_num"], c["base_den"], c["cur_num"], c["cur_den"]
            both = (bd > 0) & (cd > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_change = np.log((cn + 0.5) / (cd + 1.0)) - np.log((bn + 0.5) / (bd + 1.0))
                log_var = (
                    (1 / (cn + 0.5) - 1 / (cd + 1.0) + 1 / (bn + 0.5) - 1 / (bd + 1.0))
                    * f["deff_rate"]
                )
            out["rate_log_change"] = np.where(both, log_change, np.nan)
            out["rate_log_change_sd"] = np.where(both, np.sqrt(np.maximum(log_var, 0.0)), np.inf)
        else:
            out["rate_log_change"] = out["rate_intensity"]
            out["rate_log_change_sd"] = out["rate_intensity_sd"]
    else:
        base = scale * c["base_num"]
        cur = c["cur_num"]
        var_change = (c["cur_nn"] + scale**2 * c["base_nn"]) * f["deff_rate"]
        out["base_value"], out["cur_value"] = base, cur
        tb = scale * float(total["base_num"])
        tc = float(total["cur_num"])
        out["base_share"] = _div(base, np.full_like(base, tb))
        out["cur_share"] = _div(cur, np.full_like(cur, tc))
        out["change"] = cur - base
        out["rate_effect"], out["mix_effect"] = cur - base, 0.0
        out["z_rate"], out["z_mix"] = 0.0, 0.0
        out["rate_intensity"] = _div(cur - base, np.abs(base))
        out["mix_intensity"] = 0.0
        out["rate_intensity_sd"] = _div(np.sqrt(np.maximum(var_change, 0.0)), np.abs(base))
        out["mix_intensity_sd"] = np.inf
        out["rate_log_change"], out["rate_log_change_sd"] = (
            out["rate_intensity"], out["rate_intensity_sd"]
        )
    sd = np.sqrt(np.maximum(var_change, 0.0))
    out["z"] = np.where(sd > 0, np.asarray(out["change"]) / np.where(sd > 0, sd, 1.0),
                        np.where(np.abs(np.asarray(out["change"])) > _EPS, np.inf, 0.0))
    out["p_value"] = 2 * sps.norm.sf(np.abs(np.asarray(out["z"])))
    out["support"] = _div(
        c["base_den"] + c["cur_den"],
        np.full(len(components), float(total["base_den"] + total["cur_den"])),
    )
    return pd.DataFrame(out, index=components.index)


def dispersion(z: np.ndarray, *, floor: float | None = None, min_count: int = 20) -> float:
    """Robust overdispersion factor over segments, at least ``floor``.

    Uses the lower quartile of |z| (0.3186 for pure noise), so up to three quarters of the segments
    may be touched by the incident (a cause, its ancestors and descendants) without inflating the
    noise estimate. With too few segments to tell noise from signal the model variance stands.
    """
    z = np.abs(z[np.isfinite(z)])
    if len(z) < min_count:
        return 1.0
    phi = float((np.quantile(z, 0.25) / 0.3186) ** 2)
    if floor is not None:
        phi = max(phi, floor)
    return max(phi, 1e-12)


#: Fewest segments the noise is read on (fewer: the model variance stands).
MIN_NOISE_SEGMENTS = 12


def untouched_segments(frame: pd.DataFrame, dimensions: tuple[str, ...], informative: np.ndarray,
                       strongest: int = 2, min_segments: int = MIN_NOISE_SEGMENTS) -> np.ndarray:
    """The informative segments the incident's strongest candidates do not touch, where the noise
    is measured (a mask over ``frame``'s rows).

    A large incident touches most segments of the cube: every combination holding a carrier whose
    cancellations went x10 moves with it, and across a high-cardinality dimension nearly every
    value holds some of that carrier's rows. The lower quartile of |z| over *all* segments then
    measures the incident, not the noise (it rose from 2 to 49 on such a case), and the cause
    itself falls below significance. So the strongest single values (largest |z|, up to
    ``strongest`` of them on different dimensions) are set aside, and the noise is read on the
    segments that hold *another* value of their dimension: rows disjoint from the candidate, which
    the incident cannot reach. While fewer than ``min_segments`` such segments remain, the
    previous set stands."""
    mask = informative.copy()
    depth = frame["depth"].to_numpy()
    z = np.abs(frame["z"].to_numpy(dtype="float64"))
    used: set[str] = set()
    pool = sorted(np.flatnonzero(informative & (depth == 1) & np.isfinite(z)), key=lambda i: -z[i])
    # A value too broad to set aside (visibility = clear holds 85% of flights: too few segments
    # are disjoint from it) is passed over for the next strongest, on another dimension.
    for top in pool[: 4 * strongest]:
        if len(used) >= strongest:
            break
        dim = next(d for d in dimensions if pd.notna(frame[d].iat[top]))
        if dim in used:
            continue
        values = frame[dim]
        disjoint = (values.notna() & (values != frame[dim].iat[top])).to_numpy()
        if (mask & disjoint).sum() < min_segments:
            continue
        mask &= disjoint
        used.add(dim)
    return mask


def segment_stats(cube: Cube) -> pd.DataFrame:
    """The cube frame plus :func:`describe` columns, ``share`` of the total change and FDR
    ``q_value`` across every segment (depth >= 1), with z-scores calibrated for overdispersion."""
    frame = cube.frame.drop(columns=list(DEFF_COLUMNS), errors="ignore")
    total = cube.total
    deff = design_effects(frame, cube.kind, cube.dimensions)
    both = {k: deff.pop(f"both_{k[5:]}", np.full(len(frame), np.nan)) for k in DEFF_COLUMNS}
    clustered = "base_days" in frame and any(bool((v != 1).any()) for v in deff.values())
    described = describe(frame, total, cube.kind, cube.scale)
    out = pd.concat([frame, described], axis=1)
    # Only informative segments estimate the noise: tiny cells whose z is ~0 by lack of data
    # (a handful of events) would make any scale look right.
    # Which segments are informative is read off the baseline only: counting the current period's
    # events (cancellations) would select the segments the incident filled with them, and the
    # noise measured there is the incident's (a dispersion of 169 on one airport's x10).
    base_den = out["base_den"].to_numpy(dtype="float64")
    volume = np.divide(base_den + out["cur_den"].to_numpy(dtype="float64"), base_den,
                       out=np.zeros(len(out)), where=base_den > 0)
    if cube.kind == "ratio" and is_proportion(total):
        # expected under no change
        events = out["base_num"].abs().to_numpy(dtype="float64") * volume
    else:
        events = out["base_rows"].to_numpy(dtype="float64") * volume
    seg = (
        (out["depth"] >= 1) & (events >= 20) & (out["base_den"] > 0) & (out["cur_den"] > 0)
    ).to_numpy()
    # Period mode: sampling noise is a floor (dispersion >= 1). Expected mode: the model's scale is
    # arbitrary (forecast error, not sampling), so it may shrink too.
    # Where the incident is not, smaller segments are read too (rare events: a week of flights
    # holds a few dozen cancellations, and the few segments with 20 of them all hold the incident).
    some = ((out["depth"] >= 1) & (events >= 5) & (out["base_den"] > 0)
            & (out["cur_den"] > 0)).to_numpy()
    floor = 1.0 if cube.mode == "periods" else None
    quiet = untouched_segments(out, cube.dimensions, some)
    # Both readings can only be inflated by real moves (the incident, or a background reshuffle
    # such as the weather moving flights between visibility values, which is all that the
    # segments disjoint from `visibility = clear` hold), never deflated: the smaller one stands.
    # Read on all segments, the noise needs more of them to be told apart from the incident.
    phi = dispersion(out.loc[seg, "z"].to_numpy(dtype="float64"), floor=floor)
    if (quiet != some).any():
        phi = min(phi, dispersion(out.loc[quiet, "z"].to_numpy(dtype="float64"), floor=floor,
                                  min_count=MIN_NOISE_SEGMENTS))
    is_total = (out["depth"] == 0).to_numpy()
    if clustered:
        # Two readings of one noise: each segment's own day-to-day variation in the baseline and
        # the dispersion across segments, which also holds what one segment's days cannot show
        # (drift between weeks; a small segment's handful of events; for sums, the total's own
        # swings, which the variation around a segment's share of each day's total leaves out).
        # A segment's variance takes the larger, never their product: one stormy day in the
        # baseline shows in both. The total takes its own days.
        # A single value of a rate whose days in both periods (each around its own period's
        # rate, with events enough to read them) say it was calm is held to that, not to the
        # dispersion across segments, the scatter of the segments that storms hit: a carrier
        # cancelling steadily all week was not one of them. Never below its baseline's days.
        calm = ((out["depth"] == 1).to_numpy() & some
                & (np.nan_to_num(out["base_days"].to_numpy(dtype="float64")) >= MIN_DAYS)
                & (np.nan_to_num(out["cur_days"].to_numpy(dtype="float64")) >= MIN_DAYS)
                if "cur_days" in out else np.zeros(len(out), dtype=bool))
        deff = {k: np.where(is_total, v, np.maximum(v, np.where(
            calm & np.isfinite(both[k]), np.minimum(phi, np.nan_to_num(both[k], nan=phi)), phi)))
            for k, v in deff.items()}
        framed = frame.assign(**deff)
        out = pd.concat([framed, describe(framed, total, cube.kind, cube.scale)], axis=1)
        out.attrs["dispersion_across_segments"], phi = phi, 1.0
    else:
        out = out.assign(**deff)
    root = 1.0 / np.sqrt(phi)
    total_root = 1.0 / np.sqrt(min(phi, 1.0))
    for col in ("z", "z_rate", "z_mix"):
        # The total is judged against sampling noise (or the calibrated forecast error when that is
        # smaller): a dispersion estimated from segments is itself inflated by a large incident.
        out[col] = out[col] * np.where(is_total, total_root, root)
    for col in ("rate_intensity_sd", "mix_intensity_sd", "rate_log_change_sd"):
        out[col] = out[col] / np.where(is_total, total_root, root)
    out["p_value"] = 2 * sps.norm.sf(np.abs(out["z"].to_numpy(dtype="float64")))
    out.attrs["dispersion"] = phi
    total_change = float(out.loc[out["depth"] == 0, "change"].iloc[0])
    out["share"] = out["change"] / total_change if abs(total_change) > _EPS else 0.0
    out["fdr_weight"] = volume_weights(out, cube.kind, cube.scale)
    tested = (out["depth"] >= 1).to_numpy()
    out["q_value"] = weighted_fdr(out["p_value"].to_numpy(dtype="float64"),
                                  out["fdr_weight"].to_numpy(dtype="float64"), tested)
    out.loc[~tested, "q_value"] = out.loc[~tested, "p_value"]
    return out


def volume_weights(frame: pd.DataFrame, kind: str, scale: float) -> np.ndarray:
    """Each segment's prior weight in the false-discovery control: its volume (rows of the
    denominator for a ratio, the measure's size for an additive metric; both periods), relative
    to the mean segment's.

    A cube holds a few large segments and thousands of small deep ones. Under plain
    Benjamini-Hochberg every one costs the same, so on a table with a 200-value dimension a
    -37% drop of the tier that holds a third of the revenue (z = -4.9) was not significant among
    1,500 segments. A segment can only explain a change in proportion to its size (except a
    value new in the current period, whose current volume counts), so weighting the tests by
    size (weighted BH, Genovese, Roeder & Wasserman 2006: the weights average 1 over the tests)
    spends the error budget where causes can be, and small noise slices need stronger evidence."""
    if kind == "ratio":
        vol = (
            frame["base_den"].to_numpy(dtype="float64")
            + frame["cur_den"].to_numpy(dtype="float64")
        )
    else:
        vol = (np.abs(scale * frame["base_num"].to_numpy(dtype="float64"))
               + np.abs(frame["cur_num"].to_numpy(dtype="float64")))
    return np.where(np.isfinite(vol), np.abs(vol), 0.0)


def weighted_fdr(p: np.ndarray, weights: np.ndarray, tested: np.ndarray,
                 floor: float = 1e-3) -> np.ndarray:
    """Weighted Benjamini-Hochberg q-values over the ``tested`` rows (1 elsewhere): p / w with the
    weights normalised to mean 1 over the tested rows (and at least ``floor``)."""
    q = np.ones(len(p))
    if not tested.any():
        return q
    w = np.asarray(weights, dtype="float64")[tested]
    mean = float(w.mean()) if len(w) else 0.0
    w = np.maximum(w / mean, floor) if mean > 0 else np.ones(len(w))
    adjusted = np.minimum(1.0, np.nan_to_num(p[tested], nan=1.0) / w)
    q[tested] = multipletests(adjusted, method="fdr_bh")[1]
    return q


def finite_or_none(x: Any) -> float | None:
    """``x`` as a float for JSON and findings tables; None when missing, not numeric or not
    finite."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
