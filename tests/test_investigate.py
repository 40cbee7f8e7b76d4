"""End-to-end investigations on real DuckDB: the foundation's acceptance cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.demo import BASELINE, CURRENT, INCIDENT
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.findings.store import write_investigation
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import metric_from_mapping

BASE = Period.parse("2026-11-10:2026-11-16")
CUR = Period.parse("2026-11-17:2026-11-23")


def make_sessions(rng: np.random.Generator, n: int, start: str, shares: dict[str, list[float]],
                  rate: callable) -> pd.DataFrame:
    """``n`` sessions over one week; dimension values drawn by ``shares``; conversion by ``rate``."""
    frame = pd.DataFrame({
        "ts": pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s"),
    })
    for dim, probs in shares.items():
        frame[dim] = rng.choice([f"{dim[0]}{i}" for i in range(len(probs))], size=n, p=probs)
    frame["converted"] = (rng.random(n) < frame.apply(rate, axis=1)).astype(int)
    return frame


def load(duck: DuckDBEngine, frame: pd.DataFrame, name: str = "sessions") -> None:
    duck.connection.register("incoming", frame)
    duck.connection.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM incoming')
    duck.connection.unregister("incoming")


def ratio_metric(dims: list[str], table: str = "sessions") -> object:
    return metric_from_mapping("conversion_rate", {
        "table": table, "time_column": "ts", "numerator": "sum(converted)",
        "denominator": "count(*)", "dimensions": dims,
    }, "test")


def run_cli(args: list[str], cwd: Path) -> tuple[int, str]:
    import os

    runner = CliRunner()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.output


# ------------------------------------------------------------------------------- the demo


def test_demo_incident_is_rank_one_and_findings_are_written(demo_dir: Path) -> None:
    code, out = run_cli(
        ["investigate", "conversion_rate", "--project", "warehouse_rca_demo.yml",
         "--baseline", BASELINE, "--current", CURRENT, "--format", "json"],
        demo_dir,
    )
    assert code == 0, out
    doc = json.loads(out)
    assert doc["root_causes"], doc["message"]
    top = doc["root_causes"][0]
    assert top["segment"] == INCIDENT
    assert top["effect"] == "rate"
    assert top["current_value"] < 0.6 * top["baseline_value"]
    assert doc["change"] < 0 and doc["significant"]
    for field in ("run_id", "metric", "periods", "baseline_value", "current_value", "change",
                  "relative_change", "root_causes"):
        assert field in doc
    for field in ("segment", "baseline_value", "current_value", "change", "share_of_change",
                  "effect", "p_value", "confidence", "narrative"):
        assert field in top
    assert 0 <= top["confidence"] <= 1
    import duckdb  # read back what BI tools will see

    con = duckdb.connect(str(demo_dir / "warehouse_rca.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT rank, segment, effect FROM rca.latest_root_causes WHERE metric = 'conversion_rate' ORDER BY rank"
    ).fetchall()
    con.close()
    assert rows[0][0] == 1 and json.loads(rows[0][1]) == INCIDENT and rows[0][2] == "rate"


def test_rerun_replaces_instead_of_duplicating(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(7)
    shares = {"device": [0.5, 0.5], "region": [0.3, 0.3, 0.4]}
    base = make_sessions(rng, 40_000, "2026-11-10", shares, lambda r: 0.05)
    cur = make_sessions(rng, 40_000, "2026-11-17", shares,
                        lambda r: 0.02 if r["device"] == "d0" else 0.05)
    load(duck, pd.concat([base, cur]))
    metric = ratio_metric(["device", "region"])
    counts = []
    for _ in range(2):
        inv = investigate(duck, metric, baseline=BASE, current=CUR)
        write_investigation(duck, inv)
        counts.append((
            duck.query("SELECT COUNT(*) AS n FROM rca.runs").iloc[0, 0],
            duck.query("SELECT COUNT(*) AS n FROM rca.root_causes").iloc[0, 0],
        ))
    assert counts[0] == counts[1]
    assert counts[0][0] == 1 and counts[0][1] >= 1


# ------------------------------------------------------------------------------- localization cases


def test_pure_mix_shift_is_reported_as_mix(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(11)
    rate = lambda r: 0.02 if r["device"] == "d0" else 0.06
    base = make_sessions(rng, 60_000, "2026-11-10", {"device": [0.3, 0.7], "region": [0.5, 0.5]}, rate)
    cur = make_sessions(rng, 60_000, "2026-11-17", {"device": [0.6, 0.4], "region": [0.5, 0.5]}, rate)
    load(duck, pd.concat([base, cur]))
    doc = investigate(duck, ratio_metric(["device", "region"]), baseline=BASE, current=CUR).to_json()
    assert doc["root_causes"]
    top = doc["root_causes"][0]
    assert top["effect"] == "mix"
    assert set(top["segment"]) == {"device"}
    assert all(c["effect"] == "mix" for c in doc["root_causes"])


def test_no_change_returns_no_root_causes(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(3)
    shares = {"device": [0.4, 0.6], "region": [0.2, 0.3, 0.5], "channel": [0.5, 0.25, 0.25]}
    base = make_sessions(rng, 50_000, "2026-11-10", shares, lambda r: 0.04)
    cur = make_sessions(rng, 50_000, "2026-11-17", shares, lambda r: 0.04)
    load(duck, pd.concat([base, cur]))
    doc = investigate(duck, ratio_metric(["device", "region", "channel"]), baseline=BASE, current=CUR).to_json()
    assert doc["root_causes"] == []
    assert "noise" in doc["message"] or "no single segment" in doc["message"]


def test_interaction_is_reported_as_the_combination(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(5)
    shares = {"device": [0.4, 0.4, 0.2], "region": [0.25, 0.25, 0.25, 0.25], "channel": [0.5, 0.5]}

    def broken(r: pd.Series) -> float:
        return 0.015 if (r["device"] == "d0" and r["region"] == "r1") else 0.05

    base = make_sessions(rng, 80_000, "2026-11-10", shares, lambda r: 0.05)
    cur = make_sessions(rng, 80_000, "2026-11-17", shares, broken)
    load(duck, pd.concat([base, cur]))
    doc = investigate(duck, ratio_metric(["device", "region", "channel"]), baseline=BASE, current=CUR).to_json()
    segments = [c["segment"] for c in doc["root_causes"]]
    assert segments[0] == {"device": "d0", "region": "r1"}
    # The counterfactual: had d0 x r1 kept converting at 5%, the current rate would have been
    # the current rate plus that segment's lost conversions over all current sessions.
    seg = (cur["device"] == "d0") & (cur["region"] == "r1")
    truth = (cur["converted"].sum() + 0.05 * seg.sum() - cur.loc[seg, "converted"].sum()) / len(cur)
    lo, hi = doc["root_causes"][0]["counterfactual_interval"]
    assert lo <= truth <= hi
    assert "Without it, " in doc["root_causes"][0]["narrative"]
    assert {"device": "d0"} not in segments and {"region": "r1"} not in segments
    assert doc["root_causes"][0]["share_of_change"] > 0.5  # the rest is sampling noise


def test_additive_metric_finds_the_dropping_segment(duck: DuckDBEngine) -> None:
    rng = np.random.default_rng(9)
    n = 30_000
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "store": rng.choice(["s0", "s1", "s2", "s3"], n),
        "category": rng.choice(["c0", "c1", "c2"], n),
        "amount": rng.gamma(2.0, 20.0, n),
    })
    late = frame["ts"] >= pd.Timestamp("2026-11-17")
    frame.loc[late & (frame["store"] == "s2"), "amount"] *= 0.3
    load(duck, frame, "orders")
    metric = metric_from_mapping("revenue", {
        "table": "orders", "time_column": "ts", "measure": "sum(amount)",
        "dimensions": ["store", "category"],
    }, "test")
    doc = investigate(duck, metric, baseline=BASE, current=CUR).to_json()
    assert doc["root_causes"][0]["segment"] == {"store": "s2"}
    assert doc["root_causes"][0]["effect"] is None


# ------------------------------------------------------------------------------- bad input


@pytest.fixture
def small_warehouse(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    shares = {"device": [0.5, 0.5]}
    frame = pd.concat([
        make_sessions(rng, 2_000, "2026-11-10", shares, lambda r: 0.05),
        make_sessions(rng, 2_000, "2026-11-17", shares, lambda r: 0.03),
    ])
    frame["zero"] = 0
    import duckdb

    con = duckdb.connect(str(tmp_path / "warehouse_rca.duckdb"))
    con.register("incoming", frame)
    con.execute("CREATE TABLE sessions AS SELECT * FROM incoming")
    con.close()
    return tmp_path


ADHOC = ["investigate", "--table", "sessions", "--time-column", "ts", "--numerator", "sum(converted)",
         "--denominator", "count(*)", "--dimensions", "device"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["investigate", "--table", "nope", "--time-column", "ts", "--measure", "count(*)",
          "--dimensions", "device", "--baseline", BASELINE, "--current", CURRENT], "nope"),
        ([*ADHOC[:-1], "device,colour", "--baseline", BASELINE, "--current", CURRENT], "unknown column 'colour'"),
        ([*ADHOC, "--baseline", "2026-10-01:2026-10-07", "--current", CURRENT], "baseline period 2026-10-01:2026-10-07 has no rows"),
        ([*ADHOC, "--baseline", "2026-11-10:2026-11-18", "--current", CURRENT], "overlaps"),
        ([*ADHOC, "--baseline", "2026-11-10", "--current", CURRENT], "not a range"),
        ([*ADHOC, "--baseline", "2026-11-10:yesterday", "--current", CURRENT], "not a date"),
        ([*ADHOC[:8], "sum(zero)", *ADHOC[9:], "--baseline", BASELINE, "--current", CURRENT], "denominator"),
        ([*ADHOC[:6], "avg(converted)", *ADHOC[7:], "--baseline", BASELINE, "--current", CURRENT], "additive aggregate"),
        ([*ADHOC, "--baseline", BASELINE, "--current", CURRENT, "--filter", "device = 'd0'; DROP TABLE sessions"], "single expression"),
    ],
    ids=["unknown-table", "unknown-column", "empty-period", "overlap", "no-range", "bad-date",
         "zero-denominator", "non-additive", "second-statement"],
)
def test_bad_input_fails_clearly_and_writes_nothing(small_warehouse: Path, args: list[str], message: str) -> None:
    code, out = run_cli(args, small_warehouse)
    assert code == 2, out
    assert message in out
    import duckdb

    con = duckdb.connect(str(small_warehouse / "warehouse_rca.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    sessions = con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    # Nothing half-written: no findings; an attempt that got as far as the warehouse is recorded
    # as 'failed' with its error (issue 8), and the latest views show nothing.
    findings = con.execute("SELECT COUNT(*) FROM rca.root_causes").fetchone()[0] if "root_causes" in tables else 0
    statuses = {r[0] for r in con.execute("SELECT status FROM rca.runs").fetchall()} if "runs" in tables else set()
    con.close()
    assert findings == 0 and statuses <= {"failed"}
    assert sessions == 4_000


def test_adhoc_mode_writes_and_prints(small_warehouse: Path) -> None:
    code, out = run_cli([*ADHOC, "--baseline", BASELINE, "--current", CURRENT], small_warehouse)
    assert code == 0, out
    assert "fell from 4.95% to 3.10%" in out
    assert "findings written to rca.runs" in out


def test_sql_dry_run_for_any_dialect(tmp_path: Path) -> None:
    import sqlglot

    for dialect in ("snowflake", "bigquery", "spark", "postgres", "trino"):
        code, out = run_cli(["sql", *ADHOC[1:], "--baseline", BASELINE, "--current", CURRENT,
                             "--dialect", dialect], tmp_path)
        assert code == 0, out
        parsed = sqlglot.parse_one(out.strip().rstrip(";"), read=dialect)
        assert "GROUPING SETS" in out.upper() and parsed is not None
    code, out = run_cli(["sql", *ADHOC[1:], "--baseline", BASELINE, "--current", CURRENT,
                         "--dialect", "klingon"], tmp_path)
    assert code == 2 and "dialect" in out


def test_query_and_time_budgets_stop_further_queries_and_say_so(duck: DuckDBEngine, monkeypatch) -> None:
    """--max-queries / --time-budget: the probe and first pass run; a deeper level and the causal
    checks run only within the budget, and the JSON lists what was skipped."""
    from warehouse_rca import investigate as module
    from warehouse_rca.contract import InvestigationOptions

    monkeypatch.setattr(module, "FIRST_PASS_DEPTH", 1)  # so that depth 2 is a deeper level

    rng = np.random.default_rng(5)
    shares = {"device": [0.4, 0.4, 0.2], "region": [0.25, 0.25, 0.25, 0.25]}
    base = make_sessions(rng, 60_000, "2026-11-10", shares, lambda r: 0.05)
    cur = make_sessions(rng, 60_000, "2026-11-17", shares,
                        lambda r: 0.015 if (r["device"] == "d0" and r["region"] == "r1") else 0.05)
    load(duck, pd.concat([base, cur]))
    metric = ratio_metric(["device", "region"])
    free = investigate(duck, metric, baseline=BASE, current=CUR, options=InvestigationOptions()).to_json()
    assert free["root_causes"][0]["segment"] == {"device": "d0", "region": "r1"}  # found one level deeper
    assert free["budget"]["skipped"] == [] and free["causal"]["enabled"]
    capped = investigate(duck, metric, baseline=BASE, current=CUR,
                         options=InvestigationOptions(max_queries=2)).to_json()
    assert capped["budget"]["queries"] == 2 and capped["queries"] == 2
    assert [s.split(" (")[0] for s in capped["budget"]["skipped"]] == ["search level 2", "causal validation"]
    assert all(len(c["segment"]) == 1 for c in capped["root_causes"])  # the answer the first pass gives
    timed = investigate(duck, metric, baseline=BASE, current=CUR,
                        options=InvestigationOptions(time_budget=1e-9)).to_json()
    assert timed["budget"]["skipped"] and "time budget" in timed["budget"]["skipped"][0]
    code, out = run_cli(["investigate", "--table", "sessions", "--time-column", "ts", "--numerator", "sum(converted)",
                         "--denominator", "count(*)", "--dimensions", "device", "--max-queries", "1",
                         "--baseline", "2026-11-10:2026-11-16", "--current", "2026-11-17:2026-11-23"], Path.cwd())
    assert code == 2 and "--max-queries" in out
