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
* Benjamini-Hochberg false-discovery control over every segment tested (weighted by segment
  volume, :func:`warehouse_rca.stats.volume_weights`), controlled again over the residuals after
  each pick, and a stopping rule: the greedy selection stops when what is left of the change is
  indistinguishable from noise.

On top of those, for fact tables: a value new in (or gone from) the current period is a cause as
itself, never through its slices; a shift of traffic's consequences (its siblings' and holders'
mix effects) are not causes; additive volume reshuffled between sibling values is not a cause;
causes are picked by strength of evidence and reported by impact; and when every candidate is a
slice of something that moved alike up to the total, the change is global (:func:`spread_message`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from warehouse_rca.cube.plan import COMPONENTS, Cube
from warehouse_rca.stats import DEFF_COLUMNS, describe, segment_stats, weighted_fdr

Key = frozenset[tuple[str, str]]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalizeSettings:
    alpha: float = 0.05  # significance (FDR level for segments, two-sided level for the total)
    min_share: float = 0.02  # smallest share of the total change worth reporting
    # a parent's rest moving at >= this fraction of the candidate's intensity means the
    # candidate is only a slice of a broader cause
    rest_ratio: float = 0.5
    # ... or at >= this fraction when the rest's move is significant
    rest_ratio_significant: float = 0.1
    # a specific child carrying this much of its parent's change replaces it
    child_share: float = 0.5
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
    #: significant, and every sizeable segment moved alike: no segment cause (spread_message)
    global_change: bool = False
    #: the test of "the metric moved" that ``significant`` reports (moved_p_value)
    p_value: float | None = None


def _key(row: pd.Series, dims: tuple[str, ...]) -> Key:
    return frozenset((d, row[d]) for d in dims if row[d] is not None and not pd.isna(row[d]))


def _keys(frame: pd.DataFrame, dims: tuple[str, ...]) -> list[Key]:
    """:func:`_key` of every row at once: one conversion to an object array instead of a Series
    per row and a scalar lookup per cell (slow with Arrow-backed strings)."""
    values = frame[list(dims)].to_numpy(dtype=object)
    missing = pd.isna(values)
    return [frozenset((d, v) for d, v, m in zip(dims, row, miss) if not m)
            for row, miss in zip(values, missing)]


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


def _calibrate(described: pd.DataFrame, phi: float) -> pd.DataFrame:
    """Apply the dispersion factor estimated on the original cube to freshly described rows."""
    root = np.sqrt(phi)
    out = described.copy()
    for col in ("z", "z_rate", "z_mix"):
        out[col] = out[col] / root
    for col in ("rate_intensity_sd", "mix_intensity_sd", "rate_log_change_sd"):
        out[col] = out[col] * root
    return out


def _intensities(frame: pd.DataFrame, kind: str, mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: relative change for its effect type (mix, or rate: on the log scale for rates of
    events) and its standard error."""
    if kind == "ratio":
        val = np.where(mix, frame["mix_intensity"], frame["rate_log_change"])
        sd = np.where(mix, frame["mix_intensity_sd"], frame["rate_log_change_sd"])
    else:
        val, sd = frame["rate_intensity"].to_numpy(), frame["rate_intensity_sd"].to_numpy()
    return np.asarray(val, dtype="float64"), np.asarray(sd, dtype="float64")


def _relations(
    cur: pd.DataFrame, comp: np.ndarray, total: pd.Series, cube: Cube, cands: list[int],
    keys: list[Key], index: dict[Key, int], mix: dict[int, bool], phi: float,
    settings: LocalizeSettings, z_crit: float, deff: dict[str, np.ndarray] | None = None,
) -> list[tuple[int, int, str, float]]:
    """(candidate, parent, relation, rest/own intensity ratio) for every candidate and parent.

    relation: ``same`` (the candidate is its parent), ``over`` (an over-specified slice of the
    parent: the parent's rest moved too) or ``specific`` (it stands out of its parent).
    """
    pairs = [
        (c, index[keys[c] - {pair}])
        for c in cands for pair in keys[c] if keys[c] - {pair} in index
    ]
    # Parents by the data, too: another candidate that holds all of a candidate's rows (a short-
    # haul flight's destination lies inside `distance_band = short`). Against it, the candidate
    # is only a slice when the rest of the holder moved alike.
    den_cols = [COMPONENTS.index("base_den"), COMPONENTS.index("cur_den")]
    size = comp[:, den_cols].sum(axis=1)
    for c in cands:
        for h in cands:
            if h == c or len(keys[h]) == 0 or len(keys[h]) > len(keys[c]) or keys[h] <= keys[c]:
                continue
            inter = index.get(keys[h] | keys[c])
            if (
                inter is not None
                and size[h] > size[c]
                and abs(size[inter] - size[c]) <= 1e-9 * max(1.0, abs(size[c]))
            ):
                pairs.append((c, h))
    if not pairs:
        return []
    child = np.array([c for c, _ in pairs])
    parent = np.array([p for _, p in pairs])
    rest = pd.DataFrame(comp[parent] - comp[child], columns=list(COMPONENTS))
    if deff is not None:
        # The rest of a parent: the parent's day-to-day noise, in proportion to the rest's size.
        den = COMPONENTS.index("base_den")
        part = np.clip(np.divide(rest["base_den"].to_numpy(), comp[parent, den],
                                 out=np.ones(len(rest)), where=comp[parent, den] > 0), 0.0, 1.0)
        for name, f in deff.items():
            rest[name] = 1 + (f[parent] - 1) * part
    rest_stats = _calibrate(describe(rest, total, cube.kind, cube.scale), phi)
    is_mix = np.array([mix[c] for c in child])
    own, own_sd = _intensities(cur.iloc[child].reset_index(drop=True), cube.kind, is_mix)
    other, other_sd = _intensities(rest_stats, cube.kind, is_mix)
    if cube.kind != "ratio":
        # A sum is rows x value per row. Where the candidate's change is one of value per row
        # (its flights delayed, not cancelled), the rest of its parent is judged on that too:
        # a slice along a dimension the weather reshuffles (visibility = clear holds 205 of an
        # evening's 211 flights in one week, 190 of 214 in the other) changes its rest's volume,
        # which says nothing about whether the rest's flights were delayed alike.
        valued = _value_led(comp[child], cube.scale)
        if valued.any():
            shift, shift_sd = _mean_shifts(comp[child])
            rest_shift, rest_shift_sd = _mean_shifts(comp[parent] - comp[child])
            own = np.where(valued, shift, own)
            own_sd = np.where(valued, shift_sd, own_sd)
            other = np.where(valued, rest_shift, other)
            other_sd = np.where(valued, rest_shift_sd, other_sd)
    else:
        valued = np.zeros(len(pairs), dtype=bool)
    rest_moves = rest_stats["change"].to_numpy(dtype="float64")
    rest_z = np.abs(np.nan_to_num(rest_stats["z"].to_numpy(dtype="float64")))
    support_parent = (
        comp[parent, COMPONENTS.index("base_den")] + comp[parent, COMPONENTS.index("cur_den")]
    )
    support_rest = rest["base_den"].to_numpy() + rest["cur_den"].to_numpy()
    one_sided = np.minimum(rest["base_den"].to_numpy(), rest["cur_den"].to_numpy()) <= 1e-12
    base_den, cur_den = COMPONENTS.index("base_den"), COMPONENTS.index("cur_den")
    change = cur["change"].to_numpy(dtype="float64")
    out = []
    for j, (c, p) in enumerate(pairs):
        # A slice holding all but a sliver of its parent's rows, the rest seen in one period only,
        # describes the same rows with one dimension more (an airport's afternoon flights on one
        # plane type, all in clear weather but five of the baseline's): nothing tells the slice
        # from its parent, and the simpler one is reported. (A sliver seen in both periods is
        # evidence: a bitrate's peer-to-peer sessions failing where the few others did not.)
        if support_rest[j] <= 1e-9 * max(1.0, abs(support_parent[j])) or (
                one_sided[j] and support_rest[j] <= NEAR_SAME * abs(support_parent[j])):
            out.append((c, p, "same", 1.0))
            continue
        offset = REST_OFFSET if len(keys[p]) > 0 else ROOT_OFFSET
        offsets = (cube.kind != "ratio" and not valued[j]
                   and np.sign(rest_moves[j]) == -np.sign(change[c])
                   and abs(rest_moves[j]) >= offset * abs(change[c]))
        # A value new in the current period (or gone from it) is a cause as itself: its slices
        # are new too, so they defer to it; against a parent that existed before, it stands out
        # -- unless, for a sum, its volume came out of the rest of that parent (17 flights of a
        # carrier at an airport flown on other planes, 321 -> 304 on the usual ones): a
        # re-labelling, however few rows it moved.
        empty = next((k for k in (base_den, cur_den) if abs(comp[c, k]) <= 1e-12), None)
        if empty is not None:
            parent_empty = abs(comp[p, empty]) <= 1e-12
            stands = not parent_empty and not offsets
            out.append((c, p, "specific" if stands else "over", float(not stands)))
            continue
        ok = np.isfinite(own[j]) and abs(own[j]) > 1e-12 and np.isfinite(other[j])
        ratio = other[j] / own[j] if ok else 0.0
        diff_sd = np.hypot(own_sd[j], other_sd[j])
        # Occam: the candidate is only more specific than its parent if the rest of the parent
        # moved clearly less *and* the difference is beyond noise (a difference-in-differences
        # test between candidate and rest); otherwise the simpler parent explains it.
        distinct = not np.isfinite(diff_sd) or abs(own[j] - other[j]) >= z_crit * diff_sd
        # A true cause moves all of itself: if the rest of the parent also moved clearly (a
        # significant change in the same direction, of comparable size), the cause is the parent.
        # (Not against the root: "everything else" also carries every other cause's effect.)
        rest_moved = (len(keys[p]) > 0 and np.isfinite(other_sd[j]) and other_sd[j] > 0
                      and abs(other[j]) >= z_crit * other_sd[j]
                      and ratio >= settings.rest_ratio_significant)
        # Too few events in the rest to tell its move from the candidate's (1 -> 2 cancellations
        # beside the candidate's 1 -> 31): the candidate stands when its parent's change is
        # concentrated in it, the rest a sizeable part of the parent's rows (a quarter at least:
        # a slice along a value that holds nearly every row, the clear weather, carries nearly all
        # of anything) with at most half its share of them in the change. Not against the root:
        # the rest of everything is never too small to tell, and a segment holding most of the
        # rows (72% of the flights) carries most of any change.
        rest_rows = support_rest[j] / support_parent[j]
        rest_change = 1 - change[c] / change[p] if abs(change[p]) > 0 else 1.0
        rest_quiet = not (np.isfinite(other_sd[j]) and other_sd[j] > 0
                          and abs(other[j]) >= z_crit * other_sd[j])
        carries = (len(keys[p]) > 0 and rest_quiet and rest_rows >= REST_PART
                   and np.sign(change[c]) == np.sign(change[p])
                   and rest_change <= 0.5 * rest_rows)
        specific = ratio < settings.rest_ratio and not rest_moved and (distinct or carries)
        # Volume reshuffled inside a parent (an evening's flights re-labelled from clear to medium
        # visibility by the weather: +288 there, -424 in the rest of the evening) is not a cause
        # of a sum: the rest of the parent moved the other way by at least half as much, beyond
        # noise (a single sibling value that offsets it is :func:`_reshuffled`).
        # Against the root, whose rest also holds every other cause, only a rest that cancels
        # the candidate nearly whole is a reshuffle (clear visibility -936 flights, the other
        # visibilities +946); offsetting causes cancel each other in part.
        if offsets and rest_z[j] >= z_crit:
            specific = False
        out.append((c, p, "specific" if specific else "over", float(ratio)))
    return out


#: A candidate whose parent's change is concentrated in it stands out of it when the rest is too
#: small to tell apart, if the rest holds at least this part of the parent's rows
#: (:func:`_relations`).
REST_PART = 0.25
#: An additive candidate is volume reshuffled inside its parent when the parent's rest moved the
#: other way by at least this fraction of the candidate's change (beyond noise); inside the root,
#: by at least ROOT_OFFSET of it (:func:`_relations`).
REST_OFFSET, ROOT_OFFSET = 0.5, 0.9
#: A candidate is its parent when the parent's rest holds at most this part of the parent's rows
#: (both periods) and is seen in one period only (:func:`_relations`).
NEAR_SAME = 0.05


def _mean_shifts(comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of additive components: the change of the mean value per row between periods and
    its standard error (from the rows' sums of squares; the mean does not depend on the periods'
    lengths, so the baseline is not scaled)."""
    col = {name: i for i, name in enumerate(COMPONENTS)}
    out, var = [], []
    for side in ("base", "cur"):
        n, s, ss = (comp[:, col[f"{side}_{k}"]] for k in ("rows", "num", "nn"))
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, s / np.where(n > 0, n, 1.0), np.nan)
            spread = np.where(n > 1, np.maximum(ss / np.where(n > 0, n, 1.0) - mean**2, 0.0)
                              * n / np.where(n > 1, n - 1, 1.0), np.inf)
            var.append(np.where(n > 0, spread / np.where(n > 0, n, 1.0), np.inf))
        out.append(mean)
    return out[1] - out[0], np.sqrt(var[0] + var[1])


def _value_led(comp: np.ndarray, scale: float) -> np.ndarray:
    """Additive components whose change is mostly one of value per row rather than of rows."""
    col = {name: i for i, name in enumerate(COMPONENTS)}
    nb, nc = scale * comp[:, col["base_rows"]], comp[:, col["cur_rows"]]
    sb, sc = scale * comp[:, col["base_num"]], comp[:, col["cur_num"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        mb = np.where(nb > 0, sb / np.where(nb > 0, nb, 1.0), 0.0)
        mc = np.where(nc > 0, sc / np.where(nc > 0, nc, 1.0), 0.0)
    value, volume = nc * (mc - mb), (nc - nb) * mb
    return (nb > 0) & (nc > 0) & (np.abs(value) > np.abs(volume))


def _reshuffled(cands: list[int], keys: list[Key], siblings: dict[tuple[Key, str], list[int]],
                change: np.ndarray, z: np.ndarray, z_crit: float) -> set[int]:
    """Additive candidates that are one side of a reshuffle: a sibling (another value of one of
    its dimensions, within the same parent) moved the other way by at least half as much, beyond
    noise. Volume that moved between values (flights re-labelled from clear to medium visibility
    by the weather, orders between two stores) is not a cause of the total: what moved it is
    what is left once the reshuffle is netted out."""
    out = set()
    for c in cands:
        for d, v in keys[c]:
            for s in siblings.get((keys[c] - {(d, v)}, d), ()):
                if (s != c and np.sign(change[s]) == -np.sign(change[c])
                        and abs(change[s]) >= 0.5 * abs(change[c]) and abs(z[s]) >= z_crit):
                    out.add(c)
                    break
            if c in out:
                break
    return out


def sibling_of(keys: list[Key], cause: Key) -> np.ndarray:
    """Segments holding another value of one of ``cause``'s dimensions (disjoint from it)."""
    own = dict(cause)
    return np.array([any(d in own and v != own[d] for d, v in k) for k in keys], dtype=bool)


def holders_of(keys: list[Key], index: dict[Key, int], comp: np.ndarray, cause: int) -> np.ndarray:
    """Segments other than ``cause``'s ancestors whose rows hold all of its rows (by the data, not
    by name: ``device = iOS`` holds every row of ``app_version = 8.5`` when 8.5 runs on iOS
    only)."""
    den = [COMPONENTS.index("base_den"), COMPONENTS.index("cur_den")]
    size = comp[cause, den].sum()
    out = np.zeros(len(keys), dtype=bool)
    for t, tk in enumerate(keys):
        inter = index.get(tk | keys[cause])
        if tk and not tk <= keys[cause] and inter is not None:
            out[t] = abs(comp[inter, den].sum() - size) <= 1e-9 * max(1.0, abs(size))
    return out


def _remove_effect(comp: np.ndarray, keys: list[Key], index: dict[Key, int], cause: int,
                   kind: str, scale: float, effect: str | None,
                   stale: np.ndarray | None = None) -> np.ndarray:
    """Explain-and-remove (HotSpot, RiskLoc): take the chosen cause's effect out of every segment
    that overlaps it, so the next pick is judged on what is still unexplained.

    Returns a mask of segments that overlap the cause but whose intersection with it is deeper
    than the cube, or itself ``stale`` (left uncorrected by an earlier removal): they cannot be
    corrected, so they can no longer be judged as causes."""
    unknown = np.zeros(len(keys), dtype=bool)
    ck = keys[cause]
    col = {name: i for i, name in enumerate(COMPONENTS)}
    inter_rows, target_rows = [], []
    for t, tk in enumerate(keys):
        dims_t = dict(tk)
        if any(dims_t.get(d, v) != v for d, v in ck):
            continue  # disjoint: conflicting values on a shared dimension
        inter = index.get(tk | ck)
        if inter is not None and (stale is None or not stale[inter]):
            inter_rows.append(inter)
            target_rows.append(t)
        else:
            unknown[t] = True
    if not target_rows:
        return unknown
    part = comp[inter_rows].copy()
    t_idx = np.array(target_rows)
    if kind == "ratio":
        base_rate = np.divide(part[:, col["base_num"]], part[:, col["base_den"]],
                              out=np.zeros(len(part)), where=part[:, col["base_den"]] > 0)
        d_num = part[:, col["cur_num"]] - base_rate * part[:, col["cur_den"]]
        d_den = np.zeros(len(part))
        if effect in ("mix", "both"):
            tot = comp[index[frozenset()]]
            share_b = part[:, col["base_den"]] / max(tot[col["base_den"]], 1e-300)
            d_den = part[:, col["cur_den"]] - share_b * tot[col["cur_den"]]
            d_num = d_num + d_den * base_rate
        comp[t_idx, col["cur_num"]] -= d_num
        comp[t_idx, col["cur_den"]] -= d_den
    else:
        comp[t_idx, col["cur_num"]] -= part[:, col["cur_num"]] - scale * part[:, col["base_num"]]
    return unknown


def localize(cube: Cube, settings: LocalizeSettings | None = None) -> Localization:
    """Pick the root-cause set greedily, explaining and removing one cause at a time."""
    settings = settings or LocalizeSettings()
    stats = segment_stats(cube)
    phi = float(stats.attrs.get("dispersion", 1.0))
    dims = cube.dimensions
    total = stats.loc[stats["depth"] == 0].iloc[0]
    total_change = float(total["change"])
    # FDR control across every segment tested on the original cube gates who may be a cause.
    eligible = ((stats["depth"] >= 1) & (stats["q_value"] < settings.alpha)).to_numpy().copy()
    if _log.isEnabledFor(logging.DEBUG):
        top = stats.loc[stats["depth"] >= 1].assign(az=lambda f: f["z"].abs()).nlargest(8, "az")
        _log.debug("dispersion %.3g; total z %.2f; %d eligible; strongest %s", phi,
                   float(stats.loc[stats["depth"] == 0, "z"].iloc[0]), int(eligible.sum()),
                   [({d: r[d] for d in dims if pd.notna(r[d])}, round(r["z"], 1),
                     f"{r['q_value']:.2g}")
                    for _, r in top.iterrows()])
    total_moved = bool(total["p_value"] < settings.alpha)
    # One answer: the run is significant exactly when its test of "the metric moved" is, and
    # without significance there is no cause.
    p_moved = moved_p_value(stats)
    if not p_moved < settings.alpha:
        return Localization(stats, total, [], WITHIN_NOISE, False, p_value=p_moved)

    keys = _keys(stats, dims)
    stats = stats.assign(key=keys)
    index = {k: i for i, k in enumerate(keys)}
    siblings: dict[tuple[Key, str], list[int]] = {}
    for i, k in enumerate(keys):
        for d, v in k:
            siblings.setdefault((k - {(d, v)}, d), []).append(i)
    root_idx = index[frozenset()]
    if total_moved:
        sign = np.sign(total_change)
        reference = abs(total_change)
    else:  # a sharp break in a segment that the total's noise hides: its direction
        z = stats["z"].where(eligible, 0.0).abs()
        sign = np.sign(stats.at[int(z.idxmax()), "change"])
        # The total's change is noise here, so shares of it mean nothing: measure a candidate
        # against the largest significant move in the direction of the evidence instead.
        moved = stats["change"].where(eligible & (np.sign(stats["change"]) == sign), 0.0).abs()
        reference = float(moved.max())
    z_crit = sps.norm.isf(settings.alpha / 2)
    comp = stats[list(COMPONENTS)].to_numpy(dtype="float64").copy()
    tested = (stats["depth"] >= 1).to_numpy().copy()
    mix_led = (np.abs(stats["mix_effect"].to_numpy(dtype="float64"))
               > np.abs(stats["rate_effect"].to_numpy(dtype="float64")))
    weights = stats["fdr_weight"].to_numpy(dtype="float64")
    stale = np.zeros(len(stats), dtype=bool)
    deff = {c: stats[c].to_numpy(dtype="float64") for c in DEFF_COLUMNS}

    chosen: list[RootCause] = []
    picked: list[tuple[int, str | None]] = []
    for _ in range(settings.max_causes):
        frame = pd.DataFrame(comp, columns=list(COMPONENTS)).assign(**deff)
        cur = _calibrate(describe(frame, frame.iloc[root_idx], cube.kind, cube.scale), phi)
        change = cur["change"].to_numpy()
        # What a candidate adds beyond the causes already chosen must itself stand out of its
        # noise, with the false-discovery rate controlled again over what is left: on the original
        # cube the many overlaps of a large cause are all significant, which makes the first
        # q-values lenient for everything else (a global residual test would instead drown a
        # small, sharp cause). The family: the segments whose residual is known (an overlap of a
        # chosen cause deeper than the cube is still its uncorrected self).
        residual_p = 2 * sps.norm.sf(np.abs(np.nan_to_num(cur["z"].to_numpy(dtype="float64"))))
        residual_q = weighted_fdr(residual_p, weights, tested)
        # Against the change: a segment whose own rate (its value, for additive metrics) moved
        # the other way offsets part of it and is a cause too; a share of traffic that merely
        # shrank or grew because another segment moved is not.
        along = np.sign(change) == sign
        if cube.kind == "ratio":
            rate = cur["rate_effect"].to_numpy(dtype="float64")
            against = ((np.abs(cur["z_rate"].to_numpy(dtype="float64")) >= z_crit)
                       & (np.abs(rate) >= 0.75 * np.abs(change)))
        else:
            against = np.ones(len(change), dtype=bool)
        cands = [
            int(i) for i in np.flatnonzero(
                eligible
                & (along | against)
                & (np.abs(change) >= settings.min_share * reference)
                & (residual_q < settings.alpha)
            )
            if not any(keys[i] <= c.key or c.key <= keys[i] for c in chosen)
        ]
        if not cands:
            break
        effects = {i: effect_of(cur.iloc[i], cube.kind, settings.alpha) for i in cands}
        mix = {i: effects[i] == "mix" for i in cands}
        rel = _relations(cur, comp, frame.iloc[root_idx], cube, cands, keys, index, mix, phi,
                         settings, z_crit, deff)
        over = {c for c, _, r, _ in rel if r in ("over", "same")}
        under: set[int] = set()
        by_parent_dim: dict[tuple[int, str], float] = {}
        for c, p, r, ratio in rel:
            if (r == "over" and len(keys[p]) > 0 and np.sign(change[c]) == np.sign(change[p])
                    and abs(change[c]) >= abs(change[p]) and ratio < settings.rest_ratio):
                # A slice carrying all of its parent's change (the rest of the parent stayed or
                # went the other way) explains it better, however noisy that rest is: Desktop
                # rather than app_version = web (Desktop and tablets) when only Desktop moved.
                # Not when the rest's own rate moved alike and only its shrinking share pushed
                # back (an engine type's late flights in clear weather and in fog both doubled,
                # the foggy flights fewer this week): the parent is the cause.
                under.add(p)
            if r != "specific":
                continue
            if abs(change[c]) >= settings.child_share * abs(change[p]):
                under.add(p)
            if c not in over:
                extra_dim = next(iter(keys[c] - keys[p]))[0]
                by_parent_dim[(p, extra_dim)] = by_parent_dim.get((p, extra_dim), 0.0) + change[c]
        for (p, _), summed in by_parent_dim.items():
            if abs(summed) >= 0.8 * abs(change[p]):
                under.add(p)
        if cube.kind != "ratio":
            over |= _reshuffled(cands, keys, siblings, change, cur["z"].to_numpy(), z_crit)
        pool = [i for i in cands if i not in over and i not in under]
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("step %d: %d candidates; pool %s; over %s; under %s", len(chosen) + 1,
                       len(cands), [dict(keys[i]) for i in pool][:8],
                       [dict(keys[i]) for i in over][:8], [dict(keys[i]) for i in under][:8])
        if not pool:  # every candidate defers to another: keep the ones not contradicted by data
            pool = [i for i in cands if i not in over]
            # Every candidate is a slice of something broader that moved alike: when that is the
            # total itself (the rest of the data moved as much), the change has no segment cause.
            if chosen or not pool:
                break
        # The strongest evidence first (a sharp -72% of one carrier before the -16% of a large,
        # weather-shuffled visibility value): explaining it first is what keeps a broad
        # segment that merely holds part of it from being taken for the cause.
        zres = np.abs(np.nan_to_num(cur["z"].to_numpy(dtype="float64")))
        best = max(pool, key=lambda i: (bool(along[i]), zres[i]))
        ratios = [r for c, _, _, r in rel if c == best]
        specificity = float(np.clip(1 - max(ratios), 0, 1)) if ratios else 1.0
        row = stats.loc[best].copy()
        chosen.append(RootCause(
            {d: v for d, v in sorted(keys[best], key=lambda kv: dims.index(kv[0]))},
            row, specificity, [], float(change[best]),
        ))
        picked.append((best, effects[best]))
        if cube.kind == "ratio" and effects[best] in ("mix", "both"):
            # Shares add up to one: when a value's share of traffic moved (a launch, a campaign),
            # its siblings' shares moved the other way, and the segments that hold all of it (the
            # device a new app version runs on) lose that traffic once it is removed. Their mix
            # effects are its consequence, not causes of their own.
            eligible &= ~((sibling_of(keys, keys[best]) | holders_of(keys, index, comp, best))
                          & mix_led)
        unknown = _remove_effect(comp, keys, index, best, cube.kind, cube.scale, effects[best],
                                 stale)
        stale |= unknown
        eligible &= ~unknown
        tested &= ~unknown
        tested &= np.array([not (k <= keys[best] or keys[best] <= k) for k in keys])

    if not chosen and not total_moved:
        return Localization(stats, total, [], OFFSETTING, True, p_value=p_moved)
    if not chosen:
        message, evenly = spread_message(stats, dims, cube.kind)
        return Localization(stats, total, [], message, True, global_change=evenly, p_value=p_moved)
    # Picked by strength of evidence, reported by impact: each cause's contribution is what it
    # explains taken largest first (an overlap of two causes counts for the larger one, whatever
    # the order they were found in), then what offsets the change.
    order = sorted(range(len(picked)), key=lambda j: -abs(float(stats.at[picked[j][0], "change"])))
    fresh = stats[list(COMPONENTS)].to_numpy(dtype="float64").copy()
    for j in order:
        i, effect = picked[j]
        part = describe(pd.DataFrame(fresh[[i, root_idx]], columns=list(COMPONENTS)),
                        pd.Series(fresh[root_idx], index=list(COMPONENTS)), cube.kind, cube.scale)
        chosen[j].explained_change = float(part["change"].iloc[0])
        _remove_effect(fresh, keys, index, i, cube.kind, cube.scale, effect)
    explained = sum(c.explained_change for c in chosen)
    chosen.sort(key=lambda c: (np.sign(c.explained_change) != sign, -abs(c.explained_change)))
    message = (f"{len(chosen)} root cause(s) explain {explained / total_change:.0%} of the change."
               if total_change else f"{len(chosen)} root cause(s) offset one another.")
    return Localization(stats, total, chosen, message, True, p_value=p_moved)


def moved_p_value(stats: pd.DataFrame) -> float:
    """The test of "the metric moved": the total's change, or a segment's beyond what the scan of
    every segment finds by chance (the smallest weighted-FDR q-value, i.e. Simes' test; Bonferroni
    over the segments tested when they have none). A sharp break in a small
    segment is real even when the total's noise hides it; a null week with a few one-event
    segments is not."""
    total_p = float(stats.loc[stats["depth"] == 0, "p_value"].iloc[0])
    if "q_value" in stats:
        # Simes' test of the global null through the segments' weighted FDR: the smallest
        # q-value, so the run is significant exactly when some segment passes the FDR control
        # that makes it a candidate (volume-weighted, like it).
        seg = stats.loc[stats["depth"] >= 1, "q_value"].to_numpy(dtype="float64")
        seg = seg[np.isfinite(seg)]
        scan = float(seg.min()) if len(seg) else 1.0
    else:
        seg = stats.loc[stats["depth"] >= 1, "p_value"].to_numpy(dtype="float64")
        seg = seg[np.isfinite(seg)]
        scan = min(1.0, len(seg) * float(seg.min())) if len(seg) else 1.0
    return float(min(total_p if np.isfinite(total_p) else 1.0, scan))


WITHIN_NOISE = "The change is within noise: no root cause to report."
OFFSETTING = ("Segments moved, but they offset one another and the total is within noise: no "
              "root cause to report.")


def spread_message(stats: pd.DataFrame, dims: tuple[str, ...], kind: str,
                   min_support: float = 0.02, most: float = 0.9) -> tuple[str, bool]:
    """Why a significant change has no segment cause, and whether it is global.

    It is *global* when, in every dimension, the sizeable values (at least ``min_support`` of the
    rows) that moved in the total's direction hold at least ``most`` of those values' rows: "The
    drop is global, spread evenly across segments: every origin and carrier fell 65-79%."
    Otherwise the change is spread unevenly, with no segment standing out."""
    total = stats.loc[stats["depth"] == 0].iloc[0]
    total_rel = float(total["rate_intensity"])
    if not (np.isfinite(total_rel) and abs(total_rel) > 0):
        return SPREAD, False
    direction = "increase" if float(total["change"]) > 0 else "drop"
    verb = "rose" if float(total["change"]) > 0 else "fell"
    single = stats[(stats["depth"] == 1) & (stats["support"] >= min_support)]
    moved: list[tuple[str, int]] = []
    quoted_rel, quoted_support, every = [], [], True
    for name in dims:
        own = single[single[name].notna() & (single[name].astype(str) != "(other)")]
        rel = np.nan_to_num(own["rate_intensity"].to_numpy(dtype="float64"))
        support = own["support"].to_numpy(dtype="float64")
        if len(rel) < 2:
            continue
        along = np.sign(rel) == np.sign(total_rel)
        if support[along].sum() < most * support.sum():
            return SPREAD, False
        every &= bool(along.all())
        moved.append((name, len(rel)))
        # the range quoted: the larger values' (noise spreads the small ones)
        large = along & (support >= 2.5 * min_support)
        quoted = large if large.any() else along
        quoted_rel.append(np.abs(rel[quoted]))
        quoted_support.append(support[quoted])
    if not moved:
        return SPREAD, False
    names = [n for n, _ in sorted(moved, key=lambda m: -m[1])[:2]]
    rel_all, weight = np.concatenate(quoted_rel), np.concatenate(quoted_support)
    lo, hi = float(rel_all.min()), float(rel_all.max())
    what = ("every " if every else "nearly every ") + " and ".join(names)
    unit = " in rate" if kind == "ratio" else ""
    if hi <= EVEN_SPAN * lo:
        message = (f"The {direction} is global, spread evenly across segments: {what} {verb} "
                   f"{_span(lo, hi)}{unit}. No segment explains it.")
    else:
        # Not even: values moved alike in direction, by amounts that differ widely (a sum of
        # minutes of delay near zero in one airport's baseline rises 1,458%). Quote the middle
        # half of the rows, then the whole range.
        order = np.argsort(rel_all)
        ranked, cum = rel_all[order], np.cumsum(weight[order]) / weight.sum()
        q1 = float(ranked[int(np.searchsorted(cum, 0.25))])
        q3 = float(ranked[min(int(np.searchsorted(cum, 0.75)), len(ranked) - 1)])
        message = (f"The {direction} is global, though not even: {what} {verb}, by "
                   f"{_span(q1, q3)}{unit} for the middle half of the rows ({_span(lo, hi)} in "
                   f"all). No segment explains it.")
    return message, True


#: A global change is "spread evenly" when the largest move quoted is at most this many times
#: the smallest (:func:`spread_message`).
EVEN_SPAN = 3.0


def _span(lo: float, hi: float) -> str:
    return f"{lo:,.0%}" if round(lo * 100) == round(hi * 100) else f"{lo:,.0%}-{hi:,.0%}"


SPREAD = "The change is significant but spread across segments: no single segment explains it."
