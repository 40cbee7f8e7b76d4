"""Anomaly detection on the Numenta Anomaly Benchmark (NAB), at the product's default settings.

    python benchmarks/detection.py [--data-root DIR] [--half tune|holdout|all] [--json]

Reads every series under ``<data-root>/nab/data/*/*.csv`` (columns ``timestamp,value``) and the
windows in ``<data-root>/nab/labels/combined_windows.json``; ``--data-root`` defaults to
``../shared/data`` next to the repository. Each series is scored with ``DetectionSettings()`` --
no per-series or per-category tuning -- and an alarm is the first point of each excursion.

Halves: ``--half tune`` keeps the series whose file name has an even CRC-32
(``zlib.crc32(name) % 2 == 0``), ``--half holdout`` the others; the split is fixed by the name
alone, so a series kept aside (another NAB category) falls into a half the same way. Settings are
chosen on the tuning half and kept only when the held-out half agrees. The default is all series.

Online correctness: ``detect`` judges every point with models fitted on the points before it only
(see ``warehouse_rca.detect``), so one call per series is a faithful streaming run.

NAB standard profile, re-implemented from NAB's ``sweeper.py`` (Lavin & Ahmad, 2015):

* the probationary period -- the first ``min(floor(0.15 n), 0.15 x 5000)`` points -- is not scored;
* an alarm inside a window scores ``A_TP x scaledSigmoid(y) / scaledSigmoid(-1)`` with
  ``y = -(right - i + 1) / width`` its relative position (-1 at the window's start, 0 past its end)
  and ``scaledSigmoid(y) = 2 / (1 + exp(5y)) - 1``; only the best (first) alarm of a window counts;
* a window without an alarm scores ``A_FN``;
* an alarm outside every window scores ``A_FP x scaledSigmoid((i - right_prev) / (width_prev - 1))``
  after a window (cheap just after it, a full ``A_FP`` three widths later) and ``A_FP`` before the
  first window;
* standard profile: A_TP = 1, A_FP = -0.11, A_FN = -1;
* normalised over the corpus: ``100 x (raw - null) / (perfect - null)`` with null = no alarms
  (A_FN per window) and perfect = every window detected at its start (A_TP per window).

Also reported: window precision / recall / F1 -- a window is detected if any alarm falls in it
(probationary alarms excluded), an alarm outside every window is a false positive.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# Benchmark the working tree this script belongs to, whatever copy of the package is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warehouse_rca.detect import DetectionSettings, detect

#: Published standard-profile scores (NAB scoreboard, as quoted in ../shared/data/README.md).
PUBLISHED = {"ARTime": 74.9, "Numenta HTM": 70.5, "CAD OSE": 69.9, "Skyline": 58.2,
             "KNN CAD": 58.0, "Random Cut Forest": 51.7, "Twitter ADVec": 47.1,
             "windowed Gaussian": 39.6}
A_TP, A_FP, A_FN = 1.0, -0.11, -1.0
PROBATION = 0.15


def scaled_sigmoid(position: float) -> float:
    """NAB's ``_scaledSigmoid``: +1 far before a window's end, -1 from 3 widths after it."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probationary_length(n: int) -> float:
    return min(math.floor(PROBATION * n), PROBATION * 5000)


@dataclass
class Tally:
    series: int = 0
    windows: int = 0
    detected: int = 0
    true_alarms: int = 0
    false_alarms: int = 0
    raw: float = 0.0

    def add(self, other: Tally) -> None:
        for name in ("series", "windows", "detected", "true_alarms", "false_alarms", "raw"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, float | int | None]:
        null, perfect = A_FN * self.windows, A_TP * self.windows
        nab = 100 * (self.raw - null) / (perfect - null) if perfect != null else None
        alarms = self.true_alarms + self.false_alarms
        precision = self.true_alarms / alarms if alarms else None
        recall = self.detected / self.windows if self.windows else None
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall else None)
        return {"series": self.series, "windows": self.windows, "nab": _round(nab, 1),
                "raw": round(self.raw, 3), "detected": self.detected, "false_alarms": self.false_alarms,
                "precision": _round(precision, 3), "recall": _round(recall, 3), "f1": _round(f1, 3)}


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def score_series(timestamps: pd.DatetimeIndex, alarms: list[int],
                 windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> Tally:
    """NAB standard-profile score of one series' alarms (positions into ``timestamps``)."""
    n = len(timestamps)
    probation = probationary_length(n)
    max_tp = scaled_sigmoid(-1.0)
    # Window bounds are data timestamps in NAB; searchsorted also copes with bounds between points.
    spans = [(int(timestamps.searchsorted(a, "left")), int(timestamps.searchsorted(b, "right")) - 1)
             for a, b in windows]
    spans = [(a, b) for a, b in spans if a <= b]
    best = [A_FN] * len(spans)
    tally = Tally(series=1, windows=len(spans))
    for i in sorted(alarms):
        if i < probation:
            continue
        inside = next((k for k, (a, b) in enumerate(spans) if a <= i <= b), None)
        if inside is not None:
            a, b = spans[inside]
            position = -(b - i + 1) / (b - a + 1)
            best[inside] = max(best[inside], scaled_sigmoid(position) * A_TP / max_tp)
            tally.true_alarms += 1
            continue
        before = [(a, b) for a, b in spans if b < i]
        if before:
            a, b = before[-1]
            unweighted = scaled_sigmoid(abs(b - i) / ((b - a + 1) - 1))
        else:
            unweighted = -1.0
        # NAB: weightedScore = unweightedScore * fpWeight with fpWeight = 0.11 (a positive weight).
        tally.raw += unweighted * abs(A_FP)
        tally.false_alarms += 1
    tally.detected = sum(1 for s in best if s != A_FN)
    tally.raw += sum(best)
    return tally


def load_series(path: Path) -> pd.Series:
    frame = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
    return pd.Series(frame["value"].astype(float).to_numpy(), index=index, name=path.stem)


def half_of(name: str) -> str:
    """The fixed half a series belongs to, from its file name only."""
    return "tune" if zlib.crc32(name.encode()) % 2 == 0 else "holdout"


def run(data_root: Path, half: str = "all") -> dict[str, object]:
    nab = data_root / "nab"
    labels_path = nab / "labels" / "combined_windows.json"
    files = sorted((nab / "data").glob("*/*.csv"))
    if half != "all":
        files = [f for f in files if half_of(f.name) == half]
    if not labels_path.is_file() or not files:
        raise SystemExit(f"NAB data not found: expected {nab}/data/<category>/<series>.csv and "
                         f"{labels_path} (pass --data-root, the folder holding nab/)")
    labels = json.loads(labels_path.read_text())
    settings = DetectionSettings()
    categories: dict[str, Tally] = {}
    per_series: dict[str, dict[str, object]] = {}
    started = time.perf_counter()
    for path in files:
        key = f"{path.parent.name}/{path.name}"
        series = load_series(path)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = detect(series, settings)
        seconds = time.perf_counter() - t
        index = pd.DatetimeIndex(result.points.index)
        alarms = [int(index.searchsorted(e.start)) for e in result.excursions]
        windows = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in labels.get(key, [])]
        tally = score_series(index, alarms, windows)
        categories.setdefault(path.parent.name, Tally()).add(tally)
        per_series[key] = {"model": result.model, "seconds": round(seconds, 2), **tally.summary()}
    elapsed = time.perf_counter() - started
    total = Tally()
    for tally in categories.values():
        total.add(tally)
    rows = {name: t.summary() for name, t in sorted(categories.items())}
    rows["ALL"] = total.summary()
    return {"categories": rows, "series": per_series, "seconds": round(elapsed, 1),
            "settings": asdict(settings), "published": PUBLISHED, "half": half}


def print_table(doc: dict[str, object]) -> None:
    rows: dict[str, dict[str, object]] = doc["categories"]  # type: ignore[assignment]

    def fmt(x: object, spec: str) -> str:
        return format(x, spec) if isinstance(x, (int, float)) else "-"

    print(f"{'category':<24} {'series':>6} {'windows':>7} {'NAB':>6} {'det':>4} {'FP':>4} "
          f"{'P':>6} {'R':>6} {'F1':>6}")
    for name, r in rows.items():
        print(f"{name:<24} {r['series']:>6} {r['windows']:>7} {fmt(r['nab'], '6.1f')} {r['detected']:>4} "
              f"{r['false_alarms']:>4} {fmt(r['precision'], '6.3f')} {fmt(r['recall'], '6.3f')} "
              f"{fmt(r['f1'], '6.3f')}")
    print("(NAB = standard profile, normalised; '-' where a category has no windows: its false "
          "alarms still count in ALL)")
    print(f"\nthis detector (default settings)  {rows['ALL']['nab']}")
    for name, value in PUBLISHED.items():
        print(f"{name:<33} {value}")
    print(f"\n{sum(r['series'] for n, r in rows.items() if n != 'ALL')} series in {doc['seconds']}s "
          f"(single process, half: {doc['half']}) at {doc['settings']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    parser.add_argument("--data-root", type=Path, default=default_root,
                        help=f"folder holding nab/ (default {default_root})")
    parser.add_argument("--half", choices=("all", "tune", "holdout"), default="all",
                        help="score one fixed half of the series (by a hash of the file name)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    np.seterr(all="ignore")
    doc = run(args.data_root, args.half)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
