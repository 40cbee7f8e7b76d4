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
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


#: How a dimension's NULL reads as a segment value, and the folded tail of a dimension.
NULL_LABEL = "(null)"
OTHER_LABEL = "(other)"


def _is_reserved(text: str) -> bool:
    """A value the labelling escapes (_label.sql.j2): in parentheses, and 'null' or 'other'
    once every parenthesis is removed (REPLACE, not TRIM: it reads the same on every engine)."""
    return (len(text) > 1 and text.startswith("(") and text.endswith(")")
            and text.replace("(", "").replace(")", "") in ("null", "other"))


def value_label(value: Any) -> str:
    """A dimension value as the cube labels it (``_label.sql.j2``, in Python): NULL reads
    '(null)', and a real value that would read like one of the labels gets one more pair of
    parentheses ('(null)' -> '((null))'), so no real value collides with NULL or '(other)'.

    >>> [value_label(v) for v in (None, "(null)", "((other))", "web", "(web)")]
    ['(null)', '((null))', '(((other)))', 'web', '(web)']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NULL_LABEL
    text = str(value)
    return f"({text})" if _is_reserved(text) else text


def label_value(label: str) -> str | None:
    """The value a label stands for (the inverse of :func:`value_label`); None for '(null)'.

    >>> [label_value(x) for x in ("(null)", "((null))", "web")]
    [None, '(null)', 'web']
    """
    if label == NULL_LABEL:
        return None
    if _is_reserved(label) and _is_reserved(label[1:-1]):
        return label[1:-1]
    return label


def label_matches(value: exp.Expr, label: str) -> exp.Expr:
    """The condition that ``value`` (a dimension's VARCHAR value) carries ``label``: IS NULL for
    '(null)', an equality with the real value otherwise (plain SQL a person can read and run)."""
    raw = label_value(label)
    if raw is None:
        return exp.Is(this=value, expression=exp.Null())
    return exp.EQ(this=value, expression=literal(raw))


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


def _parse_one(text: str, where: str, what: str = "") -> exp.Expr:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: empty expression")
    if "\x00" in text:
        raise ConfigError(f"{where}: expression contains a NUL byte")
    try:
        statements = sqlglot.parse(text, read=TEMPLATE_DIALECT)
    except sqlglot.errors.SqlglotError as err:
        raise ConfigError(f"{where}: cannot parse {text!r}: {str(err).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{where}: expression nested too deeply to parse") from None
    except (TypeError, ValueError, AttributeError):
        # sqlglot's compiled parser fails some malformed input (e.g. a bare "->") with a
        # TypeError instead of a ParseError: still the user's text, still a clean error
        raise ConfigError(f"{where}: cannot parse {text!r}") from None
    if len(statements) != 1 or statements[0] is None:
        raise ConfigError(f"{where}: {what or repr(text) + ' must be a single expression'}, "
                          "not several statements")
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
    exp.DayOfWeek, exp.DayOfWeekIso, exp.DayOfMonth, exp.Day, exp.DayOfYear, exp.Month,
    exp.Quarter, exp.Year, exp.Week, exp.WeekOfYear, exp.TimestampTrunc, exp.DateTrunc,
    exp.Substring, exp.Concat, exp.DPipe, exp.Sign,
)

# Date parts, with DuckDB's meaning (the dialect project expressions are written in): DOW is
# Sunday = 0 .. Saturday = 6, ISODOW Monday = 1 .. Sunday = 7, WEEK the ISO week. `portable`
# writes each one for the target dialect with that meaning (Spark's DAYOFWEEK counts from 1,
# PostgreSQL has no QUARTER() or WEEK(), Snowflake's week functions follow session parameters).
_DATE_PART_OF: dict[type[exp.Expr], str] = {
    exp.Year: "YEAR", exp.Quarter: "QUARTER", exp.Month: "MONTH", exp.Week: "WEEK",
    exp.WeekOfYear: "WEEK", exp.Day: "DAY", exp.DayOfMonth: "DAY", exp.DayOfWeek: "DOW",
    exp.DayOfWeekIso: "ISODOW", exp.DayOfYear: "DOY", exp.Hour: "HOUR", exp.Minute: "MINUTE",
}
#: EXTRACT(part FROM ...) spellings -> the date part.
_EXTRACT_PARTS: dict[str, str] = {
    "YEAR": "YEAR", "QUARTER": "QUARTER", "MONTH": "MONTH", "WEEK": "WEEK", "WEEKOFYEAR": "WEEK",
    "DAY": "DAY", "DAYOFMONTH": "DAY", "DOW": "DOW", "DAYOFWEEK": "DOW", "ISODOW": "ISODOW",
    "DOY": "DOY", "DAYOFYEAR": "DOY", "HOUR": "HOUR", "MINUTE": "MINUTE",
}
#: date_trunc units a derived dimension may use (weeks start on Monday everywhere).
_TRUNC_UNITS = frozenset({"YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE"})


def _date_part(node: exp.Expr) -> str | None:
    """The date part a node takes (``hour(ts)``, ``EXTRACT(DOW FROM ts)``), else None."""
    if isinstance(node, exp.Extract):
        return _EXTRACT_PARTS.get(str(node.this.name).upper())
    return _DATE_PART_OF.get(type(node))


def _anon(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _extract_postgres(part: str, arg: exp.Expr) -> exp.Expr:
    # EXTRACT returns numeric; DuckDB's date parts are BIGINT
    return exp.cast(exp.Extract(this=exp.var(part), expression=arg), exp.DataType.Type.BIGINT)


_SNOWFLAKE_PARTS: dict[str, Callable[[exp.Expr], exp.Expr]] = {
    # DAYOFWEEK/WEEK depend on WEEK_START/WEEK_OF_YEAR_POLICY; the ISO functions do not
    "WEEK": lambda a: _anon("WEEKISO", a),
    "DOW": lambda a: exp.Paren(this=exp.Mod(this=_anon("DAYOFWEEKISO", a),
                                           expression=exp.Literal.number(7))),
    "ISODOW": lambda a: _anon("DAYOFWEEKISO", a),
}
_SPARK_PARTS: dict[str, Callable[[exp.Expr], exp.Expr]] = {
    "WEEK": lambda a: _anon("WEEKOFYEAR", a),  # ISO week
    "DAY": lambda a: _anon("DAYOFMONTH", a),
    "DOW": lambda a: exp.Paren(this=exp.Sub(this=_anon("DAYOFWEEK", a),  # Sunday = 1
                                           expression=exp.Literal.number(1))),
    "ISODOW": lambda a: exp.Paren(this=exp.Add(this=_anon("WEEKDAY", a),  # Monday = 0
                                              expression=exp.Literal.number(1))),
}
_FUNCTION_OF_PART: dict[str, type[exp.Func]] = {
    "YEAR": exp.Year, "QUARTER": exp.Quarter, "MONTH": exp.Month, "WEEK": exp.Week,
    "DAY": exp.DayOfMonth, "DOW": exp.DayOfWeek, "ISODOW": exp.DayOfWeekIso,
    "DOY": exp.DayOfYear, "HOUR": exp.Hour, "MINUTE": exp.Minute,
}


def _numeric(node: exp.Expr) -> exp.Expr:
    return exp.cast(node, exp.DataType.Type.DECIMAL)


def _rewrite(node: exp.Expr, dialect: str) -> exp.Expr | None:
    """``node`` for ``dialect`` where sqlglot's own output would fail there or mean something
    else than in DuckDB; None to keep it."""
    part = _date_part(node)
    arg = node.expression if isinstance(node, exp.Extract) else node.this
    if part is not None and arg is not None:
        if dialect == "postgres":
            return _extract_postgres(part, arg)
        if dialect == "snowflake":
            build = _SNOWFLAKE_PARTS.get(part)
            return build(arg) if build else _FUNCTION_OF_PART[part](this=arg)
        if dialect in ("spark", "databricks"):
            build = _SPARK_PARTS.get(part)
            return build(arg) if build else _FUNCTION_OF_PART[part](this=arg)
        return None
    if isinstance(node, exp.PercentileCont) and dialect in ("spark", "databricks"):
        # sqlglot writes percentile_cont(x, q), which Spark rejects; PERCENTILE is its exact one
        return exp.Quantile(this=node.this, quantile=node.expression)
    if dialect == "postgres":
        if isinstance(node, exp.Mod):
            # `%` has no double precision operator in PostgreSQL; numeric's keeps DuckDB's result
            return exp.Mod(this=_numeric(node.this), expression=_numeric(node.expression))
        if isinstance(node, exp.Round):
            # round(double precision) rounds half to even and has no `decimals` form; numeric's
            # rounds half away from zero, as DuckDB does
            return exp.Round(this=_numeric(node.this), decimals=node.args.get("decimals"))
    return None


_REWRITTEN: tuple[type[exp.Expr], ...] = (exp.Extract, exp.Mod, exp.Round, exp.PercentileCont,
                                         *_DATE_PART_OF)


def portable(tree: exp.Expr, dialect: str) -> exp.Expr:
    """``tree`` (written with DuckDB's meaning) made to mean the same in ``dialect``: date parts,
    ``%`` and ``round`` where sqlglot's transpilation would fail or count differently. The tree is
    copied when anything changes.

    >>> portable(parse_dimension_expr("dayofweek(ts) IN (0, 6)", ["ts"], "d"), "postgres").sql(
    ...     "postgres")
    'CAST(EXTRACT(DOW FROM "ts") AS BIGINT) IN (0, 6)'
    >>> portable(parse_dimension_expr("dayofweek(ts)", ["ts"], "d"), "spark").sql("spark")
    '(DAYOFWEEK(`ts`) - 1)'
    """
    if dialect == TEMPLATE_DIALECT or not any(isinstance(n, _REWRITTEN) for n in tree.walk()):
        return tree
    tree = tree.copy()
    # children before parents, so a rewritten parent wraps already rewritten arguments
    for node in reversed([n for n in tree.walk() if isinstance(n, _REWRITTEN)]):
        new = _rewrite(node, dialect)
        if new is None:
            continue
        if node is tree:
            tree = new
        else:
            node.replace(new)
    return tree


def parse_dimension_expr(text: str, columns: Sequence[str], where: str) -> exp.Expr:
    """A derived dimension: a per-row expression on known columns (buckets, date parts, CASE),
    with DuckDB's meaning on every engine (see :func:`portable`).

    >>> portable(parse_dimension_expr("hour(ts)", ["ts"], "d"), "postgres").sql("postgres")
    'CAST(EXTRACT(HOUR FROM "ts") AS BIGINT)'
    >>> parse_dimension_expr("CASE WHEN price < 20 THEN 'low' ELSE 'high' END", ["price"], "d").sql()
    'CASE WHEN "price" < 20 THEN \\'low\\' ELSE \\'high\\' END'
    """  # noqa: E501 (a doctest line)
    tree = _parse_one(text, where)
    unknown = next(tree.find_all(exp.Anonymous), None)
    if unknown is not None:
        raise ConfigError(f"{where}: function {unknown.name.upper()}() is not allowed in a derived "
                          "dimension (allowed: CASE, arithmetic, FLOOR/CEIL/ROUND, EXTRACT, hour, "
                          "minute, dayofweek, isodow, day, dayofyear, week, month, quarter, year, "
                          "date_trunc, LOWER/UPPER, SUBSTRING, CONCAT, COALESCE)")
    tree = _check_nodes(tree, _DIMENSION_NODES, columns, where)
    for extract in tree.find_all(exp.Extract):
        if _date_part(extract) is None:
            raise ConfigError(
                f"{where}: EXTRACT({str(extract.this.name).upper()} ...) is not allowed in a "
                f"derived dimension (parts: {', '.join(sorted(_EXTRACT_PARTS))})"
            )
    for trunc in tree.find_all(exp.TimestampTrunc, exp.DateTrunc):
        unit = trunc.args.get("unit")
        name = str(unit.name if isinstance(unit, exp.Expr) else unit or "").upper()
        if name not in _TRUNC_UNITS:
            raise ConfigError(f"{where}: date_trunc unit {name.lower()!r} is not allowed in a "
                              f"derived dimension (units: {', '.join(sorted(_TRUNC_UNITS))})")
    return tree


# --------------------------------------------------------------------------- project SQL
#
# A metric's or the events' `sql:` is a SELECT written by whoever edits the project file, run with
# the warehouse credentials of an unattended tool. It may read named tables and compute with pure
# functions, nothing else: no table functions or file/URL readers (DuckDB's read_text, read_csv,
# glob; PostgreSQL's pg_read_file), no settings or session state (set_config, current_setting,
# getenv), no sequences (nextval), no locks (pg_advisory_lock, FOR UPDATE), no administration
# (pg_terminate_backend, pg_sleep), no SELECT ... INTO. Everything is refused unless listed here.


def _classes(names: str) -> tuple[type[exp.Expr], ...]:
    """sqlglot classes by name (one absent from an older or newer sqlglot is simply not allowed)."""
    found = (getattr(exp, name, None) for name in names.split())
    return tuple(c for c in found if isinstance(c, type) and issubclass(c, exp.Expr))


#: Pure scalar, aggregate and window functions, as sqlglot types them (DuckDB's dialect).
_SOURCE_FUNCTIONS = _classes("""
    Sum Count Avg Min Max CountIf Stddev StddevPop StddevSamp Variance VariancePop Median Mode
    Quantile PercentileCont PercentileDisc ApproxDistinct ApproxQuantile AnyValue First Last
    LogicalOr LogicalAnd GroupConcat ArgMax ArgMin Corr CovarPop CovarSamp Kurtosis Skewness
    RowNumber Rank DenseRank PercentRank CumeDist Ntile Lag Lead FirstValue LastValue NthValue
    Grouping And Or Xor Exists Collate
    Case If Coalesce Nullif Greatest Least Cast TryCast IsNan IsInf Nanvl
    Lower Upper Trim Substring Concat ConcatWs Length Replace Left Right Pad StrPosition
    Contains StartsWith EndsWith SplitPart RegexpLike RegexpFullMatch RegexpReplace
    RegexpILike RegexpExtract Initcap Reverse Ascii Chr MD5
    Abs Round Floor Ceil Ln Exp Pow Sqrt Cbrt Log Sign Trunc Mod IntDiv SafeDivide
    DateTrunc TimestampTrunc DatetimeTrunc Extract Date DateAdd DateSub DateDiff TimestampAdd
    TimestampSub TimestampDiff Year Quarter Month Week WeekOfYear Day DayOfMonth DayOfWeek
    DayOfWeekIso DayOfYear Hour Minute Second LastDay DateFromParts TimeToStr StrToTime StrToDate
    ToChar TsOrDsToDate TsOrDsAdd TimeStrToTime DateStrToDate UnixToTime TimeToUnix DateBin
    AddMonths MonthsBetween CurrentDate CurrentTimestamp ConvertTimezone
""")
#: Pure functions sqlglot leaves untyped (``exp.Anonymous``): allowed by name, nothing else is.
_SOURCE_ANONYMOUS = frozenset({
    "DATE_PART", "DATEPART", "NOW", "TO_DATE", "YEARWEEK", "CENTURY", "DECADE", "MILLISECOND",
    "AGE", "BTRIM", "OCTET_LENGTH", "PREFIX", "SUFFIX", "EVERY", "PRODUCT", "FSUM", "FAVG",
    "TO_HOURS", "TO_MINUTES", "TO_SECONDS", "TO_MONTHS", "TO_YEARS", "TO_WEEKS", "ISFINITE",
    "DAYOFWEEK",
})
#: The rest of a SELECT: clauses, names, literals, operators, subqueries, windows.
_SOURCE_NODES: tuple[type[exp.Expr], ...] = _classes("""
    Select Union Intersect Except Subquery From Join Where Group Having Qualify Order Ordered
    Limit Offset Fetch With CTE TableAlias Table Column Identifier Star Alias Literal Boolean Null
    Tuple Paren Distinct Window WindowSpec Filter WithinGroup IgnoreNulls RespectNulls Interval
    Var DataType DataTypeParam Values Lateral Cube Rollup GroupingSets Exists Any All In Between
    Is Like ILike Escape TableSample Dot AtTimeZone
""") + (exp.Binary, exp.Unary, exp.Predicate, exp.Connector)
#: Constructs refused with their reason (the rest: "not allowed").
_SOURCE_REFUSED: dict[str, str] = {
    "Into": "SELECT ... INTO creates a table",
    "Lock": "FOR UPDATE/FOR SHARE takes row locks",
    "Placeholder": "a bind parameter has no value here",
    "Parameter": "a session parameter reads session state",
    "SessionParameter": "a session parameter reads session state",
    "Unnest": "UNNEST is a table function",
    "Lambda": "lambdas are not allowed",
}
#: Bare words PostgreSQL (and the SQL standard) evaluate as session functions, not columns.
_SESSION_WORDS = frozenset({"user", "current_user", "session_user", "current_role",
                            "current_schema", "current_catalog", "system_user"})
#: Characters that make a table name a file or URL (DuckDB reads 'x.csv' or "s3://..." as files).
_PATHLIKE = re.compile(r"[./\\:*?~]")


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).upper()
    names = type(node).sql_names()
    return names[0] if names else type(node).__name__.upper()


def _source_refusal(node: exp.Expr) -> str | None:
    """Why ``node`` may not appear in a project's ``sql``, or None when it may."""
    if isinstance(node, exp.Func):
        if isinstance(node, _SOURCE_FUNCTIONS) or (
            isinstance(node, exp.Anonymous) and _function_name(node) in _SOURCE_ANONYMOUS
        ):
            return None
        if isinstance(node.parent, (exp.Table, exp.Lateral, exp.Join, exp.From)):
            return (f"table function {_function_name(node)}() is not allowed: 'sql' may read "
                    "named tables only")
        return (f"function {_function_name(node)}() is not allowed: 'sql' may call pure scalar, "
                "aggregate and window functions only (README, Security)")
    reason = _SOURCE_REFUSED.get(type(node).__name__)
    if reason is not None:
        return reason
    if isinstance(node, exp.Table):
        if isinstance(node.this, exp.Func):
            return (f"table function {_function_name(node.this)}() is not allowed: 'sql' may "
                    "read named tables only")
        if not isinstance(node.this, exp.Identifier):
            return f"{node.sql(TEMPLATE_DIALECT)!r} is not a table name"
        for part in node.parts:
            if isinstance(part, exp.Identifier) and _PATHLIKE.search(part.name):
                return (f"table name {part.name!r} looks like a file or URL: 'sql' may read "
                        "named tables only")
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier) \
            and not node.this.quoted and not node.table and node.name.lower() in _SESSION_WORDS:
        return (f"{node.name} is a session function in PostgreSQL; quote it (\"{node.name}\") "
                "if it is a column")
    if not isinstance(node, _SOURCE_NODES):
        return f"{type(node).__name__.upper()} is not allowed"
    return None


def parse_source_select(text: str, where: str) -> exp.Expr:
    """A metric (or change events) defined by a SELECT: one SELECT (CTEs, joins, subqueries,
    UNION) that reads named tables and calls only pure scalar, aggregate and window functions;
    used as a subquery.

    >>> parse_source_select("SELECT * FROM s WHERE lower(d) = 'x'", "m").sql()
    "SELECT * FROM s WHERE LOWER(d) = 'x'"
    >>> parse_source_select("SELECT read_text('/proc/self/environ') AS d FROM s", "m")
    Traceback (most recent call last):
    warehouse_rca.errors.ConfigError: m: function READ_TEXT() is not allowed: 'sql' may call pure \
scalar, aggregate and window functions only (README, Security)
    """
    tree = _parse_one(text, where, what="'sql' must be a single SELECT statement")
    if not isinstance(tree, (exp.Select, exp.SetOperation, exp.Subquery)):
        kind = tree.name if isinstance(tree, exp.Command) else tree.key
        raise ConfigError(f"{where}: 'sql' must be a single SELECT statement, not "
                          f"{str(kind).upper() or type(tree).__name__}")
    for node in tree.walk():
        reason = _source_refusal(node)
        if reason is not None:
            raise ConfigError(f"{where}: {reason}")
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
    # The parsed trees are this call's own: generated without sqlglot's defensive deep copy (a
    # third of the rendering time of a cube query).
    statements = [portable(s, dialect).sql(dialect=dialect, pretty=True, copy=False,
                                           unsupported_level=ErrorLevel.RAISE)
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
