"""When to try a failed job again: exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential cap) spreads the retries of many
jobs that failed together (Graph throttling everyone at once) instead of synchronising them.
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base: float,
    maximum: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt `attempt + 1`, after `attempt` (1-based) failed.

    A provider's `Retry-After` is a floor (capped at `maximum`, so a wild value cannot park
    a contact's conversation for a day).
    """
    cap = min(maximum, base * 2 ** max(0, attempt - 1))
    delay = (rng or random).uniform(0.0, cap)
    if retry_after is not None:
        delay = max(delay, min(retry_after, maximum))
    return delay
