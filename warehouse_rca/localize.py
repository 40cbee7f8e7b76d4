"""Stage 3: choose the succinct root-cause set among all segments of the cube.

The method ("rest-consistency selection") draws on:

* Adtributor (Bhagwan et al., NSDI 2014): *explanatory power*, a segment's share of the total
  change, and a minimum share for a segment to be worth reporting.
* HotSpot (Sun et al., 2018) and Squeeze (Li et al., ISSRE 2019): the (generalised) ripple effect.
  When a segment is the cause, its parts move together; so a candidate is tested against the
  *rest of each parent* (parent minus candidate): if the rest moved with the same intensity, the
  candidate is an over-specified slice of a broader cause; if the rest stayed put while the
  candidate carries most of the parent's change, the parent is under-specified.
* BigQuery contribution analysis: changes as exact additive contributions, with a rate/mix
  (shift-share) split for ratio metrics (see :mod:`warehouse_rca.stats`).
* Benjamini-Hochberg false-discovery control over every segment tested, and a stopping rule: the
  greedy selection stops when what is left of the change is indistinguishable from noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from warehouse_rca.cube import COMPONENTS, Cube
from warehouse_rca.stats import describe, segment_stats

Key = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class LocalizeSettings:
    alpha: float = 0.05  # significance (FDR level for segments, two-sided level for the total)
    min_share: float = 0.02  # smallest share of the total change worth reporting
    rest_ratio: float = 0.5  # a parent's rest moving at >= this fraction of the candidate's intensity
    #                          means the candidate is only a slice of a broader cause
    rest_ratio_significant: float = 0.2  # ... or at >= this fraction when the rest's move is significant
    child_share: float = 0.5  # a specific child carrying this much of its parent's change replaces it
    max_causes: int = 10


@dataclass
class RootCause:
    segment: dict[str, str]
    row: pd.Series
    specificity: float
    notes: list[str] = field(default_factory=list)
    explained_change: float = 0.0

    @property
    def key(self) -> Key:
        return frozenset(self.segment.items())


@dataclass
class Localization:
    stats: pd.DataFrame
    total: pd.Series
    root_causes: list[RootCause]
    message: str
    significant: bool


def _key(row: pd.Series, dims: tuple[str, ...]) -> Key:
    return frozenset((d, row[d]) for d in dims if row[d] is not None and not pd.isna(row[d]))


def _intensity(stats_row: pd.Series, kind: str, effect: str) -> tuple[float, float]:
    """Relative change of the segment for its effect type, and its standard error."""
    if kind == "ratio" and effect == "mix":
        return float(stats_row["mix_intensity"]), float(stats_row["mix_intensity_sd"])
    return float(stats_row["rate_intensity"]), float(stats_row["rate_intensity_sd"])


def effect_of(row: pd.Series, kind: str, alpha: float) -> str | None:
    """``rate``, ``mix`` or ``both`` for ratio metrics; None for additive metrics."""
    if kind != "ratio":
        return None
    change = abs(float(row["change"])) or 1e-300
    z_crit = sps.norm.isf(alpha / 2)
    rate_on = abs(row["rate_effect"]) >= 0.25 * change and abs(row["z_rate"]) >= z_crit
    mix_on = abs(row["mix_effect"]) >= 0.25 * change and abs(row["z_mix"]) >= z_crit
    if rate_on and mix_on:
        return "both"
    if mix_on:
        return "mix"
    if rate_on:
        return "rate"
    return "rate" if abs(row["rate_effect"]) >= abs(row["mix_effect"]) else "mix"


def localize(cube: Cube, settings: LocalizeSettings | None = None) -> Localization:
    settings = settings or LocalizeSettings()
    stats = segment_stats(cube)
    phi = float(stats.attrs.get("dispersion", 1.0))
    dims = cube.dimensions
    total = stats.loc[stats["depth"] == 0].iloc[0]
    total_change = float(total["change"])
    significant = bool(total["p_value"] < settings.alpha) and abs(total_change) > 0
    if not significant:
        return Localization(stats, total, [], "The change is within noise: no root cause to report.", False)

    keys = [_key(r, dims) for _, r in stats.iterrows()]
    stats = stats.assign(key=keys)
    index = {k: i for i, k in enumerate(keys)}
    sign = np.sign(total_change)
    candidate = (
        (stats["depth"] >= 1)
        & (stats["q_value"] < settings.alpha)
        & (np.sign(stats["change"]) == sign)
        & (stats["share"].abs() >= settings.min_share)
    )
    cand_idx = list(stats.index[candidate])
    effects = {i: effect_of(stats.loc[i], cube.kind, settings.alpha) for i in cand_idx}

    z_crit = sps.norm.isf(settings.alpha / 2)
    # Relation of each candidate to each of its parents, via the parent's rest.
    comp = stats[list(COMPONENTS)]
    relation: dict[tuple[int, int], tuple[str, float]] = {}
    for i in cand_idx:
        key = stats.at[i, "key"]
        for pair in key:
            parent = index.get(key - {pair})
            if parent is None:
                continue
            rest = (comp.loc[parent] - comp.loc[i]).to_frame().T
            if float(rest["base_den"].iloc[0] + rest["cur_den"].iloc[0]) <= 1e-9 * max(
                1.0, float(comp.loc[parent, "base_den"] + comp.loc[parent, "cur_den"])
            ):
                relation[(i, parent)] = ("same", 1.0)
                continue
            rest_stats = describe(rest, total, cube.kind, cube.scale).iloc[0]
            own, own_sd = _intensity(stats.loc[i], cube.kind, effects[i] or "rate")
            other, other_sd = _intensity(rest_stats, cube.kind, effects[i] or "rate")
            other_sd *= np.sqrt(phi)  # describe() is uncalibrated; the stats frame is
            ratio = other / own if np.isfinite(own) and abs(own) > 1e-12 and np.isfinite(other) else 0.0
            # Occam: the candidate is only more specific than its parent if the rest of the parent
            # moved clearly less *and* the difference is beyond noise (a difference-in-differences
            # test between the candidate and the rest); otherwise the simpler parent explains it.
            diff_sd = np.sqrt(own_sd**2 + other_sd**2) if np.isfinite(other_sd) else np.inf
            distinct = np.isfinite(diff_sd) and abs(own - other) >= z_crit * diff_sd
            # A true cause moves all of itself: if the rest of the parent also moved clearly (a
            # significant change in the same direction, of comparable size), the cause is the parent.
            rest_moved = (np.isfinite(other_sd) and other_sd > 0 and abs(other) >= z_crit * other_sd
                          and ratio >= settings.rest_ratio_significant)
            specific = (ratio < settings.rest_ratio and not rest_moved
                        and (distinct or not np.isfinite(diff_sd)))
            relation[(i, parent)] = ("specific" if specific else "over", ratio)

    over = {i for (i, _), (rel, _) in relation.items() if rel in ("over", "same")}
    under: set[int] = set()
    notes: dict[int, list[str]] = {i: [] for i in cand_idx}
    for (child, parent), (rel, _) in relation.items():
        if rel != "specific" or parent not in effects:
            continue
        if abs(stats.at[child, "change"]) >= settings.child_share * abs(stats.at[parent, "change"]):
            under.add(parent)
    # Several specific children along one dimension can jointly replace their parent.
    for parent in cand_idx:
        if parent in under:
            continue
        by_dim: dict[str, float] = {}
        for (child, p), (rel, _) in relation.items():
            if p == parent and rel == "specific" and child not in over:
                extra = next(iter(stats.at[child, "key"] - stats.at[parent, "key"]))
                by_dim[extra[0]] = by_dim.get(extra[0], 0.0) + float(stats.at[child, "change"])
        if any(abs(v) >= 0.8 * abs(stats.at[parent, "change"]) for v in by_dim.values()):
            under.add(parent)

    pool = [i for i in cand_idx if i not in over and i not in under]
    pool.sort(key=lambda i: -abs(stats.at[i, "change"]))

    chosen: list[RootCause] = []
    explained = 0.0
    for i in pool:
        if len(chosen) >= settings.max_causes:
            break
        key = stats.at[i, "key"]
        if any(key <= c.key or c.key <= key for c in chosen):
            continue
        change = float(stats.at[i, "change"])
        # Partial overlap with an already chosen cause: count only the part not yet explained.
        for c in chosen:
            dims_i, dims_c = dict(key), c.segment
            if all(dims_i.get(d, v) == v for d, v in dims_c.items()):
                inter = index.get(key | c.key)
                if inter is not None:
                    change -= float(stats.at[inter, "change"])
        if abs(change) < settings.min_share * abs(total_change) or np.sign(change) != sign:
            continue
        # Stopping rule, per candidate: what this candidate adds beyond the causes already chosen
        # must itself stand out of its own noise (a global residual test would dilute a small,
        # sharp cause in the noise of the whole table).
        z_own = float(stats.at[i, "z"])
        own_sd = abs(float(stats.at[i, "change"]) / z_own) if z_own and np.isfinite(z_own) else 0.0
        if chosen and abs(change) < z_crit * own_sd:
            continue
        row = stats.loc[i]
        if cube.kind == "ratio" and effects[i] == "mix" and any(
            c.row["depth"] == row["depth"] and set(c.segment) == set(dict(key))
            and effect_of(c.row, cube.kind, settings.alpha) == "mix"
            and np.sign(c.row["cur_share"] - c.row["base_share"]) != np.sign(row["cur_share"] - row["base_share"])
            for c in chosen
        ):
            continue  # the other side of a traffic shift already reported
        ratios = [r for (c, _), (_, r) in relation.items() if c == i]
        specificity = float(np.clip(1 - max(ratios), 0, 1)) if ratios else 1.0
        chosen.append(RootCause(dict(sorted(key)), row, specificity, notes[i], change))
        explained += change

    message = (
        f"{len(chosen)} root cause(s) explain {explained / total_change:.0%} of the change."
        if chosen
        else "The change is significant but spread across segments: no single segment explains it."
    )
    return Localization(stats, total, chosen, message, True)
