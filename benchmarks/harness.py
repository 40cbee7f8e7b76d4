"""Shared by the realistic benchmarks: run an investigation through the CLI's code path and score
its answer with the published exact-set protocol.

    doc = investigate_cli(db_path, ["--table", "sessions", "--time-column", "ts", ...])

runs ``warehouse-rca investigate ... --format json --no-write`` in-process (click's runner, the
same command a user types) against an embedded DuckDB file, and returns the JSON contract.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

from warehouse_rca.cli import main as cli_main
from warehouse_rca.spec.profiles import PROFILE_NAME


def element(pairs: dict[str, object]) -> str:
    """A root-cause element normalised for exact-set scoring: sorted ``dim=value`` pairs."""
    return "&".join(sorted(f"{k}={v}" for k, v in pairs.items()))


def investigate_cli(db_path: str | Path, args: list[str]) -> dict:
    """``warehouse-rca investigate ARGS --format json --no-write`` on the DuckDB file ``db_path``;
    raises RuntimeError with the CLI's output when it exits non-zero."""
    with tempfile.TemporaryDirectory() as profiles:
        Path(profiles, "profiles.yml").write_text(
            f"{PROFILE_NAME}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
            f"      path: {json.dumps(str(db_path))}\n"
        )
        result = CliRunner().invoke(
            cli_main,
            ["investigate", *args, "--format", "json", "--no-write", "--profiles-dir", profiles],
            catch_exceptions=False,
        )
    if result.exit_code != 0:
        raise RuntimeError(f"investigate exited {result.exit_code}: {result.output[-2000:]}")
    out = result.stdout
    return json.loads(out[out.index("{"):])


@dataclass
class Score:
    """Exact-set TP/FP/FN, exact rank-1 hits and seconds over a group of cases."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    cases: int = 0
    causal_cases: int = 0  # cases with at least one true cause
    rank1: int = 0  # ... whose rank-1 finding is exactly one of them
    control_cases: int = 0  # cases without a true cause (noise, global)
    false_causes: int = 0  # findings reported on those
    times: list[float] = field(default_factory=list)

    def add(self, truth: set[str], predicted: list[str], seconds: float) -> None:
        found = set(predicted)
        tp = len(found & truth)
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + len(found) - tp, self.fn + len(truth) - tp
        self.cases += 1
        self.times.append(seconds)
        if truth:
            self.causal_cases += 1
            self.rank1 += bool(predicted) and predicted[0] in truth
        else:
            self.control_cases += 1
            self.false_causes += len(found)

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 1.0

    def to_json(self) -> dict:
        return {
            "cases": self.cases, "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "f1": round(self.f1, 3),
            "rank1": round(self.rank1 / self.causal_cases, 3) if self.causal_cases else None,
            "control_cases": self.control_cases, "false_causes": self.false_causes,
            "median_s": round(statistics.median(self.times), 3) if self.times else None,
        }
