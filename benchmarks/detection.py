"""Anomaly detection on the Numenta Anomaly Benchmark (../shared/data/nab), at default settings.

    python benchmarks/detection.py [--data-root DIR] [--json]

Every series under <data-root>/nab/data/*/ is scored with the product's default
``DetectionSettings()`` (no per-series tuning). Alarms are the first point of each excursion.

NAB standard profile, as in NAB's sweeper: points in the probationary period (the first 15%, at
most 750 points) are not scored; an alarm inside a window scores scaledSigmoid(position) / maxTP
(position from -1 at the window's start to 0 at its end), only the best alarm per window counts;
a missed window costs -1; an alarm outside windows costs 0.11 x scaledSigmoid(distance past the
previous window, in window widths), or -0.11 before any window. The corpus score is normalised:
100 x (raw - null) / (perfect - null), null = no alarms (-1 per window), perfect = +1 per window.
Window precision/recall/F1: a window is detected if any alarm falls in it; an alarm outside every
window is a false positive.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from warehouse_rca.detect import DetectionSettings, detect

PUBLISHED = {"ARTime": 74.9, "Numenta HTM": 70.5, "CAD OSE": 69.9, "Skyline": 58.2,
             "KNN CAD": 58.0, "Random Cut Forest": 51.7, "Twitter ADVec": 47.1,
             "windowed Gaussian": 39.6}
A_TP, A_FP, A_FN = 1.0, 0.11, 1.0


def scaled_sigmoid(position: float) -> float:
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def score_series(timestamps: list[pd.Timestamp], alarms: set[int],
                 windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> dict[str, float]:
    n = len(timestamps)
    probation = min(math.floor(0.15 * n), int(0.15 * 5000))
    max_tp = scaled_sigmoid(-1.0)
    pos = {t: i for i, t in enumerate(timestamps)}
    spans = [(pos[a], pos[b]) for a, b in windows if a in pos and b in pos]
    window_score = {k: -A_FN for k in range(len(spans))}
    fp_score, fp_count = 0.0, 0
    detected = set()
    for i in sorted(alarms):
        if i < probation:
            continue
        inside = next((k for k, (a, b) in enumerate(spans) if a <= i <= b), None)
        if inside is not None:
            a, b = spans[inside]
            width = b - a + 1
            s = scaled_sigmoid(-(b - i + 1) / width) * A_TP / max_tp
            window_score[inside] = max(window_score[inside], s)
            detected.add(inside)
            continue
        previous = [(a, b) for a, b in spans if b < i]
        if previous:
            a, b = previous[-1]
            s = scaled_sigmoid(abs(b - i) / max(1.0, (b - a + 1) - 1))
        else:
            s = -1.0
        fp_score += A_FP * s
        fp_count += 1
    return {"raw": sum(window_score.values()) + fp_score, "windows": len(spans),
            "detected": len(detected), "fp": fp_count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    nab = args.data_root / "nab"
    labels_path = nab / "labels" / "combined_windows.json"
    if not labels_path.exists():
        print(f"NAB data not found under {nab} (pass --data-root)", file=sys.stderr)
        return 2
    labels = json.loads(labels_path.read_text())
    settings = DetectionSettings()
    per_category: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for path in sorted((nab / "data").glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        frame = pd.read_csv(path, parse_dates=["timestamp"])
        series = frame.set_index("timestamp")["value"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = detect(series, settings)
        index = list(result.points.index)
        at = {t: i for i, t in enumerate(index)}
        alarms = {at[e.start] for e in result.excursions}
        windows = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in labels.get(key, [])]
        s = score_series(list(series.index), alarms, windows)
        cat = per_category.setdefault(path.parent.name, {"raw": 0.0, "windows": 0, "detected": 0, "fp": 0, "series": 0})
        for k in ("raw", "windows", "detected", "fp"):
            cat[k] += s[k]
        cat["series"] += 1
    elapsed = time.perf_counter() - started

    def summary(c: dict[str, float]) -> dict[str, float]:
        null, perfect = -A_FN * c["windows"], A_TP * c["windows"]
        nab_score = 100 * (c["raw"] - null) / (perfect - null) if perfect != null else float("nan")
        tp_alarms = c["detected"]
        precision = tp_alarms / (tp_alarms + c["fp"]) if tp_alarms + c["fp"] else 1.0
        recall = c["detected"] / c["windows"] if c["windows"] else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"series": c["series"], "windows": c["windows"], "nab": round(nab_score, 1),
                "precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
                "false_alarms": c["fp"]}

    total = {k: sum(c[k] for c in per_category.values()) for k in ("raw", "windows", "detected", "fp", "series")}
    rows = {name: summary(c) for name, c in sorted(per_category.items())}
    rows["ALL"] = summary(total)
    if args.json:
        print(json.dumps({"categories": rows, "seconds": round(elapsed, 1), "settings": vars(settings)}, indent=2))
        return 0
    print(f"{'category':<24} {'series':>6} {'windows':>7} {'NAB':>6} {'P':>6} {'R':>6} {'F1':>6} {'FP':>4}")
    for name, r in rows.items():
        print(f"{name:<24} {r['series']:>6} {r['windows']:>7} {r['nab']:>6.1f} {r['precision']:>6.3f} "
              f"{r['recall']:>6.3f} {r['f1']:>6.3f} {r['false_alarms']:>4}")
    print(f"\nall series in {elapsed:.1f}s at default settings {vars(settings)}")
    print("published standard-profile NAB: " + ", ".join(f"{k} {v}" for k, v in PUBLISHED.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
