"""The JSON contract BI jobs and schedulers read: the investigation document's key sets (a JSON
Schema shipped in the package), run and finding ids for a fixed question, and the CLI's help.

A change here is a contract change: update the schema (warehouse_rca/schemas/) or the pinned
values on purpose, and say so in the change log. Snapshots regenerate with RCA_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.test_golden_sql import GOLDEN, assert_golden
from tests.test_investigate import BASE, CUR, load, make_sessions, ratio_metric, run_cli
from warehouse_rca.cli import main
from warehouse_rca.contract import InvestigationOptions, run_id_for
from warehouse_rca.demo import BASELINE, CURRENT
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import metric_from_mapping


def schema() -> dict:
    return json.loads((resources.files("warehouse_rca") / "schemas" / "investigation.schema.json")
                      .read_text())


def check(doc: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


def test_the_demo_document_matches_the_schema(demo_dir: Path) -> None:
    code, out = run_cli(["investigate", "conversion_rate", "--project", "warehouse_rca_demo.yml",
                         "--baseline", BASELINE, "--current", CURRENT, "--format", "json",
                         "--no-write"], demo_dir)
    assert code == 0, out
    doc = json.loads(out)
    check(doc)
    assert doc["root_causes"] and "causal" in doc["root_causes"][0]


def test_every_kind_of_answer_matches_the_schema(duck: DuckDBEngine) -> None:
    """Within noise, a new value (presence, rest_value), an additive metric (effect null)."""
    rng = np.random.default_rng(3)
    shares = {"device": [0.4, 0.6], "region": [0.2, 0.3, 0.5]}
    base = make_sessions(rng, 20_000, "2026-11-10", shares, lambda r: 0.04)
    cur = make_sessions(rng, 20_000, "2026-11-17", shares, lambda r: 0.04)
    load(duck, pd.concat([base, cur]))
    quiet = investigate(duck, ratio_metric(["device", "region"]), baseline=BASE, current=CUR).to_json()
    assert quiet["root_causes"] == []
    check(quiet)

    launched = cur.copy()
    launched.loc[launched.index[:6000], "device"] = "d9"  # new in the current period ...
    launched.loc[launched.index[:6000], "converted"] = (rng.random(6000) < 0.01).astype(int)
    load(duck, pd.concat([base, launched]))
    new = investigate(duck, ratio_metric(["device", "region"]), baseline=BASE, current=CUR).to_json()
    assert new["root_causes"] and new["root_causes"][0]["presence"] == "new"
    check(new)

    orders = pd.concat([base, cur]).assign(amount=rng.gamma(2.0, 20.0, 40_000))
    orders.loc[(orders["ts"] >= pd.Timestamp("2026-11-17")) & (orders["region"] == "r2"), "amount"] *= 0.5
    load(duck, orders, "orders")
    revenue = metric_from_mapping("revenue", {"table": "orders", "time_column": "ts",
                                              "measure": "sum(amount)",
                                              "dimensions": ["device", "region"]}, "test")
    additive = investigate(duck, revenue, baseline=BASE, current=CUR).to_json()
    assert additive["root_causes"] and additive["root_causes"][0]["effect"] is None
    check(additive)


def test_a_new_key_breaks_the_contract() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**{k: None for k in schema()["required"]}, "surprise": 1}, schema())


def test_run_and_finding_ids_are_pinned_for_a_fixed_question() -> None:
    """Reruns replace their findings by these ids, and BI joins on them across releases."""
    metric = ratio_metric(["device", "region", "channel"])
    periods = {"baseline": Period.parse("2026-11-10:2026-11-16"),
               "current": Period.parse("2026-11-17:2026-11-23")}
    run_id = run_id_for(metric, periods, InvestigationOptions())
    assert run_id == PINNED_RUN_ID
    segment = {"device": "d0", "region": "r1"}
    finding = hashlib.sha256((run_id + json.dumps(segment, sort_keys=True)).encode()).hexdigest()[:16]
    assert finding == PINNED_FINDING_ID


PINNED_RUN_ID = "dc13a73b4d15c6c6"
PINNED_FINDING_ID = "3eb9ce894dfa7816"


@pytest.mark.parametrize("args", [[], ["investigate"], ["monitor"]], ids=["main", "investigate", "monitor"])
def test_help_is_pinned(args: list[str]) -> None:
    text = CliRunner().invoke(main, [*args, "--help"], terminal_width=100).output
    assert_golden(GOLDEN / f"help_{'_'.join(args) or 'main'}.txt", text)
