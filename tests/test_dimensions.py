"""dimensions suggest: pushed-down profiling picks real dimensions and says why others are out."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.dimensions import profile
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
    assert "- amount: numeric" in left_out
    assert "- source_system: constant" in left_out
    assert "dimensions:\n- " in out  # the ready-to-paste YAML block
    assert "NULL (kept as its own segment)" in proposed


def test_profile_reports_top_values_and_evenness(tmp_path: Path) -> None:
    make_table(tmp_path)
    from warehouse_rca.config import Target
    from warehouse_rca.engines import connect

    engine = connect(Target("t", "duckdb", {"path": str(tmp_path / "warehouse_rca.duckdb")}, "t"))
    try:
        profiles = {p.name: p for p in profile(engine, table_ref("orders"))}
    finally:
        engine.close()
    country = profiles["country"]
    assert country.top_values[0][0] == "US" and 0.45 < country.top_values[0][1] < 0.55
    assert profiles["plan"].entropy > country.entropy  # an even split is the more informative slice
