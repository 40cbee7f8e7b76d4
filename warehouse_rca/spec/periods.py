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
        try:
            end_exclusive = (end + timedelta(days=1) if end_is_date
                             else end + timedelta(microseconds=1))
        except OverflowError:
            raise ConfigError(f"{option} {text!r} ends too late to represent") from None
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


#: The only spellings of a bound: a date, or a date and a time (seconds, fractions and a UTC offset
#: optional). Python's fromisoformat also reads 20261110 (as a date) and 2026-11-10T01 (an hour);
#: a period should not mean something other than what its author wrote.
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$"
)


def _parse_instant(value: str, option: str, text: str) -> tuple[datetime, bool]:
    value = value.strip()
    problem = (f"{option} {text!r}: {value!r} is not a date (YYYY-MM-DD) or timestamp "
               "(YYYY-MM-DD HH:MM[:SS])")
    if not (_DATE.match(value) or _TIMESTAMP.match(value)):
        raise ConfigError(problem)
    try:
        if _DATE.match(value):
            day = date.fromisoformat(value)
            if day == date.max:
                raise ConfigError(f"{option} {text!r}: {value!r} is the last representable day; "
                                  "end the period earlier")
            return datetime.combine(day, datetime.min.time()), True
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(problem) from None
    if parsed.tzinfo is not None:
        # Compare in UTC, as naive timestamps: warehouses disagree on zone-aware literals.
        # (astimezone(None) would convert to the machine's local zone, not UTC.)
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed, False
