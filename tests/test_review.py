"""The review loop on real findings: missed causes recorded against the data, the calibration
table, and a replay of the labelled incidents whose score moves when a setting does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.test_feedback import cli as _cli


@pytest.fixture(scope="module")
def reviewed(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo after a monitor backfill: its incident's first finding confirmed, the second
    rejected, and a cause it did not report (iOS) recorded as missed."""
    folder = tmp_path_factory.mktemp("review")
    shutil.copy(demo_dir / "warehouse_rca.duckdb", folder / "warehouse_rca.duckdb")
    shutil.copy(demo_dir / "warehouse_rca_demo.yml", folder / "warehouse_rca.yml")
    code, out = _cli(folder, "monitor", "--as-of", "2026-11-23", "--backfill",
                     "2026-11-17:2026-11-23", "--no-alerts")
    assert code in (0, 10), out
    con = duckdb.connect(str(folder / "warehouse_rca.duckdb"), read_only=True)
    run_id = con.execute("SELECT run_id FROM rca.latest_incidents "
                         "WHERE metric = 'conversion_rate'").fetchone()[0]
    con.close()
    assert _cli(folder, "feedback", run_id, "1", "--confirm", "--by", "ana")[0] == 0
    assert _cli(folder, "feedback", run_id, "2", "--reject", "--by", "ana")[0] == 0
    code, out = _cli(folder, "feedback", run_id, "--missed", "device=iOS", "--by", "ana")
    assert code == 0 and "missed: device = iOS" in out, out
    return folder, run_id


def test_a_missed_cause_must_exist_in_the_data(reviewed: tuple[Path, str]) -> None:
    folder, run_id = reviewed
    code, out = _cli(folder, "feedback", run_id, "--missed", "device=iPhone", "--by", "ana")
    assert code == 2 and "no rows" in out and "misspelt" in out
    code, out = _cli(folder, "feedback", run_id, "--missed", "colour=red", "--by", "ana")
    assert code == 2 and "not a dimension" in out
    code, out = _cli(folder, "feedback", run_id, "1", "--missed", "device=iOS", "--by", "ana")
    assert code == 2


def test_review_prints_calibration_and_replay_and_a_setting_moves_the_score(
        reviewed: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = reviewed
    code, out = _cli(folder, "review", "conversion_rate", "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["reviewed"] == 2 and doc["missed"] == [{"run_id": doc["missed"][0]["run_id"],
                                                       "segment": {"device": "iOS"}}]
    assert sum(b["reviewed"] for b in doc["calibration"]) == 2
    replay = doc["replay"]
    # today's settings find the confirmed cause, report the rejected one, miss iOS
    assert (replay["incidents"], replay["tp"], replay["fp"], replay["fn"]) == (1, 1, 1, 1)
    settings = tmp_path / "strict.yml"
    settings.write_text(yaml.safe_dump({"min_share": 0.5}))  # only causes of half the change
    code, out = _cli(folder, "review", "conversion_rate", "--compare-settings", str(settings),
                     "--format", "json")
    assert code == 0, out
    compared = json.loads(out)["compared"]
    assert compared["fp"] < replay["fp"] or compared["tp"] != replay["tp"]
    code, text = _cli(folder, "review", "conversion_rate", "--compare-settings", str(settings))
    assert code == 0 and "Calibration" in text and "Replay with today's settings" in text
    assert "Replay with --compare-settings" in text
