"""One conformance suite, written once and run on every engine the tests can start: the same
generated data must give the same cube, the same root causes and the same findings everywhere.

DuckDB is embedded; PostgreSQL is a real server (tests/pgserver.py); Snowflake is fakesnow's
server mode reached by the real snowflake-connector-python (Snowflake itself cannot be reached
from CI); Spark is a Spark Connect server in local mode (tests/engineservers.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sqlglot import exp

from tests.conftest import Webhook
from warehouse_rca import sql
from warehouse_rca.cli import main
from warehouse_rca.cube.plan import cube_sql, label_cube, plan_cube, source_expression
from warehouse_rca.engines import connect
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import InputError
from warehouse_rca.findings.store import fail_run, findings_tables, start_run, write_investigation
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import Target
from warehouse_rca.spec.project import metric_from_mapping

BASE = Period.parse("2026-11-10:2026-11-16")
CUR = Period.parse("2026-11-17:2026-11-23")
CAUSE = {"device": "iOS", "region": "Southeast"}
SCHEMA = "rca_conformance"
COLUMNS = (("ts", "TIMESTAMP"), ("device", "VARCHAR"), ("region", "VARCHAR"), ("channel", "VARCHAR"),
           ("converted", "INTEGER"), ("revenue", "DOUBLE"))


def generated_sessions(n: int = 6_000, seed: int = 42) -> pd.DataFrame:
    """Two weeks of sessions; iOS users in the Southeast stop converting in the second week."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "device": rng.choice(["iOS", "Android", "desktop"], n, p=[0.5, 0.3, 0.2]),
        "region": rng.choice(["Northeast", "Southeast", "West"], n),
        "channel": rng.choice(["organic", "paid", "email", None], n, p=[0.4, 0.3, 0.2, 0.1]),
    })
    rate = np.where(
        (frame["ts"] >= pd.Timestamp("2026-11-17")) & (frame["device"] == "iOS") & (frame["region"] == "Southeast"),
        0.02, 0.2,
    )
    frame["converted"] = (rng.random(n) < rate).astype(int)
    frame["revenue"] = np.round(frame["converted"] * rng.gamma(2.0, 30.0, n), 2)
    return frame


def _py(value: object) -> object:
    """A frame's cell as a bound parameter: NULL for NaN/None, datetimes and plain numbers."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _rows(frame: pd.DataFrame, columns: tuple[tuple[str, str], ...] = COLUMNS) -> list[tuple[object, ...]]:
    names = [n for n, _ in columns]
    return [tuple(_py(v) for v in row) for row in frame[names].itertuples(index=False, name=None)]


def _load_bound(engine: Engine, frame: pd.DataFrame, name: str = "sessions",
                columns: tuple[tuple[str, str], ...] = COLUMNS) -> None:
    """DB-API warehouses: CREATE TABLE from a template, then bound rows, many per statement (the
    fakesnow server runs an executemany row by row: minutes for this table)."""
    table = sql.table_ref(name)
    engine.execute(sql.template("drop_table.sql.j2", table=table))
    engine.execute(sql.template("create_table.sql.j2", table=table, columns=[
        {"name": sql.identifier(n), "type": exp.DataType.build(t)} for n, t in columns]))
    rows, chunk = _rows(frame, columns), 1000
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk]
        insert = sql.template("insert_values.sql.j2", table=table, n_rows=len(part),
                            columns=[sql.identifier(n) for n, _ in columns])
        engine.execute(insert, [value for row in part for value in row])


def _load_duckdb(engine: Engine, frame: pd.DataFrame, name: str = "sessions",
                 columns: tuple[tuple[str, str], ...] = COLUMNS) -> None:
    engine.execute(sql.template("drop_table.sql.j2", table=sql.table_ref(name)))
    engine.connection.from_df(frame).create(name)  # DuckDB's bulk path: the frame itself


def _load_spark(engine: Engine, frame: pd.DataFrame, name: str = "sessions",
                columns: tuple[tuple[str, str], ...] = COLUMNS) -> None:
    # Spark's bulk path: a DataFrame (Arrow batches over Spark Connect) saved as a table.
    engine.session.createDataFrame(frame).write.mode("overwrite").saveAsTable(name)


LOADERS: dict[str, Callable[..., None]] = {
    "duckdb": _load_duckdb, "spark": _load_spark, "postgres": _load_bound, "snowflake": _load_bound,
}


def load_sessions(engine: Engine, frame: pd.DataFrame) -> None:
    """Create and fill the ``sessions`` test table, each engine through its own bulk path."""
    LOADERS[engine.DIALECT](engine, frame)


def load_table(engine: Engine, name: str, frame: pd.DataFrame, columns: tuple[tuple[str, str], ...]) -> None:
    """Create and fill a test table ``name`` (columns in ``columns``' order and types)."""
    LOADERS[engine.DIALECT](engine, frame[[n for n, _ in columns]], name, columns)


def count(engine: Engine, table: exp.Table) -> int:
    return int(engine.query(sql.template("count_rows.sql.j2", source=table)).iloc[0, 0])


METRIC = metric_from_mapping("conversion_rate", {
    "table": "sessions", "time_column": "ts", "numerator": "sum(converted)",
    "denominator": "count(*)", "dimensions": ["device", "region", "channel"],
}, "conformance")

ENGINE_PARAMS = [
    "duckdb",
    pytest.param("postgres", marks=[pytest.mark.slow, pytest.mark.engine]),
    pytest.param("snowflake", marks=[pytest.mark.slow, pytest.mark.engine]),
    pytest.param("spark", marks=[pytest.mark.slow, pytest.mark.engine]),
]


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "duckdb":
        target = Target("duck", "duckdb", {"path": str(tmp_path_factory.mktemp("duck") / "w.duckdb")}, "tests")
    else:
        target = request.getfixturevalue(f"{request.param}_target")
    eng = connect(target)
    load_sessions(eng, generated_sessions())
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The investigation on the embedded engine: what every other engine must reproduce."""
    eng = connect(Target("ref", "duckdb", {"path": str(tmp_path_factory.mktemp("ref") / "r.duckdb")}, "tests"))
    try:
        _load_duckdb(eng, generated_sessions())
        return investigate(eng, METRIC, baseline=BASE, current=CUR).to_json()
    finally:
        eng.close()


def test_cube_matches_pandas(engine: Engine) -> None:
    frame = generated_sessions()
    plan = plan_cube(METRIC, engine.columns_of(source_expression(METRIC)), baseline=BASE, current=CUR, max_depth=2)
    cube = label_cube(engine.query(cube_sql(plan)), plan)
    cur = frame[frame["ts"] >= pd.Timestamp("2026-11-17")]
    total = cube.total
    assert total["cur_num"] == cur["converted"].sum()
    assert total["cur_den"] == len(cur)
    by_channel = cube.frame[(cube.frame["depth"] == 1) & cube.frame["channel"].notna()]
    nulls = by_channel[by_channel["channel"] == "(null)"]
    assert len(nulls) == 1 and nulls["cur_den"].iloc[0] == cur["channel"].isna().sum()


def test_components_and_folded_values_match_pandas(engine: Engine) -> None:
    """A denominator that is not 1 per row (every component summed and pivoted by side) and a
    second-level fold (values carried as integer codes, labelled back on the result) give
    pandas' sums on every engine."""
    frame = generated_sessions()
    metric = metric_from_mapping("revenue_per_conversion", {
        "table": "sessions", "time_column": "ts", "numerator": "sum(revenue)",
        "denominator": "sum(converted)", "dimensions": ["device", "channel"],
    }, "conformance")
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)), baseline=BASE, current=CUR, max_depth=2)
    folded = dataclasses.replace(plan, sets=((), (0, 1)), min_support=0.0, keep=(("iOS",), ("(null)", "paid")))
    cube = label_cube(engine.query(cube_sql(folded)), folded).frame
    labelled = frame.assign(
        device=np.where(frame["device"] == "iOS", "iOS", "(other)"),
        channel=frame["channel"].fillna("(null)").where(frame["channel"].fillna("(null)").isin(["(null)", "paid"]), "(other)"),
        side=np.where(frame["ts"] >= pd.Timestamp(CUR.start), "cur", "base"),
        rr=frame["revenue"] ** 2, cc=frame["converted"] ** 2, rc=frame["revenue"] * frame["converted"],
    )
    want = labelled.groupby(["device", "channel", "side"]).agg(
        num=("revenue", "sum"), den=("converted", "sum"), rows=("ts", "size"),
        nn=("rr", "sum"), dd=("cc", "sum"), nd=("rc", "sum")).unstack("side", fill_value=0)
    pairs = cube[cube["depth"] == 2].set_index(["device", "channel"])
    assert len(pairs) == len(want) == 6  # {iOS, (other)} x {(null), paid, (other)}
    for (device, channel), row in pairs.iterrows():
        for component in ("num", "den", "rows", "nn", "dd", "nd"):
            for side in ("base", "cur"):
                assert row[f"{side}_{component}"] == pytest.approx(want.loc[(device, channel), (component, side)]), \
                    (device, channel, component, side)
    total = cube[cube["depth"] == 0].iloc[0]
    assert total["cur_den"] == frame.loc[frame["ts"] >= pd.Timestamp(CUR.start), "converted"].sum()


def test_same_root_cause_on_every_engine(engine: Engine, reference: dict[str, object]) -> None:
    doc = investigate(engine, METRIC, baseline=BASE, current=CUR).to_json()
    assert doc["root_causes"][0]["segment"] == CAUSE
    assert doc["root_causes"][0]["effect"] == "rate"
    # not just the top cause: the whole ranked list and its numbers match the embedded engine
    assert [(c["segment"], c["effect"]) for c in doc["root_causes"]] == \
        [(c["segment"], c["effect"]) for c in reference["root_causes"]]  # type: ignore[index]
    assert doc["current_value"] == pytest.approx(reference["current_value"], rel=1e-9)
    assert [c["contribution"] for c in doc["root_causes"]] == pytest.approx(
        [c["contribution"] for c in reference["root_causes"]], rel=1e-6)  # type: ignore[index]


def test_findings_rerun_is_idempotent(engine: Engine) -> None:
    tables = findings_tables(SCHEMA)
    found = investigate(engine, METRIC, baseline=BASE, current=CUR)
    write_investigation(engine, found, schema=SCHEMA)
    first = count(engine, tables["root_causes"])
    write_investigation(engine, investigate(engine, METRIC, baseline=BASE, current=CUR), schema=SCHEMA)
    assert count(engine, tables["runs"]) == 1
    assert count(engine, tables["latest_runs"]) == 1
    causes = count(engine, tables["latest_root_causes"])
    assert causes == first == len(found.to_json()["root_causes"]) >= 1
    assert count(engine, tables["root_causes"]) == causes


def test_feedback_drift_and_alerts_write_on_every_engine(engine: Engine, webhook: Webhook) -> None:
    """The other writers (issue 17: engines own their write strategies): an analyst's verdict
    reaches the knowledge base, drift replaces its run's rows on a rerun, and an incident is
    alerted once and recorded in alerts_sent. Plain Spark has no DELETE: the engine rewrites
    partitions there, and these paths never ask which engine they are on."""
    from warehouse_rca.alerts import Incident, send_alerts
    from warehouse_rca.dimensions.drift import detect_drift, write_drift
    from warehouse_rca.findings.feedback import load_knowledge, record_feedback, select
    from warehouse_rca.spec.alerts import AlertSettings, WebhookSettings

    found = investigate(engine, METRIC, baseline=BASE, current=CUR)
    write_investigation(engine, found, schema=SCHEMA)
    top = found.to_json()["root_causes"][0]
    record_feedback(engine, SCHEMA, found.run_id, top["finding_id"], "confirmed", "ana")
    knowledge = load_knowledge(engine, SCHEMA, METRIC.name)
    assert knowledge.prior(top["segment"])[1] == "confirmed"

    for _ in range(2):
        report = detect_drift(engine, METRIC, BASE, CUR, schema=SCHEMA)
        write_drift(engine, SCHEMA, report.run_id, report)
    frameworks = select(engine, exp.Table(this=sql.identifier("dimension_frameworks"),
                                          db=sql.identifier(SCHEMA)))
    assert frameworks.rename(columns=str.lower)["run_id"].tolist().count(report.run_id) == 1

    settings = AlertSettings(webhook=WebhookSettings(url=webhook.url))
    incident = Incident(metric=METRIC.name, start=CUR.start, end=CUR.end_exclusive, direction="down")
    first = send_alerts(incident, settings, engine=engine, schema=SCHEMA)
    again = send_alerts(incident, settings, engine=engine, schema=SCHEMA)
    assert [r.sent for r in first] == [True] and [r.duplicate for r in again] == [True]
    assert len(webhook.bodies) == 1


def test_failed_attempt_is_recorded_without_hiding_findings(engine: Engine) -> None:
    tables = findings_tables(SCHEMA)
    write_investigation(engine, investigate(engine, METRIC, baseline=BASE, current=CUR), schema=SCHEMA)
    before = count(engine, tables["runs"])
    attempt = start_run(engine, "conformance-failed-run", "conversion_rate", SCHEMA)
    assert fail_run(engine, attempt, "the warehouse said no")
    assert count(engine, tables["runs"]) > before
    assert count(engine, tables["latest_runs"]) == 1  # a failed run never becomes the latest


def test_cli_investigates_through_the_profile(engine: Engine, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The command a team runs: profiles.yml names the warehouse; the findings land in it."""
    target = engine.target
    settings = {k: v for k, v in target.settings.items() if not Target.is_secret_key(k)}
    for key in (k for k in target.settings if Target.is_secret_key(k)):
        monkeypatch.setenv(f"RCA_CONFORMANCE_{key.upper()}", str(target.settings[key]))
        settings[key] = "{{ env_var('RCA_CONFORMANCE_" + key.upper() + "') }}"
    doc = {"warehouse_rca": {"target": "t", "outputs": {"t": {"type": target.type, **settings}}}}
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump(doc))
    engine.close()  # DuckDB allows one writer per file: the CLI opens the warehouse itself
    try:
        result = CliRunner().invoke(main, [
            "investigate", "--table", "sessions", "--time-column", "ts", "--numerator", "sum(converted)",
            "--denominator", "count(*)", "--dimensions", "device,region,channel", "--baseline", BASE.text,
            "--current", CUR.text, "--profiles-dir", str(tmp_path), "--findings-schema", "rca_cli",
            "--format", "json",
        ], catch_exceptions=False)
    finally:
        engine.reconnect()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["root_causes"][0]["segment"] == CAUSE
    assert count(engine, findings_tables("rca_cli")["latest_root_causes"]) >= 1


def test_bad_input_is_a_clear_error(engine: Engine) -> None:
    bad = metric_from_mapping("m", {"table": "sessions", "time_column": "ts", "measure": "count(*)",
                                    "dimensions": ["device", "colour"]}, "conformance")
    with pytest.raises(InputError, match="unknown column 'colour'"):
        investigate(engine, bad, baseline=BASE, current=CUR)
    missing = metric_from_mapping("m", {"table": "no_such_table", "time_column": "ts", "measure": "count(*)",
                                        "dimensions": ["device"]}, "conformance")
    with pytest.raises(InputError):
        investigate(engine, missing, baseline=BASE, current=CUR)
    with pytest.raises(InputError, match="has no rows"):
        investigate(engine, METRIC, baseline=Period.parse("2025-01-01:2025-01-07"), current=CUR)


# --------------------------------------------------------------------------- monitor's writes

MONITOR_SCHEMA = "rca_monitor"
SERIES_COLUMNS = (("ts", "TIMESTAMP"), ("kind", "VARCHAR"), ("events", "DOUBLE"))
DROPS = (pd.Timestamp("2026-10-28"), pd.Timestamp("2026-11-06"))


def daily_series() -> pd.DataFrame:
    """One row per day (weekly pattern, small noise) with the value down 60 % on two days."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2026-08-01", "2026-11-12", freq="D")
    values = np.where(days.day_of_week < 5, 1000.0, 700.0) + rng.normal(0, 10, len(days)).round(1)
    values = np.where(days.isin(DROPS), values * 0.4, values)
    return pd.DataFrame({"ts": days + pd.Timedelta(hours=12), "kind": "all", "events": values})


def _monitor_metric(name: str) -> object:
    return metric_from_mapping(name, {"table": "monitor_series", "time_column": "ts", "measure": "sum(events)",
                                      "dimensions": ["kind"], "grain": "day"}, "conformance")


def _stored(engine: Engine, name: str) -> pd.DataFrame:
    from warehouse_rca.findings.feedback import select

    table = exp.Table(this=sql.identifier(name), db=sql.identifier(MONITOR_SCHEMA))
    frame = select(engine, table, order=[sql.column_ref("metric")])
    return frame.rename(columns=str.lower)


def _anomaly_days(engine: Engine) -> list[tuple[str, str]]:
    frame = _stored(engine, "anomalies")
    return sorted((str(r.metric), pd.Timestamp(r.bucket_start).strftime("%Y-%m-%d")) for r in frame.itertuples())


def test_monitor_replaces_its_window_on_every_engine(engine: Engine) -> None:
    """The monitor's writes (the path `warehouse-rca monitor --no-investigate` takes) on every
    engine: a rerun of a window replaces that window's anomalies (no duplicates), rows outside it
    and other metrics' rows stay, and monitor_state keeps one bookmark per metric. Plain Spark
    has no DELETE: there the engine rewrites the metric's partition."""
    from warehouse_rca.monitor import run_monitor

    load_table(engine, "monitor_series", daily_series(), SERIES_COLUMNS)
    for name in ("anomalies", "detection_series", "monitor_state"):
        engine.execute(sql.template("drop_table.sql.j2",
                                  table=exp.Table(this=sql.identifier(name), db=sql.identifier(MONITOR_SCHEMA))))
    first, second = _monitor_metric("events_a"), _monitor_metric("events_b")
    window = Period.parse("2026-10-25:2026-11-08")
    both = [("events_a", "2026-10-28"), ("events_a", "2026-11-06"),
            ("events_b", "2026-10-28"), ("events_b", "2026-11-06")]

    result = run_monitor(engine, [first, second], MONITOR_SCHEMA, as_of=window.end_exclusive, backfill=window,
                         investigate_anomalies=False)
    assert result.anomalies_found == 4
    assert _anomaly_days(engine) == both

    # The same window again: replaced, not duplicated.
    run_monitor(engine, [first, second], MONITOR_SCHEMA, as_of=window.end_exclusive, backfill=window,
                investigate_anomalies=False)
    assert _anomaly_days(engine) == both

    # A later window of one metric, with thresholds that no longer flag its drop: that window's
    # anomaly goes, the earlier one and the other metric's rows stay.
    late = Period.parse("2026-11-01:2026-11-08")
    run_monitor(engine, [first], MONITOR_SCHEMA, as_of=late.end_exclusive, backfill=late,
                investigate_anomalies=False, min_relative_change=0.9)
    assert _anomaly_days(engine) == [("events_a", "2026-10-28"), ("events_b", "2026-10-28"),
                                     ("events_b", "2026-11-06")]
    run_monitor(engine, [first], MONITOR_SCHEMA, as_of=late.end_exclusive, backfill=late,
                investigate_anomalies=False)
    assert _anomaly_days(engine) == both

    state = _stored(engine, "monitor_state")
    assert sorted(state["metric"].astype(str)) == ["events_a", "events_b"]  # one bookmark per metric
    assert {pd.Timestamp(v).strftime("%Y-%m-%d") for v in state["last_bucket"]} == {"2026-11-08"}


def test_monitor_never_moves_its_bookmark_past_the_data_on_every_engine(engine: Engine) -> None:
    """A source whose data stopped (11-12) on a schedule that runs for 11-20: the run examines up
    to the data, says the source is stale (exit code 11) and keeps its bookmark at the data, so
    rows loaded late are examined by the next run."""
    from warehouse_rca.monitor import EXIT_STALE_DATA, run_monitor

    load_table(engine, "monitor_series", daily_series(), SERIES_COLUMNS)
    for name in ("anomalies", "detection_series", "monitor_state"):
        engine.execute(sql.template("drop_table.sql.j2",
                                    table=exp.Table(this=sql.identifier(name), db=sql.identifier(MONITOR_SCHEMA))))
    metric = _monitor_metric("events_a")
    window = Period.parse("2026-10-25:2026-11-08")
    run_monitor(engine, [metric], MONITOR_SCHEMA, as_of=window.end_exclusive, backfill=window,
                investigate_anomalies=False)
    result = run_monitor(engine, [metric], MONITOR_SCHEMA, as_of=pd.Timestamp("2026-11-20").to_pydatetime(),
                         investigate_anomalies=False)
    (outcome,) = result.outcomes
    assert result.exit_code == EXIT_STALE_DATA
    assert outcome.stale and outcome.freshness == "events_a: no data since 2026-11-12 (expected up to 2026-11-20)"
    assert [pd.Timestamp(t) for t in outcome.window] == [pd.Timestamp("2026-11-09"), pd.Timestamp("2026-11-13")]
    state = _stored(engine, "monitor_state")
    assert [pd.Timestamp(v) for v in state["last_bucket"]] == [pd.Timestamp("2026-11-12")]
    assert [bool(v) for v in state["stale"]] == [True]
    band = _stored(engine, "detection_series")
    assert len(band) == 15 + 4  # every examined bucket: the backfill's and the stale run's


def test_nonfinite_measures_are_left_out_and_counted_on_every_engine(engine: Engine) -> None:
    """NaN and infinities in a measure (issue 19) are never summed into the answer: the rows
    holding them are left out of both periods like rows a filter drops, counted per period in a
    warning, and the findings' numbers still equal their verification SQL."""
    import sqlglot

    from warehouse_rca.cube.verify import verification_sqls

    # 1/12 of the rows get NaN revenue (second < 5), current rows at second 59 +infinity.
    text = """CREATE TABLE sessions_nonfinite AS SELECT ts, device, region, channel, converted,
              CASE WHEN EXTRACT(SECOND FROM ts) < 5 THEN CAST('NaN' AS DOUBLE)
                   WHEN EXTRACT(SECOND FROM ts) >= 59 AND ts >= TIMESTAMP '2026-11-17 00:00:00'
                   THEN CAST('Infinity' AS DOUBLE) ELSE revenue END AS revenue FROM sessions"""
    engine.execute(sql.template("drop_table.sql.j2", table=sql.table_ref("sessions_nonfinite")))
    engine.execute(sqlglot.transpile(text, read="duckdb", write=engine.DIALECT)[0])
    frame = generated_sessions()
    second = frame["ts"].dt.second
    nan, inf = second < 5, (second >= 59) & (frame["ts"] >= CUR.start)
    current = frame["ts"] >= CUR.start
    kept = frame[~nan & ~inf]

    revenue = dataclasses.replace(METRIC, name="revenue", table="sessions_nonfinite", numerator=None,
                                  denominator=None, measure="sum(revenue)", higher_is_better=True)
    found = investigate(engine, revenue, baseline=BASE, current=CUR)
    doc = found.to_json()
    assert doc["baseline_value"] == pytest.approx(kept.loc[~current[kept.index], "revenue"].sum())
    assert doc["current_value"] == pytest.approx(kept.loc[current[kept.index], "revenue"].sum())
    n_base, n_cur = int((nan & ~current).sum()), int(((nan | inf) & current).sum())
    assert [w.split(" ")[0] for w in doc["warnings"]] == [f"{n_base:,}", f"{n_cur:,}"]
    assert "sum(revenue)" in doc["warnings"][0] and "left out" in doc["warnings"][0]
    assert doc["root_causes"] and doc["root_causes"][0]["segment"] == CAUSE

    # The ratio: a NaN numerator is not a zero (it would halve the rate of its rows' segments).
    rate = dataclasses.replace(METRIC, table="sessions_nonfinite", numerator="sum(revenue)",
                               denominator="count(*)")
    found = investigate(engine, rate, baseline=BASE, current=CUR)
    doc = found.to_json()
    base_rows = kept[~current[kept.index]]
    assert doc["baseline_value"] == pytest.approx(base_rows["revenue"].sum() / len(base_rows))
    causes = doc["root_causes"]
    checks = verification_sqls(engine, rate, found.periods, causes)
    for cause in causes:
        result = engine.query(checks[cause["finding_id"]]).rename(columns=str.lower)
        by_period = dict(zip(result["period"].astype(str), result["value"].astype(float)))
        assert by_period["baseline"] == pytest.approx(cause["baseline_value"])
        assert by_period["current"] == pytest.approx(cause["current_value"])


def test_killed_attempts_are_marked_abandoned_by_the_next_run_on_every_engine(engine: Engine) -> None:
    """An attempt killed mid-run stays `running` forever unless someone says otherwise (issue 19):
    the next run of any question on the schema marks attempts running for longer than
    ABANDON_AFTER as `abandoned` (an UPDATE, or an appended row where there is no UPDATE), once."""
    from datetime import datetime, timedelta

    from warehouse_rca.findings.feedback import select
    from warehouse_rca.findings.store import ABANDON_AFTER, RUNS_COLUMNS, ensure_tables

    ensure_tables(engine, SCHEMA)
    runs = findings_tables(SCHEMA)["runs"]
    killed = datetime.now() - ABANDON_AFTER - timedelta(hours=1)
    engine.insert_rows(runs, RUNS_COLUMNS, [{"run_id": "killed-run", "attempt_id": "killed-attempt",
                                             "metric": "m", "status": "running", "started_at": killed}])
    for question in ("another-run", "yet-another-run"):
        start_run(engine, question, "m", SCHEMA)
    rows = select(engine, runs, where=exp.column("attempt_id").eq(sql.literal("killed-attempt")))
    statuses = sorted(rows.rename(columns=str.lower)["status"].astype(str))
    assert statuses in (["abandoned"], ["abandoned", "running"]), statuses  # UPDATE / appended once
    fresh = select(engine, runs, where=exp.column("run_id").eq(sql.literal("yet-another-run")))
    assert fresh.rename(columns=str.lower)["status"].astype(str).tolist() == ["running"]


# --------------------------------------------------------------------------- derived dimensions

DERIVED_COLUMNS = (("ts", "TIMESTAMP"), ("k", "INTEGER"), ("x", "DOUBLE"), ("s", "VARCHAR"))
DERIVED_BASE = Period.parse("2025-01-01:2025-12-31")
DERIVED_CUR = Period.parse("2026-01-01:2026-12-31")
#: Every function a derived dimension may use (sql.parse_dimension_expr's allow-list), with
#: DuckDB's meaning: the README's own examples first.
DERIVED_EXPRESSIONS = [
    "dayofweek(ts) IN (0, 6)",
    "CASE WHEN x < 20 THEN 'low' WHEN x < 100 THEN 'mid' ELSE 'high' END",
    "hour(ts)", "minute(ts)", "dayofweek(ts)", "isodow(ts)", "day(ts)", "dayofmonth(ts)",
    "dayofyear(ts)", "week(ts)", "weekofyear(ts)", "month(ts)", "quarter(ts)", "year(ts)",
    "EXTRACT(dow FROM ts)", "EXTRACT(isodow FROM ts)", "EXTRACT(week FROM ts)",
    "EXTRACT(quarter FROM ts)", "EXTRACT(doy FROM ts)", "EXTRACT(hour FROM ts) % 6",
    "date_trunc('week', ts)", "date_trunc('month', ts)", "date_trunc('quarter', ts)",
    "date_trunc('year', ts)",
    "k % 4", "x % 7", "k // 4", "k / 4", "floor(x / 25) * 25", "ceil(x / 25)", "round(x)",
    "round(x / 4, 1)", "abs(k)", "sign(k)", "greatest(k, 3)", "least(k, -3)", "-k + 2 * k - 1",
    "IF(k > 0, 'pos', 'other')", "k BETWEEN -2 AND 2", "NOT (k > 0)", "k IS NULL",
    "lower(s)", "upper(s)", "trim(s)", "length(s)", "coalesce(s, 'none')", "substring(s, 2, 2)",
    "concat(s, '-x')", "s || '-x'", "s LIKE '%b%'", "s ILIKE '%B%'", "s IN ('cd', 'EF')",
    "CAST(k AS VARCHAR)", "coalesce(CAST(k AS VARCHAR), '?') || lower(s)",
]


def derived_rows(n: int = 800, seed: int = 19) -> pd.DataFrame:
    """Two years of timestamps (every weekday, hour, ISO week 53 of 2026), integers of both signs,
    doubles on half units (rounding ties), strings with spaces, cases and NULLs."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")
    return pd.DataFrame({
        "ts": start + pd.to_timedelta(rng.integers(0, 730 * 86400, n), unit="s"),
        "k": rng.integers(-9, 10, n),
        "x": rng.integers(-100, 300, n) / 2.0,
        "s": rng.choice(np.array([" Ab ", "cd", "EF", "gh-ij", None], dtype=object), n),
    })


def _derived_counts(engine: Engine, expression: str) -> dict[object, int]:
    """Rows per value of the derived dimension, as the cube counts them on ``engine``."""
    metric = metric_from_mapping("derived", {
        "table": "rca_derived", "time_column": "ts", "measure": "count(*)",
        "dimensions": [{"name": "v", "expr": expression}],
    }, "conformance")
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)), baseline=DERIVED_BASE,
                     current=DERIVED_CUR, max_depth=1, min_support=1e-9)
    frame = label_cube(engine.query(cube_sql(plan)), plan).frame
    level = frame[frame["depth"] == 1]
    counts: dict[object, int] = {}
    for label, base, cur in zip(level["v"], level["base_num"], level["cur_num"]):
        key = _comparable(str(label))
        counts[key] = counts.get(key, 0) + round(float(base) + float(cur))
    return counts


def _comparable(label: str) -> object:
    """A segment label as a value: engines spell 6 as '6' or '6.0', a week start as
    '2026-11-09 00:00:00' or '2026-11-09 00:00:00.000', true as 'true' or 'TRUE'."""
    if label.lower() in ("true", "false"):
        return label.lower() == "true"
    try:
        return round(float(label), 6)
    except ValueError:
        pass
    if len(label) >= 10 and label[4] == "-" and label[7] == "-" and label[:4].isdigit():
        return pd.Timestamp(label)
    return label


@pytest.fixture(scope="module")
def derived_engine(engine: Engine) -> Engine:
    load_table(engine, "rca_derived", derived_rows(), DERIVED_COLUMNS)
    return engine


@pytest.fixture(scope="module")
def derived_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = connect(Target("ref", "duckdb", {"path": ":memory:"}, "tests"))
    _load_duckdb(eng, derived_rows(), "rca_derived")
    yield eng
    eng.close()


def _pandas_date_parts(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """DuckDB's date parts computed by pandas: what the reference itself must match."""
    ts = frame["ts"]
    iso = ts.dt.isocalendar()
    return {
        "hour(ts)": ts.dt.hour, "minute(ts)": ts.dt.minute,
        "dayofweek(ts)": (ts.dt.day_of_week + 1) % 7, "isodow(ts)": ts.dt.day_of_week + 1,
        "day(ts)": ts.dt.day, "dayofyear(ts)": ts.dt.day_of_year, "week(ts)": iso["week"].astype(int),
        "month(ts)": ts.dt.month, "quarter(ts)": ts.dt.quarter, "year(ts)": ts.dt.year,
        "dayofweek(ts) IN (0, 6)": ts.dt.day_of_week.isin([5, 6]),
        "date_trunc('week', ts)": (ts - pd.to_timedelta(ts.dt.day_of_week, unit="D")).dt.normalize(),
    }


@pytest.mark.parametrize("expression", DERIVED_EXPRESSIONS)
def test_derived_dimension_functions_mean_the_same_on_every_engine(
    derived_engine: Engine, derived_reference: Engine, expression: str
) -> None:
    """Each allowed derived-dimension function, through the cube as an investigation runs it,
    gives the same segments with the same rows on every engine as on DuckDB (and DuckDB's date
    parts are pandas'): DOW counts from Sunday = 0, ISODOW from Monday = 1, weeks are ISO weeks
    starting on Monday, `%` and ROUND work on doubles (issue 19: these failed on PostgreSQL)."""
    expected = _derived_counts(derived_reference, expression)
    parts = _pandas_date_parts(derived_rows())
    if expression in parts:
        by_pandas = parts[expression].value_counts()
        assert expected == {_comparable(str(v).lower() if isinstance(v, (bool, np.bool_)) else str(v)): int(c)
                            for v, c in by_pandas.items()}
    assert _derived_counts(derived_engine, expression) == expected


def test_latest_incidents_is_the_monitors_latest_on_every_engine(engine: Engine) -> None:
    """A "current incidents" dashboard (issue 23): after a monitor backfill and a later ad-hoc
    investigation of an older week, latest_incidents holds the monitor's latest detected incident
    and latest_runs the latest run whoever asked; no view leaks a helper column."""
    from warehouse_rca.findings.feedback import record_feedback, select
    from warehouse_rca.monitor import run_monitor

    load_table(engine, "monitor_series", daily_series(), SERIES_COLUMNS)
    for name in ("anomalies", "detection_series", "monitor_state"):
        engine.execute(sql.template("drop_table.sql.j2",
                                    table=exp.Table(this=sql.identifier(name), db=sql.identifier(MONITOR_SCHEMA))))
    metric = _monitor_metric("events_a")
    window = Period.parse("2026-10-25:2026-11-08")
    result = run_monitor(engine, [metric], MONITOR_SCHEMA, as_of=window.end_exclusive, backfill=window)
    latest_monitor = [d["run_id"] for d in result.outcomes[0].investigations if d.get("run_id")][-1]
    adhoc = investigate(engine, metric, baseline=Period.parse("2026-09-01:2026-09-07"),
                        current=Period.parse("2026-09-08:2026-09-14"))
    write_investigation(engine, adhoc, schema=MONITOR_SCHEMA)

    def view(name: str) -> pd.DataFrame:
        table = exp.Table(this=sql.identifier(name), db=sql.identifier(MONITOR_SCHEMA))
        return select(engine, table).rename(columns=str.lower)

    incidents, runs = view("latest_incidents"), view("latest_runs")
    assert incidents["run_id"].tolist() == [latest_monitor]
    assert incidents["origin"].tolist() == ["monitor"]
    assert runs["run_id"].tolist() == [adhoc.run_id] and runs["origin"].tolist() == ["ad_hoc"]
    from warehouse_rca.findings.store import RUNS_COLUMNS

    assert list(incidents.columns) == list(runs.columns) == [n for n, _ in RUNS_COLUMNS]
    causes = adhoc.to_json()["root_causes"]
    if causes:
        record_feedback(engine, MONITOR_SCHEMA, adhoc.run_id, causes[0]["finding_id"], "confirmed", "ana")
        assert "rn" not in view("latest_feedback").columns


def test_real_values_that_read_like_labels_stay_their_own_segments_on_every_engine(engine: Engine) -> None:
    """A real '(null)' or '(other)' string never merges with NULL or with a folded tail (issue
    19): such values are escaped with one more pair of parentheses, in the cube, in a folded
    second level, in the verification SQL and in the findings, on every engine."""
    import sqlglot

    from warehouse_rca.cube.plan import segment_condition
    from warehouse_rca.cube.verify import verification_sqls

    # The real '((null))' channel (label '(((null)))') stops converting in the current week.
    text = """CREATE TABLE sessions_labels AS SELECT ts, device, region,
              CASE WHEN channel = 'paid' AND ts >= TIMESTAMP '2026-11-17 00:00:00' THEN 0 ELSE converted END AS converted,
              CASE WHEN channel = 'paid' AND ts >= TIMESTAMP '2026-11-17 00:00:00' THEN 0 ELSE revenue END AS revenue,
              CASE channel WHEN 'email' THEN '(null)' WHEN 'organic' THEN '(other)'
                           WHEN 'paid' THEN '((null))' END AS channel FROM sessions"""
    engine.execute(sql.template("drop_table.sql.j2", table=sql.table_ref("sessions_labels")))
    engine.execute(sqlglot.transpile(text, read="duckdb", write=engine.DIALECT)[0])
    frame = generated_sessions()
    raw = frame["channel"].map({"email": "(null)", "organic": "(other)", "paid": "((null))"})
    want = raw.map(sql.value_label).value_counts().to_dict()
    assert want == {"(null)": (frame["channel"].isna()).sum(), "((null))": (frame["channel"] == "email").sum(),
                    "((other))": (frame["channel"] == "organic").sum(), "(((null)))": (frame["channel"] == "paid").sum()}

    metric = metric_from_mapping("conversion_rate", {
        "table": "sessions_labels", "time_column": "ts", "numerator": "sum(converted)",
        "denominator": "count(*)", "dimensions": ["device", "channel"]}, "conformance")
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)), baseline=BASE, current=CUR,
                     max_depth=1, min_support=0.0)
    cube = label_cube(engine.query(cube_sql(plan)), plan).frame
    single = cube[(cube["depth"] == 1) & cube["channel"].notna()]
    got = dict(zip(single["channel"], single["base_rows"] + single["cur_rows"]))
    assert got == want
    for label, rows in want.items():  # the rows a label's condition selects are the segment's
        condition = segment_condition(plan, {"channel": label})
        select = exp.select(exp.Count(this=exp.Star()).as_("n")).from_(plan.source).where(condition)
        assert int(engine.query(engine.generate(select)).iloc[0, 0]) == rows, label

    # A second level folded to two kept labels: the real '(other)' and NULL stay apart from the tail.
    folded = dataclasses.replace(plan, sets=((), (0, 1)), keep=(None, ("(null)", "((other))")))
    pairs = label_cube(engine.query(cube_sql(folded)), folded).frame
    pairs = pairs[pairs["depth"] == 2].groupby("channel")[["base_rows", "cur_rows"]].sum().sum(axis=1)
    assert pairs.to_dict() == {"(null)": want["(null)"], "((other))": want["((other))"],
                               "(other)": want["((null))"] + want["(((null)))"]}

    # Investigations on a ratio and an additive metric: every stated number is its segment's SQL.
    for spec in (metric, dataclasses.replace(metric, name="revenue", numerator=None, denominator=None,
                                             measure="sum(revenue)", higher_is_better=True)):
        found = investigate(engine, spec, baseline=BASE, current=CUR)
        causes = found.to_json()["root_causes"]
        assert causes[0]["segment"] == {"channel": "(((null)))"}, spec.name
        checks = verification_sqls(engine, spec, found.periods, causes)
        for cause in causes:
            result = engine.query(checks[cause["finding_id"]]).rename(columns=str.lower)
            by_period = dict(zip(result["period"].astype(str), result["value"].astype(float)))
            assert by_period["baseline"] == pytest.approx(cause["baseline_value"]), cause["segment"]
            assert by_period["current"] == pytest.approx(cause["current_value"]), cause["segment"]


SUGGEST_COLUMNS = (("ts", "TIMESTAMP"), ("day_of_month", "INTEGER"), ("city", "VARCHAR"),
                   ("region", "VARCHAR"), ("city_code", "VARCHAR"), ("latency_ms", "DOUBLE"),
                   ("slow", "INTEGER"), ("converted", "INTEGER"))


def test_dimension_suggestions_are_the_same_on_every_engine(engine: Engine) -> None:
    """`dimensions suggest`'s pushed-down profile (statistics, time parts, value counts, pairs,
    quantiles) gives every engine the same verdicts, hierarchy and (nearly) the same cuts."""
    from tests.test_suggest_flights import rule_table
    from warehouse_rca.dimensions.profile import suggest

    frame = rule_table(1500, seed=5)
    latency = frame["latency_ms"].to_numpy()
    load_table(engine, "suggest_t", frame, SUGGEST_COLUMNS)
    found = suggest(engine, sql.table_ref("suggest_t"), outcomes=["converted"], time_column="ts")
    by = {p.name.lower(): p for p in found.columns}
    # city and city_code are one partition: the shorter values (the code) stay
    assert {n for n, p in by.items() if p.proposed} == {"city_code", "region"}
    assert {n for n, p in by.items() if p.numeric} == {"latency_ms"}
    assert "the day of ts" in by["day_of_month"].reason.lower()
    assert "duplicates city_code" in by["city"].reason.lower() and "0/1 flag" in by["slow"].reason
    assert [(h.parent.lower(), h.child.lower()) for h in found.hierarchies] == [("region", "city_code")]
    lo, hi = np.quantile(latency, [1 / 3, 2 / 3])
    cuts = by["latency_ms"].cuts
    assert len(cuts) == 2 and abs(cuts[0] - lo) / lo < 0.05 and abs(cuts[1] - hi) / hi < 0.05


NUMERIC_COLUMNS = (("ts", "TIMESTAMP"), ("employees", "DOUBLE"), ("device", "VARCHAR"),
                   ("region", "VARCHAR"), ("load_s", "DOUBLE"), ("converted", "INTEGER"))


def test_numeric_thresholds_and_drivers_are_the_same_on_every_engine(
        engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The numeric dimension's histogram (LN of the magnitude, pushed down) and the drivers' bins
    give every engine the same threshold, the same cause and the same driver numbers."""
    from tests.test_numeric import BASE as NB
    from tests.test_numeric import CUR as NC
    from tests.test_numeric import metric, sessions
    from warehouse_rca.contract import InvestigationOptions

    frame = sessions(11, rows=40_000)
    load_table(engine, "numeric_sessions", frame, NUMERIC_COLUMNS)
    spec = dataclasses.replace(metric(), table="numeric_sessions")
    options = InvestigationOptions(causal=False)
    doc = investigate(engine, spec, baseline=NB, current=NC, options=options).to_json()
    ref_engine = connect(Target("ref", "duckdb", {"path": str(tmp_path_factory.mktemp("nref") / "r.duckdb")},
                                "tests"))
    try:
        load_table(ref_engine, "numeric_sessions", frame, NUMERIC_COLUMNS)
        ref = investigate(ref_engine, spec, baseline=NB, current=NC, options=options).to_json()
    finally:
        ref_engine.close()
    assert doc["numeric_dimensions"] == ref["numeric_dimensions"]
    assert doc["root_causes"][0]["segment"] == {"employees": ">= 500"}
    assert [c["segment"] for c in doc["root_causes"]] == [c["segment"] for c in ref["root_causes"]]
    got, want = doc["root_causes"][0]["drivers"][0], ref["root_causes"][0]["drivers"][0]
    for key in ("baseline_mean", "current_mean", "outside_baseline_mean", "outside_current_mean",
                "explained_share", "counterfactual_value"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    assert got["explains"] and want["explains"]
