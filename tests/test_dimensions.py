"""dimensions suggest: pushed-down profiling picks real dimensions and says why others are out."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.dimensions.profile import profile
from warehouse_rca.sql import table_ref


def make_table(folder: Path) -> None:
    rng = np.random.default_rng(0)
    n = 5000
    words = ["great", "checkout", "failed", "again", "support", "slow", "page", "refund", "love", "app"]
    frame = pd.DataFrame({
        "order_id": np.arange(n),
        "created_at": pd.Timestamp("2026-11-01") + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s"),
        "comment": [" ".join(rng.choice(words, 12)) for _ in range(n)],
        "country": rng.choice(["US", "DE", "FR", "BR"], n, p=[0.5, 0.2, 0.2, 0.1]),
        "device": rng.choice(["iOS", "Android", "web", None], n),
        "plan": rng.choice(["free", "pro"], n),
        "amount": np.round(rng.gamma(2.0, 40.0, n), 2),
        "source_system": "shop",
    })
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"))
    con.register("incoming", frame)
    con.execute("CREATE TABLE orders AS SELECT * FROM incoming")
    con.close()


def test_suggest_picks_dimensions_and_rejects_with_reasons(tmp_path: Path) -> None:
    make_table(tmp_path)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ["dimensions", "suggest", "orders"], catch_exceptions=False)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    out = result.output
    proposed = out.split("Left out:")[0]
    left_out = out.split("Left out:")[1].split("# paste")[0]
    for dim in ("country", "device", "plan"):
        assert f"+ {dim}:" in proposed
    assert "- order_id: identifier" in left_out
    assert "- created_at: timestamp" in left_out
    assert "- comment: free text" in left_out
    assert "- amount" not in left_out and "~ amount: numeric" in out  # a measurement, as bands
    assert "amount_band" in out.split("# paste")[1]
    assert "- source_system: constant" in left_out
    assert "dimensions:\n- " in out  # the ready-to-paste YAML block
    assert "NULL (kept as its own segment)" in proposed


def test_profile_reports_top_values_and_evenness(tmp_path: Path) -> None:
    make_table(tmp_path)
    from warehouse_rca.engines import connect
    from warehouse_rca.spec.profiles import Target

    engine = connect(Target("t", "duckdb", {"path": str(tmp_path / "warehouse_rca.duckdb")}, "t"))
    try:
        profiles = {p.name: p for p in profile(engine, table_ref("orders"))}
    finally:
        engine.close()
    country = profiles["country"]
    assert country.top_values[0][0] == "US" and 0.45 < country.top_values[0][1] < 0.55
    assert profiles["plan"].entropy > country.entropy  # an even split is the more informative slice


# --------------------------------------------------------------------------- the framework in use

import json as _json

import pytest

from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.dimensions.drift import detect_drift, write_drift
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec, metric_from_mapping

CITIES = {"EU": ["Berlin", "Paris", "Madrid"], "US": ["NYC", "LA", "Chicago"], "APAC": ["Tokyo", "Sydney"]}
BASELINE, CURRENT = Period.parse("2026-11-01:2026-11-07"), Period.parse("2026-11-08:2026-11-14")
PRICE_TIER = "CASE WHEN price < 20 THEN 'low' WHEN price < 100 THEN 'mid' ELSE 'high' END"


def sessions(n: int, seed: int, current_rates: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Sessions over two weeks converting at 30%; in the second week, rows matching a
    (column, value) of ``current_rates`` convert at the given rate instead."""
    rng = np.random.default_rng(seed)
    pairs = [(r, c) for r, cs in CITIES.items() for c in cs]
    idx = rng.integers(0, len(pairs), n)
    region = np.array([pairs[i][0] for i in idx])
    city = np.array([pairs[i][1] for i in idx])
    day = rng.integers(0, 14, n)
    price = rng.uniform(5, 200, n).round(2)
    tier = np.where(price < 20, "low", np.where(price < 100, "mid", "high"))
    columns = {"city": city, "region": region, "tier": tier}
    rate = np.full(n, 0.3)
    for (column, value), r in current_rates.items():
        rate[(day >= 7) & (columns[column] == value)] = r
    return pd.DataFrame({
        "session_id": np.arange(n),
        "session_start": pd.Timestamp("2026-11-01") + pd.to_timedelta(day * 86400 + rng.integers(0, 86400, n), unit="s"),
        "region": region, "city": city, "device": rng.choice(["iOS", "Android", "web"], n),
        "price": price, "converted": (rng.random(n) < rate).astype(int),
    })


def load(engine: DuckDBEngine, frame: pd.DataFrame) -> None:
    """(Re)load table ``s`` from a generated frame (DuckDB reads the frame in place)."""
    engine._conn.register("incoming", frame)
    engine._conn.execute("CREATE OR REPLACE TABLE s AS SELECT * FROM incoming")
    engine._conn.unregister("incoming")


def conversion(**extra: object) -> MetricSpec:
    raw = {"table": "s", "time_column": "session_start", "numerator": "sum(converted)",
           "denominator": "count(*)",
           "dimensions": ["device", "region", "city", {"name": "price_tier", "expr": PRICE_TIER}], **extra}
    return metric_from_mapping("conversion_rate", raw, "test.yml")


def causes(engine: DuckDBEngine, metric: MetricSpec) -> list[dict]:
    return investigate(engine, metric, baseline=BASELINE, current=CURRENT).to_json()["root_causes"]


def test_derived_bucket_dimension_is_found_as_the_cause(duck: DuckDBEngine) -> None:
    load(duck, sessions(40_000, 2, {("tier", "high"): 0.15}))
    found = causes(duck, conversion())
    assert found and found[0]["segment"] == {"price_tier": "high"}, found


def test_hierarchy_reports_a_parent_and_its_child_once(duck: DuckDBEngine) -> None:
    # Berlin collapses and the rest of EU drops too: without the hierarchy the search reports
    # city=Berlin and region=EU as two causes (asserted, so this test shows what it fixes).
    load(duck, sessions(60_000, 2, {("city", "Berlin"): 0.05, ("city", "Paris"): 0.25,
                                         ("city", "Madrid"): 0.25}))
    flat = [c["segment"] for c in causes(duck, conversion())]
    assert {"city": "Berlin"} in flat and {"region": "EU"} in flat, flat
    found = causes(duck, conversion(hierarchies=[["region", "city"]]))
    segments = [c["segment"] for c in found]
    assert ({"city": "Berlin"} in segments) != ({"region": "EU"} in segments), segments
    eu = next(c for c in found if c["segment"] in ({"city": "Berlin"}, {"region": "EU"}))
    assert eu["hierarchy"]["region"] == "EU"
    assert [r["segment"] for r in eu["related_causes"]] in ([{"city": "Berlin"}], [{"region": "EU"}])


def test_groups_label_causes_and_priority_is_validated(duck: DuckDBEngine) -> None:
    load(duck, sessions(40_000, 2, {("tier", "high"): 0.15}))
    metric = conversion(dimension_groups={"product": ["price_tier"], "customer": ["region", "city"],
                                          "operational": ["device"]},
                        group_priority={"product": 0.9, "operational": 1.0})
    doc = investigate(duck, metric, baseline=BASELINE, current=CURRENT).to_json()
    assert doc["root_causes"][0]["group"] == "product"
    assert doc["findings_by_group"]["product"] == [1]


def test_new_value_constant_dimension_and_new_column_are_drift(duck: DuckDBEngine) -> None:
    frame = sessions(20_000, 3, {})
    current = frame["session_start"] >= pd.Timestamp("2026-11-08")
    rng = np.random.default_rng(4)
    # app 5.2 ships in the current week and takes ~40% of sessions; channel is 'web' only now.
    frame["app_version"] = np.where(current & (rng.random(len(frame)) < 0.4), "5.2",
                                    rng.choice(["5.0", "5.1"], len(frame)))
    frame["channel"] = np.where(current, "web", rng.choice(["web", "store"], len(frame)))
    load(duck, frame)
    metric = conversion(dimensions=["device", "region", "app_version", "channel"])
    report = detect_drift(duck, metric, BASELINE, CURRENT, schema="rca")
    kinds = {(i.kind, i.dimension, i.value) for i in report.items}
    assert ("new_value", "app_version", "5.2") in kinds
    assert ("constant_dimension", "channel", "web") in kinds
    assert not any(i.dimension in ("device", "region") for i in report.items)  # stable: no noise
    assert report.previous_run is None
    write_drift(duck, "rca", report.run_id, report)
    write_drift(duck, "rca", report.run_id, report)  # a rerun replaces its rows
    stored = duck.query("SELECT kind, dimension, value FROM rca.dimension_drift")
    assert len(stored) == len(report.items)

    # The source grows a column; the next run finds it against the recorded framework.
    frame["plan"] = np.random.default_rng(5).choice(["free", "pro"], len(frame))
    load(duck, frame)
    later = Period.parse("2026-11-09:2026-11-14")
    again = detect_drift(duck, metric, BASELINE, later, schema="rca", include_new=True)
    assert again.previous_run == report.run_id
    assert again.new_dimensions == ["plan"]
    inv = investigate(duck, metric, baseline=BASELINE, current=later,
                      options=InvestigationOptions(extra_dimensions=tuple(again.new_dimensions)))
    assert "plan" in inv.to_json()["dimensions"]


@pytest.mark.parametrize(("entry", "extra", "key", "why"), [
    ({"name": "tier", "expr": "sum(price)"}, {}, "dimensions.tier", "SUM is not allowed"),
    ({"name": "tier", "expr": "shell_exec(price)"}, {}, "dimensions.tier", "SHELL_EXEC() is not allowed"),
    ({"name": "tier", "expr": "CASE WHEN price < THEN 1 END"}, {}, "dimensions.tier", "cannot parse"),
    ({"name": "tier", "expr": "(SELECT max(price) FROM s)"}, {}, "dimensions.tier", "not allowed"),
    ({"name": "tier"}, {}, "dimensions.tier", "needs 'expr'"),
    ("device", {"hierarchies": [["region", "town"]]}, "hierarchies", "'town' is not one of"),
    ("device", {"dimension_groups": {"ops": ["device"]}, "group_priority": {"ops": 0.1}}, "group_priority", "between 0.5 and 1"),
])
def test_invalid_framework_fails_naming_metric_and_key(entry: object, extra: dict, key: str, why: str) -> None:
    raw = {"table": "s", "time_column": "t", "measure": "count(*)", "dimensions": ["region", entry], **extra}
    with pytest.raises(ConfigError) as err:
        metric_from_mapping("conversion_rate", raw, "warehouse_rca.yml")
    message = str(err.value)
    assert "metric 'conversion_rate'" in message and f"key {key!r}" in message and why in message, message


def test_derived_dimension_on_unknown_column_fails_at_plan_time(duck: DuckDBEngine) -> None:
    load(duck, sessions(2_000, 1, {}))
    metric = conversion(dimensions=["device", {"name": "tier", "expr": "CASE WHEN prise < 20 THEN 'low' END"}])
    with pytest.raises(InputError, match=r"metric 'conversion_rate', key 'dimensions.tier'.*did you mean price"):
        investigate(duck, metric, baseline=BASELINE, current=CURRENT)


def test_drift_cli_writes_and_prints_json(tmp_path: Path) -> None:
    engine = DuckDBEngine(__import__("warehouse_rca.spec", fromlist=["Target"]).Target(
        "t", "duckdb", {"path": str(tmp_path / "warehouse_rca.duckdb")}, "t"))
    try:
        frame = sessions(5_000, 6, {})
        frame["app_version"] = np.where(frame["session_start"] >= pd.Timestamp("2026-11-08"), "6.0", "5.9")
        load(engine, frame)
    finally:
        engine.close()
    (tmp_path / "warehouse_rca.yml").write_text(
        "metrics:\n  conversion_rate:\n    table: s\n    time_column: session_start\n"
        "    numerator: sum(converted)\n    denominator: count(*)\n"
        "    dimensions: [device, app_version, {name: weekend, expr: 'dayofweek(session_start) IN (0, 6)'}]\n")
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ["dimensions", "drift", "conversion_rate", "--baseline",
                                           BASELINE.text, "--current", CURRENT.text, "--format", "json"],
                                    catch_exceptions=False)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    doc = _json.loads(result.output)
    assert {(d["kind"], d["dimension"], d["value"]) for d in doc["drift"]} >= {("new_value", "app_version", "6.0")}
