"""How the diagnosis has done on the team's own incidents, and missed causes as labelled cases.

``record_missed`` appends a ``missed`` verdict: a cause the tool did not report, checked against
the data first (the segment must name the metric's dimensions and hold rows in the run's periods).

``review`` reads the findings tables for one metric: incidents and findings, the confirmation rate
by confidence band (a calibration table: are 0.8-confidence findings confirmed about 80% of the
time?), rejected findings by dimension, the missed causes, and a **replay** of every labelled
incident with the current settings (or others), scored exact-set against the verdicts: confirmed
and missed segments are the truth, rejected ones are false, unreviewed ones count for nothing. A
change of settings or version is judged on the team's own history before it is rolled out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.contract import Investigation, InvestigationOptions
from warehouse_rca.cube.plan import plan_cube, source_expression
from warehouse_rca.cube.verify import verification_sql
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import InputError
from warehouse_rca.findings.feedback import (
    CONFIRMED,
    REJECTED,
    ensure_feedback_table,
    select,
    table_exists,
)
from warehouse_rca.findings.store import FEEDBACK_COLUMNS, findings_table
from warehouse_rca.investigate import investigate
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.project import MetricSpec

MISSED = "missed"
#: Confidence bands of the calibration table.
BANDS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0001))


def parse_segment(text: str) -> dict[str, str]:
    """``device=iOS,region=Southeast`` or a JSON object."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as err:
            raise InputError(f"--missed {text!r}: not JSON: {err}") from None
        if not isinstance(value, dict) or not value:
            raise InputError("--missed: give at least one dimension = value")
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--missed {text!r}: write dimension=value[,dimension=value]")
        out[name.strip()] = value.strip()
    return out


def _run(engine: Engine, schema: str, run_id: str) -> dict[str, Any]:
    runs = findings_table(schema, "runs")
    if not table_exists(engine, runs):
        raise InputError(f"no findings in schema {schema!r} yet")
    frame = select(engine, runs, where=exp.and_(
        exp.EQ(this=sql.column_ref("run_id"), expression=sql.literal(run_id)),
        exp.EQ(this=sql.column_ref("status"), expression=sql.literal("succeeded"))))
    if frame.empty:
        raise InputError(f"no succeeded run {run_id!r} in {schema}.runs")
    return frame.iloc[0].to_dict()


def _periods(run: dict[str, Any]) -> dict[str, Period | None]:
    def period(side: str) -> Period | None:
        start, end = run.get(f"{side}_start"), run.get(f"{side}_end")
        if start is None or end is None or pd.isna(start) or pd.isna(end):
            return None
        start, end = pd.Timestamp(start).to_pydatetime(), pd.Timestamp(end).to_pydatetime()
        return Period(start, end, f"{start:%Y-%m-%d}..{end - timedelta(microseconds=1):%Y-%m-%d}")

    return {"baseline": period("baseline"), "current": period("current")}


def record_missed(engine: Engine, schema: str, metric: MetricSpec, run_id: str,
                  segment: dict[str, str], author: str, note: str | None = None) -> dict[str, Any]:
    """Append a ``missed`` verdict for a cause RUN_ID did not report; the segment is checked
    against the metric's dimensions and the data (it must hold rows in the run's periods)."""
    if not author or not author.strip():
        raise InputError("feedback needs an author (--by NAME or WAREHOUSE_RCA_USER)")
    run = _run(engine, schema, run_id)
    if run["metric"] != metric.name:
        raise InputError(f"run {run_id} investigated {run['metric']!r}, not {metric.name!r}")
    unknown = sorted(set(segment) - set(metric.dimensions))
    if unknown:
        raise InputError(f"--missed: {unknown[0]!r} is not a dimension of {metric.name!r} "
                         f"({', '.join(metric.dimensions)})")
    periods = _periods(run)
    plan = plan_cube(metric, engine.columns_of(source_expression(metric)),
                     baseline=periods["baseline"], current=periods["current"], max_depth=1)
    tree = verification_sql(plan, segment)
    if tree is None:
        raise InputError("--missed: a folded '(other)' segment is no single filter")
    counts = engine.query(engine.generate(tree))
    rows = float(pd.to_numeric(counts.get("denominator", pd.Series([0.0]))).fillna(0).sum())
    if rows <= 0:
        raise InputError(f"--missed: no rows of {metric.name!r} hold {_label(segment)} in run "
                         f"{run_id}'s periods (is a value misspelt?)")
    table = ensure_feedback_table(engine, schema)
    key = json.dumps(dict(sorted(segment.items())), sort_keys=True, ensure_ascii=False)
    row = {
        "feedback_id": uuid.uuid4().hex,
        "run_id": run_id,
        # the id the finding would have had (contract: run id + segment), so a later report of
        # the same segment in this run is the same finding
        "finding_id": hashlib.sha256((run_id + json.dumps(segment, sort_keys=True)).encode())
        .hexdigest()[:16],
        "metric": metric.name,
        "segment": key,
        "segment_label": _label(segment),
        "verdict": MISSED,
        "author": author.strip(),
        "note": note,
        "incident_start": run.get("current_start"),
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None),
        "valid_until": None,
    }
    engine.insert_rows(table, FEEDBACK_COLUMNS, [row])
    return row


def _label(segment: dict[str, str]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in segment.items())


@dataclass
class Replay:
    """An exact-set score of replayed incidents against the verdicts."""

    incidents: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    cases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def to_json(self) -> dict[str, Any]:
        return {"incidents": self.incidents, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": self.precision, "recall": self.recall, "cases": self.cases}


@dataclass
class Review:
    metric: str
    incidents: int
    findings: int
    reviewed: int
    calibration: list[dict[str, Any]]
    rejected_by_dimension: dict[str, int]
    missed: list[dict[str, Any]]
    replay: Replay
    compared: Replay | None = None

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "incidents": self.incidents, "findings": self.findings,
                "reviewed": self.reviewed, "calibration": self.calibration,
                "rejected_by_dimension": self.rejected_by_dimension, "missed": self.missed,
                "replay": self.replay.to_json(),
                "compared": self.compared.to_json() if self.compared is not None else None}


def _select(engine: Engine, schema: str, name: str, metric: str) -> pd.DataFrame:
    table = findings_table(schema, name)
    if not table_exists(engine, table):
        return pd.DataFrame()
    return select(engine, table,
                  where=exp.EQ(this=sql.column_ref("metric"), expression=sql.literal(metric)))


def review(engine: Engine, schema: str, metric: MetricSpec, *, since: datetime | None = None,
           options: InvestigationOptions | None = None,
           compare: InvestigationOptions | None = None,
           investigate_fn: Callable[..., Investigation] | None = None) -> Review:
    """The review of ``metric``'s incidents since ``since`` (module docstring)."""
    runs = _select(engine, schema, "runs", metric.name)
    if not runs.empty:
        runs = runs.loc[runs["status"] == "succeeded"].drop_duplicates("run_id", keep="last")
        if since is not None:
            runs = runs.loc[pd.to_datetime(runs["current_start"]) >= pd.Timestamp(since)]
    ids = set(runs["run_id"]) if not runs.empty else set()
    causes = _select(engine, schema, "root_causes", metric.name)
    causes = causes.loc[causes["run_id"].isin(ids)] if not causes.empty else causes
    verdicts = _select(engine, schema, "latest_feedback", metric.name)
    verdicts = verdicts.loc[verdicts["run_id"].isin(ids)] if not verdicts.empty else verdicts
    judged = (causes.merge(verdicts[["run_id", "finding_id", "verdict"]],
                           on=["run_id", "finding_id"], how="inner")
              if not causes.empty and not verdicts.empty else pd.DataFrame())
    calibration = []
    for low, high in BANDS:
        band = (judged.loc[(judged["confidence"] >= low) & (judged["confidence"] < high)
                           & judged["verdict"].isin([CONFIRMED, REJECTED])]
                if not judged.empty else judged)
        confirmed = int((band["verdict"] == CONFIRMED).sum()) if not band.empty else 0
        calibration.append({"band": f"{low:.1f}-{min(high, 1.0):.1f}", "reviewed": len(band),
                            "confirmed": confirmed,
                            "confirmation_rate": confirmed / len(band) if len(band) else None,
                            "mean_confidence": (float(band["confidence"].mean())
                                                if len(band) else None)})
    rejected: dict[str, int] = {}
    if not judged.empty:
        for dims in judged.loc[judged["verdict"] == REJECTED, "dimensions"]:
            for d in str(dims).split(","):
                rejected[d] = rejected.get(d, 0) + 1
    missed = ([{"run_id": r["run_id"], "segment": json.loads(r["segment"])}
               for _, r in verdicts.loc[verdicts["verdict"] == MISSED].iterrows()]
              if not verdicts.empty else [])
    labelled = runs.loc[runs["run_id"].isin(set(verdicts["run_id"]))] \
        if not verdicts.empty else runs.iloc[0:0]
    base = options or InvestigationOptions()
    replayed = _replay(engine, metric, labelled, verdicts, base, investigate_fn)
    compared = (_replay(engine, metric, labelled, verdicts, compare, investigate_fn)
                if compare is not None else None)
    return Review(metric=metric.name, incidents=len(runs), findings=len(causes),
                  reviewed=int(verdicts["verdict"].isin([CONFIRMED, REJECTED]).sum())
                  if not verdicts.empty else 0,
                  calibration=calibration, rejected_by_dimension=rejected, missed=missed,
                  replay=replayed, compared=compared)


def _replay(engine: Engine, metric: MetricSpec, labelled: pd.DataFrame, verdicts: pd.DataFrame,
            options: InvestigationOptions,
            investigate_fn: Callable[..., Investigation] | None) -> Replay:
    run = investigate_fn or investigate
    out = Replay()
    for _, row in labelled.iterrows():
        periods = _periods(row.to_dict())
        mine = verdicts.loc[verdicts["run_id"] == row["run_id"]]
        truth = {s for s, v in zip(mine["segment"], mine["verdict"]) if v in (CONFIRMED, MISSED)}
        false = {s for s, v in zip(mine["segment"], mine["verdict"]) if v == REJECTED}
        doc = run(engine, metric, baseline=periods["baseline"], current=periods["current"],
                  options=options).to_json()
        reported = {json.dumps(dict(sorted(c["segment"].items())), sort_keys=True,
                               ensure_ascii=False) for c in doc["root_causes"]}
        tp, fp, fn = len(reported & truth), len(reported & false), len(truth - reported)
        out.incidents += 1
        out.tp, out.fp, out.fn = out.tp + tp, out.fp + fp, out.fn + fn
        out.cases.append({"run_id": row["run_id"], "current_start": str(row["current_start"]),
                          "tp": tp, "fp": fp, "fn": fn})
    return out


def options_from(overrides: dict[str, Any], base: InvestigationOptions) -> InvestigationOptions:
    """``--compare-settings`` YAML (``alpha``, ``min_share``, ``min_support``, ``max_depth``,
    ``causal``) over the current options."""
    unknown = set(overrides) - {"alpha", "min_share", "min_support", "max_depth", "causal"}
    if unknown:
        raise InputError(f"--compare-settings: unknown setting {min(unknown)!r} (alpha, "
                         "min_share, min_support, max_depth, causal)")
    localize = dataclasses.replace(
        base.localize, alpha=float(overrides.get("alpha", base.localize.alpha)),
        min_share=float(overrides.get("min_share", base.localize.min_share)))
    rest = {k: overrides[k] for k in ("min_support", "max_depth", "causal") if k in overrides}
    return dataclasses.replace(base, localize=localize, **rest)
