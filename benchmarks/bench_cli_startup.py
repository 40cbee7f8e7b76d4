"""Command-line start-up: the median wall time of ``warehouse-rca --help`` (issue 17: under 0.5 s).

    python benchmarks/bench_cli_startup.py                  # 5 runs of `warehouse-rca --help`
    python benchmarks/bench_cli_startup.py --runs 9
    python benchmarks/bench_cli_startup.py -- monitor --help   # another command line

Each run is a fresh process, as a scheduler or a shell starts it: the installed ``warehouse-rca``
script when it is on PATH, else ``python -m warehouse_rca.cli``. A bare ``python -c pass`` is timed
the same way for reference (the interpreter's own start-up, site-packages included), so the
difference is what importing the command line costs. What it imports is pinned by tests
(tests/test_cli.py), not this timing, which depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time


def _time(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("args", nargs="*", default=["--help"],
                        help="the command line's arguments (default: --help)")
    opts = parser.parse_args()
    script = shutil.which("warehouse-rca")
    cli = [script] if script else [sys.executable, "-m", "warehouse_rca.cli"]
    times = _time([*cli, *opts.args], opts.runs)
    bare = _time([sys.executable, "-c", "pass"], opts.runs)
    print(json.dumps({
        "command": " ".join(["warehouse-rca", *opts.args]),
        "runs": opts.runs,
        "median_seconds": round(statistics.median(times), 3),
        "seconds": [round(t, 3) for t in times],
        "bare_python_median_seconds": round(statistics.median(bare), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
