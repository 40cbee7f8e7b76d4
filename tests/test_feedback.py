"""The validation loop on real DuckDB: feedback rows, the knowledge base, re-ranking, history."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.contract import PRIOR_CONFIRMED, KnowledgeBase, PastIncident
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.spec.profiles import Target

BASELINE, CURRENT = "2026-11-10:2026-11-16", "2026-11-17:2026-11-23"
DIMS = ["device", "region", "channel"]


def sessions(seed: int = 1, n: int = 30_000) -> pd.DataFrame:
    """Two incidents in one week: iOS conversion fell (the bigger drop) and the South's fell
    (under half of iOS's contribution), so a confirmed prior of 3 swaps them."""
    rng = np.random.default_rng(seed)
    parts = []
    for start, current in (("2026-11-10", False), ("2026-11-17", True)):
        f = pd.DataFrame({"ts": pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s")})
        f["device"] = rng.choice(["ios", "android", "web"], n, p=[0.35, 0.4, 0.25])
        f["region"] = rng.choice(["north", "south", "east", "west"], n)
        f["channel"] = rng.choice(["ads", "organic"], n)
        rate = np.full(n, 0.08)
        if current:  # additive effects: each holds with the other held fixed
            rate -= (0.03 * f["device"].eq("ios").to_numpy()
                     + 0.035 * f["region"].eq("south").to_numpy())
        f["converted"] = (rng.random(n) < rate).astype(int)
        parts.append(f)
    return pd.concat(parts, ignore_index=True)


def make_project(folder: Path) -> Path:
    """A DuckDB warehouse with ``sessions``, a project file and profiles.yml in ``folder``."""
    engine = DuckDBEngine(Target("t", "duckdb", {"path": str(folder / "wh.duckdb")}, "test"))
    try:
        engine.connection.register("incoming", sessions())
        engine.connection.execute("CREATE TABLE sessions AS SELECT * FROM incoming")
    finally:
        engine.close()
    (folder / "profiles.yml").write_text(yaml.safe_dump({"warehouse_rca": {"target": "dev", "outputs": {
        "dev": {"type": "duckdb", "path": str(folder / "wh.duckdb"), "schema": "rca"}}}}))
    (folder / "warehouse_rca.yml").write_text(yaml.safe_dump({"findings_schema": "rca", "metrics": {
        "conversion_rate": {"label": "Conversion rate", "table": "sessions", "time_column": "ts",
                            "numerator": "sum(converted)", "denominator": "count(*)",
                            "dimensions": DIMS, "format": "percent"}}}))
    return folder


def cli(folder: Path, *args: str) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def investigate_json(folder: Path, *extra: str) -> dict:
    code, out = cli(folder, "investigate", "conversion_rate", "--baseline", BASELINE, "--current", CURRENT,
                    "--format", "json", *extra)
    assert code == 0, out
    return json.loads(out)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("feedback"))


def test_confirm_then_rerun_ranks_the_confirmed_pattern_up(project: Path) -> None:
    first = investigate_json(project)
    segments = [c["segment"] for c in first["root_causes"]]
    assert segments[:2] == [{"device": "ios"}, {"region": "south"}], first["root_causes"]
    assert all(c["prior"] == 1.0 and c["knowledge"] is None for c in first["root_causes"])
    south = first["root_causes"][1]
    ios = first["root_causes"][0]
    # Precondition of the documented rule: the South's contribution times 3 beats iOS's.
    assert abs(south["contribution"]) * PRIOR_CONFIRMED > abs(ios["contribution"])

    code, out = cli(project, "feedback", first["run_id"], "2", "--confirm", "--by", "alice",
                    "--note", "payment outage in the South")
    assert code == 0, out
    assert "confirmed: region = south" in out and "alice" in out

    rerun = investigate_json(project)
    assert rerun["run_id"] == first["run_id"]  # same question, same run: its rows are replaced
    top = rerun["root_causes"][0]
    assert top["segment"] == {"region": "south"}
    assert top["prior"] == PRIOR_CONFIRMED and top["knowledge"] == "confirmed"
    assert top["finding_id"] == south["finding_id"]  # stable keys across the rerun
    scores = [c["ranking_score"] for c in rerun["root_causes"]]
    assert scores == sorted(scores, reverse=True)
    assert top["ranking_score"] == pytest.approx(abs(top["contribution"]) * PRIOR_CONFIRMED)
    assert "of the drop: region = south" in rerun["summary"]  # the headline follows the ranking
    # ... and says that a verdict moved it, and which
    assert "Ranked with analysts' verdicts: region = south ranked up, #2 -> #1 (confirmed before)" \
        in rerun["summary"]

    engine = DuckDBEngine(Target("t", "duckdb", {"path": str(project / "wh.duckdb")}, "test"))
    try:
        rows = engine.query("SELECT rank, segment, ranking_prior, knowledge FROM rca.latest_root_causes ORDER BY rank")
        assert json.loads(rows.loc[0, "segment"]) == {"region": "south"} and rows.loc[0, "ranking_prior"] == 3.0
        fb = engine.query("SELECT * FROM rca.feedback")
        assert len(fb) == 1
        row = fb.iloc[0]
        assert (row["verdict"], row["author"], row["note"]) == ("confirmed", "alice", "payment outage in the South")
        assert row["finding_id"] == south["finding_id"] and not pd.isna(row["created_at"])
        assert str(row["incident_start"]).startswith("2026-11-17")
        kb = engine.query("SELECT confirmations, rejections, ranking_prior FROM rca.knowledge_base")
        assert kb.iloc[0].tolist() == [1, 0, 3.0]
    finally:
        engine.close()


def test_a_new_incident_with_a_known_segment_says_seen_before(project: Path) -> None:
    # A different question (another --min-support): another run id, so the earlier run is a
    # past incident.
    doc = investigate_json(project, "--min-support", "0.01")
    south = next(c for c in doc["root_causes"] if c["segment"] == {"region": "south"})
    assert south["seen_before"] and south["seen_before"][0]["verdict"] == "confirmed"
    assert "Seen before: also the cause on 2026-11-17, confirmed by alice" in south["narrative"]
    ios = next(c for c in doc["root_causes"] if c["segment"] == {"device": "ios"})
    assert "also a cause on 2026-11-17 (not reviewed)" in ios["narrative"]


def test_history_lists_incidents_with_causes_and_verdicts(project: Path) -> None:
    code, out = cli(project, "history", "conversion_rate")
    assert code == 0, out
    assert "2026-11-17" in out and "region = south" in out
    assert "confirmed by alice: payment outage in the South" in out
    code, out = cli(project, "history", "conversion_rate", "--format", "json")
    incidents = json.loads(out)
    assert len(incidents) >= 2 and all(i["root_causes"] for i in incidents)


def test_feedback_errors_are_clear(project: Path) -> None:
    code, out = cli(project, "feedback", "nope", "1", "--confirm", "--by", "bob")
    assert code == 2 and "run 'nope' has no findings" in out
    run_id = investigate_json(project)["run_id"]
    code, out = cli(project, "feedback", run_id, "9", "--reject", "--by", "bob")
    assert code == 2 and "is not a finding of this run" in out and "region = south" in out
    code, out = cli(project, "feedback", run_id, "1", "--by", "bob")
    assert code == 2 and "--confirm or --reject" in out


def _cause(label: str, contribution: float) -> dict:
    segment = dict(p.split("=") for p in label.split(","))
    return {"segment": segment, "contribution": contribution, "narrative": label, "rank": 0}


def test_ranking_rule_latest_verdict_per_finding_and_ties() -> None:
    kb = KnowledgeBase("m", verdicts={
        json.dumps({"a": "1"}): (1, 0),  # confirmed
        json.dumps({"b": "2"}): (0, 1),  # rejected
        json.dumps({"c": "3"}): (1, 1),  # tie: neutral
    })
    ranked = kb.rank([_cause("b=2", -15.0), _cause("c=3", -6.0), _cause("a=1", -3.0), _cause("d=4", 5.0)], "run")
    # scores: b 15/3=5, c 6*1=6, a 3*3=9, d 5*1=5 (ties keep the drill-down order: b before d)
    assert [c["segment"] for c in ranked] == [{"a": "1"}, {"c": "3"}, {"b": "2"}, {"d": "4"}]
    assert [c["rank"] for c in ranked] == [1, 2, 3, 4]
    assert [c["knowledge"] for c in ranked] == ["confirmed", None, "rejected", None]
    assert "ranked down" not in ranked[2]["narrative"]  # no past incident: no note
    kb.incidents[json.dumps({"b": "2"})] = [PastIncident("old", pd.Timestamp("2026-10-03").to_pydatetime(),
                                                         "rejected", "bob", "seasonal")]
    again = kb.rank([_cause("b=2", -10.0)], "run")
    assert again[0]["narrative"].endswith(
        'Seen before: also flagged on 2026-10-03, rejected by bob ("seasonal"); a rejected pattern, ranked down.')


def test_changing_ones_mind_latest_verdict_wins(tmp_path: Path) -> None:
    folder = make_project(tmp_path)
    doc = investigate_json(folder)
    run_id = doc["run_id"]
    assert cli(folder, "feedback", run_id, "1", "--confirm", "--by", "carol")[0] == 0
    assert cli(folder, "feedback", run_id, "1", "--reject", "--by", "carol", "--note", "was a tracking bug")[0] == 0
    rerun = investigate_json(folder)
    ios = next(c for c in rerun["root_causes"] if c["segment"] == {"device": "ios"})
    assert ios["knowledge"] == "rejected" and ios["prior"] == pytest.approx(1 / 3)
    # iOS's score drops to a third, below the South's: rejected patterns rank down.
    assert rerun["root_causes"][0]["segment"] == {"region": "south"}


def test_a_verdict_applies_in_its_direction_only(tmp_path: Path) -> None:
    """A rejection given in a recovery week (the metric rose) does not demote the segment when
    the metric drops: the verdict's context is the direction of the incident's change."""
    folder = make_project(tmp_path)
    drop = investigate_json(folder)
    assert drop["change"] < 0
    code, out = cli(folder, "investigate", "conversion_rate", "--baseline", "2026-11-17:2026-11-23",
                    "--current", "2026-11-10:2026-11-16", "--format", "json")
    assert code == 0, out
    rise = json.loads(out[out.index("{"):])
    assert rise["change"] > 0 and rise["root_causes"][0]["segment"] == {"device": "ios"}
    assert cli(folder, "feedback", rise["run_id"], "1", "--reject", "--by", "bob")[0] == 0
    again = investigate_json(folder)  # the drop again: the recovery week's rejection is no context
    top = again["root_causes"][0]
    assert top["segment"] == {"device": "ios"} and top["prior"] == 1.0 and top["knowledge"] is None
    assert "Ranked with analysts' verdicts" not in again["summary"]
    code, out = cli(folder, "investigate", "conversion_rate", "--baseline", "2026-11-17:2026-11-23",
                    "--current", "2026-11-10:2026-11-16", "--format", "json")
    rise_again = json.loads(out[out.index("{"):])  # the same direction: the rejection applies
    ios = next(c for c in rise_again["root_causes"] if c["segment"] == {"device": "ios"})
    assert ios["knowledge"] == "rejected" and "device = ios ranked down" in rise_again["summary"]


def test_a_verdict_with_an_end_date_ranks_only_the_incidents_before_it(tmp_path: Path) -> None:
    folder = make_project(tmp_path)
    first = investigate_json(folder)
    assert first["root_causes"][1]["segment"] == {"region": "south"}
    code, out = cli(folder, "feedback", first["run_id"], "2", "--confirm", "--by", "alice",
                    "--until", "2026-11-15")  # e.g. a campaign that ended before this incident
    assert code == 0, out
    rerun = investigate_json(folder)  # its current period starts 2026-11-17: past the end
    assert rerun["root_causes"][0]["segment"] == {"device": "ios"}
    assert all(c["prior"] == 1.0 for c in rerun["root_causes"])
    assert cli(folder, "feedback", first["run_id"], "2", "--confirm", "--by", "alice",
               "--until", "someday")[0] == 2
