"""Per-account rate limits: a token bucket per publishing broker account.

Every agency's envelopes share one inbound queue, so an account that publishes faster than
the router can check would delay everyone behind it. Each account (the AMQP ``user_id``,
which the broker checks against the login) may publish ``burst`` envelopes at once and
``rate`` per second after that; over it, the router refuses the envelope (``rate_limited``)
before parsing anything, so the excess costs a dictionary lookup, not a parse or an RSA
verification. Why refusing rather than holding: ``docs/security.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AccountRateLimits", "RateLimit"]

MonotonicClock = Callable[[], float]  # seconds; only differences matter


class RateLimit(BaseModel):
    """How fast one broker account may publish envelopes (``rate_limit`` in the router's
    settings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_second: float = Field(
        default=20.0, gt=0, description="Envelopes per second an account may keep publishing"
    )
    burst: int = Field(
        default=3000,
        ge=1,
        description="Envelopes an account may publish at once, over its rate (a province's "
        "batch of a few hundred documents, or the 01 statuses a hub sends for one)",
    )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class AccountRateLimits:
    """One token bucket per account: ``allow(account)`` takes a token if there is one.
    Buckets exist only for accounts that published (broker users: a bounded set)."""

    def __init__(self, limit: RateLimit, *, clock: MonotonicClock = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def limit(self) -> RateLimit:
        return self._limit

    def allow(self, account: str) -> bool:
        now = self._clock()
        bucket = self._buckets.get(account)
        if bucket is None:
            bucket = self._buckets[account] = _Bucket(float(self._limit.burst), now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(
            float(self._limit.burst), bucket.tokens + elapsed * self._limit.per_second
        )
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True
