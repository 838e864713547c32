"""The fault test (issue 7) in its reduced size; bench/fault_test.py runs it at full size.

Two web and two worker processes on PostgreSQL, workers SIGKILLed and restarted every few
seconds, duplicated and reordered deliveries, the bot down for a stretch, Graph failing at
random: no reply may be lost, sent twice (beyond the documented window) or out of order.
What each count means: tests/fault_harness.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fault_harness import Accepted, Expected, FaultConfig, count_replies, run_fault_test

# FAULT_TEST_MESSAGES / FAULT_TEST_CONTACTS make the CI size bigger without editing the test.
MESSAGES = int(os.environ.get("FAULT_TEST_MESSAGES", "600"))
CONTACTS = int(os.environ.get("FAULT_TEST_CONTACTS", "60"))


@pytest.fixture(name="database_url")
def database_url_fixture() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1/test)")
    return url


@pytest.mark.timeout(900)
def test_nothing_lost_twice_or_out_of_order_under_faults(database_url: str, tmp_path: Path) -> None:
    config = FaultConfig(messages=MESSAGES, contacts=CONTACTS)
    report = run_fault_test(database_url, config, tmp_path)
    print(report.table())
    logs = "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in sorted(tmp_path.glob("*.log")))
    summary = f"{report.table()}\nexamples: {report.examples}\nlogs (tails):\n{logs}"
    # The faults really happened, or the zeros below would prove nothing.
    assert report.worker_kills >= 2, summary
    assert sum(report.graph_errors.values()) > 0, summary
    assert report.redeliveries > 0, summary
    # The window check reads the workers' "sent reply" lines: they must be there to read.
    assert report.sends_logged >= 0.9 * report.graph_accepted, summary
    assert report.drained, summary
    # Never worked twice while its first worker lives (DESIGN §10, the lease).
    assert report.jobs_taken_from_live_workers == 0, summary
    counts = (report.lost, report.duplicated, report.out_of_order, report.misrouted)
    assert counts == (0, 0, 0, 0), summary
    assert report.unexpected_replies == 0, summary


# ---- the counting itself: each count goes up when its fault is there ----------------------

# Contact A wrote a0, then a1 (bodies in that order); B wrote b0, b1 but b1's body came first.
EXPECTED = {
    "5561900000001": [Expected("resposta a0", 0, 0), Expected("resposta a1", 1, 1)],
    "5561900000002": [Expected("resposta b1", 0, 1), Expected("resposta b0", 1, 0)],
}


def accepted(*items: tuple[str, str, str, float, str]) -> list[Accepted]:
    return [Accepted(seq, *item) for seq, item in enumerate(items)]


A, B = "5561900000001", "5561900000002"


def test_counts_are_zero_for_every_reply_once_in_order() -> None:
    sends = accepted(
        (A, "resposta a0", "w1", 1.0, "worker-0.1"),
        (B, "resposta b1", "w2", 1.1, "worker-0.1"),
        (A, "resposta a1", "w3", 1.2, "worker-1.1"),
        (B, "resposta b0", "w5", 1.3, "worker-1.1"),
    )
    counts = count_replies(EXPECTED, sends, {"w1", "w2", "w3", "w5"}, set(), {})
    assert (counts["lost"], counts["duplicated"], counts["out_of_order"]) == (0, 0, 0)


def test_a_pair_delivered_out_of_order_may_be_answered_either_way() -> None:
    for b_first, b_second in (("resposta b0", "resposta b1"), ("resposta b1", "resposta b0")):
        sends = accepted(
            (A, "resposta a0", "w1", 1.0, "worker-0.1"),
            (B, b_first, "w2", 1.1, "worker-0.1"),
            (A, "resposta a1", "w3", 1.2, "worker-1.1"),
            (B, b_second, "w5", 1.3, "worker-1.1"),
        )
        assert (
            count_replies(EXPECTED, sends, {"w1", "w2", "w3", "w5"}, set(), {})["out_of_order"] == 0
        )


def test_a_missing_reply_is_lost_and_a_swapped_one_out_of_order() -> None:
    sends = accepted(
        (A, "resposta a1", "w1", 1.0, "worker-0.1"), (A, "resposta a0", "w2", 1.1, "worker-0.1")
    )
    counts = count_replies(EXPECTED, sends, {"w1", "w2"}, set(), {})
    assert counts["lost"] == 2  # b0, b1
    assert counts["out_of_order"] == 1  # a1 before a0, which came first and was written first


def test_a_second_copy_is_a_duplicate_unless_its_sender_died_before_writing_it() -> None:
    twice = accepted(
        (B, "resposta b0", "w9", 0.5, "worker-1.1"),
        (B, "resposta b1", "w8", 0.6, "worker-1.1"),
        (A, "resposta a0", "w1", 1.0, "worker-0.1"),
        (A, "resposta a0", "w2", 2.0, "worker-1.1"),
        (A, "resposta a1", "w4", 3.0, "worker-1.1"),
    )
    recorded = {"w2", "w9", "w8", "w4"}
    # w1 was never written down and worker-0.1, which sent it, was killed after: the window.
    window = count_replies(EXPECTED, twice, recorded, set(), {"worker-0.1": 1.4})
    assert (window["duplicated"], window["duplicated_in_window"]) == (0, 1)
    # ... also when it was killed just before: its request was already on its way.
    before = count_replies(EXPECTED, twice, recorded, set(), {"worker-0.1": 0.7})
    assert (before["duplicated"], before["duplicated_in_window"]) == (0, 1)
    # Its sender lived on, died long before or after, or wrote it down: a duplicate.
    assert count_replies(EXPECTED, twice, recorded, set(), {})["duplicated"] == 1
    assert count_replies(EXPECTED, twice, recorded, set(), {"worker-0.1": -60.0})["duplicated"] == 1
    assert count_replies(EXPECTED, twice, recorded, set(), {"worker-0.1": 60.0})["duplicated"] == 1
    assert count_replies(EXPECTED, twice, recorded, set(), {"worker-1.1": 1.4})["duplicated"] == 1
    logged = count_replies(EXPECTED, twice, recorded, {"w1"}, {"worker-0.1": 1.4})
    assert logged["duplicated"] == 1
    stored = count_replies(EXPECTED, twice, recorded | {"w1"}, set(), {"worker-0.1": 1.4})
    assert stored["duplicated"] == 1


def test_a_reply_to_the_wrong_contact_is_misrouted() -> None:
    sends = accepted(
        (B, "resposta a0", "w1", 1.0, "worker-0.1"),
        (A, "resposta a1", "w2", 1.1, "worker-0.1"),
        (B, "resposta b0", "w3", 1.2, "worker-0.1"),
        (B, "resposta b1", "w5", 1.2, "worker-0.1"),
        (A, "oi", "w4", 1.3, "worker-0.1"),
    )
    counts = count_replies(EXPECTED, sends, {"w1", "w2", "w3", "w5"}, set(), {})
    assert (counts["misrouted"], counts["unexpected_replies"]) == (1, 1)
