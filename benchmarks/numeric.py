"""Numeric dimensions and drivers against ground truth (issue 21), on generated session tables.

    python benchmarks/numeric.py                       # the held-out half (odd seeds), 24 cases
    python benchmarks/numeric.py --half tune --verbose # the tuning half, every case shown
    python benchmarks/numeric.py --rows 10000000 --cost  # what a driver and a numeric dimension cost

Each case is a month of sessions (one row each: a timestamp, categorical dimensions, a numeric
``employees`` column drawn from a log-normal whose spread varies by seed, a ``page_load_s``
driver and a 0/1 conversion) with one incident in the last week, of one of these kinds:

* ``threshold_driver``: for ``employees >= T`` (T a round number at a random quantile) the page
  load time is multiplied by a factor in the current week, and conversion responds to load time
  everywhere through one curve, so the shift explains the whole of the segment's expected drop;
* ``combo_driver``: the same, only inside ``device = ios`` (a numeric and a categorical value
  combined);
* ``interval_direct``: conversion falls by a factor for ``employees`` in ``[T1, T2)``, with no
  driver move;
* ``everywhere``: conversion falls for ``employees >= T`` directly, while page load time rises for
  every session by the same factor and conversion does not respond to it: the driver must not be
  reported as explaining the segment.

Scored: the rank-1 cause holds the numeric dimension with the true predicate (thresholds within
10% of the truth) and the true categorical value when there is one; its reported change within 10%
of the true segment's change (a direct query of the true predicate); for ``*_driver`` cases the
driver reported as explaining it, the change its shift explains (explained share x the segment's
change) within 10% of what the shift truly changes the segment's expected rate by (the affected
rows' rate at their shifted load against their unshifted load: the realized change also holds
sampling noise, which no driver explains); for ``everywhere`` no driver reported as explaining. Even seeds are the tuning half, odd seeds the
held-out half.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import investigate_cli

KINDS = ("threshold_driver", "combo_driver", "interval_direct", "everywhere")
BASE_RATE = 0.12
SLOPE = 0.25  # conversion = BASE_RATE * exp(-SLOPE * (load - 1.2)) where it responds
START = pd.Timestamp("2024-03-01")


@dataclass
class Case:
    kind: str
    seed: int
    thresholds: tuple[float, ...]
    device: str | None
    path: Path
    truth_change: float
    #: what the driver's shift changes the segment's expected value by (None: not the cause)
    driver_effect: float | None


def _round_at(values: np.ndarray, q: float) -> float:
    """A round threshold near the ``q`` quantile (1 or 2 significant digits)."""
    v = float(np.quantile(values, q))
    digits = 1 if q * 10 % 2 < 1 else 2
    mag = 10 ** (math.floor(math.log10(v)) - digits + 1)
    return float(round(v / mag) * mag)


def make_case(kind: str, seed: int, folder: Path, rows: int = 200_000) -> Case:
    rng = np.random.default_rng(1000 + seed)
    day = rng.integers(0, 28, rows)
    cur = day >= 21
    employees = np.round(np.exp(rng.normal(rng.uniform(4, 6), rng.uniform(0.9, 1.6), rows))) + 1
    device = rng.choice(["ios", "android", "web"], rows, p=[0.3, 0.3, 0.4])
    region = rng.choice(["north", "south", "east", "west", "central"], rows)
    plan = rng.choice(["free", "pro", "enterprise"], rows, p=[0.6, 0.3, 0.1])
    load = rng.lognormal(math.log(1.2), 0.3, rows)
    factor = float(rng.uniform(2.5, 4.5))
    responds = kind != "everywhere"
    if kind == "interval_direct":
        lo = _round_at(employees, float(rng.uniform(0.3, 0.5)))
        hi = _round_at(employees, float(rng.uniform(0.75, 0.9)))
        thresholds: tuple[float, ...] = (lo, hi) if hi > lo else (lo, lo * 3)
        inside = (employees >= thresholds[0]) & (employees < thresholds[1])
    else:
        # a combination with device = ios needs a larger side of the threshold to move the
        # total beyond noise (the tool rightly reports nothing when the total did not move)
        q = rng.uniform(0.45, 0.7) if kind == "combo_driver" else rng.uniform(0.6, 0.85)
        thresholds = (_round_at(employees, float(q)),)
        inside = employees >= thresholds[0]
    want_device = "ios" if kind == "combo_driver" else None
    if want_device:
        inside &= device == want_device
    affected = cur & inside
    unshifted = load.copy()
    if kind in ("threshold_driver", "combo_driver"):
        load = np.where(affected, load * factor, load)
    if kind == "everywhere":
        load = np.where(cur, load * factor, load)
    rate = BASE_RATE * (np.exp(-SLOPE * (load - 1.2)) if responds else np.ones(rows))
    if kind in ("interval_direct", "everywhere"):
        rate = np.where(affected, rate * float(rng.uniform(0.4, 0.7)), rate)
    rate = np.minimum(rate, 1.0)
    converted = (rng.random(rows) < rate).astype(int)
    ts = START + pd.to_timedelta(day, "D") + pd.to_timedelta(rng.integers(0, 86_400, rows), "s")
    frame = pd.DataFrame({"ts": ts, "employees": employees.astype("int64"), "device": device,
                          "region": region, "plan": plan, "page_load_s": load,
                          "converted": converted})
    path = folder / f"{kind}_{seed}.duckdb"
    con = duckdb.connect(str(path))
    con.register("generated", frame)
    con.execute("CREATE OR REPLACE TABLE sessions AS SELECT * FROM generated")
    con.close()
    seg_b, seg_c = inside & ~cur, inside & cur
    truth_change = converted[seg_c].mean() - converted[seg_b].mean()
    effect = None
    if kind in ("threshold_driver", "combo_driver"):
        # what the shift changes the segment's expected rate by: the affected rows at their
        # shifted load's rate against their unshifted load's (sampling noise is no one's effect)
        effect = float(np.mean(rate[seg_c])
                       - np.mean(BASE_RATE * np.exp(-SLOPE * (unshifted[seg_c] - 1.2))))
    return Case(kind, seed, thresholds, want_device, path, float(truth_change), effect)


ARGS = ["--table", "sessions", "--time-column", "ts", "--numerator", "sum(converted)",
        "--denominator", "count(*)", "--dimensions", "device,region,plan",
        "--numeric-dimensions", "employees", "--baseline", "2024-03-01:2024-03-21",
        "--current", "2024-03-22:2024-03-28"]


def _threshold_close(found: str, truth: tuple[float, ...]) -> bool:
    """``>= 500`` / ``in [20, 100)`` against the true cut(s), each within 10%."""
    text = found.replace("in [", "").replace(")", "").replace(">= ", "")
    if found.startswith("< "):
        return False
    try:
        cuts = [float(x) for x in text.split(",")]
    except ValueError:
        return False
    return len(cuts) == len(truth) and all(abs(c - t) <= 0.1 * t for c, t in zip(cuts, truth))


def score(case: Case, doc: dict) -> dict:
    top = doc["root_causes"][0] if doc["root_causes"] else None
    segment = top["segment"] if top else {}
    found = (top is not None and "employees" in segment
             and _threshold_close(segment["employees"], case.thresholds)
             and segment.get("device") == case.device
             and set(segment) <= {"employees", "device"})
    quantified = (found and top is not None
                  and abs(top["change"] - case.truth_change) <= 0.1 * abs(case.truth_change))
    drivers = (top or {}).get("drivers") or []
    lead = next((d for d in drivers if d["explains"]), None)
    if case.driver_effect is not None:
        moved = (lead["explained_share"] * top["change"]
                 if lead is not None and lead["explained_share"] is not None and top else None)
        driver_ok = moved is not None and abs(moved - case.driver_effect) <= 0.1 * abs(
            case.driver_effect)
    else:
        driver_ok = not any(d["explains"] for c in doc["root_causes"] for d in c["drivers"])
    return {"kind": case.kind, "seed": case.seed, "truth": case.thresholds,
            "found": found, "quantified": quantified, "driver": driver_ok,
            "segment": top["segment_label"] if top else None,
            "share": lead["explained_share"] if lead else None}


def run(half: str, seeds: int, verbose: bool) -> dict:
    chosen = [s for s in range(2 * seeds)
              if half == "all" or (s % 2 == 1) == (half == "holdout")]
    results, times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            for seed in chosen:
                case = make_case(kind, seed, Path(tmp))
                started = time.perf_counter()
                doc = investigate_cli(case.path, [*ARGS, "--drivers", "page_load_s"])
                times.append(time.perf_counter() - started)
                result = score(case, doc)
                results.append(result)
                if verbose:
                    ok = result["found"] and result["quantified"] and result["driver"]
                    print(f"{'ok  ' if ok else 'MISS'} {kind} seed={seed} truth={case.thresholds} "
                          f"got={result['segment']} driver_share={result['share']}")
    summary: dict = {"half": half, "cases": len(results)}
    for key in ("found", "quantified", "driver"):
        summary[key] = sum(r[key] for r in results) / len(results)
    summary["by_kind"] = {k: {key: sum(r[key] for r in results if r["kind"] == k)
                              / max(1, sum(r["kind"] == k for r in results))
                              for key in ("found", "quantified", "driver")} for k in KINDS}
    summary["median_seconds"] = statistics.median(times)
    return summary


def cost(rows: int, repeats: int) -> dict:
    """Seconds of one investigation (median of ``repeats``) with ``employees`` bucketed by hand at
    the true threshold (what a user writes without numeric dimensions: the same cause found),
    with it declared numeric instead (the histogram query and the chosen split), and with the
    driver added too (its query)."""
    with tempfile.TemporaryDirectory() as tmp:
        case = make_case("threshold_driver", 1, Path(tmp), rows=rows)
        t = number(case.thresholds[0])
        project = Path(tmp) / "warehouse_rca.yml"
        hand = {"name": "employees",
                "expr": f"CASE WHEN employees >= {t} THEN '>= {t}' ELSE '< {t}' END"}
        numeric = {"name": "employees", "numeric": True}
        metrics = {}
        for name, dim, drivers in (("hand_bucketed", hand, None), ("numeric_dimension", numeric, None),
                                   ("numeric_and_driver", numeric, ["page_load_s"])):
            metrics[name] = {"table": "sessions", "time_column": "ts",
                             "numerator": "sum(converted)", "denominator": "count(*)",
                             "dimensions": ["device", "region", "plan", dim],
                             **({"drivers": drivers} if drivers else {})}
        project.write_text(json.dumps({"metrics": metrics}))
        out = {}
        for name in metrics:
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                investigate_cli(case.path, [name, "--project", str(project),
                                            "--baseline", "2024-03-01:2024-03-21",
                                            "--current", "2024-03-22:2024-03-28"])
                seconds.append(time.perf_counter() - started)
            out[name] = statistics.median(seconds)
    base = out["hand_bucketed"]
    return {"rows": rows, **{k: round(v, 3) for k, v in out.items()},
            "numeric_overhead": round(out["numeric_dimension"] / base - 1, 3),
            "driver_overhead": round(out["numeric_and_driver"] / out["numeric_dimension"] - 1, 3)}


def number(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--half", choices=("tune", "holdout", "all"), default="holdout")
    parser.add_argument("--seeds", type=int, default=6, help="cases per kind and half")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--cost", action="store_true", help="measure the cost instead")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = (cost(args.rows, args.repeats) if args.cost
              else run(args.half, args.seeds, args.verbose))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
