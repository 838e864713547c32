"""Prometheus metrics of the pipeline, on a registry of their own (`REGISTRY`).

The web host serves them with `prometheus_client.generate_latest(REGISTRY)`. The queue depth
is read from the database when scraped, so it counts the work of every process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOK_RECEIVED = Counter(
    "whatsapp_webhook_received",
    "Webhook bodies stored, by provider",
    ["provider"],
    registry=REGISTRY,
)
MESSAGES_DUPLICATE = Counter(
    "whatsapp_messages_duplicate",
    "Inbound messages delivered again (same wamid) and not processed again",
    registry=REGISTRY,
)
MESSAGES_PROCESSED = Counter(
    "whatsapp_messages_processed",
    "Inbound messages answered: every reply accepted by the provider",
    registry=REGISTRY,
)
MESSAGES_FAILED = Counter(
    "whatsapp_messages_failed",
    "Failed attempts at a message (backend or send), retried or not",
    registry=REGISTRY,
)
SENDS_RETRIED = Counter(
    "whatsapp_sends_retried",
    "Sends that failed with a retryable error and were scheduled again",
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "whatsapp_dead_letters",
    "Messages given up on and kept as dead letters",
    registry=REGISTRY,
)
SEND_LATENCY = Histogram(
    "whatsapp_send_latency_seconds",
    "Time of one send to the provider, its pacing wait included",
    registry=REGISTRY,
)
PACING_WAIT = Histogram(
    "whatsapp_pacing_wait_seconds",
    "Time a send waited for its number's turn (SEND_RATE / SEND_BURST, 130429 pauses)",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
THROTTLED = Counter(
    "whatsapp_sends_throttled",
    "Sends Meta refused for pace: 130429 (the number's throughput) or 131056 (one contact)",
    ["code"],
    registry=REGISTRY,
)
BACKEND_LATENCY = Histogram(
    "whatsapp_backend_latency_seconds",
    "Time of one backend call",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "whatsapp_queue_depth",
    "Inbound messages waiting or being worked (all processes)",
    registry=REGISTRY,
)


@functools.lru_cache(maxsize=64)
def webhook_received(provider: str) -> Counter:
    """WEBHOOK_RECEIVED for `provider`; `labels()` is too slow to call on every webhook."""
    return WEBHOOK_RECEIVED.labels(provider=provider)


def track_queue_depth(read: Callable[[], float]) -> None:
    """Make the gauge read `read()` at each scrape (the latest gateway wins)."""
    QUEUE_DEPTH.set_function(read)
