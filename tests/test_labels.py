"""Segment labels (issue 19): NULL reads '(null)', the folded tail '(other)', and no real value
reads like either. sql.value_label is the Python statement of _label.sql.j2's rule; both must
agree, be one-to-one, and invert through sql.label_value."""

from __future__ import annotations

import itertools

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse_rca import sql

#: strings built from the pieces that matter: parentheses around the reserved words
values = st.lists(st.sampled_from(["(", ")", "null", "other", "x", " "]), max_size=7).map("".join)


@given(st.lists(st.one_of(st.none(), values), min_size=1, max_size=30, unique=True))
@settings(max_examples=200, deadline=None)
def test_labels_are_one_to_one_and_invert(raw: list[str | None]) -> None:
    labels = [sql.value_label(v) for v in raw]
    assert len(set(labels)) == len(raw)
    assert sql.OTHER_LABEL not in labels
    assert [sql.label_value(label) for label in labels] == raw


def test_the_sql_rule_is_the_python_rule() -> None:
    pieces = ["(", ")", "null", "other", "x"]
    words = itertools.chain.from_iterable(itertools.product(pieces, repeat=n) for n in range(5))
    raw: list[str | None] = [*sorted({"".join(w) for w in words}), None]
    con = duckdb.connect()
    con.execute("CREATE TABLE v (d0 VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [(r,) for r in raw])
    env = sql._environment()
    label = env.from_string('{% import "_label.sql.j2" as labels %}{{ labels.label("d0") }}').render()
    got = dict(con.execute(f"SELECT d0, {label} FROM v").fetchall())
    assert got == {r: sql.value_label(r) for r in raw}
    assert sql.label_value("(null)") is None and sql.value_label("(null)") == "((null))"

