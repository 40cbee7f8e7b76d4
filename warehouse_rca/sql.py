"""SQL generation: Jinja templates in ``sql_templates/`` filled with sqlglot fragments.

Rule: user text never reaches a template. Names become quoted sqlglot identifiers, values become
sqlglot literals, user expressions (measures, filters) are parsed by sqlglot and checked against an
allow-list first. Templates are written in DuckDB's dialect, rendered in a sandbox with
StrictUndefined, parsed back by sqlglot and generated for the target dialect.

>>> column_ref('weird "name').sql("postgres")
'"weird ""name"'
>>> render("probe_columns.sql.j2", "postgres", source=table_ref("analytics.sessions"))
'SELECT\\n  *\\nFROM "analytics"."sessions"\\nLIMIT 0'
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import sqlglot
from jinja2.sandbox import SandboxedEnvironment
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from warehouse_rca.errors import ConfigError, InputError

TEMPLATE_DIALECT = "duckdb"
#: sql_templates/ inside an installed wheel (pyproject.toml maps it into the package), else the
#: repository's top-level sql_templates/ (a checkout, an editable install).
_PACKAGE = Path(__file__).resolve().parent
TEMPLATE_DIR = next((d for d in (_PACKAGE / "sql_templates", _PACKAGE.parent / "sql_templates")
                     if d.is_dir()), _PACKAGE.parent / "sql_templates")


# --------------------------------------------------------------------------- names and values


def identifier(name: str) -> exp.Identifier:
    """A quoted identifier: whatever the name holds, it stays a name."""
    if not isinstance(name, str) or not name:
        raise InputError("an identifier must be a non-empty string")
    if "\x00" in name:
        raise InputError(f"identifier {name!r} contains a NUL byte")
    return exp.to_identifier(name, quoted=True)


def column_ref(name: str) -> exp.Column:
    return exp.Column(this=identifier(name))


def table_ref(name: str) -> exp.Table:
    """``schema.table`` or ``db.schema.table``; each part quoted. Dots separate parts."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise InputError(f"table name {name!r} must be table, schema.table or db.schema.table")
    ids = [identifier(p) for p in parts]
    if len(ids) == 1:
        return exp.Table(this=ids[0])
    if len(ids) == 2:
        return exp.Table(this=ids[1], db=ids[0])
    return exp.Table(this=ids[2], db=ids[1], catalog=ids[0])


def literal(value: Any) -> exp.Expr:
    """A SQL literal for a Python value (str, number, bool, None, datetime)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(repr(float(value)) if isinstance(value, float) else str(value))
    if isinstance(value, datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError(f"value {value[:40]!r}... contains a NUL byte")
        return exp.Literal.string(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def resolve_column(name: str, columns: Sequence[str], *, what: str = "column") -> str:
    """Map a user-written column name to the catalog's spelling (exact, then case-insensitive)."""
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    hint = difflib.get_close_matches(name, list(columns), n=3)
    suggestion = f"; did you mean {', '.join(hint)}?" if hint else ""
    shown = ", ".join(list(columns)[:30])
    raise InputError(f"unknown {what} {name!r}{suggestion} (available: {shown})")


# --------------------------------------------------------------------------- user expressions

# Node types a filter may contain: comparisons, boolean logic, IN, BETWEEN, IS NULL, literals.
_CONDITION_NODES: tuple[type[exp.Expr], ...] = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.And, exp.Or, exp.Not,
    exp.Paren, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Is,
    exp.Like, exp.ILike, exp.Neg, exp.Tuple, exp.Cast, exp.DataType, exp.Lower, exp.Upper,
    exp.Coalesce, exp.Abs, exp.Length, exp.Trim,
    exp.Add, exp.Sub, exp.Mul, exp.Div,
)
# A measure may additionally use CASE/IF and arithmetic inside its one aggregate.
_MEASURE_NODES = _CONDITION_NODES + (exp.Case, exp.If, exp.Star, exp.Mod, exp.Greatest, exp.Least)
_ROW_AGGREGATES = (exp.Sum, exp.Count)


def _parse_one(text: str, where: str) -> exp.Expr:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: empty expression")
    if "\x00" in text:
        raise ConfigError(f"{where}: expression contains a NUL byte")
    try:
        statements = sqlglot.parse(text, read=TEMPLATE_DIALECT)
    except sqlglot.errors.SqlglotError as err:
        raise ConfigError(f"{where}: cannot parse {text!r}: {str(err).splitlines()[0]}") from None
    except (TypeError, ValueError, AttributeError):
        # sqlglot's compiled parser fails some malformed input (e.g. a bare "->") with a
        # TypeError instead of a ParseError: still the user's text, still a clean error
        raise ConfigError(f"{where}: cannot parse {text!r}") from None
    if len(statements) != 1 or statements[0] is None:
        raise ConfigError(f"{where}: {text!r} must be a single expression, not several statements")
    return statements[0]


def _check_nodes(
    tree: exp.Expr, allowed: tuple[type[exp.Expr], ...], columns: Sequence[str], where: str
) -> exp.Expr:
    for node in tree.walk():
        if not isinstance(node, allowed):
            name = node.key.upper() if isinstance(node, exp.Func) else type(node).__name__
            raise ConfigError(f"{where}: {name} is not allowed in this expression")
    # Wrap so that a bare column at the root can be replaced in place too.
    holder = exp.Paren(this=tree.copy())
    for col in list(holder.find_all(exp.Column)):
        if col.table:
            raise ConfigError(f"{where}: qualified column {col.sql()!r}: use the bare column name")
        resolved = resolve_column(col.name, columns)
        col.replace(column_ref(resolved))
    return holder.this


def parse_condition(text: str, columns: Sequence[str], where: str) -> exp.Expr:
    """A user filter, allowed only as comparisons/boolean logic/IN/BETWEEN/IS NULL on known columns.

    >>> parse_condition("country = 'US' and amount > 3", ["country", "amount"], "filter").sql()
    '"country" = \\'US\\' AND "amount" > 3'
    """
    tree = _check_nodes(_parse_one(text, where), _CONDITION_NODES, columns, where)
    _check_predicate(tree, text, where)
    return tree


_PREDICATES = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Is,
               exp.Like, exp.ILike, exp.Boolean)


def _check_predicate(tree: exp.Expr, text: str, where: str) -> None:
    """A filter must be true/false: a bare column or number (``d``, ``1 AND x``) is refused here
    with a clear message instead of as a type error from the warehouse."""
    if isinstance(tree, (exp.And, exp.Or)):
        _check_predicate(tree.this, text, where)
        _check_predicate(tree.expression, text, where)
    elif isinstance(tree, (exp.Not, exp.Paren)):
        _check_predicate(tree.this, text, where)
    elif not isinstance(tree, _PREDICATES):
        raise ConfigError(
            f"{where}: {text!r} is not a condition (use comparisons, IN, BETWEEN, IS NULL)"
        )


def parse_row_measure(text: str, columns: Sequence[str], where: str) -> exp.Expr:
    """Turn an additive aggregate (``sum(x)``, ``count(*)``, ``count(x)``) into its per-row value,
    so the warehouse can sum it per segment and the cube stays additive.

    >>> parse_row_measure("sum(price * qty)", ["price", "qty"], "m").sql()
    '"price" * "qty"'
    >>> parse_row_measure("count(*)", [], "m").sql()
    '1'
    """
    tree = _parse_one(text, where)
    if not isinstance(tree, _ROW_AGGREGATES):
        raise ConfigError(
            f"{where}: {text!r} must be one additive aggregate: sum(expr), count(*) or count(expr)"
            " (averages are ratios: use numerator/denominator)"
        )
    if tree.args.get("distinct") or isinstance(tree.this, exp.Distinct):
        raise ConfigError(f"{where}: count(distinct ...) is not additive across segments")
    inner = tree.this
    if isinstance(tree, exp.Count):
        if inner is None or isinstance(inner, exp.Star):
            return exp.Literal.number(1)
        inner = _check_nodes(inner, _MEASURE_NODES, columns, where)
        return exp.Case(
            ifs=[exp.If(this=exp.Not(this=exp.Is(this=inner, expression=exp.Null())),
                        true=exp.Literal.number(1))],
            default=exp.Literal.number(0),
        )
    if inner is None:
        raise ConfigError(f"{where}: sum() needs an argument")
    return _check_nodes(inner, _MEASURE_NODES, columns, where)


# A derived dimension (a row-level expression, see warehouse_rca.dimensions) may also bucket
# (FLOOR/CEIL/ROUND, integer division), take date parts (EXTRACT, hour(), dayofweek(), month(),
# date_trunc) and map values (CASE, IF, concatenation, substrings). No aggregates, windows,
# subqueries or unknown functions: one value per row, computed from that row only.
_DIMENSION_NODES = _MEASURE_NODES + (
    exp.Floor, exp.Ceil, exp.Round, exp.IntDiv, exp.Extract, exp.Var, exp.Hour, exp.Minute,
    exp.DayOfWeek, exp.DayOfWeekIso, exp.DayOfMonth, exp.Day, exp.Month, exp.Quarter, exp.Year,
    exp.Week, exp.TimestampTrunc, exp.DateTrunc, exp.Substring, exp.Concat, exp.DPipe, exp.Sign,
)
# Date parts written as functions become EXTRACT, which every dialect sqlglot writes portably
# (hour()/dayofweek() come out as HOUR()/DAY_OF_WEEK() in PostgreSQL, which it does not know).
_AS_EXTRACT: dict[type[exp.Expr], str] = {
    exp.Hour: "HOUR", exp.Minute: "MINUTE", exp.DayOfWeek: "DOW",
}


def parse_dimension_expr(text: str, columns: Sequence[str], where: str) -> exp.Expr:
    """A derived dimension: a per-row expression on known columns (buckets, date parts, CASE).

    >>> parse_dimension_expr("hour(ts)", ["ts"], "d").sql("postgres")
    'EXTRACT(HOUR FROM "ts")'
    >>> parse_dimension_expr("CASE WHEN price < 20 THEN 'low' ELSE 'high' END", ["price"], "d").sql()
    'CASE WHEN "price" < 20 THEN \\'low\\' ELSE \\'high\\' END'
    """  # noqa: E501 (a doctest line)
    tree = _parse_one(text, where)
    unknown = next(tree.find_all(exp.Anonymous), None)
    if unknown is not None:
        raise ConfigError(f"{where}: function {unknown.name.upper()}() is not allowed in a derived "
                          "dimension (allowed: CASE, arithmetic, FLOOR/CEIL/ROUND, EXTRACT, hour, "
                          "dayofweek, month, year, date_trunc, LOWER/UPPER, SUBSTRING, COALESCE)")
    tree = _check_nodes(tree, _DIMENSION_NODES, columns, where)
    for node in list(tree.find_all(*_AS_EXTRACT)):
        part = exp.Extract(this=exp.var(_AS_EXTRACT[type(node)]), expression=node.this.copy())
        if node is tree:
            return part
        node.replace(part)
    return tree


def parse_source_select(text: str, where: str) -> exp.Expr:
    """A metric defined by a SELECT: one read-only statement, used as a subquery."""
    tree = _parse_one(text, where)
    if not isinstance(tree, (exp.Select, exp.Union)):
        raise ConfigError(f"{where}: 'sql' must be a single SELECT statement")
    for node in tree.walk():
        if isinstance(
            node, (exp.Insert, exp.Delete, exp.Update, exp.Create, exp.Drop, exp.Command)
        ):
            raise ConfigError(f"{where}: 'sql' may only read data")
    return tree


# --------------------------------------------------------------------------- templates


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _fragment(value: Any) -> Any:
    """Template context values: sqlglot trees become SQL text; raw strings are refused."""
    if isinstance(value, exp.Expression):
        return value.sql(dialect=TEMPLATE_DIALECT)
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        return {k: _fragment(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_fragment(v) for v in value]
    raise TypeError(
        f"template values must be sqlglot expressions or numbers, not {type(value).__name__}: "
        "user text never reaches a template"
    )


def render_tree(template: str, **context: Any) -> list[exp.Expr]:
    """Render a template and parse it into sqlglot statements (in the template dialect)."""
    text = _environment().get_template(template).render(
        **{k: _fragment(v) for k, v in context.items()}
    )
    return [s for s in sqlglot.parse(text, read=TEMPLATE_DIALECT) if s is not None]


@dataclass(frozen=True)
class Template:
    """A template and what fills it, not yet rendered: the engine that runs it renders it for
    its own dialect (``Engine.query``/``execute``/``render``), so no caller outside the engines
    names a dialect. The CLI's ``sql --dialect`` renders one for the dialect a user asked for.

    >>> template("probe_columns.sql.j2", source=table_ref("t")).sql("postgres")
    'SELECT\\n  *\\nFROM "t"\\nLIMIT 0'
    """

    name: str
    context: Mapping[str, Any] = field(default_factory=dict)

    def sql(self, dialect: str) -> str:
        """The one statement of the template, for ``dialect`` (tagged inside ``query_tag``)."""
        return render(self.name, dialect, **self.context)

    def sql_all(self, dialect: str) -> list[str]:
        """Every statement of the template, for ``dialect``."""
        return render_all(self.name, dialect, **self.context)


def template(name: str, **context: Any) -> Template:
    """``Template(name, context)``: what query builders return and engines render."""
    return Template(name, context)


def render(template: str, dialect: str, **context: Any) -> str:
    """Render one statement of a template for ``dialect``."""
    statements = render_all(template, dialect, **context)
    if len(statements) != 1:
        raise ValueError(f"{template} rendered {len(statements)} statements, expected 1")
    return statements[0]


# The query tag: a comment naming the tool and the run id on every statement rendered while a
# run is in progress, so warehouse admins can attribute cost (pg_stat_activity, query history).
_QUERY_TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rca_query_tag", default=None
)
_TAG_SAFE = re.compile(r"[^A-Za-z0-9_=.:\-]")


@contextlib.contextmanager
def query_tag(run_id: str) -> Iterator[str]:
    """Tag every statement rendered inside the block with ``warehouse-rca run_id=<run_id>``.

    The run id is a hex hash; anything else is stripped so the comment can never close itself
    or carry a driver placeholder (``%``, ``?``).
    """
    tag = "warehouse-rca run_id=" + _TAG_SAFE.sub("", str(run_id))[:64]
    token = _QUERY_TAG.set(tag)
    try:
        yield tag
    finally:
        _QUERY_TAG.reset(token)


def render_all(template: str, dialect: str, **context: Any) -> list[str]:
    # RAISE: a construct the dialect cannot express (sqlglot once silently dropped a PARTITIONED BY)
    # fails here instead of vanishing from the statement.
    statements = [s.sql(dialect=dialect, pretty=True, unsupported_level=ErrorLevel.RAISE)
                  for s in render_tree(template, **context)]
    tag = _QUERY_TAG.get()
    if tag is None:
        return statements
    # First thing in the text (sqlglot would place a root comment mid-statement for WITH/UNION,
    # and pg_stat_activity keeps only the first 1 kB). The tag holds [A-Za-z0-9_=.:-] only.
    return [f"/* {tag} */\n{statement}" for statement in statements]


def and_all(conditions: Iterable[exp.Expr]) -> exp.Expr | None:
    conditions = list(conditions)
    return exp.and_(*conditions) if conditions else None
