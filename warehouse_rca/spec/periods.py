"""Periods: the baseline and current windows an investigation compares, and the time grains."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from warehouse_rca.errors import ConfigError

#: The length of one bucket of each metric grain (monitor series, report charts).
GRAIN_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}

GRAINS = ("hour", "day", "week")


# --------------------------------------------------------------------------- periods

_DATE_START = re.compile(r":(?=\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Period:
    """An inclusive range of dates or timestamps, held as ``[start, end_exclusive)``."""

    start: datetime
    end_exclusive: datetime
    text: str

    @classmethod
    def parse(cls, text: str, *, option: str = "period") -> Period:
        """Parse ``START:END``; a date END includes that whole day, a timestamp END is inclusive."""
        text = text.strip()
        # Timestamps contain colons too: split where the second date starts, or at a lone colon.
        parts = text.split(":") if text.count(":") == 1 else _DATE_START.split(text)
        if len(parts) != 2:
            raise ConfigError(
                f"{option} {text!r} is not a range: expected START:END, e.g. 2026-11-10:2026-11-16"
            )
        start, _ = _parse_instant(parts[0], option, text)
        end, end_is_date = _parse_instant(parts[1], option, text)
        end_exclusive = end + timedelta(days=1) if end_is_date else end + timedelta(microseconds=1)
        if end_exclusive <= start:
            raise ConfigError(f"{option} {text!r} ends before it starts")
        return cls(start=start, end_exclusive=end_exclusive, text=text.strip())

    @property
    def seconds(self) -> float:
        return (self.end_exclusive - self.start).total_seconds()

    def overlaps(self, other: Period) -> bool:
        return self.start < other.end_exclusive and other.start < self.end_exclusive

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end_exclusive": self.end_exclusive.isoformat()}


def _parse_instant(value: str, option: str, text: str) -> tuple[datetime, bool]:
    value = value.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time()), True
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: {value!r} is not a date (YYYY-MM-DD) or timestamp "
            "(YYYY-MM-DD HH:MM[:SS])"
        ) from None
    if parsed.tzinfo is not None:
        # Compare in UTC, as naive timestamps: warehouses disagree on zone-aware literals.
        # (astimezone(None) would convert to the machine's local zone, not UTC.)
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed, False
