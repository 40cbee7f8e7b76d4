"""Pushdown speed: an investigation vs. the floor scan and the full GROUPING SETS lattice.

    python benchmarks/speed.py                 # 10M rows on an embedded DuckDB file
    python benchmarks/speed.py --rows 1000000 --rows 10000000
    python benchmarks/speed.py --rows 1000000 --target postgres-local   # a throwaway PostgreSQL server
    python benchmarks/speed.py --rows 1000000 --target spark-local      # Spark Connect, local[2]
    python benchmarks/speed.py --target prod --profiles-dir ~/.warehouse_rca

For each size, dimension shape (``--shape uniform|zipf``) and cause depth (``--cause-depth``) it
generates a fact table in the warehouse (sessions with 8 dimensions of 3 to 1,000 values, a
conversion flag and an injected rate cause), then times, interleaved in one run (median of
``--repeat``),

* the floor: each dimension aggregated once over the two periods' rows (single-dimension sets,
  side-keyed), the least any drill-down must read and hash,
* the bare query: the full depth-3 GROUPING SETS lattice over the rows (the `cube` CTE of the
  same SQL, without the in-warehouse pruning), and
* the investigation: catalog probe + cube query with pruning + statistics + root-cause selection,
  through the same code path as the CLI.

Memory: ``python_peak_mb`` is the peak of Python-level allocations (tracemalloc, in one more run
after the timed ones), which is what must not grow with rows; ``process_peak_rss_mb`` is the whole
process, which for an *embedded* DuckDB includes the engine's own hash tables (on a server
warehouse those live on the server).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import sqlglot
from sqlglot import exp

from warehouse_rca.cube.plan import cube_sql, plan_cube, source_expression
from warehouse_rca.engines import connect
from warehouse_rca.engines.base import Engine
from warehouse_rca.investigate import investigate
from warehouse_rca.localize.levelwise import grouping_sets_upto
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import Target, load_target
from warehouse_rca.spec.project import metric_from_mapping

DIMENSIONS = {  # name -> cardinality
    "device": 4, "region": 8, "channel": 6, "customer_type": 3,
    "category": 20, "country": 50, "campaign": 200, "product": 1000,
}
#: The injected rate cause at each depth (the current week's conversion falls from 4% to 1% there).
CAUSES = {1: "device = 'dev0'", 2: "device = 'dev0' AND region = 'reg1'",
          3: "device = 'dev0' AND region = 'reg1' AND channel = 'cha2'"}
#: How a value index is drawn from u in [0, 1): Zipf-like popularity (most values rare, where the
#: second level's fold bites) or uniform (every value equally common, the fold's hard case).
SHAPES = {"zipf": "pow({u}, 2)", "uniform": "{u}"}
BASELINE = Period.parse("2026-11-10:2026-11-16")
CURRENT = Period.parse("2026-11-17:2026-11-23")


def generate(engine: Engine, rows: int, shape: str = "zipf", cause: str = CAUSES[2]) -> None:
    """Create bench.facts with ``rows`` rows over two weeks (benchmark data, in the engine's SQL)."""
    if engine.DIALECT == "postgres":
        generate_postgres(engine, rows, shape, cause)
        return
    if engine.DIALECT == "spark":
        generate_spark(engine, rows, shape, cause)
        return
    dims = ",\n".join(
        f"'{name[:3]}' || CAST(floor({card} * "
        f"{SHAPES[shape].format(u=f'((hash(i * 31 + {k}) % 1000003) / 1000003.0)')}) AS INTEGER) AS {name}"
        for k, (name, card) in enumerate(DIMENSIONS.items())
    )
    engine.execute("CREATE SCHEMA IF NOT EXISTS bench")
    engine.execute(
        "CREATE OR REPLACE TABLE bench.facts AS "
        f"WITH base AS (SELECT i, TIMESTAMP '2026-11-10' + to_seconds(CAST(i * 1209600 // {rows} AS BIGINT)) AS ts, "
        f"{dims} FROM range({rows}) t(i)) "
        "SELECT *, CASE WHEN (hash(i * 7 + 99) % 1000003) / 1000003.0 < "
        f"CASE WHEN ts >= TIMESTAMP '2026-11-17' AND {cause} THEN 0.01 ELSE 0.04 END "
        "THEN 1 ELSE 0 END AS converted FROM base"
    )


def generate_postgres(engine: Engine, rows: int, shape: str, cause: str) -> None:
    """The same table on PostgreSQL: random() after setseed() is repeatable within the session."""
    dims = ", ".join(
        f"'{name[:3]}' || floor({card} * {SHAPES[shape].format(u='random()')})::int AS {name}"
        for name, card in DIMENSIONS.items()
    )
    engine.execute("CREATE SCHEMA IF NOT EXISTS bench")
    engine.execute("DROP TABLE IF EXISTS bench.facts")
    engine.execute("SELECT setseed(0.42)")
    engine.execute(
        f"CREATE TABLE bench.facts AS WITH base AS (SELECT i, TIMESTAMP '2026-11-10' + (i::bigint * 1209600 / {rows}) * INTERVAL '1 second' AS ts, "
        f"{dims} FROM generate_series(0, {rows - 1}) AS t(i)) "
        f"SELECT *, CASE WHEN random() < CASE WHEN ts >= TIMESTAMP '2026-11-17' AND {cause} "
        "THEN 0.01 ELSE 0.04 END THEN 1 ELSE 0 END AS converted FROM base"
    )
    engine.execute("ANALYZE bench.facts")


def generate_spark(engine: Engine, rows: int, shape: str, cause: str) -> None:
    """The same table on Spark (Parquet, as a data lake holds it): hash() is Spark's Murmur3."""
    dims = ", ".join(
        f"concat('{name[:3]}', CAST(floor({card} * "
        f"{SHAPES[shape].format(u=f'(pmod(hash(id * 31 + {k}), 1000003) / 1000003.0)')}) AS INT)) AS {name}"
        for k, (name, card) in enumerate(DIMENSIONS.items())
    )
    engine.execute("CREATE SCHEMA IF NOT EXISTS bench")
    engine.execute("DROP TABLE IF EXISTS bench.facts")
    engine.execute(
        "CREATE TABLE bench.facts USING parquet AS WITH base AS (SELECT id AS i, "
        f"timestamp_seconds(1794268800 + CAST(id * 1209600 DIV {rows} AS BIGINT)) AS ts, {dims} FROM range({rows})) "
        "SELECT *, CASE WHEN pmod(hash(i * 7 + 99), 1000003) / 1000003.0 < "
        f"CASE WHEN ts >= TIMESTAMP '2026-11-17' AND {cause} THEN 0.01 ELSE 0.04 END "
        "THEN 1 ELSE 0 END AS converted FROM base"
    )


def bare_query(full_sql: str, dialect: str) -> str:
    """The plain GROUPING SETS aggregation a user would write for the same question: the same
    scoped rows, components and sets, aggregated straight from the rows (the tool pre-aggregates
    to leaves first), counted in the warehouse so that neither side pays for moving the cube."""
    tree = sqlglot.parse_one(full_sql, read=dialect)
    ctes = {c.alias: c.this for c in tree.find_all(exp.CTE)}
    direct = ctes["leaves"].copy()
    grouping = ctes["sided"] if "sided" in ctes else ctes["cube"]  # sided: the period side is a key
    direct.set("group", grouping.args["group"].copy())
    select = exp.select(exp.func("COUNT", exp.Star())).from_("bare")
    return select.with_("scoped", as_=ctes["scoped"]).with_("bare", as_=direct).sql(dialect=dialect)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(target: Target, rows: int, repeat: int, max_depth: int, shape: str = "zipf",
        cause_depth: int = 2, lattice: bool = True) -> dict[str, object]:
    engine = connect(target)
    try:
        generate(engine, rows, shape, CAUSES[cause_depth])
        metric = metric_from_mapping("conversion_rate", {
            "table": "bench.facts", "time_column": "ts", "numerator": "sum(converted)",
            "denominator": "count(*)", "dimensions": list(DIMENSIONS),
        }, "benchmark")
        plan = plan_cube(metric, engine.columns_of(source_expression(metric)),
                         baseline=BASELINE, current=CURRENT, max_depth=max_depth)
        bare = bare_query(engine.render(cube_sql(plan)), engine.DIALECT)
        # The floor: each dimension aggregated once over the two periods' rows (single-dimension
        # sets, side-keyed), the least any drill-down must read and hash.
        single = dataclasses.replace(plan, sets=grouping_sets_upto(len(plan.dimensions), 1))
        floor = bare_query(engine.render(cube_sql(single)), engine.DIALECT)
        engine.query(bare if lattice else floor)  # warm the cache once, for all
        # Measured in one run, interleaved, so load on the machine hits all three alike.
        times: dict[str, list[float]] = {"floor": [], "bare": [], "inv": []}
        result = {}

        def one() -> None:
            result["doc"] = investigate(engine, metric, baseline=BASELINE, current=CURRENT).to_json()

        for _ in range(repeat):
            for key, fn in (("floor", lambda: engine.query(floor)),
                            ("bare", lambda: engine.query(bare) if lattice else None), ("inv", one)):
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        floor_s, bare_s, inv_s = (statistics.median(times[k]) for k in ("floor", "bare", "inv"))
        # Memory in one more, traced run (tracemalloc slows Python code, so the timed runs are not).
        tracemalloc.start()
        one()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        engine.close()
    doc = result["doc"]
    top = doc["root_causes"][0]["segment"] if doc["root_causes"] else {}
    injected = dict(part.split(" = ") for part in CAUSES[cause_depth].split(" AND "))
    injected = {k: v.strip("'") for k, v in injected.items()}
    return {
        "rows": rows,
        "shape": shape,
        "cause_depth": cause_depth,
        "floor_s": round(floor_s, 3),
        "bare_query_s": round(bare_s, 3) if lattice else None,
        "investigation_s": round(inv_s, 3),
        "ratio_to_floor": round(inv_s / floor_s, 2),
        "ratio": round(inv_s / bare_s, 2) if lattice else None,
        "python_peak_mb": round(peak / 2**20, 1),
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "segments": doc["segments_evaluated"],
        "found": top == injected,
        "top_cause": json.dumps(top) if top else "none",
    }


@contextlib.contextmanager
def _server(name: str | None, work_mem: str | None = None):
    """``--target postgres-local`` / ``spark-local``: a throwaway server, as the test suite starts one
    (PostgreSQL with the profile's ``work_mem`` when given)."""
    if name not in ("postgres-local", "spark-local"):
        yield None
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if name == "spark-local":
        from tests.engineservers import spark_connect_server

        with spark_connect_server() as url:
            yield Target("bench", "spark", {"url": url, "schema": "rca"}, "benchmark")
        return
    from tests.pgserver import postgres_server

    with postgres_server() as settings:
        yield Target("bench", "postgres", dict(settings), "benchmark")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="fact rows (repeatable); default 10M")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append",
                        help="how dimension values are distributed (repeatable); default both")
    parser.add_argument("--cause-depth", type=int, choices=sorted(CAUSES), action="append",
                        help="depth of the injected cause (repeatable); default 2")
    parser.add_argument("--no-lattice", action="store_true",
                        help="do not time the full lattice (minutes per run at 100M rows)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--target", help="a profiles.yml output to benchmark instead of an embedded DuckDB "
                                         "(e.g. a PostgreSQL server); 'postgres-local' / 'spark-local' start a throwaway one")
    parser.add_argument("--profiles-dir", help="where profiles.yml is (with --target)")
    parser.add_argument("--work-mem", help="postgres-local: the profile's work_mem (e.g. 256MB)")
    args = parser.parse_args()
    sizes = args.rows or [10_000_000]
    shapes = args.shape or ["uniform", "zipf"]
    depths = args.cause_depth or [2]
    results = []
    with tempfile.TemporaryDirectory() as tmp, _server(args.target, args.work_mem) as local:
        for rows in sizes:
            for shape in shapes:
                for depth in depths:
                    if local is not None:
                        target = local
                    elif args.target:
                        target = load_target(args.profiles_dir, args.target)
                    else:
                        target = Target("bench", "duckdb", {"path": str(Path(tmp) / "speed.duckdb")},
                                        "benchmark")
                    results.append(run(target, rows, args.repeat, args.max_depth, shape, depth,
                                       lattice=not args.no_lattice))
                    if local is None and not args.target:
                        (Path(tmp) / "speed.duckdb").unlink(missing_ok=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    header = (f"{'rows':>12} {'shape':>8} {'cause':>5} {'floor':>8} {'lattice':>8} {'investig.':>9} "
              f"{'x floor':>7} {'x lattice':>9} {'py peak':>8} {'RSS':>7}  found  top cause")
    print(header)
    for r in results:
        lattice_s = f"{r['bare_query_s']:>7.2f}s" if r["bare_query_s"] is not None else f"{'-':>8}"
        ratio = f"{r['ratio']:>9.2f}" if r["ratio"] is not None else f"{'-':>9}"
        print(f"{r['rows']:>12,} {r['shape']:>8} {r['cause_depth']:>5} {r['floor_s']:>7.2f}s "
              f"{lattice_s} {r['investigation_s']:>8.2f}s {r['ratio_to_floor']:>7.2f} "
              f"{ratio} {r['python_peak_mb']:>6.1f}MB {r['process_peak_rss_mb']:>5.0f}MB  "
              f"{'yes' if r['found'] else 'NO':>5}  {r['top_cause']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
