"""Metrics a team already defined: a real dbt project (dbt-core + dbt-duckdb / dbt-postgres, `dbt
run` and `dbt parse` for real) and LookML (parsed with lkml), investigated as the project file's
metrics are, with the same answer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.layers import SEMANTIC_LAYERS
from warehouse_rca.spec.project import load_project

FIXTURES = Path(__file__).parent / "fixtures"
DBT_VENV = Path(os.environ.get("RCA_DBT_VENV", Path.home() / ".cache" / "warehouse-rca" / "dbt"))
DBT = DBT_VENV / "bin" / "dbt"
PERIODS = ["--baseline", "2026-11-10:2026-11-16", "--current", "2026-11-17:2026-11-23"]
needs_dbt = pytest.mark.skipif(not DBT.exists(), reason="dbt is not installed (scripts/test.sh "
                                                          "installs it)")


def shop_frames(seed: int = 3, n: int = 30_000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two weeks of sessions of 400 customers; enterprise customers on iOS stop converting in the
    second week (a cause reached through the customer entity's join)."""
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({"customer_id": np.arange(400),
                              "segment": rng.choice(["smb", "mid", "enterprise"], 400,
                                                    p=[0.5, 0.3, 0.2]),
                              "signup_day": pd.Timestamp("2025-01-01")})
    sessions = pd.DataFrame({
        "session_id": np.arange(n),
        "customer_id": rng.integers(0, 400, n),
        "session_start": pd.Timestamp("2026-11-10")
        + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "device": rng.choice(["iOS", "Android", "desktop"], n, p=[0.4, 0.3, 0.3]),
        "region": rng.choice(["north", "south"], n),
        "channel": rng.choice(["organic", "paid", "email"], n),
    })
    segment = customers.set_index("customer_id")["segment"].reindex(sessions["customer_id"]).to_numpy()
    hit = (sessions["session_start"] >= pd.Timestamp("2026-11-17")).to_numpy() & (segment == "enterprise")
    sessions["converted"] = (rng.random(n) < np.where(hit, 0.03, 0.15)).astype(int)
    sessions["revenue"] = np.round(sessions["converted"] * rng.gamma(2.0, 30.0, n), 2)
    return sessions, customers


def write_shop(path: Path, prefix: str = "") -> None:
    """The shop's two tables in a DuckDB file (``raw_`` ones for dbt to build models on)."""
    import duckdb

    sessions, customers = shop_frames()
    con = duckdb.connect(str(path))
    con.register("s", sessions)
    con.register("c", customers)
    con.execute(f"CREATE TABLE {prefix}sessions AS SELECT * FROM s")
    con.execute(f"CREATE TABLE {prefix}customers AS SELECT * FROM c")
    con.close()


def dbt(project: Path, *args: str, env: dict[str, str]) -> None:
    done = subprocess.run([str(DBT), *args, "--project-dir", str(project), "--profiles-dir",
                           str(project)], capture_output=True, text=True, env={**os.environ, **env},
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def cli(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)
        SEMANTIC_LAYERS.set((None, None))
    return result.exit_code, result.output


def investigate(folder: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    code, out = cli(folder, "investigate", *args, *PERIODS, "--format", "json", "--no-write",
                    env=env)
    assert code == 0, out
    return json.loads(out[out.index("{"):])


HAND_WRITTEN = {
    "table": None,
    "sql": "SELECT b.*, c.segment AS customer__segment FROM sessions AS b "
           "LEFT JOIN customers AS c ON b.customer_id = c.customer_id",
    "time_column": "session_start", "numerator": "sum(converted)",
    "denominator": "count(session_id)",
    "dimensions": ["device", "region", "channel",
                   {"name": "is_mobile",
                    "expr": "case when device in ('iOS', 'Android') then 'mobile' else 'other' end"},
                   "customer__segment"],
}


def same_answer(got: dict, want: dict) -> None:
    assert [c["segment"] for c in got["root_causes"]] == [c["segment"] for c in want["root_causes"]]
    assert got["root_causes"], "the incident is found"
    for a, b in zip(got["root_causes"], want["root_causes"]):
        assert a["contribution"] == pytest.approx(b["contribution"], rel=1e-9)
        assert a["current_value"] == pytest.approx(b["current_value"], rel=1e-9)
    assert got["current_value"] == pytest.approx(want["current_value"], rel=1e-12)


@pytest.fixture(scope="module")
def dbt_shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The fixture dbt project, built for real by `dbt run` into a DuckDB file."""
    if not DBT.exists():
        pytest.skip("dbt is not installed (scripts/test.sh installs it)")
    folder = tmp_path_factory.mktemp("dbt")
    project = folder / "dbt_shop"
    shutil.copytree(FIXTURES / "dbt_shop", project)
    path = folder / "shop.duckdb"
    write_shop(path, prefix="raw_")
    env = {"DBT_SHOP_PATH": str(path), "PATH": f"{os.environ.get('PATH', '')}:{DBT.parent}"}
    dbt(project, "run", env=env)
    return folder, env


def test_every_dbt_metric_is_mapped_or_says_why(dbt_shop: tuple[Path, dict[str, str]]) -> None:
    folder, env = dbt_shop
    code, out = cli(folder, "metrics", "--dbt-project", "dbt_shop", "--format", "json", env=env)
    assert code == 0, out
    rows = {r["metric"]: r for r in json.loads(out)}
    assert (folder / "dbt_shop" / "target" / "semantic_manifest.json").is_file()  # dbt parse ran
    mapped = {n for n, r in rows.items() if r["mapped"]}
    assert mapped == {"conversion_rate", "revenue", "conversions", "sessions", "mobile_sessions",
                      "revenue_per_session", "paid_conversion_rate"}
    assert "not additive" in rows["visitors"]["why"]
    assert "offset" in rows["revenue_growth"]["why"]
    assert "cumulative" in rows["cumulative_revenue"]["why"]
    assert rows["conversion_rate"]["kind"] == "ratio"
    assert "customer__segment" in rows["conversion_rate"]["dimensions"]  # through the entity join
    assert any("'mobile'" in f for f in rows["mobile_sessions"]["filters"])
    assert "paid" in rows["paid_conversion_rate"]["numerator"]  # the input's own filter, inside
    code, text = cli(folder, "metrics", "--dbt-project", "dbt_shop", env=env)
    assert "- visitors: not mapped, because" in text and "+ conversion_rate (ratio)" in text
    code, text = cli(folder, "investigate", "visitors", "--dbt-project", "dbt_shop", *PERIODS,
                     env=env)
    assert code == 2 and "'visitors' is not mapped, because" in text and "not additive" in text


def test_a_dbt_metric_investigates_like_the_project_file(dbt_shop: tuple[Path, dict[str, str]],
                                                         tmp_path: Path) -> None:
    folder, env = dbt_shop
    # no warehouse-rca profile: the dbt project's own profile and target are reused
    got = investigate(folder, "conversion_rate", "--dbt-project", "dbt_shop", env=env)
    assert got["root_causes"][0]["segment"] == {"customer__segment": "enterprise"}
    hand = tmp_path / "hand"
    hand.mkdir()
    (hand / "profiles.yml").write_text(yaml.safe_dump({"warehouse_rca": {"target": "d", "outputs": {
        "d": {"type": "duckdb", "path": env["DBT_SHOP_PATH"]}}}}))
    spec = {k: v for k, v in HAND_WRITTEN.items() if v is not None}
    (hand / "warehouse_rca.yml").write_text(yaml.safe_dump({"metrics": {"conversion_rate": spec}}))
    same_answer(got, investigate(hand, "conversion_rate"))


def test_project_dimensions_are_inherited_and_excluded(dbt_shop: tuple[Path, dict[str, str]],
                                                       tmp_path: Path) -> None:
    folder, env = dbt_shop
    project = tmp_path / "warehouse_rca.yml"
    project.write_text(yaml.safe_dump({
        "dbt_project": str(folder / "dbt_shop"),
        "dimensions": ["device", "region"],
        "exclude_dimensions": ["channel"],
        "metrics": {
            "orders": {"table": "sessions", "time_column": "session_start",
                       "measure": "sum(converted)"},
            "by_device": {"table": "sessions", "time_column": "session_start",
                          "measure": "count(*)", "dimensions": ["device", "channel"]},
        },
    }))
    old = os.environ.get("PATH")
    os.environ["PATH"] = env["PATH"]
    try:
        loaded = load_project(project)
    finally:
        os.environ["PATH"] = old or ""
    assert loaded.metrics["orders"].dimensions == ("device", "region")
    assert loaded.metrics["by_device"].dimensions == ("device",)  # its own list, minus excluded
    assert "channel" not in loaded.metrics["conversion_rate"].dimensions  # a dbt metric too
    assert "customer__segment" in loaded.metrics["conversion_rate"].dimensions


def test_a_missing_manifest_without_dbt_is_a_clear_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "dbt_shop"
    shutil.copytree(FIXTURES / "dbt_shop", project)
    monkeypatch.setenv("PATH", "/nonexistent")
    SEMANTIC_LAYERS.set((str(project), None))
    try:
        with pytest.raises(ConfigError, match="dbt parse"):
            load_project(None)
    finally:
        SEMANTIC_LAYERS.set((None, None))


@pytest.mark.slow
@needs_dbt
def test_a_dbt_metric_investigates_on_postgres(postgres_target, tmp_path: Path) -> None:
    from tests.engines.test_conformance import load_table
    from warehouse_rca.engines import connect

    settings = postgres_target.settings
    sessions, customers = shop_frames()
    with connect(postgres_target) as engine:
        load_table(engine, "raw_sessions", sessions, (
            ("session_id", "BIGINT"), ("customer_id", "BIGINT"), ("session_start", "TIMESTAMP"),
            ("device", "VARCHAR"), ("region", "VARCHAR"), ("channel", "VARCHAR"),
            ("converted", "INTEGER"), ("revenue", "DOUBLE")))
        load_table(engine, "raw_customers", customers, (
            ("customer_id", "BIGINT"), ("segment", "VARCHAR"), ("signup_day", "TIMESTAMP")))
    project = tmp_path / "dbt_shop"
    shutil.copytree(FIXTURES / "dbt_shop", project)
    (project / "models" / "metricflow_time_spine.sql").write_text(
        "{{ config(materialized='table') }}\n"
        "select cast(d as date) as date_day from generate_series("
        "date '2026-01-01', date '2026-12-31', interval '1 day') as d\n")
    (project / "profiles.yml").write_text(yaml.safe_dump({"dbt_shop": {"target": "pg", "outputs": {
        "pg": {"type": "postgres", "host": settings["host"], "port": int(settings["port"]),
               "user": settings["user"], "password": settings.get("password", ""),
               "dbname": settings["dbname"], "schema": "public", "threads": 1}}}}))
    env = {"PATH": f"{os.environ.get('PATH', '')}:{DBT.parent}"}
    dbt(project, "run", env=env)
    got = investigate(tmp_path, "conversion_rate", "--dbt-project", "dbt_shop", env=env)
    assert got["root_causes"][0]["segment"] == {"customer__segment": "enterprise"}
    hand = tmp_path / "hand"
    hand.mkdir()
    (hand / "profiles.yml").write_text(yaml.safe_dump({"warehouse_rca": {"target": "pg", "outputs": {
        "pg": {"type": "postgres", **{k: settings[k] for k in ("host", "port", "user", "dbname")}}}}}))
    spec = {k: v for k, v in HAND_WRITTEN.items() if v is not None}
    spec["sql"] = spec["sql"].replace("FROM sessions", "FROM public.sessions").replace(
        "JOIN customers", "JOIN public.customers")
    (hand / "warehouse_rca.yml").write_text(yaml.safe_dump({"metrics": {"conversion_rate": spec}}))
    same_answer(got, investigate(hand, "conversion_rate"))


# --------------------------------------------------------------------------- LookML


def test_the_projects_own_lookml_maps_its_measures() -> None:
    from warehouse_rca.spec.lookml import load_lookml_metrics

    mapped = load_lookml_metrics(Path(__file__).resolve().parent.parent / "bi" / "looker")
    assert mapped.metrics["findings"]["measure"] == "count(*)"
    # a number measure that is null across metrics is no additive metric
    assert "does not reduce" in mapped.not_mapped["total_contribution"]
    assert "not additive" in mapped.not_mapped["score"]
    assert any(d.startswith("rca_runs__") for d in mapped.metrics["findings"]["dimensions"])


def test_a_lookml_explore_investigates_like_the_project_file(tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    write_shop(path)
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump({"warehouse_rca": {"target": "d", "outputs": {
        "d": {"type": "duckdb", "path": str(path)}}}}))
    shutil.copytree(FIXTURES / "lookml_shop", tmp_path / "lookml")
    code, out = cli(tmp_path, "metrics", "--lookml", "lookml", "--format", "json")
    assert code == 0, out
    rows = {r["metric"]: r for r in json.loads(out)}
    assert rows["conversion_rate"]["mapped"] and rows["conversion_rate"]["kind"] == "ratio"
    assert not rows["unique_customers"]["mapped"]
    # the measure's filter goes inside it (not dropped): sessions from paid traffic only
    assert rows["paid_sessions"]["measure"] == (
        "sum(CASE WHEN (channel) IN ('paid') THEN 1 ELSE 0 END)")
    paid = investigate(tmp_path, "paid_sessions", "--lookml", "lookml")
    con = duckdb.connect(str(path), read_only=True)
    direct = con.execute("SELECT COUNT(*) FROM sessions WHERE channel = 'paid' AND session_start "
                         ">= TIMESTAMP '2026-11-17' AND session_start < TIMESTAMP '2026-11-24'").fetchone()[0]
    con.close()
    assert paid["current_value"] == direct  # the number equals a direct query of the filter
    got = investigate(tmp_path, "conversion_rate", "--lookml", "lookml")
    hand = tmp_path / "hand"
    hand.mkdir()
    shutil.copy(tmp_path / "profiles.yml", hand / "profiles.yml")
    spec = {k: v for k, v in HAND_WRITTEN.items() if v is not None}
    spec["dimensions"] = ["device", "region", "channel", "is_mobile", "customers__segment"]
    spec["sql"] = ("SELECT b.*, case when b.device in ('iOS', 'Android') then 'mobile' else 'other' "
                   "end AS is_mobile, c.segment AS customers__segment FROM sessions AS b "
                   "LEFT JOIN customers AS c ON b.customer_id = c.customer_id")
    (hand / "warehouse_rca.yml").write_text(yaml.safe_dump({"metrics": {"conversion_rate": spec}}))
    same_answer(got, investigate(hand, "conversion_rate"))
    assert got["root_causes"][0]["segment"] == {"customers__segment": "enterprise"}


@needs_dbt
def test_dbt_sources_describe_the_findings_tables_and_dbt_parses_them(tmp_path: Path) -> None:
    project = tmp_path / "dbt_shop"
    shutil.copytree(FIXTURES / "dbt_shop", project)
    out = project / "models" / "warehouse_rca_sources.yml"
    code, text = cli(tmp_path, "dbt-sources", "--findings-schema", "rca", "-o", str(out))
    assert code == 0, text
    env = {"DBT_SHOP_PATH": str(tmp_path / "shop.duckdb")}
    dbt(project, "parse", env=env)
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    source = manifest["sources"]["source.dbt_shop.warehouse_rca.root_causes"]
    from warehouse_rca.findings.store import ROOT_CAUSE_COLUMNS

    assert source["schema"] == "rca" and source["description"].startswith("finding")
    assert set(source["columns"]) == {c for c, _ in ROOT_CAUSE_COLUMNS}
    described = sum(bool(c.get("description")) for c in source["columns"].values())
    assert described == len(ROOT_CAUSE_COLUMNS)  # every column documented (bi/looker)
    assert "source.dbt_shop.warehouse_rca.latest_incidents" in manifest["sources"]
