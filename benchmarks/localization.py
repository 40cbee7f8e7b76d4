"""Root-cause localization accuracy on the public benchmarks in ../shared/data/rca.

    python benchmarks/localization.py                       # every set: B0, S, L, RS
    python benchmarks/localization.py --sets RS --limit 10  # a quick look
    python benchmarks/localization.py --data-root /other/data --json

Each case is loaded into the warehouse (an in-memory DuckDB by default) and investigated through
the same code path and default options as the CLI (`investigate()` with `InvestigationOptions()`):

* B0, S, L (one CSV of leaves per case, `real` and `predict` columns): expected-vs-actual mode,
  additive metric `sum(real)` against `sum(predict)`.
* RS (minute series per case): ratio metric `sum(value) / sum(cnt)`, current period = the labelled
  minute, baseline = the 4 preceding minutes (the customary reduction, see the data README).

Scoring is the published exact-set protocol: every element normalised by sorting its `dim=value`
pairs; per case TP = labelled elements predicted exactly, FP = predicted - TP, FN = labelled - TP;
TP/FP/FN summed per folder and set, F1 = 2TP / (2TP + FP + FN).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import element
from warehouse_rca.contract import InvestigationOptions
from warehouse_rca.engines import connect
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import Target
from warehouse_rca.spec.project import MetricSpec, metric_from_mapping

REFERENCE = {  # published exact-set F1 (data README)
    "B0": {"RiskLoc": 0.96, "Squeeze": 0.93, "AutoRoot": 0.92, "Adtributor": 0.16},
    "S": {"RiskLoc": 0.62, "Squeeze": 0.07, "AutoRoot": 0.45},
    "L": {"RiskLoc": 0.75, "Squeeze": 0.29, "AutoRoot": 0.39},
    "RS": {"RobustSpot": 0.42, "AutoRoot": 0.26, "Adtributor": 0.27, "RiskLoc": 0.03},
}
TABLE = "bench_case"


def parse_label(text: str) -> set[str]:
    out = set()
    for part in text.split(";"):
        if part.strip():
            out.add(element(dict(p.split("=", 1) for p in part.strip().split("&"))))
    return out


@dataclass
class Case:
    set_name: str
    folder: str
    path: Path
    truth: set[str]
    timestamp: int | None = None


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    times: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn
        self.times += other.times

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 1.0


def leaf_cases(root: Path, set_name: str) -> list[Case]:
    cases = []
    for info in sorted((root / set_name).rglob("injection_info.csv")):
        with info.open() as fh:
            for row in csv.DictReader(fh):
                path = info.parent / f"{row['timestamp']}.csv"
                if path.exists():
                    folder = str(info.parent.relative_to(root / set_name)) or set_name
                    cases.append(Case(set_name, folder if folder != "." else set_name, path,
                                      parse_label(row["set"])))
    return cases


def rs_cases(root: Path) -> list[Case]:
    labels = yaml.safe_load((root / "RS" / "anomaly.yaml").read_text())
    cases = []
    for entry in labels:
        causes = entry["cause"] if isinstance(entry["cause"], list) else [entry["cause"]]
        path = root / "RS" / f"{entry['data']}.csv"
        if path.exists():
            cases.append(Case("RS", "RS", path, {element(c) for c in causes}, int(entry["timestamp"])))
    return cases


def load_case(engine: DuckDBEngine, case: Case) -> list[str]:
    """Load one case file into the warehouse table; returns its dimension columns."""
    rel = engine.connection.read_csv(str(case.path), all_varchar=False)
    engine.connection.execute(f"DROP TABLE IF EXISTS {TABLE}")
    rel.create(TABLE)
    columns = [c for c in rel.columns]
    measures = {"real", "predict", "min", "value", "cnt"}
    return [c for c in columns if c not in measures]


def metric_for(case: Case, dims: list[str]) -> MetricSpec:
    if case.set_name == "RS":
        raw = {"sql": f"SELECT *, to_timestamp(\"min\") AT TIME ZONE 'UTC' AS ts FROM {TABLE}",
               "time_column": "ts", "numerator": "sum(value)", "denominator": "sum(cnt)",
               "dimensions": dims}
    else:
        raw = {"table": TABLE, "measure": "sum(real)", "expected_column": "predict",
               "actual_column": "real", "dimensions": dims}
    return metric_from_mapping(case.set_name, raw, "benchmark")


def rs_periods(ts: int) -> tuple[Period, Period]:
    moment = datetime.fromtimestamp(ts, tz=timezone.utc).replace(tzinfo=None)
    fmt = "%Y-%m-%d %H:%M:%S"
    base = Period.parse(f"{(moment - timedelta(minutes=4)).strftime(fmt)}:"
                        f"{(moment - timedelta(minutes=1)).strftime(fmt)}")
    base = Period(base.start, moment, base.text)  # the 4 whole minutes before the labelled one
    cur = Period(moment, moment + timedelta(minutes=1), moment.strftime(fmt))
    return base, cur


def run_case(engine: DuckDBEngine, case: Case, options: InvestigationOptions) -> tuple[Tally, set[str]]:
    dims = load_case(engine, case)
    metric = metric_for(case, dims)
    start = time.perf_counter()
    if case.set_name == "RS":
        assert case.timestamp is not None
        baseline, current = rs_periods(case.timestamp)
    else:
        baseline = current = None
    doc = investigate(engine, metric, baseline=baseline, current=current, options=options).to_json()
    elapsed = time.perf_counter() - start
    predicted = {element(c["segment"]) for c in doc["root_causes"]}
    tp = len(predicted & case.truth)
    return Tally(tp, len(predicted) - tp, len(case.truth) - tp, [elapsed]), predicted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--sets", nargs="*", default=["B0", "S", "L", "RS"])
    parser.add_argument("--limit", type=int, default=0, help="at most N cases per set (0: all)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print each case's prediction")
    args = parser.parse_args()
    root = args.data_root / "rca"
    if not root.is_dir():
        print(f"benchmark data not found at {root} (pass --data-root)", file=sys.stderr)
        return 2
    engine = connect(Target("bench", "duckdb", {"path": ":memory:"}, "benchmark"))
    options = InvestigationOptions()
    by_folder: dict[tuple[str, str], Tally] = {}
    for set_name in args.sets:
        cases = rs_cases(root) if set_name == "RS" else leaf_cases(root, set_name)
        if args.limit:
            cases = cases[: args.limit]
        for case in cases:
            tally, predicted = run_case(engine, case, options)
            by_folder.setdefault((set_name, case.folder), Tally()).add(tally)
            if args.verbose:
                mark = "ok " if predicted == case.truth else "MISS"
                print(f"{mark} {case.path.name}: truth={sorted(case.truth)} predicted={sorted(predicted)}")
    by_set: dict[str, Tally] = {}
    for (set_name, _), tally in by_folder.items():
        by_set.setdefault(set_name, Tally()).add(tally)
    if args.json:
        print(json.dumps({
            "folders": {f"{s}/{f}": vars(t) | {"f1": t.f1} for (s, f), t in by_folder.items()},
            "sets": {s: {"tp": t.tp, "fp": t.fp, "fn": t.fn, "f1": round(t.f1, 3),
                         "median_s": round(statistics.median(t.times), 3), "cases": len(t.times)}
                     for s, t in by_set.items()},
        }, indent=2, default=str))
        return 0
    print(f"{'folder':<34} {'cases':>5} {'TP':>4} {'FP':>4} {'FN':>4} {'F1':>6} {'median s':>9}")
    for (set_name, folder), t in sorted(by_folder.items()):
        if folder != set_name:
            print(f"{set_name + '/' + folder:<34} {len(t.times):>5} {t.tp:>4} {t.fp:>4} {t.fn:>4} "
                  f"{t.f1:>6.3f} {statistics.median(t.times):>9.3f}")
    print()
    print(f"{'set':<6} {'cases':>5} {'TP':>4} {'FP':>4} {'FN':>4} {'F1':>6} {'median s':>9}  published")
    for set_name, t in by_set.items():
        ref = ", ".join(f"{k} {v:.2f}" for k, v in REFERENCE.get(set_name, {}).items())
        print(f"{set_name:<6} {len(t.times):>5} {t.tp:>4} {t.fp:>4} {t.fn:>4} {t.f1:>6.3f} "
              f"{statistics.median(t.times):>9.3f}  {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
