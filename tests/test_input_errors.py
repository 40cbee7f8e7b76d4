"""Inputs that once ended in a traceback (exit 1) or a warehouse error (exit 3): each is a clear
input error, exit 2 with a message that says what is wrong (issue 19's table, the cases in the
period, project, CLI and report paths)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.test_monitor import cli

PROJECT = """
metrics:
  conversion_rate:
    table: sessions
    time_column: ts
    numerator: sum(converted)
    denominator: count(*)
    dimensions: [device, region]
{extra}
"""
PERIODS = ["--baseline", "2026-11-10:2026-11-16", "--current", "2026-11-17:2026-11-23"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A small warehouse with one investigation written (its run id returned)."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(2)
    n = 4000
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "device": rng.choice(["iOS", "Android"], n), "region": rng.choice(["north", "south"], n),
    })
    late = (frame["ts"] >= pd.Timestamp("2026-11-17")) & (frame["device"] == "iOS")
    frame["converted"] = (rng.random(n) < np.where(late, 0.02, 0.2)).astype(int)
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"))
    con.register("incoming", frame)
    con.execute("CREATE TABLE sessions AS SELECT * FROM incoming")
    con.close()
    (folder / "warehouse_rca.yml").write_text(PROJECT.format(extra=""))
    code, out = cli(folder, "investigate", "conversion_rate", *PERIODS, "--format", "json")
    assert code == 0, out
    return folder, json.loads(out[out.index("{"):])["run_id"]


@pytest.mark.parametrize(("args", "message"), [
    (["investigate", "conversion_rate", "--baseline", "20261110:20261116", "--current",
      "2026-11-17:2026-11-23"], "'20261110' is not a date (YYYY-MM-DD)"),
    (["investigate", "conversion_rate", "--baseline", "2026-11-10T05:2026-11-16", "--current",
      "2026-11-17:2026-11-23"], "is not a date (YYYY-MM-DD) or timestamp"),
    (["investigate", "conversion_rate", "--baseline", "2026-11-10:2026-11-16", "--current",
      "2026-11-17:9999-12-31"], "'9999-12-31' is the last representable day"),
    (["history", "conversion_rate", "--limit", "-1"], "x>=1"),
    (["dimensions", "suggest", "sessions", "--max-values", "0"], "x>=1"),
    (["investigate", "conversion_rate", *PERIODS, "--report", "/dev/full"],
     "cannot write /dev/full"),
])
def test_bad_input_is_exit_two_with_a_message(shop: tuple[Path, str], args: list[str],
                                               message: str) -> None:
    folder, _ = shop
    code, out = cli(folder, *args)
    assert code == 2, out
    assert message in out and "Traceback" not in out, out


def test_an_empty_finding_is_exit_two(shop: tuple[Path, str]) -> None:
    folder, run_id = shop
    code, out = cli(folder, "feedback", run_id, " ", "--confirm", "--by", "ana")
    assert code == 2 and "FINDING is empty" in out, out


def test_a_cyclic_hierarchy_is_refused_before_any_query(shop: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = shop
    project = tmp_path / "cyclic.yml"
    project.write_text(PROJECT.format(extra="    hierarchies: [[device, region], [region, device]]\n"))
    code, out = cli(folder, "investigate", "conversion_rate", *PERIODS, "--project", str(project))
    assert code == 2 and "form a cycle" in out, out


def test_terminal_escapes_in_data_never_reach_the_terminal(tmp_path: Path) -> None:
    """A segment value holding ANSI/OSC sequences (window title, colours, hyperlinks) or a bidi
    override is printed as its escapes in text output (issue 19)."""
    rng = np.random.default_rng(3)
    n = 4000
    hostile = "iOS\x1b]0;pwned\x07\x1b[2J\u202e"
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2026-11-10") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
        "device": rng.choice([hostile, "Android"], n), "region": rng.choice(["north", "south"], n),
    })
    late = (frame["ts"] >= pd.Timestamp("2026-11-17")) & (frame["device"] == hostile)
    frame["converted"] = (rng.random(n) < np.where(late, 0.02, 0.2)).astype(int)
    con = duckdb.connect(str(tmp_path / "warehouse_rca.duckdb"))
    con.register("incoming", frame)
    con.execute("CREATE TABLE sessions AS SELECT * FROM incoming")
    con.close()
    (tmp_path / "warehouse_rca.yml").write_text(PROJECT.format(extra=""))
    code, out = cli(tmp_path, "investigate", "conversion_rate", *PERIODS)
    assert code == 0, out
    assert "iOS\\x1b]0;pwned\\x07\\x1b[2J\\u202e" in out  # shown, escaped
    assert not any(c in out for c in ("\x1b", "\x07", "\u202e"))
    code, out = cli(tmp_path, "history", "conversion_rate")
    assert code == 0 and "\x1b" not in out and "pwned" in out, out
    # Error messages quote what the user (or the data) wrote: escaped on stderr too.
    code, out = cli(tmp_path, "investigate", "--table", "x\x1b]0;pwned\x07", "--time-column", "ts",
                    "--measure", "count(*)", "--dimensions", "device", *PERIODS)
    assert code in (2, 3) and out.startswith("error: ") and "x\\x1b]0;pwned\\x07" in out, out
    assert "\x1b" not in out and "\x07" not in out, out
