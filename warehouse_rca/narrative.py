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
    # a whole number (a count of flights) reads as one: "from 122 to 63", not "to 63.00"
    whole = a >= 100 or float(a).is_integer()
    return f"{sign}{prefix}{a:,.0f}" if whole else f"{sign}{prefix}{a:,.2f}"


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


#: How a numeric dimension's values begin (localize.thresholds.labels_for): read as predicates.
_PREDICATE_LABELS = ("< ", ">= ", "in [")


def segment_label(segment: dict[str, Any]) -> str:
    """``device = iOS, employees >= 500`` (a numeric dimension's value is its predicate)."""
    return ", ".join(f"{k} {v}" if isinstance(v, str) and v.startswith(_PREDICATE_LABELS)
                     else f"{k} = {v}" for k, v in segment.items()) or "all rows"


_CAUSE = _ENV.from_string(
    "{{ label }}"
    "{% if presence == 'new' %}, new in the current period: {{ cur_share }} of {{ volume }}"
    "{% if rest %}, {{ metric }} {{ cur }} against {{ rest }} for the rest"
    "{% else %}, {{ cur }}{% endif %}"
    "{% elif presence == 'vanished' %}, gone from the current period: "
    "it held {{ base_share }} of {{ volume }}"
    "{% if rest %} at {{ base }} against {{ rest }} for the rest{% else %}, {{ base }}{% endif %}"
    "{% else %}: {{ metric }} {{ verb }} from {{ base }} to {{ cur }}"
    "{% if effect == 'mix' %}, but what moved is its share of {{ volume }} "
    "({{ base_share }} -> {{ cur_share }}); "
    "a mix shift{% elif effect == 'both' %} while its share of {{ volume }} went "
    "{{ base_share }} -> {{ cur_share }}; "
    "a rate and mix change{% elif effect == 'rate' %}; a rate change{% endif %}{% endif %}"
    "{{ ';' if presence else '' }} {{ explaining }} {{ share }} of the {{ direction }} "
    "(confidence {{ confidence }})."
)

_HEADLINE = _ENV.from_string(
    "{{ metric }} {{ verb }} from {{ base }} to {{ cur }} ({{ rel }})."
    "{% if top %} {{ top_share }} of the {{ direction }}: {{ top_label }}"
    "{% if top_presence == 'new' %}, new in the current period{% if top_rest %}, at {{ top_cur }} "
    "against {{ top_rest }} for the rest{% endif %}"
    "{% elif top_presence == 'vanished' %}, gone from the current period"
    "{% if top_rest %} (it was at "
    "{{ top_base }} against {{ top_rest }} for the rest){% endif %}"
    "{% else %}, whose {{ metric_lower }} {{ top_verb }} from {{ top_base }} to {{ top_cur }}"
    "{% endif %}"
    "{% if top_driver %}, driven primarily by {{ top_driver }}{% endif %}"
    " (confidence {{ top_conf }})."
    "{% if more %} {{ more }} more cause(s) below.{% endif %}{% else %} {{ message }}{% endif %}"
)


def _verb(delta: float) -> str:
    return "rose" if delta > 0 else "fell" if delta < 0 else "held"


def share_phrase(share: float | None) -> tuple[str, str]:
    """("explaining", "60%") for a share in the change's direction, ("offsetting", "12%") for one
    against it: the sign of a share is never dropped."""
    if share is None or not math.isfinite(share):
        return "explaining", "n/a"
    if share > 1.05:  # the rest of the data moved the other way
        return "explaining", f"more than all ({share:.0%})"
    return ("offsetting" if share < 0 else "explaining"), f"{abs(share):.0%}"


def cause_sentence(cause: dict[str, Any], metric: str, value_format: str, total_change: float,
                   volume: str) -> str:
    explaining, share = share_phrase(cause["share_of_change"])
    rest = cause.get("rest_value")
    return _CAUSE.render(
        label=cause["segment_label"],
        presence=cause.get("presence"),
        rest=fmt_value(rest, value_format) if rest is not None else "",
        metric=metric.lower(),
        verb=_verb(cause["change"]),
        base=fmt_value(cause["baseline_value"], value_format),
        cur=fmt_value(cause["current_value"], value_format),
        effect=cause["effect"],
        volume=volume,
        base_share=fmt_value(cause.get("baseline_share"), "percent"),
        cur_share=fmt_value(cause.get("current_share"), "percent"),
        explaining=explaining,
        share=share,
        direction="increase" if total_change > 0 else "drop",
        confidence=f"{cause['confidence']:.2f}",
    )


def headline(doc: dict[str, Any], metric: str, value_format: str, message: str) -> str:
    causes = doc["root_causes"]
    # the headline leads with what explains the change, not with what offsets it
    top = next(
        (c for c in causes if (c.get("share_of_change") or 0) >= 0),
        causes[0] if causes else None,
    )
    explaining, share = share_phrase(top["share_of_change"]) if top else ("", "")
    rest = top.get("rest_value") if top else None
    return _HEADLINE.render(
        metric=metric,
        metric_lower=metric.lower(),
        verb=_verb(doc["change"]),
        base=fmt_value(doc["baseline_value"], value_format),
        cur=fmt_value(doc["current_value"], value_format),
        rel=fmt_relative(doc["relative_change"]),
        top=top is not None,
        top_share=(share[:1].upper() + share[1:] if explaining == "explaining"
                   else f"Offsetting {share}") if top else "",
        direction="increase" if doc["change"] > 0 else "drop",
        top_label=top["segment_label"] if top else "",
        top_presence=top.get("presence") if top else None,
        top_rest=fmt_value(rest, value_format) if rest is not None else "",
        top_verb=_verb(top["change"]) if top else "",
        top_base=fmt_value(top["baseline_value"], value_format) if top else "",
        top_cur=fmt_value(top["current_value"], value_format) if top else "",
        top_conf=f"{top['confidence']:.2f}" if top else "",
        top_driver=driver_phrase(lead) if top and (lead := leading_driver(top)) else "",
        more=len(causes) - 1 if causes else 0,
        message=message,
    )


# --------------------------------------------------------------------------- drivers

def fmt_number(x: float | None) -> str:
    """A driver's value: three significant digits (1.2, 4.79, 1,250)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def leading_driver(cause: dict[str, Any]) -> dict[str, Any] | None:
    """The driver that explains most of a cause (``explains``), if any."""
    explaining = [d for d in cause.get("drivers") or [] if d.get("explains")]
    return max(explaining, key=lambda d: d["explained_share"]) if explaining else None


def driver_phrase(d: dict[str, Any]) -> str:
    """"lat rising from 1.2 to 4.79" (means inside the segment)."""
    verb = "rising" if (d["current_mean"] or 0) > (d["baseline_mean"] or 0) else "falling"
    return (f"{d['driver']} {verb} from {fmt_number(d['baseline_mean'])} "
            f"to {fmt_number(d['current_mean'])}")


def driver_sentence(cause: dict[str, Any], drivers: list[dict[str, Any]], value_format: str,
                    metric: str) -> str | None:
    """What drove a cause, in one or two sentences; None when no driver says anything."""
    lead = leading_driver({"drivers": drivers})
    parts = []
    if lead is not None:
        interval = lead.get("explained_interval")
        span = (f" [{interval[0]:.0%}, {interval[1]:.0%}]" if interval and None not in interval
                else "")
        direction = "drop" if (cause.get("change") or 0) < 0 else "rise"
        parts.append(
            f"Driven primarily by {driver_phrase(lead)} on average inside the segment (elsewhere "
            f"{fmt_number(lead['outside_baseline_mean'])} -> "
            f"{fmt_number(lead['outside_current_mean'])}): under the baseline's response to "
            f"{lead['driver']}, that shift explains {lead['explained_share']:.0%}{span} of the "
            f"segment's {direction}; without it the segment's {metric.lower()} would be "
            f"{fmt_value(lead['counterfactual_value'], value_format)}, not "
            f"{fmt_value(cause.get('current_value'), value_format)}."
        )
    for d in drivers:
        z = d.get("shift_z")
        if not d["localized"] and z is not None and z >= 3:
            parts.append(
                f"{d['driver']} moved as much outside the segment as inside "
                f"({fmt_number(d['baseline_mean'])} -> "
                f"{fmt_number(d['current_mean'])} inside, {fmt_number(d['outside_baseline_mean'])}"
                f" -> {fmt_number(d['outside_current_mean'])} elsewhere): it does not explain "
                "this segment's change."
            )
    return " ".join(parts) or None


# --------------------------------------------------------------------------- evidence sentences

_METHODS = {"did": "difference-in-differences", "its": "interrupted time series"}
_CONTROLS = {"complement": "the rest of the traffic", "synthetic": "a synthetic control"}

_CAUSAL = _ENV.from_string(
    "Causal evidence: {{ verdict }}"
    "{% if method %}; {{ method }}{% if control %} against {{ control }}{% endif %}"
    "{% if estimate is not none %} estimates {{ estimate }}{% endif %}"
    "{% if p is not none %} (p = {{ p }}){% endif %}{% endif %}"
    "{% if start %}; its change started {{ start }}"
    "{% if ordering %}, {{ ordering }} the metric's{% endif %}{% endif %}"
    "{% if events %}; linked change: {{ events }}{% endif %}"
    "{% if explained_by %}; explained by {{ explained_by }}{% endif %}."
)

_SEEN = _ENV.from_string(
    "Seen before: {% for i in items %}{% if not loop.first %}; {% endif %}"
    "{% if i.verdict == 'confirmed' %}also the cause on {{ i.date }}, confirmed by {{ i.author }}"
    "{% elif i.verdict == 'rejected' %}also flagged on {{ i.date }}, rejected by {{ i.author }}"
    "{% else %}also a cause on {{ i.date }} (not reviewed){% endif %}"
    "{% if i.note %} (\"{{ i.note }}\"){% endif %}{% endfor %}"
    "{% if status == 'confirmed' %}; a confirmed pattern, ranked up{% elif status == 'rejected' %}"
    "; a rejected pattern, ranked down{% endif %}."
)


def causal_sentence(causal: dict[str, Any] | None, value_format: str = "number") -> str:
    """One sentence from a cause's causal evidence (``causal`` JSON); empty when there is
    none."""
    if not causal or not isinstance(causal, dict):
        return ""
    ordering = {"leads": "leading", "coincides": "with", "lags": "after"}.get(
        causal.get("ordering") or ""
    )
    start = causal.get("change_start")
    events = ", ".join(
        str(e.get("description") or e.get("event") or e) for e in (causal.get("events") or [])[:3]
        if isinstance(e, dict)
    )
    explained = causal.get("explained_by")
    p = causal.get("did_p_value")
    estimate = causal.get("did_estimate")
    return _CAUSAL.render(
        verdict=causal.get("verdict") or "inconclusive",
        method=_METHODS.get(causal.get("method") or "", causal.get("method")),
        control=_CONTROLS.get(causal.get("control") or "", None),
        estimate=fmt_points(estimate, value_format) if isinstance(estimate, (int, float)) else None,
        p=f"{p:.3g}" if isinstance(p, (int, float)) else None,
        start=str(start)[:10] if start else "",
        ordering=ordering if ordering and start else "",
        events=events,
        explained_by=segment_label(explained) if isinstance(explained, dict) and explained else "",
    )


def seen_before_sentence(items: list[dict[str, Any]], status: str | None) -> str:
    """"Seen before: also the cause on 2026-10-03, confirmed by alice." (empty when new)."""
    if not items:
        return ""
    shown = [
        {**i, "date": i.get("date") or "an earlier run", "author": i.get("author") or "an analyst"}
        for i in items
    ]
    return _SEEN.render(items=shown, status=status)
