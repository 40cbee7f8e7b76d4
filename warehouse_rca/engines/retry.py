"""Bounded retries with exponential backoff, for transient warehouse errors only.

A scheduled job should survive a dropped connection or a serialization failure, but never hammer a
warehouse that refuses a statement for a real reason (syntax, permissions, a timeout that would
only time out again). So the caller says which errors are transient, attempts are bounded, and the
delay grows exponentially with jitter so that several schedules do not retry in lockstep.

>>> calls = []
>>> def flaky():
...     calls.append(1)
...     if len(calls) < 3:
...         raise ConnectionError("dropped")
...     return "ok"
>>> retry(flaky, is_transient=lambda e: isinstance(e, ConnectionError), base_delay=0)
'ok'
>>> len(calls)
3
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("warehouse_rca.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. Read from the profile (``retries``, ``retry_delay``)."""  # noqa: E501

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter."""
        cap = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(cap / 2, cap) if cap > 0 else 0.0


def retry(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    attempts: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    before_retry: Callable[[BaseException], None] | None = None,
    what: str = "statement",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient error wait and call it again, at most ``attempts`` times in all.

    ``before_retry`` runs before each new attempt (e.g. to reconnect). The last error propagates
    unchanged, so callers keep their own error translation.
    """
    policy = RetryPolicy(max(1, attempts), base_delay, max_delay)
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as err:
            if attempt >= policy.attempts or not is_transient(err):
                raise
            wait = policy.delay(attempt)
            # The error text comes from the driver: first line only, it never holds credentials
            # (drivers name host and user, not passwords) and this keeps logs one line per retry.
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            log.warning("transient error on %s (attempt %d of %d), retrying in %.2fs: %s",
                        what, attempt, policy.attempts, wait, first)
            sleep(wait)
            if before_retry is not None:
                before_retry(err)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
