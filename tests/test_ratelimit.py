"""Per-account token buckets (``backbone.router.ratelimit``), on an injected clock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backbone.router.ratelimit import AccountRateLimits, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_provinces_batch_of_a_few_hundred_passes_the_default_limit_at_once() -> None:
    clock = Clock()
    limits = AccountRateLimits(RateLimit(), clock=clock)
    assert all(limits.allow("province") for _ in range(500))
    # ...and so does the hub's wave of status 01 for them, on its own account.
    assert all(limits.allow("hub") for _ in range(500))


def test_the_burst_is_allowed_at_once_then_the_excess_until_tokens_come_back() -> None:
    clock = Clock()
    limits = AccountRateLimits(RateLimit(per_second=10, burst=3000), clock=clock)
    assert all(limits.allow("a") for _ in range(3000))
    assert not limits.allow("a")
    clock.now += 0.25  # 2.5 tokens
    assert [limits.allow("a") for _ in range(3)] == [True, True, False]
    clock.now += 3600  # never more than the burst
    assert sum(limits.allow("a") for _ in range(3100)) == 3000


def test_accounts_have_buckets_of_their_own() -> None:
    limits = AccountRateLimits(RateLimit(per_second=1, burst=2), clock=Clock())
    assert [limits.allow("a") for _ in range(3)] == [True, True, False]
    assert [limits.allow("b") for _ in range(2)] == [True, True]
    assert not limits.allow("a")


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    clock = Clock()
    limits = AccountRateLimits(RateLimit(per_second=1, burst=1), clock=clock)
    assert limits.allow("a")
    clock.now -= 100
    assert not limits.allow("a")


@pytest.mark.parametrize("fields", [{"per_second": 0}, {"burst": 0}, {"rate": 5}])
def test_a_limit_that_cannot_work_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        RateLimit.model_validate(fields)
