"""Numeric dimensions (thresholds found from the data) and drivers (the operational measure behind
a cause), on real DuckDB fact tables: the rules, the exact numbers, the bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.cube.predicates import labels_for, threshold_condition
from warehouse_rca.errors import ConfigError, InputError
from warehouse_rca.investigate import investigate
from warehouse_rca.localize.thresholds import choose_split, roundest, significant_digits
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import metric_from_mapping

BASE, CUR = Period.parse("2024-03-01:2024-03-21"), Period.parse("2024-03-22:2024-03-28")


def sessions(seed: int, *, rows: int = 120_000, threshold: float = 500, driver: str = "inside",
             direct: float | None = None, nulls: float = 0.0) -> pd.DataFrame:
    """A month of sessions; in the last week something happens to ``employees >= threshold``:
    its page load triples (``driver='inside'``; conversion follows load everywhere), or load
    rises for everyone while conversion ignores it and falls by ``direct`` inside the segment
    (``driver='everywhere'``), or nothing (``driver='none'``)."""
    rng = np.random.default_rng(seed)
    day = rng.integers(0, 28, rows)
    cur = day >= 21
    employees = np.round(np.exp(rng.normal(5, 1.3, rows))) + 1
    load = rng.lognormal(math.log(1.2), 0.3, rows)
    inside = employees >= threshold
    if driver == "inside":
        load = np.where(cur & inside, load * 3, load)
    elif driver == "everywhere":
        load = np.where(cur, load * 3, load)
    rate = 0.12 * (np.exp(-0.25 * (load - 1.2)) if driver != "everywhere" else 1.0)
    if direct is not None:
        rate = np.where(cur & inside, rate * direct, rate)
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2024-03-01") + pd.to_timedelta(day, "D")
        + pd.to_timedelta(rng.integers(0, 86_400, rows), "s"),
        "employees": employees,
        "device": rng.choice(["ios", "android", "web"], rows),
        "region": rng.choice(list("NSEW"), rows),
        "load_s": load,
        "converted": (rng.random(rows) < rate).astype(int),
    })
    if nulls:
        frame.loc[rng.random(rows) < nulls, "employees"] = np.nan
    return frame


def metric(**extra: object):
    raw = {"table": "sessions", "time_column": "ts", "numerator": "sum(converted)",
           "denominator": "count(*)",
           "dimensions": ["device", "region", {"name": "employees", "numeric": True}],
           "drivers": ["load_s"], **extra}
    return metric_from_mapping("conversion", raw, "test")


def load(duck, frame: pd.DataFrame, table: str = "sessions") -> None:
    duck.connection.register("frame", frame)
    duck.connection.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM frame')
    duck.connection.unregister("frame")


def run(duck, spec) -> dict:
    return investigate(duck, spec, baseline=BASE, current=CUR,
                       options=InvestigationOptions(causal=False)).to_json()


# --------------------------------------------------------------------------- the rules, unit


def test_the_roundest_number_in_a_gap_is_the_threshold() -> None:
    assert roundest(480.2, 520.0) == 500
    assert roundest(0.0121, 0.0125) == 0.0125
    assert roundest(-3, 7) == 0
    assert significant_digits(500) == 1 and significant_digits(487) == 3


def test_a_label_maps_back_to_its_comparison() -> None:
    from sqlglot import exp

    from warehouse_rca.cube.predicates import split_expression

    case = split_expression(exp.column("x"), (20.0, 100.0))
    assert labels_for((20.0, 100.0)) == ("< 20", "in [20, 100)", ">= 100")
    assert threshold_condition(case, (20.0, 100.0), "in [20, 100)").sql() == "x >= 20.0 AND x < 100.0"
    assert threshold_condition(case, (20.0, 100.0), ">= 100").sql() == "x >= 100.0"
    assert threshold_condition(case, (20.0, 100.0), "(null)") is None


def _bins(changes: list[float], rows: int = 2000) -> pd.DataFrame:
    """Histogram bins (values 1..n) whose rate moves by ``changes[i]``."""
    out = []
    for i, delta in enumerate(changes):
        out.append({"s": 1.0, "k": float(i), "lo": float(10 * (i + 1)), "hi": float(10 * (i + 1) + 5),
                    "base_num": 0.2 * rows, "cur_num": (0.2 + delta) * rows, "base_den": rows,
                    "cur_den": rows, "base_rows": rows, "cur_rows": rows,
                    "base_nn": 0.2 * rows, "cur_nn": (0.2 + delta) * rows, "base_dd": rows,
                    "cur_dd": rows, "base_nd": 0.2 * rows, "cur_nd": (0.2 + delta) * rows})
    return pd.DataFrame(out)


def test_the_split_goes_where_the_change_concentrates() -> None:
    split = choose_split("x", _bins([0] * 6 + [-0.1] * 4), "ratio", 1.0)
    assert split.rule == "concentrated" and len(split.thresholds) == 1
    assert 65 < split.thresholds[0] <= 70  # between bin 6 (60-65) and bin 7 (70-75)


def test_an_interval_is_chosen_only_when_it_earns_its_second_cut() -> None:
    interval = choose_split("x", _bins([0] * 3 + [-0.1] * 3 + [0] * 4), "ratio", 1.0)
    assert interval.rule == "concentrated" and len(interval.thresholds) == 2
    assert interval.labels[1].startswith("in [")


def test_no_change_anywhere_means_a_fixed_median_cut_not_a_fished_one() -> None:
    split = choose_split("x", _bins([0.001, -0.001] * 5), "ratio", 1.0)
    assert split.rule == "median"


# --------------------------------------------------------------------------- on a warehouse


def test_a_threshold_cause_is_found_exact_and_its_driver_quantified(duck) -> None:
    load(duck, sessions(1))
    doc = run(duck, metric())
    top = doc["root_causes"][0]
    assert top["segment"] == {"employees": ">= 500"}
    assert top["segment_label"] == "employees >= 500"
    (split,) = doc["numeric_dimensions"]
    assert split["rule"] == "concentrated" and split["thresholds"] == [500]
    # exact: the finding's numbers are a GROUP BY of the predicate itself
    direct = duck.connection.execute(
        "SELECT AVG(converted) FILTER (WHERE ts < TIMESTAMP '2024-03-22'), "
        "AVG(converted) FILTER (WHERE ts >= TIMESTAMP '2024-03-22') FROM sessions "
        "WHERE employees >= 500 AND ts < TIMESTAMP '2024-03-29'").fetchone()
    assert top["baseline_value"] == pytest.approx(direct[0], rel=1e-12)
    assert top["current_value"] == pytest.approx(direct[1], rel=1e-12)
    (drv,) = top["drivers"]
    assert drv["explains"] and drv["localized"]
    assert 0.85 <= drv["explained_share"] <= 1.15  # truth: the whole drop
    means = duck.connection.execute(
        "SELECT AVG(load_s) FILTER (WHERE ts < TIMESTAMP '2024-03-22'), "
        "AVG(load_s) FILTER (WHERE ts >= TIMESTAMP '2024-03-22') FROM sessions "
        "WHERE employees >= 500 AND ts < TIMESTAMP '2024-03-29'").fetchone()
    assert drv["baseline_mean"] == pytest.approx(means[0], rel=1e-9)
    assert drv["current_mean"] == pytest.approx(means[1], rel=1e-9)
    assert "driven primarily by load_s rising from" in doc["summary"]
    assert "explains" in top["narrative"]


def test_a_driver_that_rose_everywhere_does_not_explain_the_segment(duck) -> None:
    load(duck, sessions(2, driver="everywhere", direct=0.5))
    doc = run(duck, metric())
    top = doc["root_causes"][0]
    assert top["segment"] == {"employees": ">= 500"}
    (drv,) = top["drivers"]
    assert not drv["localized"] and not drv["explains"]
    assert "moved as much outside the segment as inside" in top["narrative"]
    assert "driven primarily" not in doc["summary"]


def test_an_unrelated_numeric_column_is_cut_at_its_median_and_explains_nothing(duck) -> None:
    frame = sessions(3, driver="none")
    frame["noise"] = np.random.default_rng(3).lognormal(3, 1, len(frame))
    load(duck, frame)
    spec = metric(dimensions=["device", {"name": "noise", "numeric": True}])
    doc = run(duck, spec)
    assert doc["numeric_dimensions"][0]["rule"] == "median"
    assert not any("noise" in c["segment"] for c in doc["root_causes"])


def test_null_values_of_a_numeric_dimension_are_their_own_segment(duck) -> None:
    load(duck, sessions(4, nulls=0.05))
    doc = run(duck, metric())
    assert doc["root_causes"][0]["segment"] == {"employees": ">= 500"}
    assert doc["numeric_dimensions"][0]["values"] == ["< 500", ">= 500"]


def test_a_hostile_numeric_column_name_stays_a_name(duck) -> None:
    frame = sessions(5).rename(columns={"employees": "emp'); DROP TABLE sessions; --"})
    load(duck, frame)
    spec = metric(dimensions=["device", {"name": "emp'); DROP TABLE sessions; --", "numeric": True}])
    doc = run(duck, spec)
    assert doc["root_causes"][0]["segment"] == {"emp'); DROP TABLE sessions; --": ">= 500"}
    assert duck.connection.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == len(frame)


def test_verification_sql_of_a_threshold_segment_reads_the_comparison(duck) -> None:
    from warehouse_rca.cube.verify import verification_sqls

    load(duck, sessions(6))
    inv = investigate(duck, metric(), baseline=BASE, current=CUR,
                      options=InvestigationOptions(causal=False))
    doc = inv.to_json()
    sqls = verification_sqls(duck, inv.metric, inv.periods, doc["root_causes"][:1])
    text = sqls[doc["root_causes"][0]["finding_id"]]
    assert '"employees" >= 500' in text and "CASE" not in text.split("WHERE", 1)[1]
    rows = duck.connection.execute(text).fetchdf().set_index("period")["value"]
    assert rows["current"] == pytest.approx(doc["root_causes"][0]["current_value"], rel=1e-12)
    assert rows["baseline"] == pytest.approx(doc["root_causes"][0]["baseline_value"], rel=1e-12)


def test_bad_numeric_and_driver_declarations_are_clear_errors(duck) -> None:
    with pytest.raises(ConfigError, match="numeric"):
        metric(dimensions=[{"name": "employees", "numeric": "yes"}])
    with pytest.raises(ConfigError, match="hierarch"):
        metric(dimensions=["device", {"name": "employees", "numeric": True}],
               hierarchies=[["employees", "device"]])
    with pytest.raises(ConfigError, match="drivers"):
        metric(drivers="load_s")
    with pytest.raises(ConfigError, match="twice"):
        metric(drivers=["load_s", "load_s"])
    load(duck, sessions(7, rows=5000))
    with pytest.raises(InputError, match="load_x"):
        run(duck, metric(drivers=["load_x"]))
    frame = sessions(8, rows=5000)
    frame["employees"] = np.nan
    load(duck, frame)
    with pytest.raises(InputError, match="no finite value"):
        run(duck, metric())


def test_findings_tables_and_report_carry_the_driver(duck, tmp_path) -> None:
    import base64
    import json

    from warehouse_rca.findings.store import write_investigation
    from warehouse_rca.report.html import render_report

    load(duck, sessions(9))
    inv = investigate(duck, metric(), baseline=BASE, current=CUR,
                      options=InvestigationOptions(causal=False))
    write_investigation(duck, inv)
    row = duck.query("SELECT * FROM rca.root_causes ORDER BY rank").iloc[0]
    top = inv.to_json()["root_causes"][0]
    assert row["driver"] == "load_s"
    assert row["driver_explained_share"] == pytest.approx(top["drivers"][0]["explained_share"])
    assert row["driver_current_mean"] == pytest.approx(top["drivers"][0]["current_mean"])
    assert "load_s" in row["driver_summary"] and json.loads(row["drivers"])[0]["bins"]
    runs = duck.query("SELECT * FROM rca.runs").to_dict("records")
    causes = duck.query("SELECT * FROM rca.root_causes ORDER BY rank").to_dict("records")
    page = render_report(runs[0], causes, None, title="Conversion", fmt="percent")
    assert 'id="chart-driver-' in page
    # confirm/reject per finding: the commands, and a snippet to ask someone (Slack, email)
    assert "mailto:?subject=Is%20this%20the%20cause%3F" in page
    assert f"warehouse-rca feedback {runs[0]['run_id']} {causes[0]['finding_id']} --confirm" in page
    uri = page.split('id="chart-driver-', 1)[1].split('src="', 1)[1].split('"', 1)[0]
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert svg.startswith("<?xml") and "load_s" in svg


def test_the_run_id_is_the_question_not_the_thresholds_chosen(duck) -> None:
    from warehouse_rca.contract import run_id_for

    load(duck, sessions(10, rows=30_000))
    spec = metric()
    inv = investigate(duck, spec, baseline=BASE, current=CUR,
                      options=InvestigationOptions(causal=False))
    assert inv.run_id == run_id_for(spec, {"baseline": BASE, "current": CUR},
                                    InvestigationOptions(causal=False))
    assert inv.metric.thresholds and not spec.thresholds


def test_the_sql_dry_run_shows_the_histogram_a_numeric_dimension_is_cut_from(tmp_path) -> None:
    from click.testing import CliRunner

    from warehouse_rca.cli import main

    result = CliRunner().invoke(main, [
        "sql", "--table", "sessions", "--time-column", "ts", "--numerator", "sum(converted)",
        "--denominator", "count(*)", "--dimensions", "device", "--numeric-dimensions", "employees",
        "--baseline", "2024-03-01:2024-03-21", "--current", "2024-03-22:2024-03-28",
        "--dialect", "postgres"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "-- numeric dimensions employees" in result.output
    assert "LN(ABS(rca_v0))" in result.output and "GROUPING SETS" in result.output
