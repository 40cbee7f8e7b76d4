"""A numeric dimension as the investigation reads it: the predicate of its thresholds.

localize.thresholds chooses the thresholds; from then on the dimension is the derived dimension
``split_expression`` builds, its values the labels ``labels_for`` gives, and a segment holding
one of them is filtered by the comparison itself (:func:`threshold_condition`), so the
verification SQL a finding carries reads ``employees >= 500``.
"""

from __future__ import annotations

from sqlglot import exp

from warehouse_rca import sql


def number_text(value: float) -> str:
    """A threshold as people write it: ``500``, ``0.15``, ``1200000``.

    >>> number_text(500.0), number_text(0.15), number_text(-2.5e-7)
    ('500', '0.15', '-2.5e-07')
    """
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"


def labels_for(thresholds: tuple[float, ...]) -> tuple[str, ...]:
    """The values a split's predicate takes, in order.

    >>> labels_for((500.0,)), labels_for((20.0, 100.0))
    (('< 500', '>= 500'), ('< 20', 'in [20, 100)', '>= 100'))
    """
    t = [number_text(x) for x in thresholds]
    if len(t) == 1:
        return (f"< {t[0]}", f">= {t[0]}")
    return (f"< {t[0]}", f"in [{t[0]}, {t[1]})", f">= {t[1]}")


def split_expression(value: exp.Expr, thresholds: tuple[float, ...]) -> exp.Expr:
    """``CASE WHEN x < t1 THEN '< t1' [WHEN x < t2 THEN 'in [t1, t2)'] WHEN x >= tn THEN
    '>= tn' END``: NULL stays NULL (the '(null)' segment)."""
    labels = labels_for(thresholds)
    ifs = [exp.If(this=exp.LT(this=value.copy(), expression=sql.literal(t)),
                  true=sql.literal(label)) for t, label in zip(thresholds, labels, strict=False)]
    ifs.append(exp.If(this=exp.GTE(this=value.copy(), expression=sql.literal(thresholds[-1])),
                      true=sql.literal(labels[-1])))
    return exp.Case(ifs=ifs)


def threshold_condition(case: exp.Expr, thresholds: tuple[float, ...],
                        label: str) -> exp.Expr | None:
    """The comparison a value of :func:`split_expression` stands for (None: not one of its
    labels, e.g. '(null)')."""
    labels = labels_for(thresholds)
    if label not in labels or not isinstance(case, exp.Case):
        return None
    value = case.args["ifs"][0].this.this
    at = labels.index(label)
    lower = (exp.GTE(this=value.copy(), expression=sql.literal(thresholds[at - 1]))
             if at > 0 else None)
    upper = (exp.LT(this=value.copy(), expression=sql.literal(thresholds[at]))
             if at < len(thresholds) else None)
    return sql.and_all([c for c in (lower, upper) if c is not None])
