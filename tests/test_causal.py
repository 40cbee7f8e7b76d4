"""Causal validation on real DuckDB with small generated tables (one row per day and cell).

Every table holds daily aggregates per cell (sessions, conversions drawn binomially from a known
rate), six weeks long, so the checks have history before the baseline; a few thousand rows each.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlglot

from warehouse_rca.causal.series import analysis_window, series_sql
from warehouse_rca.causal.validate import CausalSettings, cusum_onset
from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.cube.plan import plan_cube
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.findings.store import write_investigation
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import EventsSpec, metric_from_mapping

BASE = Period.parse("2026-11-10:2026-11-16")
CUR = Period.parse("2026-11-17:2026-11-23")
START = date(2026, 10, 13)
DAYS = 42


def make_cells(rng: np.random.Generator, dims: dict[str, list[str]],
               volume: Callable[[date, dict[str, str]], float],
               rate: Callable[[date, dict[str, str]], float]) -> pd.DataFrame:
    """One row per (day, cell): expected sessions ``volume`` (Poisson), conversions binomial."""
    rows = []
    for k in range(DAYS):
        day = START + timedelta(days=k)
        for values in itertools.product(*dims.values()):
            cell = dict(zip(dims, values))
            n = int(rng.poisson(volume(day, cell)))
            if n == 0:
                continue
            p = rate(day, cell)
            rows.append({"ts": pd.Timestamp(day), **cell, "sessions": n,
                         "conversions": int(rng.binomial(n, p)), "p": p})
    return pd.DataFrame(rows)


def load(duck: DuckDBEngine, frame: pd.DataFrame, name: str) -> None:
    duck.connection.register("incoming", frame)
    duck.connection.execute("CREATE OR REPLACE TABLE " + name + " AS SELECT * FROM incoming")
    duck.connection.unregister("incoming")


def metric(dims: list[str], table: str = "cells") -> object:
    return metric_from_mapping("conversion_rate", {
        "table": table, "time_column": "ts", "grain": "day", "numerator": "sum(conversions)",
        "denominator": "sum(sessions)", "dimensions": dims,
    }, "test")


def run(duck: DuckDBEngine, dims: list[str], settings: CausalSettings | None = None) -> dict:
    options = InvestigationOptions(causal_settings=settings)
    return investigate(duck, metric(dims), baseline=BASE, current=CUR, options=options).to_json()


def demoted_reason(doc: dict, segment: dict[str, str]) -> str | None:
    """Why ``segment`` was demoted: as a root cause ranked last, or as a candidate set aside."""
    for cause in doc["root_causes"]:
        if cause["segment"] == segment and cause.get("causal", {}).get("verdict") == "demoted":
            return " ".join(cause["causal"]["reasons"])
    for cand in doc["causal"]["demoted_candidates"]:
        if cand["segment"] == segment:
            return " ".join(cand["reasons"])
    return None


# --------------------------------------------------------------------------- (a) confounding


def test_release_rolled_out_in_one_region_is_the_cause_and_the_region_is_explained_by_it(
        duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(11)
    region_share = {"r0": 0.34, "r1": 0.22, "r2": 0.22, "r3": 0.22}
    # release v2 (from before the window) reaches 60% of r0's users but 5% elsewhere
    v2_share = {"r0": 0.6, "r1": 0.05, "r2": 0.05, "r3": 0.05}

    def volume(day: date, c: dict[str, str]) -> float:
        share = v2_share[c["region"]] if c["app_version"] == "v2" else 1 - v2_share[c["region"]]
        return 30_000 * region_share[c["region"]] * share

    def rate(day: date, c: dict[str, str]) -> float:
        broken = c["app_version"] == "v2" and day >= date(2026, 11, 17)
        return 0.10 * (0.5 if broken else 1.0)

    load(duck, make_cells(rng, {"app_version": ["v1", "v2"], "region": list(region_share)}, volume, rate), "cells")
    load(duck, pd.DataFrame({
        "happened_at": [pd.Timestamp("2026-11-16 18:00"), pd.Timestamp("2026-10-20")],
        "description": ["v2 payment SDK config push", "unrelated web tweak"],
        "dimension": ["app_version", "app_version"], "value": ["v2", "web"],
    }), "events")
    events = EventsSpec(table="events", time_column="happened_at", description_column="description",
                        dimension_column="dimension", value_column="value")
    doc = run(duck, ["app_version", "region"], CausalSettings(events=events))

    top = doc["root_causes"][0]
    assert top["segment"] == {"app_version": "v2"}
    assert top["causal"]["verdict"] == "confirmed", top["causal"]
    assert top["causal"]["did_p_value"] < 0.01 and top["causal"]["did_estimate"] < 0
    assert top["causal"]["parallel_trends"] is True
    assert top["causal"]["change_start"].startswith("2026-11-17")
    # the config push touched v2 and preceded its change: linked to the finding
    assert [e["description"] for e in top["causal"]["events"]] == ["v2 payment SDK config push"]
    reason = demoted_reason(doc, {"region": "r0"})
    assert reason is not None and "explained by app_version = v2" in reason, doc["causal"]
    # the region is not ranked above the release
    assert all(c["segment"] != {"region": "r0"} or c["causal"]["verdict"] == "demoted"
               for c in doc["root_causes"])
    pair = next(x for x in top["causal"]["confounding"] if x["other"] == {"region": "r0"})
    assert pair["verdict"] == "region = r0 explained by app_version = v2"
    assert abs(pair["effect_holding_other_fixed"]) > 0.5 * abs(pair["effect_alone"])


# --------------------------------------------------------------------------- (b) ordering


def test_segment_whose_drop_starts_after_the_aggregate_is_not_ranked_first(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(5)
    channels = ["c0", "c1", "c2"]

    def rate(day: date, c: dict[str, str]) -> float:
        if c["channel"] == "c0" and day >= date(2026, 11, 17):
            return 0.10 * 0.75  # the first drop: all week
        if c["channel"] == "c1" and day >= date(2026, 11, 21):
            return 0.10 * 0.30  # later, but bigger over the week
        return 0.10

    load(duck, make_cells(rng, {"channel": channels, "device": ["d0", "d1"]},
                          lambda d, c: 40_000 / 6, rate), "cells")
    doc = run(duck, ["channel", "device"])
    segments = [c["segment"] for c in doc["root_causes"]]
    assert {"channel": "c1"} in segments and {"channel": "c0"} in segments, segments
    assert segments[0] == {"channel": "c0"}, segments
    late = next(c for c in doc["root_causes"] if c["segment"] == {"channel": "c1"})
    assert late["causal"]["ordering"] == "lags"
    assert late["causal"]["verdict"] == "demoted"
    assert late["causal"]["change_start"].startswith("2026-11-21")
    assert doc["causal"]["aggregate_change_start"].startswith("2026-11-17")
    assert "after the metric's" in " ".join(late["causal"]["reasons"])
    # the combined confidence carries the demotion
    assert late["confidence"] < late["drilldown_confidence"]


# --------------------------------------------------------------------------- (c) global event


def test_global_event_is_detected_by_interrupted_time_series(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(3)

    def rate(day: date, c: dict[str, str]) -> float:
        return 0.10 * (0.85 if day >= date(2026, 11, 19) else 1.0)  # every segment alike

    load(duck, make_cells(rng, {"device": ["d0", "d1", "d2"], "region": ["r0", "r1"]},
                          lambda d, c: 40_000 / 6, rate), "cells")
    load(duck, pd.DataFrame({
        "happened_at": [pd.Timestamp("2026-11-19 09:00"), pd.Timestamp("2026-10-25 09:00")],
        "description": ["pricing page redesign", "footer copy change"],
        "dimension": [None, None], "value": [None, None],
    }), "events")
    events = EventsSpec(table="events", time_column="happened_at", description_column="description",
                        dimension_column="dimension", value_column="value")
    investigation = investigate(duck, metric(["device", "region"]), baseline=BASE, current=CUR,
                                options=InvestigationOptions(causal_settings=CausalSettings(events=events)))
    doc = investigation.to_json()
    by_name = {e["description"]: e for e in doc["causal"]["events"]}
    redesign, footer = by_name["pricing page redesign"], by_name["footer copy change"]
    assert redesign["kind"] == "global" and redesign["detected"] is True, redesign
    assert redesign["its_p_value"] < 0.001 and redesign["its_level_change"] < 0
    assert -0.25 < redesign["its_relative_change"] < -0.08
    assert footer["detected"] is False, footer
    assert doc["causal"]["aggregate_change_start"].startswith("2026-11-19")
    # one aggregate query on the fact table for every series, one on the events table
    assert doc["causal"]["queries"] == 2


# --------------------------------------------------------------------------- (d) counterfactual


def test_counterfactual_recovers_a_known_injected_effect(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(21)
    shares = {"r0": 0.25, "r1": 0.25, "r2": 0.3, "r3": 0.2}
    weekday = [1.0, 1.0, 1.0, 1.0, 1.05, 1.25, 1.2]  # weekly seasonality common to all regions

    def rate(day: date, c: dict[str, str]) -> float:
        base = 0.08 * weekday[day.weekday()] * (1.2 if c["region"] == "r2" else 1.0)
        return base - (0.03 if c["region"] == "r1" and day >= date(2026, 11, 17) else 0.0)

    frame = make_cells(rng, {"region": list(shares), "device": ["d0", "d1"]},
                       lambda d, c: 30_000 * shares[c["region"]] / 2, rate)
    load(duck, frame, "cells")
    investigation = investigate(duck, metric(["region", "device"]), baseline=BASE, current=CUR)
    doc = investigation.to_json()
    top = doc["root_causes"][0]
    assert top["segment"] == {"region": "r1"}
    ev = top["causal"]
    assert ev["method"] == "did" and ev["control"] in ("complement", "synthetic")
    # truth: the current rate with r1's conversions restored by the injected 3 points
    cur = frame[(frame["ts"] >= CUR.start) & (frame["ts"] < CUR.end_exclusive)]
    in_r1 = cur["region"] == "r1"
    true_cf = (cur["conversions"].sum() + 0.03 * cur.loc[in_r1, "sessions"].sum()) / cur["sessions"].sum()
    lo, hi = ev["counterfactual_interval"]
    assert lo <= true_cf <= hi, (lo, true_cf, hi)
    assert hi - lo < 0.5 * (true_cf - doc["current_value"])  # informative, not a vacuous interval
    assert abs(ev["did_estimate"] + 0.03) < 3 * ev["did_std_error"]
    assert ev["parallel_trends"] is True


# --------------------------------------------------------------------------- contract


def test_findings_tables_and_json_carry_the_evidence(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(8)

    def rate(day: date, c: dict[str, str]) -> float:
        return 0.10 * (0.6 if c["device"] == "d1" and day >= date(2026, 11, 17) else 1.0)

    load(duck, make_cells(rng, {"device": ["d0", "d1", "d2"], "region": ["r0", "r1"]},
                          lambda d, c: 20_000 / 6, rate), "cells")
    investigation = investigate(duck, metric(["device", "region"]), baseline=BASE, current=CUR)
    doc = investigation.to_json()
    cause = doc["root_causes"][0]
    for key in ("verdict", "causal_score", "change_start", "aggregate_change_start", "ordering",
                "method", "control", "did_estimate", "did_std_error", "did_p_value",
                "pre_trend_p_value", "parallel_trends", "counterfactual_value",
                "counterfactual_interval", "confounding", "explained_by", "events", "reasons"):
        assert key in cause["causal"]
    assert "drilldown_confidence" in cause and 0 <= cause["confidence"] <= cause["drilldown_confidence"]
    assert doc["causal"]["enabled"] is True and doc["causal"]["queries"] == 1
    json.dumps(doc)  # serialisable
    write_investigation(duck, investigation, "rca")
    path = duck.target.settings["path"]
    duck.close()
    con = duckdb.connect(path, read_only=True)
    row = con.execute(
        "SELECT causal_verdict, did_p_value, causal_control, ordering, change_start, "
        "causal_counterfactual_low, causal_counterfactual_high, causal_evidence "
        "FROM rca.root_causes ORDER BY rank LIMIT 1").fetchone()
    con.close()
    assert row[0] == "confirmed" and row[1] < 0.05 and row[2] in ("complement", "synthetic")
    assert row[3] in ("coincides", "leads") and str(row[4]).startswith("2026-11-17")
    assert row[5] < row[6] and json.loads(row[7])["verdict"] == "confirmed"


def test_causal_checks_can_be_turned_off(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(9)
    load(duck, make_cells(rng, {"device": ["d0", "d1"]}, lambda d, c: 5_000,
                          lambda d, c: 0.1 * (0.5 if c["device"] == "d1" and d >= date(2026, 11, 17) else 1)),
         "cells")
    inv = investigate(duck, metric(["device"]), baseline=BASE, current=CUR,
                      options=InvestigationOptions(causal=False))
    doc = inv.to_json()
    assert doc["causal"] == {"enabled": False} and "causal" not in doc["root_causes"][0]
    assert doc["parameters"]["causal"] is False


def test_series_query_is_one_statement_for_every_warehouse() -> None:
    m = metric(["device", "region"])
    plan = plan_cube(m, None, baseline=BASE, current=CUR)
    window = analysis_window(BASE, CUR, "day", 3.0)
    assert window.start.isoformat() == "2026-10-20T00:00:00"
    segments = [{"device": "iOS"}, {"device": "iOS", "region": "it's"}]
    for dialect in ("duckdb", "postgres", "snowflake", "spark", "bigquery"):
        text = series_sql(plan, segments, window).sql(dialect)
        parsed = sqlglot.parse(text, read=dialect)
        assert len(parsed) == 1
        assert "s1_num" in text and "'it''s'" in text or "'it\\'s'" in text
    assert "DATE_TRUNC" in series_sql(plan, segments, window).sql("postgres").upper()


def test_cusum_onset_finds_the_first_sustained_move() -> None:
    rng = np.random.default_rng(0)
    x = 10 + rng.normal(0, 0.2, 40)
    x[30:] -= 1.5
    x[36:] -= 3.0
    scan = np.arange(40) >= 20
    reference = scan & (np.arange(40) < 27)
    assert cusum_onset(x, scan, reference, -1.0) == 30
    assert cusum_onset(x, scan, reference, +1.0) is None


def test_cli_reads_the_projects_events_and_can_skip_causal_checks(tmp_path, monkeypatch) -> None:
    import yaml
    from click.testing import CliRunner

    from warehouse_rca.cli import main
    from warehouse_rca.spec.profiles import Target

    duck = DuckDBEngine(Target("t", "duckdb", {"path": str(tmp_path / "warehouse_rca.duckdb")}, "t"))
    rng = np.random.default_rng(4)
    load(duck, make_cells(rng, {"device": ["d0", "d1"]}, lambda d, c: 5_000,
                          lambda d, c: 0.1 * (0.5 if c["device"] == "d1" and d >= date(2026, 11, 17) else 1)),
         "cells")
    load(duck, pd.DataFrame({"at": [pd.Timestamp("2026-11-16 20:00")], "what": ["d1 release"],
                             "dim": ["device"], "val": ["d1"]}), "events")
    duck.close()
    (tmp_path / "warehouse_rca.yml").write_text(yaml.safe_dump({
        "metrics": {"conversion_rate": {"table": "cells", "time_column": "ts", "numerator": "sum(conversions)",
                                        "denominator": "sum(sessions)", "dimensions": ["device"]}},
        "events": {"table": "events", "time_column": "at", "description_column": "what",
                   "dimension_column": "dim", "value_column": "val"},
    }))
    monkeypatch.chdir(tmp_path)
    args = ["investigate", "conversion_rate", "--baseline", BASE.text, "--current", CUR.text,
            "--format", "json", "--no-write"]
    doc = json.loads(CliRunner().invoke(main, args, catch_exceptions=False).output)
    assert doc["root_causes"][0]["causal"]["events"][0]["description"] == "d1 release"
    off = json.loads(CliRunner().invoke(main, args + ["--no-causal"], catch_exceptions=False).output)
    assert off["causal"] == {"enabled": False}


def test_events_declaration_errors_are_clear(tmp_path) -> None:
    from warehouse_rca.errors import ConfigError
    from warehouse_rca.spec.project import load_project

    path = tmp_path / "p.yml"
    path.write_text("metrics: {}\nevents: {table: ev, time_column: t, dimension_column: d}\n")
    with pytest.raises(ConfigError, match="events, key 'description_column': missing"):
        load_project(path)
