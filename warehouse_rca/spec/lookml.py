"""Metrics a team already defined in LookML, as the same mappings a project file gives.

``--lookml DIR`` (or ``lookml:`` in the project file) reads every ``*.lkml`` file under DIR with
``lkml`` (the maintained parser). Each explore exposes the measures of its base view:

=========================  =====================================================================
LookML                     warehouse-rca
=========================  =====================================================================
``type: count``            ``count(*)`` (with ``filters:``: ``sum(CASE WHEN f THEN 1 ELSE 0 END)``)
``type: sum``              ``sum(sql)``
``type: average``          the ratio ``sum(sql) / count(sql)``
``type: number``           ``${a} / ${b}`` (or ``NULLIF(${b}, 0)``, ``1.0 *``) of sum or count
                           measures -> their ratio; ``${a} + ${b}`` / ``-`` of sums -> one sum
other measure types        not mapped (count_distinct, min, max, median, percentile, list, ...)
``dimension`` (string,     a dimension (its ``sql`` -> a derived dimension); joined views' string
yesno)                     dimensions as ``view__dimension`` through the explore's ``sql_on``
``dimension_group`` time   the base view's first one: the time column (``timeframes`` with
                           ``date`` -> day grain; only ``hour`` -> hour; only ``week`` -> week)
``sql_table_name``         the source table; ``derived_table: {sql}`` -> the source SELECT
=========================  =====================================================================

``${TABLE}`` is the view's alias, ``${field}`` and ``${view.field}`` the field's own SQL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lkml
import sqlglot
from sqlglot import exp

from warehouse_rca import sql
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.dbt import Mapped, NotMapped

_FIELD = re.compile(r"\$\{\s*(?:(\w+)\.)?(\w+)\s*\}")
_RATIO = re.compile(
    r"^\s*(?:1\.0\s*\*\s*)?\$\{(\w+)\}\s*/\s*(?:NULLIF\s*\(\s*\$\{(\w+)\}\s*,\s*0\s*\)|\$\{(\w+)\})\s*$",
    re.IGNORECASE)
_SUM = re.compile(r"^\s*\$\{(\w+)\}\s*([+-])\s*\$\{(\w+)\}\s*$")


def _parsed(text: str) -> exp.Expr:
    """A piece of a view's SQL as a sqlglot tree (the source SELECT is built from trees)."""
    try:
        return sqlglot.parse_one(text)
    except sqlglot.errors.ParseError as err:
        raise NotMapped(f"its SQL {text[:80]!r} does not parse: {err}") from None


def _relation(view: dict[str, Any]) -> exp.Expr:
    """A view's rows: its ``sql_table_name`` (a table name, quoting kept) or its derived table's
    SELECT as a subquery."""
    if view.get("sql_table_name"):
        return exp.to_table(str(view["sql_table_name"]).strip())
    text = (view.get("derived_table") or {}).get("sql")
    if text:
        return exp.Subquery(this=_parsed(str(text)))
    raise NotMapped(f"view {view['name']!r} has neither sql_table_name nor a derived table's sql")


def _is_own_column(f: dict[str, Any]) -> bool:
    """A field whose SQL is its view's column of the same name (``${TABLE}.name`` or none)."""
    text = re.sub(r"\s+", "", str(f.get("sql") or "${TABLE}." + f["name"]))
    return text.lower() in (f"${{table}}.{f['name']}".lower(), f["name"].lower())


def _read(folder: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    if not folder.is_dir():
        raise ConfigError(f"--lookml {folder}: not a directory")
    views: dict[str, dict[str, Any]] = {}
    explores: list[dict[str, Any]] = []
    for path in sorted(folder.rglob("*.lkml")):
        try:
            doc = lkml.load(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid LookML: {err}") from None
        for view in doc.get("views") or []:
            views[view["name"]] = view
        explores += doc.get("explores") or []
        for model in doc.get("models") or []:
            explores += model.get("explores") or []
    return views, explores


def load_lookml_metrics(folder: str | Path) -> Mapped:
    """Every measure of every explore's base view, mapped or listed with the reason."""
    directory = Path(folder)
    views, explores = _read(directory)
    out = Mapped(origin=f"LookML {directory}")
    for explore in explores:
        base = views.get(explore.get("from") or explore["name"])
        if base is None:
            continue
        for measure in base.get("measures") or []:
            name = measure["name"]
            if name in out.metrics or name in out.not_mapped:
                name = f"{explore['name']}__{name}"
            try:
                out.metrics[name], out.notes[name] = _Explore(explore, base, views).metric(measure)
            except NotMapped as why:
                out.not_mapped[name] = str(why)
    return out


class _Explore:
    def __init__(self, explore: dict[str, Any], base: dict[str, Any],
                 views: dict[str, dict[str, Any]]) -> None:
        self.explore, self.base, self.views = explore, base, views
        self.alias = {base["name"]: "b"}
        for i, join in enumerate(explore.get("joins") or []):
            self.alias[join.get("from") or join["name"]] = f"j{i}"

    def _field(self, view: dict[str, Any], name: str) -> dict[str, Any] | None:
        for kind in ("dimensions", "measures", "dimension_groups"):
            for f in view.get(kind) or []:
                if f["name"] == name:
                    return f
        return None

    def sql_of(self, view: dict[str, Any], text: str, depth: int = 0, *,
               bare: bool = False) -> str:
        """A field's SQL with ``${TABLE}`` and ``${[view.]field}`` resolved; ``bare``: over the
        source SELECT's own columns (a measure's SQL: ``${TABLE}.x`` is the column ``x``)."""
        if depth > 10:
            raise NotMapped("its SQL references itself in a loop")
        alias = self.alias.get(view["name"], "b")
        if bare:
            text = re.sub(r"\$\{\s*TABLE\s*\}\s*\.", "", text)

        def replace(match: re.Match[str]) -> str:
            owner, name = match.groups()
            if owner is None and name == "TABLE":
                return alias
            target = view if owner is None else self.views.get(owner)
            if target is None:
                raise NotMapped(f"its SQL names view {owner!r}, which is not defined")
            f = self._field(target, name)
            if f is None:
                # ${view.date} of a dimension_group: the group's own SQL
                group, _, _ = name.rpartition("_")
                f = self._field(target, group)
            if f is None:
                raise NotMapped(f"its SQL names {owner + '.' if owner else ''}{name}, which is "
                                "not a field")
            if bare and owner is not None and target is not self.base:
                raise NotMapped(f"its SQL names {owner}.{name} of a joined view")
            return "(" + self.sql_of(target, f.get("sql") or "${TABLE}." + f["name"], depth + 1,
                                     bare=bare) + ")"

        return _FIELD.sub(replace, text)

    def _aggregate(self, measure: dict[str, Any]) -> tuple[str, str | None]:
        kind = str(measure.get("type") or "count").lower()
        value = (self.sql_of(self.base, measure["sql"], bare=True) if measure.get("sql")
                 else None)
        conditions = []
        # lkml reads `filters: [a: "x", b: "y"]` as filters__all: [[{a: x}, {b: y}]], and the
        # older `filters: {field: a value: x}` blocks as filters: [{field, value}]
        entries = [e for group in measure.get("filters__all") or [] for e in group]
        entries += list(measure.get("filters") or [])
        for f in entries:
            if not isinstance(f, dict):
                raise NotMapped(f"its filter {f!r} is not field: value")
            if "field" in f:
                conditions.append((str(f["field"]), f.get("value")))
            else:
                conditions.extend((str(k), v) for k, v in f.items())
        when = " AND ".join(self._filter(name, wanted) for name, wanted in conditions)

        def inside(v: str, otherwise: str = "0") -> str:
            return f"CASE WHEN {when} THEN {v} ELSE {otherwise} END" if when else v

        if kind == "count":
            return (f"sum({inside('1')})" if when else "count(*)"), None
        if kind == "sum" and value:
            return f"sum({inside(value)})", None
        if kind == "average" and value:
            return f"sum({inside(value)})", f"count({inside(value, 'NULL')})"
        raise NotMapped(f"measure type {kind!r} is not additive (count, sum, average and number "
                        "measures that divide or add them map)")

    def _filter(self, field_name: str, wanted: Any) -> str:
        owner, _, name = field_name.rpartition(".")
        view = self.views.get(owner) if owner else self.base
        f = self._field(view, name) if view else None
        if view is None or f is None or not isinstance(wanted, str):
            raise NotMapped(f"its filter on {field_name!r} is not a dimension of a known view")
        if view is not self.base:
            raise NotMapped(f"its filter on {field_name!r} is on a joined view")
        column = self.sql_of(view, f.get("sql") or "${TABLE}." + f["name"], bare=True)
        if wanted.lower() in ("yes", "no") and str(f.get("type")) == "yesno":
            return f"({column}) = {'TRUE' if wanted.lower() == 'yes' else 'FALSE'}"
        values = [v.strip() for v in wanted.split(",")]
        if any(re.search(r"[%^<>=-]|\bNULL\b", v) for v in values):
            raise NotMapped(f"its filter {field_name}: {wanted!r} uses Looker filter expressions "
                            "beyond a list of values")
        return f"({column}) IN ({', '.join(sql.literal(v).sql() for v in values)})"

    def metric(self, measure: dict[str, Any]) -> tuple[dict[str, Any], str]:
        kind = str(measure.get("type") or "count").lower()
        if kind == "number":
            text = str(measure.get("sql") or "")
            ratio, added = _RATIO.match(text), _SUM.match(text)
            if ratio:
                a, b = ratio.group(1), ratio.group(2) or ratio.group(3)
                num, den = (self._aggregate(self._measure(n)) for n in (a, b))
                if num[1] or den[1]:
                    raise NotMapped("a side of its ratio is an average (a ratio of ratios)")
                raw: dict[str, Any] = {"numerator": num[0], "denominator": den[0]}
                note = f"number: {a} / {b}"
            elif added:
                a, sign, b = added.groups()
                (x, x_den), (y, y_den) = (self._aggregate(self._measure(n)) for n in (a, b))
                if x_den or y_den:
                    raise NotMapped("it adds averages")
                raw = {"measure": f"sum(({x[4:-1]}) {sign} ({y[4:-1]}))"}
                note = f"number: {a} {sign} {b}"
            else:
                raise NotMapped(f"its SQL {text!r} does not reduce to a ratio or a sum of "
                                "measures")
        else:
            num_text, den_text = self._aggregate(measure)
            raw = ({"numerator": num_text, "denominator": den_text} if den_text
                   else {"measure": num_text})
            note = f"{kind}"
        raw.update(self._source())
        if measure.get("label"):
            raw["label"] = measure["label"]
        if measure.get("description"):
            raw["description"] = measure["description"]
        return raw, f"explore {self.explore['name']}, {note}"

    def _measure(self, name: str) -> dict[str, Any]:
        f = self._field(self.base, name)
        if f is None or f not in (self.base.get("measures") or []):
            raise NotMapped(f"it refers to {name!r}, not a measure of {self.base['name']!r}")
        return f

    def _source(self) -> dict[str, Any]:
        base = self.base
        groups = [g for g in base.get("dimension_groups") or [] if g.get("type") == "time"]
        if not groups:
            raise NotMapped(f"view {base['name']!r} has no time dimension_group")
        time = groups[0]
        frames = set(time.get("timeframes") or ["date"])
        grain = ("day" if frames & {"date", "raw", "time"} else "hour" if "hour" in frames
                 else "week")
        select = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("b"))).from_(
            exp.alias_(_relation(base), "b", table=True))
        if not _is_own_column(time):
            select = select.select(exp.alias_(_parsed(self.sql_of(base, time["sql"])),
                                              sql.identifier(time["name"])))
        dimensions: list[str] = []
        for view_name, alias in self.alias.items():
            view = self.views.get(view_name)
            if view is None:
                continue
            for dim in view.get("dimensions") or []:
                if (str(dim.get("type") or "string") not in ("string", "yesno")
                        or dim.get("hidden") or str(dim.get("primary_key")) == "yes"):
                    continue
                name = dim["name"] if alias == "b" else f"{view_name}__{dim['name']}"
                if not (alias == "b" and _is_own_column(dim)):  # b.* holds it already
                    value = self.sql_of(view, dim.get("sql") or "${TABLE}." + dim["name"])
                    select = select.select(exp.alias_(_parsed(value), sql.identifier(name)))
                dimensions.append(name)
        for i, join in enumerate(self.explore.get("joins") or []):
            view = self.views.get(join.get("from") or join["name"])
            if view is None or not join.get("sql_on"):
                raise NotMapped(f"join {join['name']!r} has no view or no sql_on")
            if str(join.get("relationship") or "many_to_one") not in ("many_to_one", "one_to_one"):
                raise NotMapped(f"join {join['name']!r} is {join.get('relationship')}: it would "
                                "repeat the base rows")
            select = select.join(exp.alias_(_relation(view), f"j{i}", table=True),
                                 on=_parsed(self.sql_of(self.base, join["sql_on"])),
                                 join_type="left")
        if not dimensions:
            raise NotMapped(f"explore {self.explore['name']!r} has no string dimensions")
        return {"sql": select.sql(), "time_column": time["name"], "grain": grain,
                "dimensions": dimensions}
