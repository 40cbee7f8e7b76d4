"""Operational drivers behind a root cause: the measure that moved with it, and how much of the
cause it explains.

A metric may name ``drivers``: numeric measures on the fact rows (``page_load_ms``,
``gateway_latency_ms``). After the root causes are known, one query (``driver_bins.sql.j2``)
returns, for each of the first :data:`MAX_CAUSES` causes and each driver, the driver's histogram
per side inside the cause's segment and in its complement, with the metric's components per bin
and the driver's exact count, sum and sum of squares. From those compact rows:

* **how the driver moved**: its mean per side inside the segment, with 95% intervals, and the
  same outside it;
* **whether the move is the segment's own**: a driver that moved outside the segment by at least
  half as much, the same way, moved everywhere alike and explains no segment's change
  (``localized`` false), whatever the numbers inside say;
* **how much of the segment's change the shift explains**: the baseline's response of the metric
  to the driver (a binomial GLM of the rate for events per trial, weighted least squares
  otherwise, on the baseline's bins inside and outside the segment with a level of its own for the
  segment, so the curve reaches values the segment's baseline never saw), evaluated at the
  segment's current driver distribution against its baseline one: the change the shift alone
  would have caused, as a share of the segment's actual change, with an interval from the curve's
  parameter uncertainty;
* **a counterfactual**: the segment's current value without the shift.

Everything is reported (JSON ``drivers`` per cause); the narrative names a driver as what drove
a cause only when it moved significantly inside the segment, not alike outside it, and explains
at least :data:`MIN_EXPLAINED` of the segment's change.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.cube.plan import CubePlan, period_bounds, segment_condition
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import InputError
from warehouse_rca.localize.segments import Localization

#: Root causes whose drivers are read (the rest of the ranking is rarely acted on).
MAX_CAUSES = 3
#: Histogram bins per factor e of the driver's magnitude (12% wide).
RESOLUTION = 8
#: A driver explains a cause when its shift inside the segment has at least this z ...
MIN_SHIFT_Z = 3.0
#: ... and accounts for at least this share of the segment's change.
MIN_EXPLAINED = 0.2
#: A driver whose move outside the segment is at least this share of its move inside, the same
#: way, moved everywhere alike.
ALIKE = 0.5
#: Draws of the response curve's parameters for the explained share's interval.
DRAWS = 400


@dataclass
class DriverFinding:
    """One driver read inside one cause's segment (see the module docstring)."""

    driver: str
    segment: dict[str, str]
    base_mean: float | None
    cur_mean: float | None
    base_interval: tuple[float, float] | None
    cur_interval: tuple[float, float] | None
    outside_base_mean: float | None
    outside_cur_mean: float | None
    shift_z: float | None
    localized: bool
    explained_share: float | None
    explained_interval: tuple[float, float] | None
    counterfactual_value: float | None
    explains: bool
    #: for the report's chart: per bin (lower edge, upper edge), the segment's baseline and
    #: current shares of the denominator, and the baseline's fitted and observed value
    bins: list[dict[str, float | None]] = field(default_factory=list)

    @property
    def shift(self) -> float | None:
        if self.base_mean is None or self.cur_mean is None:
            return None
        return self.cur_mean - self.base_mean

    def to_json(self) -> dict[str, Any]:
        def pair(x: tuple[float, float] | None) -> list[float | None] | None:
            return [_num(x[0]), _num(x[1])] if x is not None else None

        return {
            "driver": self.driver, "baseline_mean": _num(self.base_mean),
            "current_mean": _num(self.cur_mean), "baseline_interval": pair(self.base_interval),
            "current_interval": pair(self.cur_interval),
            "outside_baseline_mean": _num(self.outside_base_mean),
            "outside_current_mean": _num(self.outside_cur_mean),
            "shift_z": _num(self.shift_z), "localized": self.localized,
            "explained_share": _num(self.explained_share),
            "explained_interval": pair(self.explained_interval),
            "counterfactual_value": _num(self.counterfactual_value), "explains": self.explains,
            "bins": self.bins,
        }


def _num(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


@dataclass
class DriverReport:
    """The drivers read for each cause; ``queries`` the warehouse queries it cost."""

    findings: list[DriverFinding] = field(default_factory=list)
    queries: int = 0

    def for_segment(self, segment: dict[str, Any]) -> list[DriverFinding]:
        key = {k: str(v) for k, v in segment.items()}
        return [f for f in self.findings if f.segment == key]


def driver_expressions(plan: CubePlan, columns: Sequence[str]) -> dict[str, exp.Expr]:
    """Each driver of the metric as a per-row expression, checked against the source's columns."""
    out: dict[str, exp.Expr] = {}
    for name, text in plan.metric.drivers.items():
        where = plan.metric.where(f"drivers.{name}")
        if text is None:
            try:
                out[name] = sql.column_ref(sql.resolve_column(name, columns))
            except InputError as err:
                raise InputError(f"{where}: {err}") from None
        else:
            out[name] = sql.parse_dimension_expr(text, list(columns), where)
    return out


def drivers_sql(plan: CubePlan, causes: list[exp.Expr], drivers: list[exp.Expr]) -> sql.Template:
    return sql.template(
        "driver_bins.sql.j2", source=plan.source, time=plan.time, causes=causes, drivers=drivers,
        num=plan.num, den=plan.den, condition=plan.condition, resolution=RESOLUTION,
        **period_bounds(plan),
    )


def explain_drivers(engine: Engine, plan: CubePlan, loc: Localization,
                    columns: Sequence[str], *, proportion: bool) -> DriverReport:
    """One query: every driver inside and outside each of the first causes (module docstring).
    ``proportion``: the metric counts events per trial (a binomial response curve)."""
    drivers = driver_expressions(plan, columns)
    segments = [dict(c.segment) for c in loc.root_causes[:MAX_CAUSES] if c.segment]
    conditions = [segment_condition(plan, s) for s in segments]
    pairs = [(s, c) for s, c in zip(segments, conditions, strict=True) if c is not None]
    if not drivers or not pairs or plan.mode != "periods":
        return DriverReport()
    names = list(drivers)
    raw = engine.query(drivers_sql(plan, [c for _, c in pairs], list(drivers.values())))
    sets = raw["rca_set"].astype("int64").to_numpy()
    n_c, n_d = len(pairs), len(names)
    full = 2 ** (n_c + n_d) - 1
    report = DriverReport(queries=1)
    for ci, (segment, _) in enumerate(pairs):
        for di, name in enumerate(names):
            part = raw.loc[sets == full - 2 ** ci - 2 ** (n_c + di)]
            report.findings.append(_read(name, {k: str(v) for k, v in segment.items()},
                                         _frame(part, ci, di), kind=plan.metric.kind,
                                         proportion=proportion))
    return report


def _frame(part: pd.DataFrame, ci: int, di: int) -> pd.DataFrame:
    """One (cause, driver) pair's rows: side, inside (0/1), bin key, the moments and components."""
    out = pd.DataFrame({
        "side": pd.to_numeric(part["rca_side"]).astype("int64").to_numpy(),
        "inside": pd.to_numeric(part[f"rca_c{ci}"]).astype("int64").to_numpy(),
        "s": pd.to_numeric(part[f"rca_s{di}"]).to_numpy(dtype="float64"),
        "k": pd.to_numeric(part[f"rca_k{di}"]).to_numpy(dtype="float64"),
    })
    for src, dst in ((f"rca_n{di}", "n"), (f"rca_sx{di}", "sx"), (f"rca_sxx{di}", "sxx"),
                     ("s_rows", "rows"), ("s_num", "num"), ("s_den", "den")):
        out[dst] = pd.to_numeric(part[src]).to_numpy(dtype="float64")
    # the warehouse returns groups in any order; sums and fits read them in one order, so the
    # same data gives the same numbers to the last bit on every run and engine
    return out.sort_values(["inside", "s", "k", "side"], na_position="last").reset_index(drop=True)


def _mean(frame: pd.DataFrame) -> tuple[float | None, tuple[float, float] | None, float]:
    """Mean of the driver over ``frame``'s rows, its 95% interval, and its variance."""
    n, sx, sxx = frame["n"].sum(), frame["sx"].sum(), frame["sxx"].sum()
    if n <= 0:
        return None, None, math.inf
    mean = sx / n
    var = max(sxx / n - mean * mean, 0.0) * n / max(n - 1, 1) / n
    half = 1.96 * math.sqrt(var)
    return float(mean), (float(mean - half), float(mean + half)), var


def _edges(s: float, k: float) -> tuple[float, float]:
    """A histogram bin's value range (sign ``s``, log bin ``k``)."""
    if s == 0:
        return 0.0, 0.0
    low, high = math.exp(k / RESOLUTION), math.exp((k + 1) / RESOLUTION)
    return (low, high) if s > 0 else (-high, -low)


def _read(name: str, segment: dict[str, str], frame: pd.DataFrame, *, kind: str,
          proportion: bool) -> DriverFinding:
    valued = frame.loc[frame["s"].notna() & (frame["n"] > 0)]
    inside, outside = frame["inside"] == 1, frame["inside"] == 0
    base, cur = frame["side"] == 0, frame["side"] == 1
    b_mean, b_int, b_var = _mean(frame.loc[inside & base])
    c_mean, c_int, c_var = _mean(frame.loc[inside & cur])
    ob_mean, _, _ = _mean(frame.loc[outside & base])
    oc_mean, _, _ = _mean(frame.loc[outside & cur])
    shift = (c_mean - b_mean) if b_mean is not None and c_mean is not None else None
    shift_z = (abs(shift) / math.sqrt(b_var + c_var)
               if shift is not None and b_var + c_var > 0 else None)
    out_shift = (oc_mean - ob_mean) if oc_mean is not None and ob_mean is not None else None
    alike = (shift is not None and out_shift is not None and shift != 0
             and out_shift / shift >= ALIKE)
    finding = DriverFinding(
        driver=name, segment=segment, base_mean=b_mean, cur_mean=c_mean, base_interval=b_int,
        cur_interval=c_int, outside_base_mean=ob_mean, outside_cur_mean=oc_mean,
        shift_z=shift_z, localized=shift is not None and not alike, explained_share=None,
        explained_interval=None, counterfactual_value=None, explains=False,
    )
    curve = _response(valued.loc[valued["side"] == 0], kind=kind, proportion=proportion)
    seg_rows = frame.loc[inside]
    actual_b, actual_c = _value(seg_rows.loc[seg_rows["side"] == 0], kind), \
        _value(seg_rows.loc[seg_rows["side"] == 1], kind)
    seg_valued = valued.loc[valued["inside"] == 1]
    if curve is not None and actual_b is not None and actual_c is not None:
        params, cov, predict = curve
        sides = _sides(seg_valued, kind)
        actual = actual_c - actual_b
        if sides is not None and actual != 0:
            draws = np.random.default_rng(0).multivariate_normal(params, cov, size=DRAWS,
                                                                  check_valid="ignore")
            moved, *spread = _shift_effects(sides, np.vstack([params, draws]), predict)
            finding.explained_share = float(moved / actual)
            lo, hi = np.percentile(np.asarray(spread) / actual, [2.5, 97.5])
            finding.explained_interval = (float(min(lo, hi)), float(max(lo, hi)))
            finding.counterfactual_value = float(actual_c - moved)
        finding.bins = _chart_bins(valued, params, predict, kind)
    finding.explains = bool(
        finding.localized and shift_z is not None and shift_z >= MIN_SHIFT_Z
        and finding.explained_share is not None and finding.explained_share >= MIN_EXPLAINED
    )
    return finding


def _value(rows: pd.DataFrame, kind: str) -> float | None:
    """The metric over ``rows``: the rate, or for an additive metric the mean per row."""
    den = rows["den"].sum() if kind == "ratio" else rows["rows"].sum()
    return float(rows["num"].sum() / den) if den > 0 else None


Predict = Any


def _response(rows: pd.DataFrame, *, kind: str,
              proportion: bool) -> tuple[np.ndarray, np.ndarray, Predict] | None:
    """The baseline's response of the metric to the driver, from its bins inside and outside the
    segment: (parameters, their covariance, predict(params, x, inside) -> value)."""
    weight = rows["den"] if kind == "ratio" else rows["rows"]
    rows = rows.loc[weight > 0]
    weight = weight.loc[rows.index].to_numpy(dtype="float64")
    if len(rows) < 3 or rows["inside"].nunique() < 2 and rows["inside"].iloc[0] == 0:
        return None
    x = (rows["sx"] / rows["n"]).to_numpy(dtype="float64")
    inside = rows["inside"].to_numpy(dtype="float64")
    y = rows["num"].to_numpy(dtype="float64") / weight
    design = np.column_stack([np.ones(len(x)), inside, x])
    if np.ptp(x) == 0:
        return None
    logistic = proportion and kind == "ratio"
    fits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for link in ((sm.families.links.Logit(), sm.families.links.Log()) if logistic
                     else (None,)):
            try:
                if link is not None:
                    fit = sm.GLM(np.clip(y, 0, 1), design,
                                 family=sm.families.Binomial(link=link), var_weights=weight).fit()
                else:
                    fit = sm.WLS(y, design, weights=weight).fit()
            except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                continue
            params = np.asarray(fit.params, dtype="float64")
            cov = np.asarray(fit.cov_params(), dtype="float64")
            if np.all(np.isfinite(params)) and np.all(np.isfinite(cov)):
                fits.append((float(getattr(fit, "deviance", 0.0)), params, cov, link))
    if not fits:
        return None
    # the link that fits the baseline better (logistic or log-linear in the driver): the curve
    # reaches values the segment's baseline never saw, and its shape decides how far
    _, params, cov, link = min(fits, key=lambda f: f[0])

    def predict(p: np.ndarray, xs: np.ndarray, ins: np.ndarray) -> np.ndarray:
        eta = p[0] + p[1] * ins + p[2] * xs
        if link is None:
            return eta
        return np.clip(np.asarray(link.inverse(eta), dtype="float64"), 0.0, 1.0)

    return params, cov, predict


Sides = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _sides(seg: pd.DataFrame, kind: str) -> Sides | None:
    """The segment's bins per side: (weights, mean driver value); None when a side is empty."""
    out = []
    for side in (0, 1):
        rows = seg.loc[seg["side"] == side]
        weight = (rows["den"] if kind == "ratio" else rows["rows"]).to_numpy(dtype="float64")
        if weight.sum() <= 0:
            return None
        out.append((weight / weight.sum(), (rows["sx"] / rows["n"]).to_numpy(dtype="float64")))
    return out[0], out[1]


def _shift_effects(sides: Sides, params: np.ndarray, predict: Predict) -> np.ndarray:
    """For each parameter row, what the segment's driver shift alone changes its value by under
    that response curve: its current distribution through the curve minus its baseline one."""
    (wb, xb), (wc, xc) = sides
    at = [np.array([predict(p, x, np.ones(len(x))) for p in params]) for x in (xb, xc)]
    return np.asarray(at[1] @ wc - at[0] @ wb, dtype="float64")


def _chart_bins(valued: pd.DataFrame, params: np.ndarray, predict: Predict,
                kind: str) -> list[dict[str, float | None]]:
    seg = valued.loc[valued["inside"] == 1]
    weight = "den" if kind == "ratio" else "rows"
    totals = {side: float(seg.loc[seg["side"] == side, weight].sum()) for side in (0, 1)}
    out = []
    for (s, k), rows in seg.groupby(["s", "k"], sort=True):
        low, high = _edges(float(s), float(k))
        base = rows.loc[rows["side"] == 0]
        x = float(rows["sx"].sum() / rows["n"].sum())
        observed = (float(base["num"].sum() / base[weight].sum())
                    if base[weight].sum() > 0 else None)
        out.append({
            "low": low, "high": high, "mean": x,
            "baseline_share": (float(base[weight].sum()) / totals[0] if totals[0] else None),
            "current_share": (float(rows.loc[rows["side"] == 1, weight].sum()) / totals[1]
                              if totals[1] else None),
            "baseline_value": observed,
            "fitted_value": float(predict(params, np.array([x]), np.array([1.0]))[0]),
        })
    out.sort(key=lambda b: float(b["mean"] or 0.0))
    return out
