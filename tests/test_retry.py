"""Backoff and the classification of provider errors (DESIGN.md §10)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whatsapp_api_integration.pipeline.retry import backoff_delay
from whatsapp_api_integration.providers.errors import classify


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=64),
    base=st.floats(min_value=0.001, max_value=10),
    maximum=st.floats(min_value=0.01, max_value=600),
    retry_after=st.none() | st.floats(min_value=0, max_value=10_000),
)
def test_the_delay_stays_within_its_bounds(
    attempt: int, base: float, maximum: float, retry_after: float | None
) -> None:
    delay = backoff_delay(attempt, base=base, maximum=maximum, retry_after=retry_after)
    assert 0 <= delay <= maximum
    if retry_after is not None:
        assert delay >= min(retry_after, maximum)


def test_full_jitter_spreads_delays_up_to_the_exponential_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(4, base=1.0, maximum=300.0, rng=rng) for _ in range(2000)]
    assert max(delays) <= 8.0
    assert max(delays) > 7.5
    assert min(delays) < 0.5


@pytest.mark.parametrize("code", [1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057, 133004])
def test_temporary_and_throttling_codes_are_retryable(code: int) -> None:
    assert classify(code, 400)


@pytest.mark.parametrize(
    "code",
    [
        *(0, 3, 10, 100, 190, 131005, 131008, 131009, 131021, 131026, 131042, 131045, 131047),
        *(131048, 131049, 131050, 131051, 131053, 131062, 132000, 132001, 132015, 133010, 368),
    ],
)
def test_payload_permission_and_policy_codes_are_final_even_on_a_5xx(code: int) -> None:
    assert not classify(code, 500)


@pytest.mark.parametrize(
    ("status", "retryable"), [(None, True), (429, True), (500, True), (502, True), (400, False)]
)
def test_without_a_known_code_the_http_status_decides(status: int | None, retryable: bool) -> None:
    assert classify(None, status) is retryable
    assert classify(999_999, status) is retryable
