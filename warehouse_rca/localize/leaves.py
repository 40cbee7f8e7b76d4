"""Leaf evidence for additive metrics: the risk-and-ripple search over leaves classified in
the warehouse (sql_templates/leaf_cube.sql.j2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse_rca.cube.plan import COMPONENTS, Cube
from warehouse_rca.localize.segments import (
    WITHIN_NOISE,
    Key,
    Localization,
    RootCause,
    _keys,
    spread_message,
)
from warehouse_rca.stats import segment_stats

# --------------------------------------------------------------------------- leaf evidence
#
# Additive metrics, where every leaf (finest combination of all dimensions) carries its own
# expected value, get a sharper test than segment-level statistics: the leaf-evidence cube
# (sql_templates/leaf_cube.sql.j2) classifies every leaf as abnormal or normal inside the
# warehouse and returns per segment the weighted abnormal and normal leaf counts and the moments
# of a ripple-uniformity test. The selection below ("risk-and-ripple search") draws on:
#
# * RiskLoc (Kalander, 2022): the symmetric-tail noise cutoff, weighted abnormal/normal leaves,
#   a *high-risk* score (share of abnormal weight, with a one-leaf pseudo-count so that a lone
#   leaf needs a strong move), search by layer from the most general segments down, and
#   explain-and-remove. Unlike RiskLoc, the search does not stop once the abnormal change left
#   falls under 2 % of the start: it stops when no segment left holds more than noise
#   (beyond_noise), so small causes next to large ones are still found.
# * Squeeze's generalised ripple effect (Li et al., ISSRE 2019) and HotSpot's ripple effect (Sun
#   et al., 2018): a true cause moves all its leaves by one common relative amount, so the spread
#   of its leaves' deviations around their mean is noise only, while a segment that mixes moved
#   and unmoved parts has a bimodal, wide spread. The *ripple residual* sqrt(var(dev) / mean(dev^2))
#   is exact from three sums the warehouse returns (count, sum, sum of squares of the bounded
#   symmetric deviations): 0 for a uniform move, about 0.7 for a half-moved mixture. It plays the
#   role of RiskLoc's low-risk score, computed without a second pass over the leaves.
# * Adtributor's explanatory power (Bhagwan et al., NSDI 2014): among qualifying segments of a
#   layer, the one explaining most of the abnormal change goes first (LeafSettings.min_share can
#   require a minimum share of it; by default none is, see beyond_noise).
# * Evidence beyond noise (beyond_noise): a segment must hold two or more abnormal leaves, or one
#   leaf past the noise's *reach* -- the cutoff extrapolated to the level noise passes among all
#   leaves only with a small probability (an exponential-tail extrapolation from the k-th
#   extreme, the peaks-over-threshold reasoning of extreme-value statistics).

LEAF_COLUMNS = ("leaves", "ab_leaves", "ab_w", "nor_w", "ab_change", "dev_n", "dev_sum", "dev_sq",
                "far_leaves")


@dataclass(frozen=True)
class LeafSettings:
    risk: float = 0.5  # high-risk minus ripple residual needed to call a segment a cause
    # Smallest share of the abnormal change a cause must explain. RiskLoc and Squeeze stop at 2 %,
    # which drops every small cause that occurs alongside a large one (most misses on set S: a
    # 3-leaf cause next to a 4,800-leaf one explains 0.1 %). Whether a segment is more than noise is
    # judged by its leaves instead (beyond_noise); raise this only to hide small causes on purpose.
    min_share: float = 0.0
    pseudo_count: float = 0.5  # normal weight assumed in every segment (Laplace-style prior)
    max_causes: int = 10


def ripple_residual(n: np.ndarray, total: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """sqrt(var / mean square) of the leaf deviations of each segment, from their count, sum and
    sum of squares: 0 when every leaf moved alike (one cause), near 1 for a mixture."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_sq = np.where(n > 0, squares / np.where(n > 0, n, 1.0), 0.0)
        mean = np.where(n > 0, total / np.where(n > 0, n, 1.0), 0.0)
        share = np.where(
            mean_sq > 1e-12, 1.0 - mean**2 / np.where(mean_sq > 1e-12, mean_sq, 1.0), 0.0
        )
    return np.sqrt(np.clip(share, 0.0, 1.0))


def beyond_noise(ev: np.ndarray) -> np.ndarray:
    """Per row of the evidence matrix: does the segment hold more than noise alone puts there?

    The cutoff lets about K_EXTREME - 1 noise leaves through on the incident's side (as many as on
    the other side, by construction), scattered at random over the cube. So a segment whose whole
    evidence is *one* leaf just past the cutoff is indistinguishable from noise, however large its
    share of a small abnormal change (with a noise-level incident, these were the false alarms of
    the former 2 % share rule). It counts when

    * it holds two or more abnormal leaves (and the risk score, checked by the caller, says they
      dominate it): noise leaves are too few and too scattered to fall together into one small
      segment (a support count in the spirit of Squeeze's deviation clustering / HotSpot's
      potential score: abnormal leaves that group into a segment are a cause, lone ones are not); or
    * one of its abnormal leaves is *far*, beyond the noise's reach (leaf_cube.sql.j2: the
      level noise passes anywhere among all leaves only with probability search.REACH_ALPHA,
      extrapolated from RiskLoc's k-th-extreme cutoff), so a single-leaf cause (set L's causes are
      all single leaves) is reported however small its share.
    """
    col = {c: i for i, c in enumerate(LEAF_COLUMNS)}
    return (ev[:, col["ab_leaves"]] >= 2) | (ev[:, col["far_leaves"]] >= 1)


def risk_scores(ev: np.ndarray, pseudo_count: float) -> tuple[np.ndarray, np.ndarray]:
    """(risk, high-risk) per row of the evidence matrix (columns as LEAF_COLUMNS)."""
    col = {c: i for i, c in enumerate(LEAF_COLUMNS)}
    ab, nor = ev[:, col["ab_w"]], ev[:, col["nor_w"]]
    high = ab / (ab + nor + pseudo_count)
    low = ripple_residual(ev[:, col["dev_n"]], ev[:, col["dev_sum"]], ev[:, col["dev_sq"]])
    return high - low, high


def localize_leaves(cube: Cube, settings: LeafSettings | None = None,
                    alpha: float = 0.05) -> Localization:
    """Risk-and-ripple search over a leaf-evidence cube (see the section comment above)."""
    settings = settings or LeafSettings()
    stats = segment_stats(cube)
    dims = cube.dimensions
    frame = cube.frame
    total = stats.loc[stats["depth"] == 0].iloc[0]
    root_idx = int(np.flatnonzero((frame["depth"] == 0).to_numpy())[0])
    ev = frame[list(LEAF_COLUMNS)].to_numpy(dtype="float64").copy()
    comp = frame[list(COMPONENTS)].to_numpy(dtype="float64").copy()
    col = {c: i for i, c in enumerate(LEAF_COLUMNS)}
    side = float(frame["side"].iloc[root_idx]) if "side" in frame else 1.0
    start = side * ev[root_idx, col["ab_change"]]
    # Leaf evidence is its own test (abnormal leaves beyond the noise's reach); the segment
    # statistics of a leaf-evidence cube hold only segments with an abnormal leaf, so they cannot
    # measure the noise. The run is significant when the total moved or a cause stands out of it.
    total_p = float(total["p_value"])
    if ev[root_idx, col["ab_leaves"]] <= 0 or start <= 0:
        return Localization(stats, total, [], WITHIN_NOISE, False, p_value=total_p)

    keys = _keys(frame, dims)
    index = {k: i for i, k in enumerate(keys)}
    depth = frame["depth"].to_numpy()
    alive = np.ones(len(keys), dtype=bool)
    chosen: list[RootCause] = []
    for _ in range(settings.max_causes):
        left = side * ev[root_idx, col["ab_change"]]
        if left <= settings.min_share * start:
            break  # nothing (or too little to report) is left of the abnormal change
        risk, high = risk_scores(ev, settings.pseudo_count)
        ep = side * ev[:, col["ab_change"]]
        ok = (alive & (depth >= 1) & (ev[:, col["ab_leaves"]] > 0) & (risk >= settings.risk)
              & (ep > settings.min_share * start) & beyond_noise(ev))
        if not ok.any():
            break
        # Occam: the most general layer holding a qualifying segment, then the largest
        # explanatory power within it.
        layer = depth[ok].min()
        pool = np.flatnonzero(ok & (depth == layer))
        best = _climb(int(pool[np.argmax(ep[pool])]), ev, keys, index, alive, col)
        row = stats.loc[best].copy()
        contribution = float(comp[best, COMPONENTS.index("cur_num")]
                             - cube.scale * comp[best, COMPONENTS.index("base_num")])
        chosen.append(RootCause(
            {d: v for d, v in sorted(keys[best], key=lambda kv: dims.index(kv[0]))},
            row, float(np.clip(1 - ripple_residual(
                ev[best:best + 1, col["dev_n"]], ev[best:best + 1, col["dev_sum"]],
                ev[best:best + 1, col["dev_sq"]])[0], 0, 1)),
            [f"risk {risk[best]:.2f}, abnormal share {high[best]:.2f}"], contribution,
        ))
        _remove_leaves(ev, comp, keys, index, best, alive)
    explained = sum(c.explained_change for c in chosen)
    total_change = float(total["change"])
    if not chosen:
        if not total_p < alpha:
            return Localization(stats, total, [], WITHIN_NOISE, False, p_value=total_p)
        message, evenly = spread_message(stats, dims, cube.kind)
        return Localization(stats, total, [], message, True, global_change=evenly, p_value=total_p)
    message = (
        f"{len(chosen)} root cause(s) explain {explained / total_change:.0%} of the change."
        if abs(total_change) > 1e-12 else f"{len(chosen)} root cause(s) found."
    )
    return Localization(stats, total, chosen, message, True, p_value=total_p)


def _climb(best: int, ev: np.ndarray, keys: list[Key], index: dict[Key, int], alive: np.ndarray,
           col: dict[str, int], ratio: float = 0.5) -> int:
    """Generalised ripple effect upwards (Squeeze): a chosen segment is only a slice of a broader
    cause when the rest of a parent (parent minus it) moved the same way, by at least ``ratio`` of
    its own mean leaf deviation. Then the parent is the cause; repeat from there."""
    while True:
        n_c, s_c = ev[best, col["dev_n"]], ev[best, col["dev_sum"]]
        own = s_c / n_c if n_c > 0 else 0.0
        step = None
        for pair in keys[best]:
            p = index.get(keys[best] - {pair})
            if p is None or not alive[p] or not keys[p]:
                continue
            n_r = ev[p, col["dev_n"]] - n_c
            rest = (ev[p, col["dev_sum"]] - s_c) / n_r if n_r > 0 else 0.0
            if own != 0 and rest / own >= ratio and (step is None or rest / own > step[1]):
                step = (p, rest / own)
        if step is None:
            return best
        best = step[0]


def _remove_leaves(ev: np.ndarray, comp: np.ndarray, keys: list[Key], index: dict[Key, int],
                   cause: int, alive: np.ndarray) -> None:
    """Explain-and-remove on the cube (RiskLoc removes the cause's leaves; here every segment loses
    its intersection with the cause). An intersection missing from the cube holds no abnormal leaf
    (the query returns every segment that does, up to its depth), so only its normal leaves stay
    counted: a slight under-estimate of the purity of what overlaps the cause."""
    ck = keys[cause]
    rows, inters, explained = [], [], []
    for t, tk in enumerate(keys):
        if not alive[t]:
            continue
        if ck <= tk:
            explained.append(t)  # the cause itself and its descendants
            continue
        dims_t = dict(tk)
        if any(dims_t.get(d, v) != v for d, v in ck):
            continue
        inter = index.get(tk | ck)
        if inter is not None:
            rows.append(t)
            inters.append(inter)
    if rows:
        r, i = np.array(rows), np.array(inters)
        ev[r] -= ev[i]
        comp[r] -= comp[i]
    if explained:
        gone = np.array(explained)
        alive[gone] = False
        ev[gone] = 0.0
