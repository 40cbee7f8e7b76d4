"""Metrics a team already defined in dbt's semantic layer, as the same MetricSpec a project file
gives.

``--dbt-project DIR`` (or ``dbt_project:`` in the project file) reads the semantic manifest dbt
writes (``target/semantic_manifest.json``; ``dbt parse`` is run when it is missing and dbt is
installed). Each metric maps to a metric of the project file, or is listed as not mapped with the
reason, never half-translated:

=====================  ============================================================================
dbt                    warehouse-rca
=====================  ============================================================================
simple metric          additive ``measure``: ``sum`` -> ``sum(expr)``, ``count`` -> ``count(expr)``,
                       ``sum_boolean`` -> ``sum(CASE WHEN expr THEN 1 ELSE 0 END)``;
                       ``average`` -> the ratio ``sum(expr) / count(expr)``; ``count_distinct`` of
                       the model's primary entity -> ``count(*)`` (of anything else: not additive
                       across segments, not mapped)
ratio metric           ``numerator`` / ``denominator`` of the input metrics' measures (one semantic
                       model); an input's own filter goes inside its measure (``sum(CASE WHEN f
                       THEN x ELSE 0 END)``), the ratio's filter to the rows
derived metric         ``a / b`` -> a ratio, ``a + b`` / ``a - b`` of sums -> one sum, ``a`` -> a;
                       offsets (``offset_window``, ``offset_to_grain``): not mapped
cumulative, conversion not mapped
filters                ``{{ Dimension('entity__dim') }}``, ``{{ TimeDimension(...) }}``,
                       ``{{ Entity(...) }}`` -> the column or expression they name
dimensions             the model's categorical dimensions (``expr`` -> a derived dimension), and
                       those of models joined through a foreign entity to their primary entity
                       (``customer__segment``), as a LEFT JOIN in the metric's source SELECT
time                   the model's ``agg_time_dimension`` and its granularity (``hour``, ``day``,
                       ``week``; coarser: ``week``)
source                 ``node_relation``: ``database.schema.alias``
=====================  ============================================================================
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.errors import ConfigError

MANIFEST = "semantic_manifest.json"
_GRAINS = {"hour": "hour", "day": "day", "week": "week", "month": "week", "quarter": "week",
           "year": "week"}
_REFERENCE = re.compile(
    r"\{\{\s*(Dimension|TimeDimension|Entity)\(\s*['\"]([^'\"]+)['\"]\s*(?:,\s*['\"]([^'\"]+)['\"]\s*)?\)"
    r"(?:\s*\.\s*\w+\([^)]*\))*\s*\}\}"
)


@dataclass
class Mapped:
    """What a semantic layer exposes: metric name -> its project-file mapping (validated by
    spec.project like a metric of the file), and name -> why it is not mapped."""

    origin: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_mapped: dict[str, str] = field(default_factory=dict)
    #: metric name -> how it was mapped, for `warehouse-rca metrics`
    notes: dict[str, str] = field(default_factory=dict)


class NotMapped(Exception):
    """A metric this module will not translate (the reason is the message)."""


def manifest_path(project_dir: Path) -> Path:
    """``target/semantic_manifest.json`` (the project's ``target-path`` when it sets one)."""
    target = "target"
    config = project_dir / "dbt_project.yml"
    if config.is_file():
        with_target = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if isinstance(with_target, dict) and isinstance(with_target.get("target-path"), str):
            target = with_target["target-path"]
    return project_dir / target / MANIFEST


def read_manifest(project_dir: str | Path) -> dict[str, Any]:
    """The semantic manifest; ``dbt parse`` runs first when it is missing and dbt is on PATH."""
    directory = Path(project_dir)
    if not (directory / "dbt_project.yml").is_file():
        raise ConfigError(f"--dbt-project {directory}: no dbt_project.yml there")
    path = manifest_path(directory)
    if not path.is_file():
        dbt = shutil.which("dbt")
        if dbt is None:
            raise ConfigError(f"{path} not found and dbt is not installed: run `dbt parse` in "
                              f"{directory} (it writes the semantic manifest)")
        command = [dbt, "parse", "--project-dir", str(directory)]
        if (directory / "profiles.yml").is_file():
            command += ["--profiles-dir", str(directory)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0 or not path.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise ConfigError(f"`dbt parse` in {directory} failed: " + " | ".join(tail))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable semantic manifest: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("semantic_models"), list):
        raise ConfigError(f"{path}: not a semantic manifest (no semantic_models)")
    return doc


def dbt_profile_name(project_dir: str | Path) -> str | None:
    config = Path(project_dir) / "dbt_project.yml"
    doc = yaml.safe_load(config.read_text(encoding="utf-8")) if config.is_file() else None
    return doc.get("profile") if isinstance(doc, dict) else None


def load_dbt_metrics(project_dir: str | Path) -> Mapped:
    """Every metric of the dbt project, mapped or listed with the reason (module docstring)."""
    doc = read_manifest(project_dir)
    layer = _Layer(doc)
    out = Mapped(origin=f"dbt project {project_dir}")
    for metric in doc.get("metrics") or []:
        name = str(metric.get("name"))
        try:
            out.metrics[name], out.notes[name] = layer.metric(metric)
        except NotMapped as why:
            out.not_mapped[name] = str(why)
    return out


def _quoted(text: str) -> str:
    return sql.identifier(text).sql()


class _Layer:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.models = {m["name"]: m for m in doc["semantic_models"]}
        self.metrics = {m["name"]: m for m in doc.get("metrics") or []}
        self.measure_model = {ms["name"]: m["name"] for m in doc["semantic_models"]
                              for ms in m.get("measures") or []}
        self.primary = {e["name"]: m["name"] for m in doc["semantic_models"]
                        for e in m.get("entities") or [] if e.get("type") in ("primary", "unique")}

    # ------------------------------------------------------------------ pieces of a model

    def _relation(self, model: dict[str, Any]) -> str:
        rel = model.get("node_relation") or {}
        parts = [p for p in (rel.get("database"), rel.get("schema_name"), rel.get("alias")) if p]
        if not parts:
            raise NotMapped(f"semantic model {model['name']!r} has no relation")
        return ".".join(parts)

    def _joins(self, model: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
        """(foreign entity, joined model, alias) for each model reachable by a foreign entity."""
        out = []
        for entity in model.get("entities") or []:
            target = self.primary.get(entity["name"])
            if entity.get("type") == "foreign" and target and target != model["name"]:
                out.append((entity, self.models[target], f"j_{entity['name']}"))
        return out

    def _primary_expr(self, model: dict[str, Any]) -> str | None:
        for entity in model.get("entities") or []:
            if entity.get("type") in ("primary", "unique"):
                return str(entity.get("expr") or entity["name"])
        return None

    def _dimension_sql(self, model: dict[str, Any], reference: str) -> str:
        """SQL for ``entity__dim`` (a filter's reference) on the metric's rows."""
        entity, _, name = reference.rpartition("__")
        own = {e["name"] for e in model.get("entities") or []}
        if not entity or entity in own and self.primary.get(entity) == model["name"]:
            for dim in model.get("dimensions") or []:
                if dim["name"] == name:
                    return f"({dim['expr']})" if dim.get("expr") else _quoted(name)
            for ent in model.get("entities") or []:
                if ent["name"] == name:
                    return f"({ent['expr']})" if ent.get("expr") else _quoted(name)
            raise NotMapped(f"its filter names {reference!r}, not a dimension of "
                            f"{model['name']!r}")
        if entity in own:  # through a foreign entity: the joined column
            return _quoted(f"{entity}__{name}")
        raise NotMapped(f"its filter names {reference!r}, reachable only through more than one "
                        "join")

    def _filter_sql(self, model: dict[str, Any], spec: Any) -> list[str]:
        """A metric's or input's ``filter`` (``{where_filters: [{where_sql_template}]}``) as SQL."""
        if not spec:
            return []
        templates = ([f.get("where_sql_template") for f in spec.get("where_filters") or []]
                     if isinstance(spec, dict) else [spec])
        out = []
        for text in templates:
            if not isinstance(text, str):
                continue

            def replace(match: re.Match[str]) -> str:
                kind, reference, grain = match.groups()
                if kind == "Entity":
                    return self._dimension_sql(model, reference)
                column = self._dimension_sql(model, reference)
                return f"DATE_TRUNC('{grain}', {column})" if kind == "TimeDimension" and grain \
                    else column

            rendered = _REFERENCE.sub(replace, text)
            if "{{" in rendered or "{%" in rendered:
                raise NotMapped(f"its filter {text!r} uses Jinja beyond Dimension/TimeDimension/"
                                "Entity references")
            out.append(rendered)
        return out

    # ------------------------------------------------------------------ measures and metrics

    def _measure(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        model_name = self.measure_model.get(name)
        if model_name is None:
            raise NotMapped(f"measure {name!r} is in no semantic model")
        model = self.models[model_name]
        measure = next(m for m in model["measures"] if m["name"] == name)
        return model, measure

    def _aggregate(self, model: dict[str, Any], measure: dict[str, Any],
                   condition: list[str]) -> tuple[str, str | None]:
        """(numerator aggregate, denominator aggregate or None) for one measure, its own filter
        (``condition``) inside the aggregate."""
        agg = str(measure.get("agg") or "").lower()
        expr = str(measure.get("expr") or _quoted(measure["name"]))
        when = " AND ".join(f"({c})" for c in condition)

        def inside(value: str, otherwise: str = "0") -> str:
            return f"CASE WHEN {when} THEN {value} ELSE {otherwise} END" if when else value

        if agg == "sum":
            return f"sum({inside(expr)})", None
        if agg == "sum_boolean":
            return f"sum({inside(f'CASE WHEN {expr} THEN 1 ELSE 0 END')})", None
        if agg == "count":
            return (f"count({inside(expr, 'NULL')})" if expr.strip() != "1" else
                    f"sum({inside('1')})"), None
        if agg == "count_distinct":
            if self._primary_expr(model) == expr:
                return f"sum({inside('1')})", None  # one row per primary key: a row count
            raise NotMapped(f"count_distinct({expr}) is not additive across segments (a "
                            "customer counted in two segments is one customer)")
        if agg == "average":
            return f"sum({inside(expr)})", f"count({inside(expr, 'NULL')})"
        raise NotMapped(f"measure {measure['name']!r} aggregates with {agg!r}, which is not "
                        "additive (sum, count, sum_boolean, average and count_distinct of the "
                        "primary key map)")

    def _input(self, ref: dict[str, Any] | str) -> tuple[dict[str, Any], str, str | None, str]:
        """An input metric of a ratio or derived metric: (model, numerator aggregate,
        denominator aggregate or None, its name)."""
        ref = {"name": ref} if isinstance(ref, str) else ref
        if ref.get("offset_window") or ref.get("offset_to_grain"):
            raise NotMapped(f"input {ref['name']!r} is offset in time; the investigation "
                            "compares two periods itself")
        metric = self.metrics.get(ref["name"])
        if metric is None:
            raise NotMapped(f"input metric {ref['name']!r} is not defined")
        if metric["type"] != "simple":
            raise NotMapped(f"input metric {ref['name']!r} is {metric['type']}, not simple")
        measure_ref = metric["type_params"]["measure"]
        model, measure = self._measure(measure_ref["name"])
        condition = (self._filter_sql(model, metric.get("filter"))
                     + self._filter_sql(model, measure_ref.get("filter"))
                     + self._filter_sql(model, ref.get("filter")))
        num, den = self._aggregate(model, measure, condition)
        return model, num, den, ref.get("alias") or ref["name"]

    def metric(self, metric: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The project-file mapping of one metric and a one-line note of how it maps."""
        raw: dict[str, Any]
        kind = metric.get("type")
        params = metric.get("type_params") or {}
        if kind in ("cumulative", "conversion"):
            raise NotMapped(f"a {kind} metric has no per-row additive form (it accumulates over "
                            "time or across funnel steps)")
        if kind == "simple":
            # a simple metric's filters filter its rows
            model, measure = self._measure(params["measure"]["name"])
            filters = (self._filter_sql(model, metric.get("filter"))
                       + self._filter_sql(model, params["measure"].get("filter")))
            num, den = self._aggregate(model, measure, [])
            raw = {"numerator": num, "denominator": den} if den else {"measure": num}
            note = f"simple: {measure.get('agg')} of {measure.get('expr') or measure['name']}"
        elif kind == "ratio":
            model, num, n_den, _ = self._input(params["numerator"])
            other, den, d_den, _ = self._input(params["denominator"])
            if other["name"] != model["name"]:
                raise NotMapped(f"numerator and denominator come from different semantic models "
                                f"({model['name']!r}, {other['name']!r})")
            if n_den or d_den:
                raise NotMapped("an input of the ratio is an average (a ratio of ratios)")
            filters = self._filter_sql(model, metric.get("filter"))
            raw = {"numerator": num, "denominator": den}
            note = f"ratio of {params['numerator']['name']} to {params['denominator']['name']}"
        elif kind == "derived":
            raw, model, filters, note = self._derived(metric, params)
        else:
            raise NotMapped(f"metric type {kind!r} is not known")
        raw.update(self._source(model))
        raw["filters"] = [*raw.get("filters", []), *filters]
        if metric.get("label"):
            raw["label"] = metric["label"]
        if metric.get("description"):
            raw["description"] = metric["description"]
        return raw, note

    def _derived(self, metric: dict[str, Any], params: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any], list[str], str]:
        inputs = {}
        for ref in params.get("metrics") or []:
            model, num, den, alias = self._input(ref)
            inputs[alias] = (model, num, den)
        text = str(params.get("expr") or "")
        try:
            tree = sqlglot.parse_one(text)
        except sqlglot.errors.ParseError:
            raise NotMapped(f"derived expression {text!r} does not parse") from None
        while isinstance(tree, exp.Paren):
            tree = tree.this

        def operand(node: exp.Expr) -> tuple[dict[str, Any], str, str | None]:
            while isinstance(node, exp.Paren):
                node = node.this
            if isinstance(node, exp.Column) and node.name in inputs:
                return inputs[node.name]
            raise NotMapped(f"derived expression {text!r} does not reduce to a ratio or a sum of "
                            "its input metrics")

        models = {m["name"] for m, _, _ in inputs.values()}
        if len(models) != 1:
            raise NotMapped("its inputs come from different semantic models")
        model = next(iter(inputs.values()))[0]
        filters = self._filter_sql(model, metric.get("filter"))
        if isinstance(tree, exp.Column):
            _, num, den = operand(tree)
            raw = {"numerator": num, "denominator": den} if den else {"measure": num}
            return raw, model, filters, f"derived: {text}"
        if isinstance(tree, exp.Div):
            (_, num, n_den), (_, den, d_den) = operand(tree.this), operand(tree.expression)
            if n_den or d_den:
                raise NotMapped("a side of its ratio is an average (a ratio of ratios)")
            return {"numerator": num, "denominator": den}, model, filters, f"derived ratio: {text}"
        if isinstance(tree, (exp.Add, exp.Sub)):
            (_, a, a_den), (_, b, b_den) = operand(tree.this), operand(tree.expression)
            if a_den or b_den or not (a.startswith("sum(") and b.startswith("sum(")):
                raise NotMapped(f"derived expression {text!r} adds measures that are not sums")
            sign = "+" if isinstance(tree, exp.Add) else "-"
            measure = f"sum(({a[4:-1]}) {sign} ({b[4:-1]}))"
            return {"measure": measure}, model, filters, f"derived sum: {text}"
        raise NotMapped(f"derived expression {text!r} does not reduce to a ratio or a sum of its "
                        "input metrics")

    def _source(self, model: dict[str, Any]) -> dict[str, Any]:
        """The metric's rows, time column, grain and dimensions from its semantic model."""
        time_name = ((model.get("defaults") or {}).get("agg_time_dimension"))
        dims = model.get("dimensions") or []
        time_dim = next((d for d in dims if d["name"] == time_name and d.get("type") == "time"),
                        None)
        if time_dim is None:
            raise NotMapped(f"semantic model {model['name']!r} has no agg_time_dimension")
        grain = ((time_dim.get("type_params") or {}).get("time_granularity") or "day").lower()
        dimensions: list[Any] = []
        for dim in dims:
            if dim.get("type") != "categorical":
                continue
            dimensions.append({"name": dim["name"], "expr": dim["expr"]} if dim.get("expr")
                              else dim["name"])
        joins = self._joins(model)
        relation = self._relation(model)
        needs_sql = bool(joins) or bool(time_dim.get("expr"))
        out: dict[str, Any] = {"time_column": time_dim["name"], "grain": _GRAINS.get(grain, "day")}
        if not needs_sql:
            out["table"] = relation
            out["dimensions"] = dimensions
            return out
        base = sql.table_ref(relation)
        select = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("b"))).from_(
            exp.alias_(base, "b", table=True))
        if time_dim.get("expr"):
            select = select.select(exp.alias_(sqlglot.parse_one(str(time_dim["expr"])),
                                              sql.identifier(time_dim["name"])))
        for entity, joined, alias in joins:
            key = sqlglot.parse_one(str(entity.get("expr") or entity["name"]))
            their = sqlglot.parse_one(self._primary_expr(joined) or entity["name"])
            for column in key.find_all(exp.Column):
                column.set("table", exp.to_identifier("b"))
            for column in their.find_all(exp.Column):
                column.set("table", exp.to_identifier(alias))
            select = select.join(exp.alias_(sql.table_ref(self._relation(joined)), alias,
                                            table=True),
                                 on=exp.EQ(this=key, expression=their), join_type="left")
            for dim in joined.get("dimensions") or []:
                if dim.get("type") != "categorical":
                    continue
                value = sqlglot.parse_one(str(dim.get("expr") or _quoted(dim["name"])))
                for column in value.find_all(exp.Column):
                    column.set("table", exp.to_identifier(alias))
                name = f"{entity['name']}__{dim['name']}"
                select = select.select(exp.alias_(value, sql.identifier(name)))
                dimensions.append(name)
        out["sql"] = select.sql()
        out["dimensions"] = dimensions
        return out
