"""The report's charts (matplotlib, inline SVG): the series with both periods, the waterfall
of contributions, and the segments' baseline and current values."""

from __future__ import annotations

import base64
import io
import textwrap
from datetime import timedelta
from typing import Any

import pandas as pd

from warehouse_rca import narrative
from warehouse_rca.spec.periods import Period

# --------------------------------------------------------------------------- charts


def _svg_uri(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue().encode()).decode()


def _new_figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "warehouse-rca"  # stable ids: same data, same file
    # Text from data (segment values, metric names) is text: a "$" never starts mathtext, which
    # would fail on "price = $5" or render "$x^2$" as a formula.
    matplotlib.rcParams["text.parse_math"] = False
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y" if width > height else "x", alpha=0.3)
    return fig, ax


def _formatter(fmt: str) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: narrative.fmt_value(v, fmt))


BLUE, ORANGE, RED, GREEN, GREY = "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#7f7f7f"


def series_chart(series: pd.DataFrame, run: dict[str, Any], fmt: str, title: str) -> str:
    """The metric's series with the baseline and current periods shaded and their values drawn."""
    fig, ax = _new_figure(10, 3.4)
    ax.plot(
        series["bucket"], series["value"], color="#333333", lw=1.6, marker="o", ms=2.5, label=title
    )
    if "expected" in series:
        ax.plot(series["bucket"], series["expected"], color=GREY, lw=1.2, ls="--",
                label="forecast (expected)")
    periods = _periods_of(run)
    for side, colour, value_key in (
        ("baseline", BLUE, "baseline_value"), ("current", ORANGE, "current_value")
    ):
        p = periods[side]
        if p is None:
            continue
        ax.axvspan(p.start, p.end_exclusive, color=colour, alpha=0.13, label=f"{side} {p.text}")
        value = run.get(value_key)
        if value is not None and fmt != "currency" and run.get("metric_kind") == "ratio":
            # A ratio's period value is comparable to its points; totals of additive metrics are
            # not.
            ax.hlines(value, p.start, p.end_exclusive, colors=colour, lw=2.2,
                      label=f"{side} value {narrative.fmt_value(value, fmt)}")
    ax.yaxis.set_major_formatter(_formatter(fmt))
    # beside the plot, never over the series
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.autofmt_xdate()
    return _svg_uri(fig)


def _short(text: str, n: int = 42) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _wrapped(text: str, width: int = 40) -> str:
    """A segment label in full, over as many lines as it needs (never cut off)."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def _harm_colour(delta: float, higher_is_better: bool | None) -> str:
    """Red for a harmful move, green for a helpful one, whatever its sign; grey when the metric
    has no good direction."""
    if higher_is_better is None or delta == 0:
        return GREY
    return GREEN if (delta > 0) == higher_is_better else RED


def waterfall_chart(run: dict[str, Any], causes: list[dict[str, Any]], fmt: str,
                    higher_is_better: bool | None = True) -> str:
    """Baseline -> each cause's contribution -> the rest -> current, as horizontal steps."""
    base, cur = run.get("baseline_value") or 0.0, run.get("current_value") or 0.0
    steps = [
        (f"#{c['rank']} {_wrapped(c['segment_label'])}", c.get("contribution") or 0.0)
        for c in causes
    ]
    rest = (cur - base) - sum(v for _, v in steps)
    steps.append(("everything else", rest))
    labels = ["baseline"] + [s for s, _ in steps] + ["current"]
    running, lefts, widths, colours = base, [], [], []
    totals = [base, cur]
    for _, value in steps:
        lefts.append(min(running, running + value))
        widths.append(abs(value))
        colours.append(_harm_colour(value, higher_is_better))
        running += value
        totals.append(running)
    lo, hi = min(totals), max(totals)
    pad = (hi - lo) * 0.6 or abs(hi) * 0.1 or 1.0
    axis_lo = lo - pad if (lo - pad) > 0 or lo < 0 else 0.0
    fig, ax = _new_figure(10, 0.45 * len(labels) + 1.2)
    y = list(range(len(labels)))[::-1]
    ax.barh(y[0], base - axis_lo, left=axis_lo, color=BLUE)
    ax.barh(y[1:-1], widths, left=lefts, color=colours)
    ax.barh(y[-1], cur - axis_lo, left=axis_lo, color=ORANGE)
    for yy, (_, value), left, width in zip(y[1:-1], steps, lefts, widths):
        ax.text(left + width, yy, "  " + narrative.fmt_points(value, fmt), va="center", fontsize=8)
    ax.text(base, y[0], "  " + narrative.fmt_value(base, fmt), va="center", fontsize=8)
    ax.text(cur, y[-1], "  " + narrative.fmt_value(cur, fmt), va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(axis_lo, hi + pad * 0.6)
    ax.xaxis.set_major_formatter(_formatter(fmt))
    return _svg_uri(fig)


def segments_chart(run: dict[str, Any], causes: list[dict[str, Any]], fmt: str,
                   higher_is_better: bool | None = True) -> str:
    """Each finding's segment before and after (dumbbells), against the metric overall; a segment
    with no baseline (new) or no current rows (gone) is its one dot, labelled so."""
    fig, ax = _new_figure(10, 0.6 * len(causes) + 1.4)
    y = list(range(len(causes)))[::-1]
    for yy, c in zip(y, causes):
        b, a = c.get("baseline_value"), c.get("current_value")
        if b is None and a is not None:
            ax.plot([a], [yy], "o", color=ORANGE, ms=6)
            ax.annotate("  new in the current period", (a, yy), va="center", fontsize=8)
            continue
        if a is None and b is not None:
            ax.plot([b], [yy], "o", color=BLUE, ms=6)
            ax.annotate("  gone from the current period", (b, yy), va="center", fontsize=8)
            continue
        if b is None or a is None:
            continue
        ax.annotate("", xy=(a, yy), xytext=(b, yy),
                    arrowprops={"arrowstyle": "->", "color": _harm_colour(a - b, higher_is_better),
                                "lw": 1.8})
        ax.plot([b], [yy], "o", color=BLUE, ms=6)
        ax.plot([a], [yy], "o", color=ORANGE, ms=6)
    if run.get("metric_kind") == "ratio":
        for key, colour in (("baseline_value", BLUE), ("current_value", ORANGE)):
            if run.get(key) is not None:
                ax.axvline(
                    run[key], color=colour, ls=":", lw=1.2,
                    label=f"overall {key.split('_')[0]} {narrative.fmt_value(run[key], fmt)}",
                )
    ax.plot([], [], "o", color=BLUE, label="segment baseline")
    ax.plot([], [], "o", color=ORANGE, label="segment current")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / max(1, len(causes))), ncol=4,
              fontsize=8, frameon=False)
    ax.set_yticks(y, [f"#{c['rank']} {_wrapped(c['segment_label'])}" for c in causes], fontsize=8)
    ax.set_ylim(-0.7, len(causes) - 0.3)
    ax.xaxis.set_major_formatter(_formatter(fmt))
    return _svg_uri(fig)


def driver_chart(driver: dict[str, Any], fmt: str, segment_label: str) -> str | None:
    """A driver inside a cause's segment: its distribution in the baseline and the current
    period (bars, share of the segment's volume per bin) and the metric's baseline response to
    it (the fitted curve the explained share uses, and the observed bins' values as dots)."""
    bins = [b for b in driver.get("bins") or [] if b.get("mean") is not None]
    if len(bins) < 2:
        return None
    fig, ax = _new_figure(10, 3.2)
    x = list(range(len(bins)))
    width = 0.4
    ax.bar([i - width / 2 for i in x], [b["baseline_share"] or 0 for b in bins], width,
           color=BLUE, alpha=0.75, label="baseline: share of the segment")
    ax.bar([i + width / 2 for i in x], [b["current_share"] or 0 for b in bins], width,
           color=ORANGE, alpha=0.75, label="current: share of the segment")
    ax.set_xticks(x, [narrative.fmt_number(b["mean"]) for b in bins], fontsize=7, rotation=45)
    ax.set_xlabel(f"{driver['driver']} (bin mean)", fontsize=8)
    ax.yaxis.set_major_formatter(_formatter("percent"))
    ax.set_ylabel("share of the segment", fontsize=8)
    curve = ax.twinx()
    curve.spines[["top"]].set_visible(False)
    curve.plot(x, [b["fitted_value"] for b in bins], color="#333333", lw=1.6,
               label="baseline response (fitted)")
    # a bin the baseline hardly visited has no observed response worth a dot
    observed = [(i, b["baseline_value"]) for i, b in zip(x, bins)
                if b["baseline_value"] is not None and (b["baseline_share"] or 0) >= 0.005]
    if observed:
        curve.plot([i for i, _ in observed], [v for _, v in observed], "o", color="#333333", ms=3,
                   label="baseline response (observed)")
    curve.yaxis.set_major_formatter(_formatter(fmt))
    curve.set_ylabel("metric (baseline response)", fontsize=8)
    handles = ax.get_legend_handles_labels()
    more = curve.get_legend_handles_labels()
    # below the plot, never over the bars
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper center",
              bbox_to_anchor=(0.5, -0.32), ncol=2, fontsize=8, frameon=False)
    ax.set_title(_short(f"{driver['driver']} inside {segment_label}", 90), fontsize=9)
    return _svg_uri(fig)


def _periods_of(run: dict[str, Any]) -> dict[str, Period | None]:
    def period(side: str) -> Period | None:
        start, end = run.get(f"{side}_start"), run.get(f"{side}_end")
        if start is None or end is None:
            return None
        return Period(start, end, f"{start:%Y-%m-%d}..{end - timedelta(microseconds=1):%Y-%m-%d}")

    return {"baseline": period("baseline"), "current": period("current")}
