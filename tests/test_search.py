"""The level-wise search (warehouse_rca.localize.levelwise.level_wise) on DuckDB: the folded second level is
exact where it keeps values, a wide framework combines the dimensions that hold the cause, and
the causal series rolled up to leaves equal the segments' own sums."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tests.test_investigate import BASE, CUR, load, make_sessions, ratio_metric
from warehouse_rca.causal.series import series_sql
from warehouse_rca.cube.plan import (
    COMPONENTS,
    OTHER,
    cube_sql,
    label_cube,
    plan_cube,
    source_expression,
)
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.investigate import investigate
from warehouse_rca.localize.levelwise import (
    DEVIATION_FLOOR,
    combined_values,
    max_dimensions,
    reference_moves,
    select_dimensions,
)
from warehouse_rca.spec.periods import Period


def _zipf(k: int) -> list[float]:
    weights = np.log((np.arange(k) + 2) / (np.arange(k) + 1))
    return list(weights / weights.sum())


def _sessions(rng: np.random.Generator, n: int, rate) -> pd.DataFrame:
    shares = {"device": [0.5, 0.3, 0.2], "product": _zipf(60), "region": [0.4, 0.3, 0.2, 0.1]}
    frame = pd.concat([make_sessions(rng, n, "2026-11-10", shares, lambda r: 0.05),
                       make_sessions(rng, n, "2026-11-17", shares, rate)], ignore_index=True)
    frame.loc[frame.sample(frac=0.01, random_state=1).index, "region"] = None  # NULLs stay a value
    return frame


def test_folded_second_level_is_exact_for_the_values_it_keeps(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(11)
    load(duck, _sessions(rng, 40_000, lambda r: 0.02 if r["device"] == "d1" else 0.05))
    metric = ratio_metric(["device", "product", "region"])
    plan = plan_cube(metric, duck.columns_of(source_expression(metric)), baseline=BASE, current=CUR, max_depth=3)
    first = dataclasses.replace(plan, sets=((), (0,), (1,), (2,)))
    level1 = label_cube(duck.query(cube_sql(first, preaggregate=False)), first)
    # Fold the 60 Zipf products to the 10 most popular; device and region keep every value.
    keep = {"device": None, "product": tuple(f"p{i}" for i in range(10)), "region": None}
    assert "(null)" in set(level1.frame["region"].dropna())
    pairs = ((), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    folded = dataclasses.replace(plan, sets=pairs, keep=tuple(keep[d] for d in plan.dimensions))
    full = dataclasses.replace(plan, sets=pairs, min_support=0.0)
    got = label_cube(duck.query(cube_sql(folded)), folded).frame
    want = label_cube(duck.query(cube_sql(full)), full).frame
    dims = list(plan.dimensions)
    merged = got.merge(want, on=[*dims, "depth"], how="left", suffixes=("", "_want"))
    real = merged[~merged[dims].isin([OTHER]).any(axis=1) & (merged["depth"] >= 2)]
    assert len(real) > 10 and real["base_num_want"].notna().all()
    for c in COMPONENTS:
        assert np.allclose(real[c], real[f"{c}_want"]), c
    # The folded tail is one segment per combination, holding exactly what the kept values miss.
    tail = got[(got["depth"] == 2) & (got["product"] == OTHER) & got["device"].notna()]
    assert not tail.empty
    for _, row in tail.iterrows():
        named = want[(want["depth"] == 2) & (want["device"] == row["device"]) & want["product"].notna()
                     & want["region"].isna()]
        kept = named[named["product"].isin(keep["product"])]
        assert np.isclose(row["cur_den"], named["cur_den"].sum() - kept["cur_den"].sum())


def test_wide_framework_combines_the_dimensions_that_hold_the_cause(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(12)
    shares = {f"x{i}": [0.4, 0.35, 0.25] for i in range(12)}
    base = make_sessions(rng, 60_000, "2026-11-10", shares, lambda r: 0.06)
    cur = make_sessions(rng, 60_000, "2026-11-17", shares,
                        lambda r: 0.015 if (r["x3"] == "x0" and r["x9"] == "x1") else 0.06)
    load(duck, pd.concat([base, cur], ignore_index=True))
    metric = ratio_metric(list(shares))
    doc = investigate(duck, metric, baseline=BASE, current=CUR).to_json()
    assert doc["root_causes"][0]["segment"] == {"x3": "x0", "x9": "x1"}
    combined = doc["combined_dimensions"]
    assert {"x3", "x9"} <= set(combined) and len(combined) <= max_dimensions(3) < 12


def test_select_dimensions_ranks_by_deviation_not_by_size(duck: DuckDBEngine) -> None:
    """Every value of every dimension moves when a big cause hits; only the cause's dimensions
    move unevenly. With more dimensions than fit, those come first."""
    rng = np.random.default_rng(13)
    shares = {f"x{i}": [0.5, 0.3, 0.2] for i in range(10)}
    base = make_sessions(rng, 50_000, "2026-11-10", shares, lambda r: 0.05)
    cur = make_sessions(rng, 50_000, "2026-11-17", shares,
                        lambda r: 0.01 if r["x7"] == "x2" else 0.05)
    load(duck, pd.concat([base, cur], ignore_index=True))
    metric = ratio_metric(list(shares))
    plan = plan_cube(metric, duck.columns_of(source_expression(metric)), baseline=BASE, current=CUR, max_depth=1)
    level1 = label_cube(duck.query(cube_sql(plan, preaggregate=False)), plan)
    chosen = select_dimensions(level1, depth=4, alpha=0.05, min_share=0.02)  # 7 of 10 fit at depth 4
    assert "x7" in chosen and len(chosen) == 6  # the one with evidence, filled up to 6


def _load_exact_sessions(duck: DuckDBEngine, rate) -> None:
    """Sessions of both weeks with exact conversion counts per (device, product, region) cell
    (cells of 1,000 sessions, so every rate below is a whole number of conversions): no sampling
    noise, so a value deviates from the total's move only through the cause."""
    rows = []
    for side, day in ((0, "2026-11-10"), (1, "2026-11-17")):
        for d, dw in enumerate([0.5, 0.3, 0.2]):
            for k, pw in enumerate(_zipf(60)):
                for r, rw in enumerate([0.4, 0.3, 0.2, 0.1]):
                    n = 1000 * max(1, round(1000 * dw * pw * rw))
                    rows.append((pd.Timestamp(day), f"d{d}", f"p{k}", f"r{r}", n,
                                 round(n * rate(side, f"d{d}", f"p{k}"))))
    duck.connection.register("cells", pd.DataFrame(
        rows, columns=["ts", "device", "product", "region", "n", "conv"]))
    duck.connection.execute(
        'CREATE OR REPLACE TABLE "sessions" AS SELECT ts, device, product, region, '
        "CAST(i < conv AS INTEGER) AS converted FROM cells, range(n) AS t(i)")
    duck.connection.unregister("cells")


def test_second_level_combines_the_values_that_deviate_from_a_uniform_move(duck: DuckDBEngine) -> None:
    """A cause on (d1, p3) shows in d1's and p3's deviation. The others deviate from the total's
    move only in proportion to their share (the total's relative change carries the cause too):
    the long tail of small products falls under the floor and is folded, large values stay."""
    def rate(side: int, device: str, product: str) -> float:
        if side == 0:
            return 0.05
        return 0.005 if (device, product) == ("d1", "p3") else 0.049

    _load_exact_sessions(duck, rate)
    metric = ratio_metric(["device", "product", "region"])
    plan = plan_cube(metric, duck.columns_of(source_expression(metric)), baseline=BASE, current=CUR, max_depth=1)
    level1 = label_cube(duck.query(cube_sql(plan, preaggregate=False)), plan)
    keep = combined_values(level1, ["device", "product", "region"], min_share=0.02).values
    assert "d1" in keep["device"] and "p3" in keep["product"]
    assert len(keep["product"]) < 30 and "p0" in keep["product"]
    values = reference_moves(level1)
    products = values[values["product"].notna() & (values["product"] != OTHER)]
    folded = products[~products["product"].isin(keep["product"])]
    assert len(folded) > 5 and (folded["deviation_share"] < DEVIATION_FLOOR * 0.02).all()
    kept = products[products["product"].isin(keep["product"])]
    assert (kept["deviation_share"] >= DEVIATION_FLOOR * 0.02).all()
    # ... and the investigation finds the cause through the folded second level.
    doc = investigate(duck, metric, baseline=BASE, current=CUR).to_json()
    assert doc["root_causes"][0]["segment"] == {"device": "d1", "product": "p3"}


def test_a_wide_second_level_keeps_its_budget_and_the_cause(duck: DuckDBEngine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Uniform dimensions with hundreds of values: noise alone passes the share floor
    everywhere, so the second level is bounded (LEAF_BUDGET leaves, here 2,000 so that a small
    table binds it, and EXACT_ROWS lowered): what is folded looks more like noise than what
    stays (the share floor is raised), the cause's values stay, and the cause is still found. At the real EXACT_ROWS the
    same table is combined exactly."""
    from warehouse_rca.localize import levelwise

    monkeypatch.setattr(levelwise, "LEAF_BUDGET", 2_000)
    monkeypatch.setattr(levelwise, "EXACT_ROWS", 10_000)
    rng = np.random.default_rng(21)
    n = 400_000
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "device": rng.choice([f"d{i}" for i in range(4)], n),
        "region": rng.choice([f"r{i}" for i in range(4)], n),
        "campaign": rng.choice([f"c{i}" for i in range(300)], n),
        "product": rng.choice([f"p{i}" for i in range(600)], n),
    })
    late = frame["ts"] >= pd.Timestamp("2026-11-17")
    hit = late & (frame["device"] == "d0") & (frame["region"] == "r1")
    frame["converted"] = (rng.random(n) < np.where(hit, 0.005, 0.04)).astype(int)
    load(duck, frame)
    metric = ratio_metric(["device", "region", "campaign", "product"])
    plan = plan_cube(metric, duck.columns_of(source_expression(metric)), baseline=BASE, current=CUR, max_depth=1)
    level1 = label_cube(duck.query(cube_sql(plan, preaggregate=False)), plan)
    monkeypatch.setattr(levelwise, "EXACT_ROWS", 10**9)
    assert not combined_values(level1, list(metric.dimensions), min_share=0.02).bounded
    monkeypatch.setattr(levelwise, "EXACT_ROWS", 10_000)
    combined = combined_values(level1, list(metric.dimensions), min_share=0.02)
    assert combined.bounded
    keep = combined.values
    values = reference_moves(level1)
    beyond_floor = values[values["deviation_share"] >= DEVIATION_FLOOR * 0.02]
    sizes = {"device": 4, "region": 4, "campaign": 300, "product": 600}
    unbounded = 2 * np.prod([(beyond_floor[d].notna().sum()) + 1 for d in sizes])
    assert unbounded > 20 * 2_000  # noise passes the share floor: the budget binds
    leaves = 2 * np.prod([len(keep[d]) + (len(keep[d]) < sizes[d]) for d in sizes])
    assert leaves <= 2_000
    assert "d0" in keep["device"] and "r1" in keep["region"]
    for name in ("campaign", "product"):  # within a dimension, what stays deviates more
        own = values[values[name].notna() & (values[name] != OTHER)]
        # each dimension's most deviating value and its largest stay regardless
        own = own.drop(list({own["deviation_z"].idxmax(), own["base_weight"].idxmax()}))
        kept = own.loc[own[name].isin(keep[name]), "deviation_share"]
        folded = own.loc[~own[name].isin(keep[name]), "deviation_share"]
        assert len(folded) > 0
        assert kept.empty or folded.max() <= kept.min() + 1e-12
    assert len(keep["product"]) <= len(keep["campaign"]) + 1  # the widest gives up values first
    doc = investigate(duck, metric, baseline=BASE, current=CUR).to_json()
    assert doc["root_causes"][0]["segment"] == {"device": "d0", "region": "r1"}


def test_causal_series_from_leaves_equal_each_segments_own_sums(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(14)
    frame = _sessions(rng, 20_000, lambda r: 0.05)
    load(duck, frame)
    metric = ratio_metric(["device", "product", "region"])
    plan = plan_cube(metric, duck.columns_of(source_expression(metric)), baseline=BASE, current=CUR)
    segments = [{"device": "d1"}, {"product": "p0", "region": "(null)"}, {"device": "d2", "product": "p3"}]
    window = Period.parse("2026-11-10:2026-11-23")
    labelled = frame.fillna({"region": "(null)"})
    day = labelled["ts"].dt.floor("D")
    # Folded dimensions compare codes, the others values: every mix gives the same sums.
    for fold in (None, set(), {"product"}, {"device", "region"}):
        got = duck.query(series_sql(plan, segments, window, fold=fold))
        assert len(got) == 14
        for i, seg in enumerate(segments):
            mask = np.logical_and.reduce([labelled[d] == v for d, v in seg.items()])
            want = labelled[mask].groupby(day[mask])["converted"].agg(["sum", "count"])
            want = want.reindex(pd.to_datetime(got["bucket"]).dt.tz_localize(None), fill_value=0)
            assert np.allclose(got[f"s{i}_num"], want["sum"]) and np.allclose(got[f"s{i}_den"], want["count"])
        assert got["den"].sum() == len(frame)
