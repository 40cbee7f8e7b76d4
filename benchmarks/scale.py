"""Scale: detect + investigate on 1M to 100M rows and 6 to 20 dimensions, against the limit.

    python benchmarks/scale.py --quick                                   # smoke run, tiny sizes
    python benchmarks/scale.py                                           # 1M/10M/100M x 6/12/20
    python benchmarks/scale.py --sizes 1M,10M --dims 6,20 --out /tmp/rca_scale/results.json
    python benchmarks/scale.py --grid 1M:6,12,20 --grid 10M:6,12,20 --grid 100M:6

Data. A session fact table is generated *inside DuckDB* (``range()`` + ``hash()``; no row ever
enters Python) and written as Parquet to ``--data-dir`` (default /tmp/rca_scale), which the
investigation then reads in place (``CREATE VIEW facts AS SELECT * FROM read_parquet(...)``):

* 42 days (6 weeks) of sessions with weekly (weekends 30-40 % lighter) and daily (midday peak,
  night trough, about 4:1) seasonality in volume, and a weekend/time-of-day pattern in conversion;
* 20 dimensions of Zipf-like popularity (value k drawn with P(k) ~ log((k+2)/(k+1)), i.e. a
  discrete log-uniform = Zipf with exponent 1), from 3 to 20,000 values; the 6-, 12- and
  20-dimension configurations use the first 6, 12 or 20 columns of the same file, and each holds
  one, two or three high-cardinality dimensions (1,000 / 5,000 / 20,000 values);
* segment-level heterogeneity (every device, region and channel value has its own base rate);
* an incident in the last 3 days with three known root causes, at depth 1, 2 and 3
  (``INCIDENT``: a payment failure for one device x customer type, one product, one
  channel x region x country), about -30 % on the daily conversion rate, which the daily
  detector flags at every size.

Measured per (rows, dimensions), each in a fresh subprocess so that memory peaks are its own:

* ``detect+investigate``: one pushed-down daily series (``monitor.fetch_series``), the detector
  (``detect.detect``), then ``investigate.investigate`` with the monitor's periods (the excursion
  against the 28 days before it) and the CLI's default options;
* queries and bytes fetched: every statement through the engine is counted (a benchmark-only
  subclass of the DuckDB engine); bytes are the fetched frames' in-memory size;
* ``bare GS``: the limit -- the same single-scan GROUPING SETS aggregation (same dimension sets,
  same period filters; speed.py's ``bare_query``: the GROUPING SETS straight over the rows, counted in
  the warehouse so neither side pays for moving an unpruned cube into Python);
* memory: ``python heap`` is the tracemalloc peak of Python allocations during a second, identical
  detect + investigate (the timed run is not traced: tracemalloc slows Python code) -- what the
  target (< 300 MB, flat in rows) is about, since the embedded DuckDB runs in the same process;
  ``process RSS`` is ``ru_maxrss`` of the subprocess, which includes DuckDB's hash tables (on a
  server warehouse those live on the server);
* ``pandas``: the same question answered the way a user would without this tool -- read the two
  periods' rows of the needed columns from the Parquet into pandas and group by every combination
  of up to 3 dimensions, computing each segment's contribution to the change (``--pandas-*``);
* correctness: on ``--scenarios`` generated incidents (1-2 causes at depth 1-3 each, 6 dimensions,
  ``--correctness-rows``) the exact-set F1 of warehouse-rca against wise-pizza
  (``explain_changes_in_average`` on the leaf-level aggregates, run in its own virtualenv,
  ``--wisepizza-python``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

START = datetime(2026, 10, 12)  # a Monday
DAYS = 42
END = START + timedelta(days=DAYS)
INCIDENT_DAYS = 3
INCIDENT_START = END - timedelta(days=INCIDENT_DAYS)
#: relative session volume per weekday (Mon..Sun)
WEEK_WEIGHTS = (1.0, 1.05, 1.05, 1.0, 0.95, 0.7, 0.6)
#: name, number of values (Zipf-like popularity, value 0 the most popular)
DIMENSIONS = (
    ("device", 4), ("region", 8), ("channel", 6), ("customer_type", 3), ("country", 60),
    ("product", 1000),
    ("os_version", 12), ("campaign", 300), ("browser", 10), ("plan", 5), ("language", 30),
    ("store", 5000),
    ("age_band", 7), ("payment", 8), ("referrer", 200), ("experiment", 4), ("tier", 3),
    ("carrier", 15), ("category", 40), ("city", 20000),
)
#: the main incident (column ``converted``): segment -> conversion-rate multiplier, last 3 days
INCIDENT = (
    ({"device": 0, "customer_type": 0}, 0.1),                    # depth 2, ~25 % of sessions
    ({"product": 2}, 0.2),                                       # depth 1, a high-cardinality value
    ({"channel": 0, "region": 0, "country": 0}, 0.1),            # depth 3, ~2 % of sessions
)
BASE_RATE = 0.04
DEFAULT_DATA_DIR = Path(os.environ.get("RCA_SCALE_DIR", "/tmp/rca_scale"))
WISEPIZZA_PYTHON = Path.home() / ".cache/warehouse-rca/wisepizza-venv/bin/python"


def value_label(dim: str, k: int) -> str:
    return f"{dim[:3]}{k}"


def _u(i_expr: str, salt: int) -> str:
    """A pseudo-uniform number in [0, 1) from the row number (deterministic)."""
    return f"((hash({i_expr}, {salt}) % 1000000007) / 1000000007.0)"


def _segment_sql(segment: dict[str, int]) -> str:
    return " AND ".join(f"{d} = '{value_label(d, v)}'" for d, v in segment.items())


def _incident_factor(causes: Any) -> str:
    factors = [f"CASE WHEN {_segment_sql(seg)} THEN {mult} ELSE 1.0 END" for seg, mult in causes]
    return f"(CASE WHEN ts >= TIMESTAMP '{INCIDENT_START:%Y-%m-%d}' THEN {' * '.join(factors)} ELSE 1.0 END)"


def generation_sql(rows: int, n_dims: int, path: Path, scenarios: list[list[tuple[dict[str, int], float]]]) -> str:
    """One COPY statement: rows -> seasonal timestamps, Zipf-like dimensions, conversions."""
    weeks = DAYS // 7
    total_w = sum(WEEK_WEIGHTS)
    cum = [sum(WEEK_WEIGHTS[:k]) for k in range(8)]
    dow = "CASE " + " ".join(f"WHEN p < {cum[k + 1]} THEN {k}" for k in range(6)) + " ELSE 6 END"
    cum_of = "CASE dow " + " ".join(f"WHEN {k} THEN {cum[k]}" for k in range(7)) + " END"
    w_of = "CASE dow " + " ".join(f"WHEN {k} THEN {WEEK_WEIGHTS[k]}" for k in range(7)) + " END"
    dims = DIMENSIONS[:n_dims]
    dim_cols = ",\n      ".join(
        f"'{name[:3]}' || CAST(floor(pow({card + 1}, {_u('i', k + 1)})) - 1 AS INTEGER) AS {name}"
        for k, (name, card) in enumerate(dims)
    )
    hetero = " * ".join(f"(0.75 + 0.5 * ((hash({name}) % 1000) / 1000.0))" for name, _ in dims[:3])
    rate = (f"{BASE_RATE} * (CASE WHEN dow >= 5 THEN 0.85 ELSE 1.0 END) "
            f"* (0.9 + 0.2 * sin(2 * pi() * fr)) * {hetero}")
    conv = [f"CASE WHEN u_conv < p0 * {_incident_factor(INCIDENT)} THEN 1 ELSE 0 END AS converted"]
    for s, causes in enumerate(scenarios):
        conv.append(f"CASE WHEN u_conv < p0 * {_incident_factor(causes)} THEN 1 ELSE 0 END AS conv_s{s}")
    names = ", ".join(name for name, _ in dims)
    return f"""
COPY (
  WITH t AS (
    SELECT i, floor(i * {weeks}.0 / {rows})::INTEGER AS wk,
           (i * {weeks}.0 / {rows} - floor(i * {weeks}.0 / {rows})) * {total_w} AS p
    FROM range({rows}) r(i)
  ), d AS (
    SELECT i, wk, p, {dow} AS dow FROM t
  ), f AS (
    SELECT i, wk, dow, (p - {cum_of}) / {w_of} AS fr FROM d
  ), base AS (
    SELECT i, dow, fr,
      TIMESTAMP '{START:%Y-%m-%d}' + to_days(CAST(wk * 7 + dow AS INTEGER))
        + to_microseconds(CAST((fr + 0.6 * sin(2 * pi() * fr) / (2 * pi())) * 86400000000 AS BIGINT)) AS ts,
      {dim_cols}
    FROM f
  ), scored AS (
    SELECT *, {_u('i', 1000)} AS u_conv, {rate} AS p0 FROM base
  )
  SELECT ts, {names}, {', '.join(conv)}
  FROM scored
) TO '{path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 500000)
"""


def make_scenarios(count: int, n_dims: int, seed: int = 7) -> list[list[tuple[dict[str, int], float]]]:
    """``count`` incidents of 1-2 root causes at depth 1-3 over the first ``n_dims`` dimensions;
    values among the 3 most popular of each dimension, rate multipliers 0.15-0.5 (drops) or
    1.8-2.5 (rises)."""
    rng = random.Random(seed)
    names = [name for name, _ in DIMENSIONS[:n_dims]]
    out = []
    for s in range(count):
        n_causes = 1 if s % 2 == 0 else 2
        rise = s % 5 == 4
        causes: list[tuple[dict[str, int], float]] = []
        used: set[str] = set()
        for c in range(n_causes):
            depth = (s + c) % 3 + 1
            for _ in range(100):
                dims = sorted(rng.sample(names, depth), key=names.index)
                if not used & set(dims) or depth > 1:
                    break
            seg = {d: rng.randrange(3) for d in dims}
            mult = round(rng.uniform(1.8, 2.5) if rise else rng.uniform(0.15, 0.5), 2)
            if any(set(seg.items()) <= set(o.items()) or set(o.items()) <= set(seg.items()) for o, _ in causes):
                continue
            used |= set(dims)
            causes.append((seg, mult))
        out.append(causes)
    return out


def label_segment(seg: dict[str, int]) -> str:
    return "&".join(sorted(f"{d}={value_label(d, v)}" for d, v in seg.items()))


def parse_size(text: str) -> int:
    text = text.strip().upper().replace("_", "")
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "KMG" else text) * mult)


def fmt_size(rows: int) -> str:
    for unit, div in (("M", 10**6), ("K", 10**3)):
        if rows >= div and rows % (div // 10 or 1) == 0:
            return f"{rows / div:g}{unit}"
    return str(rows)


def data_path(data_dir: Path, rows: int, kind: str = "facts") -> Path:
    return data_dir / f"{kind}_{fmt_size(rows)}_{len(DIMENSIONS)}d.parquet" if kind == "facts" else \
        data_dir / f"{kind}_{fmt_size(rows)}.parquet"


def ensure_data(path: Path, rows: int, n_dims: int, scenarios: list, threads: int | None) -> float:
    """Generate the Parquet file once (a marker file records a complete write)."""
    done = path.with_suffix(".done")
    if path.exists() and done.exists():
        return 0.0
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    con.execute("SET preserve_insertion_order = true")
    con.execute(generation_sql(rows, n_dims, path, scenarios))
    con.close()
    done.write_text(json.dumps({"rows": rows, "dims": n_dims, "scenarios": len(scenarios)}))
    return time.perf_counter() - started


# --------------------------------------------------------------------------- one configuration

def _counting_engine(threads: int | None, memory_limit: str | None):
    """The embedded DuckDB engine, counting every statement, its time, rows and fetched bytes."""
    from warehouse_rca.engines.duckdb import DuckDBEngine
    from warehouse_rca.spec.profiles import Target

    class CountingEngine(DuckDBEngine):
        def __init__(self, target: Target) -> None:
            self.log: list[dict[str, Any]] = []
            super().__init__(target)

        def _record(self, statement: str, seconds: float, rows: int, nbytes: int) -> None:
            body = "\n".join(l for l in statement.splitlines() if not l.strip().startswith("/*")).strip()
            if "s0_num" in statement:
                kind = "causal series"
            elif "GROUPING SETS" in statement:
                kind = "cube" if not any(q["kind"] == "cube" for q in self.log) else "cube (deeper level)"
            elif "n_rows" in statement:
                kind = "series"
            elif "LIMIT 0" in statement.upper():
                kind = "probe"
            else:
                kind = "other: " + " ".join(body.split())[:60]
            self.log.append({"kind": kind, "seconds": round(seconds, 3), "rows": rows, "bytes": nbytes})

        def _query_once(self, statement, params):
            started = time.perf_counter()
            frame = super()._query_once(statement, params)
            self._record(statement, time.perf_counter() - started, len(frame),
                         int(frame.memory_usage(deep=True).sum()))
            return frame

        def column_types(self, source):
            started = time.perf_counter()
            out = super().column_types(source)
            self._record("SELECT * LIMIT 0", time.perf_counter() - started, 0, 0)
            return out

    engine = CountingEngine(Target("scale", "duckdb", {"path": ":memory:"}, "benchmark"))
    if threads:
        engine.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        engine.execute(f"SET memory_limit = '{memory_limit}'")
    # Spill files of the in-memory database go next to the data, never into the working directory.
    engine.execute(f"SET temp_directory = '{DEFAULT_DATA_DIR / 'duckdb_tmp'}'")
    return engine


def _metric(n_dims: int, numerator: str = "converted", table: str = "facts"):
    from warehouse_rca.spec.project import metric_from_mapping

    return metric_from_mapping(f"conversion_rate_{numerator}", {
        "table": table, "time_column": "ts", "grain": "day",
        "numerator": f"sum({numerator})", "denominator": "count(*)",
        "dimensions": [name for name, _ in DIMENSIONS[:n_dims]],
        "higher_is_better": True, "format": "percent",
    }, "benchmark")


def _periods_from_detection(engine, metric) -> tuple[Any, Any, dict[str, Any]]:
    """The monitor's recipe: daily series -> detector -> last excursion vs the 28 days before."""
    import warnings

    from warehouse_rca.detect import detect
    from warehouse_rca.monitor import BASELINE_BUCKETS, GRAIN_STEP, fetch_series, settings_for
    from warehouse_rca.spec.periods import Period

    series, volume = fetch_series(engine, metric, START, END)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = detect(series, settings_for(metric), grain=metric.grain, volume=volume)
    step = GRAIN_STEP[metric.grain]
    info: dict[str, Any] = {"model": result.model, "excursions": [str(e.start.date()) for e in result.excursions]}
    if result.excursions:
        exc = result.excursions[-1]
        start, end = exc.start.to_pydatetime(), exc.end.to_pydatetime() + step
        info["detected"] = True
    else:  # not flagged: fall back to the known incident window, and say so
        start, end = INCIDENT_START, END
        info["detected"] = False
    baseline = Period(start - BASELINE_BUCKETS[metric.grain] * step, start, "seasonal baseline")
    current = Period(start, end, "anomaly")
    info["baseline"] = [str(baseline.start), str(baseline.end_exclusive)]
    info["current"] = [str(current.start), str(current.end_exclusive)]
    return baseline, current, info


def run_config(path: Path, n_dims: int, max_depth: int, threads: int | None, memory_limit: str | None,
               skip_bare: bool) -> dict[str, Any]:
    """detect + investigate, then the bare GROUPING SETS query, on the Parquet file in place."""
    # A scheduled monitor has its modules loaded: import them (and the ones they load lazily)
    # before the clock starts; the pandas side is likewise timed after `import pandas`.
    import statsmodels.tsa.seasonal  # noqa: F401  (detect)
    from scipy.stats import norm  # noqa: F401  (detect)
    from speed import bare_query

    from warehouse_rca import causal, detect, monitor  # noqa: F401
    from warehouse_rca.contract import InvestigationOptions
    from warehouse_rca.cube.plan import cube_sql, plan_cube, source_expression
    from warehouse_rca.investigate import investigate

    global DEFAULT_DATA_DIR
    DEFAULT_DATA_DIR = path.parent
    engine = _counting_engine(threads, memory_limit)
    engine.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet('{path}')")
    metric = _metric(n_dims)
    names = [name for name, _ in DIMENSIONS[:n_dims]]
    # Warm the OS page cache for both sides: one cheap scan of every column used.
    warm = time.perf_counter()
    engine.query("SELECT COUNT(*), " + ", ".join(f"MAX(LENGTH({d}))" for d in names)
                 + ", SUM(converted), MAX(ts) FROM facts")
    warm_s = time.perf_counter() - warm
    rows = int(engine.query("SELECT COUNT(*) AS n FROM facts").iloc[0, 0])
    engine.log.clear()

    started = time.perf_counter()
    baseline, current, detection = _periods_from_detection(engine, metric)
    detect_s = time.perf_counter() - started
    inv = investigate(engine, metric, baseline=baseline, current=current,
                      options=InvestigationOptions(max_depth=max_depth))
    total_s = time.perf_counter() - started
    doc = inv.to_json()
    log = list(engine.log)
    # Memory: the same detect + investigate again under tracemalloc. Its bookkeeping of every
    # allocation slows Python-heavy steps (20-40 % of the whole at 1M rows), so the timed run
    # above runs without it.
    tracemalloc.start()
    traced = time.perf_counter()
    again_b, again_c, _ = _periods_from_detection(engine, metric)
    investigate(engine, metric, baseline=again_b, current=again_c, options=InvestigationOptions(max_depth=max_depth))
    traced_s = time.perf_counter() - traced
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    found = {label_segment_str(c["segment"]) for c in doc["root_causes"]}
    truth = {label_segment(seg) for seg, _ in INCIDENT if set(seg) <= set(names)}
    tp = len(found & truth)
    result: dict[str, Any] = {
        "rows": rows, "dims": n_dims, "max_depth": max_depth,
        "grouping_sets": len(plan_cube(metric, None, baseline=baseline, current=current, max_depth=max_depth).sets),
        "warmup_s": round(warm_s, 2),
        "detect_s": round(detect_s, 3),
        "investigate_s": round(total_s - detect_s, 3),
        "detect_investigate_s": round(total_s, 3),
        "queries": len(log),
        "bytes_fetched": sum(q["bytes"] for q in log),
        "rows_fetched": sum(q["rows"] for q in log),
        "query_log": log,
        "python_heap_peak_mb": round(heap_peak / 2**20, 1),
        "traced_run_s": round(traced_s, 3),
        "detection": detection,
        "root_causes": [label_segment_str(c["segment"]) for c in doc["root_causes"]],
        "truth": sorted(truth),
        "tp": tp, "fp": len(found) - tp, "fn": len(truth) - tp,
        "segments_evaluated": doc["segments_evaluated"],
    }
    if not skip_bare:
        plan = plan_cube(metric, engine.columns_of(source_expression(metric)),
                         baseline=baseline, current=current, max_depth=max_depth)
        bare = bare_query(engine.render(cube_sql(plan)), engine.DIALECT)
        started = time.perf_counter()
        groups = int(engine.query(bare).iloc[0, 0])
        result["bare_s"] = round(time.perf_counter() - started, 3)
        result["bare_groups"] = groups
        result["ratio"] = round(total_s / result["bare_s"], 2)
    engine.close()
    result["process_rss_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def label_segment_str(seg: dict[str, str]) -> str:
    return "&".join(sorted(f"{d}={v}" for d, v in seg.items()))


# --------------------------------------------------------------------------- pandas, by hand

def run_pandas(path: Path, n_dims: int, max_depth: int, baseline: list[str], current: list[str]) -> dict[str, Any]:
    """What a user would do without the tool: load the two periods' rows into pandas and group by
    every combination of up to ``max_depth`` dimensions, ranking segments by their contribution
    (shift-share: the segment's share of the change of the overall rate)."""
    import pandas as pd

    names = [name for name, _ in DIMENSIONS[:n_dims]]
    b0, b1 = (pd.Timestamp(x) for x in baseline)
    c0, c1 = (pd.Timestamp(x) for x in current)
    started = time.perf_counter()
    df = pd.read_parquet(path, columns=["ts", *names, "converted"],
                         filters=[[("ts", ">=", b0), ("ts", "<", b1)], [("ts", ">=", c0), ("ts", "<", c1)]])
    df["side"] = (df["ts"] >= c0).astype("int8")
    df = df.drop(columns="ts")
    load_s = time.perf_counter() - started
    tot = df.groupby("side")["converted"].agg(["sum", "count"])
    r_base = tot.loc[0, "sum"] / tot.loc[0, "count"]
    d_base, d_cur = tot.loc[0, "count"], tot.loc[1, "count"]
    top = []
    n_groupbys = 0
    for depth in range(1, max_depth + 1):
        for combo in combinations(names, depth):
            g = df.groupby([*combo, "side"], observed=True)["converted"].agg(["sum", "count"]).unstack("side", fill_value=0)
            n_groupbys += 1
            bn, bd = g.get(("sum", 0), 0), g.get(("count", 0), 0)
            cn, cd = g.get(("sum", 1), 0), g.get(("count", 1), 0)
            contribution = (cn - r_base * cd) / d_cur - (bn - r_base * bd) / d_base
            best = contribution.abs().nlargest(5)
            for key, value in best.items():
                top.append((float(value), combo, key))
    top.sort(key=lambda t: -t[0])
    total_s = time.perf_counter() - started
    return {
        "rows_loaded": len(df), "groupbys": n_groupbys,
        "pandas_load_s": round(load_s, 3), "pandas_s": round(total_s, 3),
        "pandas_rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "pandas_top": [f"{c}={k}" for _, c, k in top[:3]],
    }


# --------------------------------------------------------------------------- correctness

def run_correctness(path: Path, n_dims: int, scenarios: list, max_depth: int, threads: int | None,
                    wisepizza_python: Path | None, work: Path, wp_timeout: float,
                    top_values: int = 8, wp_memory: int = 10 * 2**30) -> dict[str, Any]:
    """warehouse-rca and wise-pizza on the same incidents (known periods), exact-set F1."""
    from warehouse_rca.contract import InvestigationOptions
    from warehouse_rca.investigate import investigate
    from warehouse_rca.spec.periods import Period

    engine = _counting_engine(threads, None)
    engine.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet('{path}')")
    names = [name for name, _ in DIMENSIONS[:n_dims]]
    current = Period(INCIDENT_START, END, "incident")
    baseline = Period(INCIDENT_START - timedelta(days=28), INCIDENT_START, "28 days before")
    cases = []
    for s, causes in enumerate(scenarios):
        metric = _metric(n_dims, numerator=f"conv_s{s}")
        started = time.perf_counter()
        doc = investigate(engine, metric, baseline=baseline, current=current,
                          options=InvestigationOptions(max_depth=max_depth)).to_json()
        cases.append({
            "scenario": s,
            "truth": sorted(label_segment(seg) for seg, _ in causes),
            "multipliers": [m for _, m in causes],
            "rca": [label_segment_str(c["segment"]) for c in doc["root_causes"]],
            "rca_s": round(time.perf_counter() - started, 3),
        })
    # Leaf-level aggregates of both periods, for wise-pizza (a segment-level frame).
    leaves = work / "wisepizza_leaves.csv"
    sums = ", ".join(f"SUM(conv_s{s}) AS conv_s{s}" for s in range(len(scenarios)))
    engine.execute(f"""
        COPY (
          SELECT {', '.join(names)},
                 CASE WHEN ts >= TIMESTAMP '{current.start}' THEN 1 ELSE 0 END AS side,
                 COUNT(*) AS sessions, {sums}
          FROM facts
          WHERE ts >= TIMESTAMP '{baseline.start}' AND ts < TIMESTAMP '{current.end_exclusive}'
          GROUP BY ALL
        ) TO '{leaves}' (HEADER, DELIMITER ',')""")
    n_leaves = int(engine.query(f"SELECT COUNT(*) FROM read_csv_auto('{leaves}')").iloc[0, 0])
    engine.close()
    out: dict[str, Any] = {"rows": None, "dims": n_dims, "scenarios": len(scenarios), "leaf_rows": n_leaves,
                           "cases": cases}
    if wisepizza_python and Path(wisepizza_python).exists():
        spec = work / "wisepizza_spec.json"
        spec.write_text(json.dumps({
            "leaves": str(leaves), "dims": names, "scenarios": len(scenarios), "max_depth": max_depth,
            "k": [len(c) for c in scenarios], "top_values": top_values,
        }))
        try:
            proc = subprocess.run([str(wisepizza_python), str(Path(__file__).resolve()), "_wisepizza", str(spec)],
                                  capture_output=True, text=True, timeout=wp_timeout, check=False,
                                  preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (wp_memory, wp_memory)))
            if proc.returncode != 0:
                out["wisepizza_error"] = f"exit {proc.returncode}: " + " ".join(proc.stderr.strip().splitlines()[-1:])
            else:
                wp = json.loads(proc.stdout.strip().splitlines()[-1])
                for case, got in zip(cases, wp["cases"]):
                    case.update(got)
                out["wisepizza_version"] = wp.get("version")
        except subprocess.TimeoutExpired:
            out["wisepizza_error"] = f"timeout after {wp_timeout:.0f} s"
    else:
        out["wisepizza_error"] = (f"no wise-pizza interpreter at {wisepizza_python}: create it with "
                                  f"`python3 -m venv {Path(wisepizza_python).parent.parent} && "
                                  f"{Path(wisepizza_python).parent}/pip install wise-pizza==0.2.9`")

    out["score"] = score_cases(cases)
    return out


def score_cases(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact-set TP/FP/FN summed over the incidents, F1 = 2TP / (2TP + FP + FN), per method."""
    def score(key: str) -> dict[str, Any]:
        tp = fp = fn = 0
        for c in cases:
            if key not in c:
                return {}
            got, truth = set(c[key]), set(c["truth"])
            tp += len(got & truth)
            fp += len(got - truth)
            fn += len(truth - got)
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        times = sorted(c[key + "_s"] for c in cases if c.get(key + "_s") is not None)
        return {"tp": tp, "fp": fp, "fn": fn, "f1": round(f1, 3),
                "median_s": round(times[len(times) // 2], 3) if times else None}

    return {k: score(k) for k in ("rca", "wisepizza", "wisepizza_topk")}


def wisepizza_main(spec_path: str) -> int:
    """Runs inside the wise-pizza virtualenv (its own pinned pandas/numpy)."""
    import warnings

    import pandas as pd
    import wise_pizza

    warnings.simplefilter("ignore")
    spec = json.loads(Path(spec_path).read_text())
    dims, depth = spec["dims"], spec["max_depth"]
    leaves = pd.read_csv(spec["leaves"], dtype={d: str for d in dims})
    # wise-pizza enumerates every value combination up to max_depth in memory: on the raw leaves
    # (1,000 products) it exhausts RAM, so, as a user would, keep each dimension's most common
    # values and fold the rest into '(other)' (the true causes are among the top 3 of each).
    for d in dims:
        top = leaves.groupby(d)["sessions"].sum().nlargest(spec["top_values"]).index
        leaves[d] = leaves[d].where(leaves[d].isin(top), "(other)")
    results = []
    for s in range(spec["scenarios"]):
        col = f"conv_s{s}"
        frames = {}
        for side in (0, 1):
            frames[side] = (leaves[leaves["side"] == side].groupby(dims, as_index=False)[["sessions", col]].sum())
        started = time.perf_counter()
        sf = wise_pizza.explain_changes_in_average(
            df1=frames[0], df2=frames[1], dims=dims, total_name=col, size_name="sessions",
            max_depth=depth, min_segments=None, max_segments=None, how="totals", verbose=0,
        )
        elapsed = time.perf_counter() - started
        segs = ["&".join(sorted(f"{d}={v}" for d, v in seg["segment"].items())) for seg in sf.segments]
        topk = segs[: spec["k"][s]]
        results.append({"wisepizza": segs, "wisepizza_s": round(elapsed, 3),
                        "wisepizza_topk": topk, "wisepizza_topk_s": round(elapsed, 3)})
    from importlib.metadata import version

    print(json.dumps({"cases": results, "version": version("wise-pizza")}))
    return 0


# --------------------------------------------------------------------------- orchestration

def _subprocess(args: list[str], timeout: float) -> dict[str, Any]:
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _generate(path: Path, rows: int, n_dims: int, scenarios: int, threads: int | None) -> float:
    """Generate in a subprocess: DuckDB's memory stays out of the orchestrator (whose peak RSS
    every child would otherwise inherit as the floor of its own ru_maxrss)."""
    out = _subprocess(["_generate", str(path), str(rows), str(n_dims), str(scenarios),
                       *(["--threads", str(threads)] if threads else [])], 6 * 3600)
    if "error" in out:
        raise SystemExit(f"data generation failed: {out['error']}")
    return round(out["seconds"], 1)


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.2f} MB" if nbytes >= 1e5 else f"{nbytes / 1e3:.1f} kB"


def markdown(results: list[dict[str, Any]], correctness: dict[str, Any] | None) -> str:
    lines = [
        ("| rows | dims | sets | detect + investigate | queries | fetched | bare GROUPING SETS | ratio "
         "| Python heap peak | process RSS peak | pandas | speed-up vs pandas | causes found |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['rows_requested']:,} | {r['dims']} | | {r['error']} | | | | | | | | | |")
            continue
        pandas = f"{r['pandas_s']:.1f} s" if "pandas_s" in r else r.get("pandas_error", "–")
        speedup = f"{r['pandas_s'] / r['detect_investigate_s']:.1f}x" if "pandas_s" in r else "–"
        bare = f"{r['bare_s']:.1f} s" if "bare_s" in r else r.get("bare_error", "–")
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "–"
        lines.append(
            f"| {r['rows']:,} | {r['dims']} | {r['grouping_sets']} | {r['detect_investigate_s']:.1f} s "
            f"| {r['queries']} | {_mb(r['bytes_fetched'])} | {bare} | {ratio} | {r['python_heap_peak_mb']:.1f} MB "
            f"| {r['process_rss_peak_mb']:,.0f} MB | {pandas} | {speedup} | {r['tp']}/{r['tp'] + r['fn']} (+{r['fp']} FP) |"
        )
    if correctness:
        sc = correctness["score"]
        lines += ["", (f"Correctness on {correctness['scenarios']} generated incidents "
                       f"({correctness['rows']:,} rows, {correctness['dims']} dimensions, exact-set match):"), "",
                  "| method | TP | FP | FN | F1 | median s/incident |", "|---|---:|---:|---:|---:|---:|"]
        for key, label in (("rca", "warehouse-rca (defaults)"), ("wisepizza", "wise-pizza (defaults)"),
                           ("wisepizza_topk", "wise-pizza, top-k (k = true number of causes)")):
            s = sc.get(key) or {}
            if s:
                lines.append(f"| {label} | {s['tp']} | {s['fp']} | {s['fn']} | {s['f1']:.3f} | {s['median_s']} |")
            else:
                lines.append(f"| {label} | – | – | – | – | {correctness.get('wisepizza_error', '')} |")
    return "\n".join(lines)


def verdicts(results: list[dict[str, Any]], correctness: dict[str, Any] | None) -> list[str]:
    ok = [r for r in results if "error" not in r]
    out = []
    big = [r for r in ok if r["rows"] >= 9_000_000 and "ratio" in r]
    if big:
        worst = max(big, key=lambda r: r["ratio"])
        out.append(f"ratio <= 1.3 at >= 10M rows: {'MET' if worst['ratio'] <= 1.3 else 'NOT MET'} "
                   f"(worst {worst['ratio']:.2f} at {worst['rows']:,} rows x {worst['dims']} dims)")
    if ok:
        peak = max(r["python_heap_peak_mb"] for r in ok)
        by_dims: dict[int, list[dict[str, Any]]] = {}
        for r in ok:
            by_dims.setdefault(r["dims"], []).append(r)
        growth = [max(x["python_heap_peak_mb"] for x in rs) / max(1e-9, min(x["python_heap_peak_mb"] for x in rs))
                  for rs in by_dims.values() if len(rs) > 1]
        flat = all(g <= 1.5 for g in growth)
        out.append(f"Python heap peak < 300 MB and flat in rows: {'MET' if peak < 300 and flat else 'NOT MET'} "
                   f"(max {peak:.1f} MB; largest growth across sizes at fixed dims {max(growth, default=1):.2f}x)")
    for rows in sorted({r["rows"] for r in ok}):
        six = [r for r in ok if r["rows"] == rows and r["dims"] == 6]
        twenty = [r for r in ok if r["rows"] == rows and r["dims"] == 20]
        if six and twenty:
            f = twenty[0]["detect_investigate_s"] / six[0]["detect_investigate_s"]
            out.append(f"20 dims within 3x of 6 dims at {rows:,} rows: {'MET' if f <= 3 else 'NOT MET'} ({f:.1f}x)")
    for r in ok:
        if r["rows"] >= 9_000_000 and "pandas_s" in r:
            f = r["pandas_s"] / r["detect_investigate_s"]
            out.append(f">= 10x faster than pandas at {r['rows']:,} rows x {r['dims']} dims: "
                       f"{'MET' if f >= 10 else 'NOT MET'} ({f:.1f}x)")
    if correctness and correctness["score"].get("wisepizza"):
        a = correctness["score"]["rca"]["f1"]
        b = max(correctness["score"]["wisepizza"]["f1"], (correctness["score"].get("wisepizza_topk") or {}).get("f1", 0))
        out.append(f"root causes at least as correct as wise-pizza: {'MET' if a >= b else 'NOT MET'} "
                   f"(F1 {a:.3f} vs best wise-pizza variant {b:.3f})")
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        return _internal(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1M,10M,100M", help="row counts, e.g. 1M,10M,100M")
    parser.add_argument("--dims", default="6,12,20", help="dimension counts (of 20), e.g. 6,12,20")
    parser.add_argument("--grid", action="append", metavar="SIZE:DIMS",
                        help="explicit configurations instead of sizes x dims, e.g. --grid 100M:6,20 (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20K and 100K rows, 6 and 12 dims, 4 incidents")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    parser.add_argument("--memory-limit", default="8GB",
                        help="DuckDB memory_limit (default 8GB, so a runaway GROUPING SETS spills or "
                             "fails instead of exhausting the machine)")
    parser.add_argument("--timeout", type=float, default=2400, help="seconds per configuration")
    parser.add_argument("--bare-max-sets", type=int, default=400,
                        help="skip the bare query when the full lattice has more grouping sets than this "
                             "(20 dims at depth 3: 1,351 sets, which no engine here aggregates in one pass)")
    parser.add_argument("--pandas-max-rows", default="10M", help="largest size the pandas approach runs at")
    parser.add_argument("--pandas-dims", default="6", help="dimension counts the pandas approach runs at")
    parser.add_argument("--correctness-rows", default="1M")
    parser.add_argument("--scenarios", type=int, default=12, help="generated incidents for the correctness check (0: skip)")
    parser.add_argument("--wisepizza-python", type=Path, default=WISEPIZZA_PYTHON,
                        help="python of a virtualenv with wise-pizza installed")
    parser.add_argument("--wisepizza-timeout", type=float, default=1200)
    parser.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                        help="print the table and verdicts of earlier --out files combined, run nothing")
    args = parser.parse_args()

    if args.merge:
        results, correctness = [], None
        for f in args.merge:
            doc = json.loads(f.read_text())
            results += doc.get("results", [])
            correctness = doc.get("correctness") or correctness
        if correctness:
            correctness["score"] = score_cases(correctness["cases"])
        _print_report(results, correctness)
        return 0

    if args.quick:
        grid = [(20_000, [6, 12]), (100_000, [6, 12])]
        args.correctness_rows, args.scenarios, args.pandas_max_rows = "100K", min(args.scenarios, 4), "100K"
        args.pandas_dims = "6,12"
    elif args.grid:
        grid = []
        for g in args.grid:
            size, dims = g.split(":")
            grid.append((parse_size(size), [int(d) for d in dims.split(",")]))
    else:
        dims = [int(d) for d in args.dims.split(",")]
        grid = [(parse_size(s), dims) for s in args.sizes.split(",")]
    pandas_max = parse_size(args.pandas_max_rows)
    pandas_dims = {int(d) for d in args.pandas_dims.split(",")}
    threads = ["--threads", str(args.threads)] if args.threads else []
    mem = ["--memory-limit", args.memory_limit] if args.memory_limit else []
    args.data_dir.mkdir(parents=True, exist_ok=True)

    results: list[dict[str, Any]] = []
    generation: dict[str, float] = {}
    for rows, dims_list in grid:
        path = data_path(args.data_dir, rows)
        print(f"[scale] data {path} ...", file=sys.stderr, flush=True)
        generation[fmt_size(rows)] = _generate(path, rows, len(DIMENSIONS), 0, args.threads)
        for n_dims in dims_list:
            print(f"[scale] {rows:,} rows x {n_dims} dims: detect + investigate, bare query ...", file=sys.stderr, flush=True)
            from math import comb

            n_sets = sum(comb(n_dims, k) for k in range(args.max_depth + 1))
            skip = ["--skip-bare"] if n_sets > args.bare_max_sets else []
            r = _subprocess(["_run", str(path), str(n_dims), str(args.max_depth), *threads, *mem, *skip], args.timeout)
            r.setdefault("rows", rows)
            r["rows_requested"], r["dims"] = rows, n_dims
            if "error" not in r and rows <= pandas_max and n_dims in pandas_dims:
                print(f"[scale] {rows:,} rows x {n_dims} dims: pandas ...", file=sys.stderr, flush=True)
                p = _subprocess(["_pandas", str(path), str(n_dims), str(args.max_depth),
                                 json.dumps([r["detection"]["baseline"], r["detection"]["current"]])], args.timeout)
                if "error" in p:
                    r["pandas_error"] = p["error"]
                else:
                    r.update(p)
            results.append(r)
            print(f"[scale]   -> {json.dumps({k: v for k, v in r.items() if k != 'query_log'})}", file=sys.stderr, flush=True)
            if args.out:
                args.out.write_text(json.dumps({"results": results, "generation_s": generation}, indent=2))

    correctness = None
    if args.scenarios > 0:
        rows = parse_size(args.correctness_rows)
        path = data_path(args.data_dir, rows, kind=f"scenarios{args.scenarios}")
        print(f"[scale] correctness data {path} ...", file=sys.stderr, flush=True)
        generation[f"scenarios {fmt_size(rows)}"] = _generate(path, rows, 6, args.scenarios, args.threads)
        print("[scale] correctness: warehouse-rca and wise-pizza ...", file=sys.stderr, flush=True)
        correctness = _subprocess(["_correct", str(path), str(args.scenarios), str(args.max_depth),
                                   str(args.wisepizza_python), str(args.wisepizza_timeout), *threads],
                                  args.timeout + args.wisepizza_timeout)
        if "error" not in correctness:
            correctness["rows"] = rows
        else:
            print(f"[scale] correctness failed: {correctness['error']}", file=sys.stderr)
            correctness = None

    doc = {"results": results, "correctness": correctness, "generation_s": generation,
           "machine": {"cores": os.cpu_count()}, "verdicts": verdicts(results, correctness)}
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2))
    _print_report(results, correctness)
    return 0


def _print_report(results: list[dict[str, Any]], correctness: dict[str, Any] | None) -> None:
    print(markdown(results, correctness))
    print()
    print("Python heap peak = tracemalloc peak of Python allocations during a second, identical "
          "detect + investigate (the timed run is not traced; the memory target); process RSS peak = "
          "ru_maxrss of the configuration's subprocess, which includes the embedded DuckDB's own "
          "buffers and hash tables.")
    print()
    for v in verdicts(results, correctness):
        print(f"- {v}")


def _internal(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "_wisepizza":
        return wisepizza_main(argv[1])
    if cmd == "_generate":
        threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else None
        path, rows, n_dims, n_scen = Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
        seconds = ensure_data(path, rows, n_dims, make_scenarios(n_scen, n_dims) if n_scen else [], threads)
        print(json.dumps({"seconds": seconds}))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("cmd")
    parser.add_argument("path", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("max_depth", type=int)
    parser.add_argument("extra", nargs="*")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--memory-limit")
    parser.add_argument("--skip-bare", action="store_true")
    a = parser.parse_args(argv)
    if cmd == "_run":
        out = run_config(a.path, a.n, a.max_depth, a.threads, a.memory_limit, a.skip_bare)
    elif cmd == "_pandas":
        baseline, current = json.loads(a.extra[0])
        out = run_pandas(a.path, a.n, a.max_depth, baseline, current)
    elif cmd == "_correct":
        wp, wp_timeout = Path(a.extra[0]), float(a.extra[1])
        out = run_correctness(a.path, 6, make_scenarios(a.n, 6), a.max_depth, a.threads, wp,
                              a.path.parent, wp_timeout)
    else:
        raise SystemExit(f"unknown internal command {cmd}")
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
