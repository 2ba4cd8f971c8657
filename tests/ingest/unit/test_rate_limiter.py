"""The webhook rate limiter's token bucket, on a clock the test moves."""

from __future__ import annotations

import pytest

from salesops_common.http import ApiError
from salesops_ingest.entrypoints.webhooks import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def passes(limiter: RateLimiter, source: str) -> bool:
    try:
        limiter.check(source)
    except ApiError as exc:
        if exc.status != 429:
            raise
        return False
    return True


def test_a_burst_of_one_seconds_worth_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter({"pipedrive": 3.0}, clock=clock)
    assert [passes(limiter, "pipedrive") for _ in range(5)] == [True, True, True, False, False]
    clock.now += 1 / 3  # one token back
    assert [passes(limiter, "pipedrive") for _ in range(2)] == [True, False]
    clock.now += 10  # never more than the burst
    assert [passes(limiter, "pipedrive") for _ in range(4)] == [True, True, True, False]


def test_a_rate_under_one_per_second_still_lets_one_through() -> None:
    clock = Clock()
    limiter = RateLimiter({"hubspot": 0.5}, clock=clock)
    assert [passes(limiter, "hubspot") for _ in range(2)] == [True, False]
    clock.now += 2.0
    assert passes(limiter, "hubspot")


def test_retry_after_says_when_a_token_is_back() -> None:
    limiter = RateLimiter({"pipedrive": 0.1}, clock=Clock())
    assert passes(limiter, "pipedrive")
    with pytest.raises(ApiError) as refused:
        limiter.check("pipedrive")
    assert refused.value.headers == {"Retry-After": "10"}


def test_sources_have_their_own_buckets_and_zero_means_no_limit() -> None:
    limiter = RateLimiter({"pipedrive": 1.0, "*": 0.0}, clock=Clock())
    assert passes(limiter, "pipedrive")
    assert not passes(limiter, "pipedrive")
    assert all(passes(limiter, "salesforce") for _ in range(100))
