"""Plain-language sentences for findings, from Jinja templates, with numbers formatted for people.

>>> fmt_value(0.0345, "percent")
'3.45%'
>>> fmt_value(1234567.8, "currency")
'$1.23M'
>>> fmt_relative(-0.1123)
'-11%'
"""

from __future__ import annotations

import math
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True)


def _compact(x: float, prefix: str = "") -> str:
    a = abs(x)
    sign = "-" if x < 0 else ""
    for limit, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "K")):
        if a >= limit:
            return f"{sign}{prefix}{a / unit:.2f}{suffix}"
    return f"{sign}{prefix}{a:,.2f}" if a < 100 else f"{sign}{prefix}{a:,.0f}"


def fmt_value(x: float | None, kind: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if kind == "percent":
        digits = 2 if abs(x) < 0.1 else 1
        return f"{x * 100:.{digits}f}%"
    if kind == "currency":
        return _compact(x, "$")
    return _compact(x)


def fmt_relative(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x * 100:+.0f}%" if abs(x) >= 0.01 else f"{x * 100:+.1f}%"


def fmt_points(x: float, kind: str) -> str:
    """A change of a percentage expressed in points, e.g. -0.4 pp."""
    if kind == "percent":
        return f"{x * 100:+.2f} pp"
    return ("+" if x >= 0 else "") + fmt_value(x, kind)


def segment_label(segment: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in segment.items()) or "all rows"


_CAUSE = _ENV.from_string(
    "{{ label }}: {{ metric }} {{ verb }} from {{ base }} to {{ cur }}"
    "{% if effect == 'mix' %}, but what moved is its share of {{ volume }} ({{ base_share }} -> {{ cur_share }}); "
    "a mix shift{% elif effect == 'both' %} while its share of {{ volume }} went {{ base_share }} -> {{ cur_share }}; "
    "a rate and mix change{% elif effect == 'rate' %}; a rate change{% endif %}"
    " explaining {{ share }} of the {{ direction }} (confidence {{ confidence }})."
)

_HEADLINE = _ENV.from_string(
    "{{ metric }} {{ verb }} from {{ base }} to {{ cur }} ({{ rel }})."
    "{% if top %} {{ top_share }} of the {{ direction }}: {{ top_label }}, whose {{ metric_lower }} "
    "{{ top_verb }} from {{ top_base }} to {{ top_cur }} (confidence {{ top_conf }})."
    "{% if more %} {{ more }} more cause(s) below.{% endif %}{% else %} {{ message }}{% endif %}"
)


def _verb(delta: float) -> str:
    return "rose" if delta > 0 else "fell" if delta < 0 else "held"


def cause_sentence(cause: dict[str, Any], metric: str, value_format: str, total_change: float,
                   volume: str) -> str:
    return _CAUSE.render(
        label=cause["segment_label"],
        metric=metric.lower(),
        verb=_verb(cause["change"]),
        base=fmt_value(cause["baseline_value"], value_format),
        cur=fmt_value(cause["current_value"], value_format),
        effect=cause["effect"],
        volume=volume,
        base_share=fmt_value(cause.get("baseline_share"), "percent"),
        cur_share=fmt_value(cause.get("current_share"), "percent"),
        share=f"{abs(cause['share_of_change']):.0%}",
        direction="increase" if total_change > 0 else "drop",
        confidence=f"{cause['confidence']:.2f}",
    )


def headline(doc: dict[str, Any], metric: str, value_format: str, message: str) -> str:
    causes = doc["root_causes"]
    top = causes[0] if causes else None
    return _HEADLINE.render(
        metric=metric,
        metric_lower=metric.lower(),
        verb=_verb(doc["change"]),
        base=fmt_value(doc["baseline_value"], value_format),
        cur=fmt_value(doc["current_value"], value_format),
        rel=fmt_relative(doc["relative_change"]),
        top=top is not None,
        top_share=f"{abs(top['share_of_change']):.0%}" if top else "",
        direction="increase" if doc["change"] > 0 else "drop",
        top_label=top["segment_label"] if top else "",
        top_verb=_verb(top["change"]) if top else "",
        top_base=fmt_value(top["baseline_value"], value_format) if top else "",
        top_cur=fmt_value(top["current_value"], value_format) if top else "",
        top_conf=f"{top['confidence']:.2f}" if top else "",
        more=len(causes) - 1 if causes else 0,
        message=message,
    )
