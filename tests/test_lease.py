"""The lease keeper warns only of leases really lost, not of jobs that finished meanwhile."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from fakes import text_body
from whatsapp_api_integration.core.inbound import parse_webhook
from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
from whatsapp_api_integration.pipeline.lease import LeaseKeeper
from whatsapp_api_integration.store import Job, Store

WARNING = "no longer ours"


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    config = GatewayConfig(database_url=f"sqlite:///{tmp_path / 'lease.db'}", workers=0)
    return Gateway(config, backend=None, senders={})  # type: ignore[arg-type]


def _claimed(gateway: Gateway) -> Job:
    body = text_body("wamid.lease", "oi")
    gateway.accept(body, {}, parse_webhook(body))
    job = gateway.store.claim("worker-a", 30)
    assert job is not None
    return job


class _FinishingDuringRenewal:
    """A store whose job finishes, and leaves the keeper's hands, just as the heartbeat
    renews: the interleaving of a worker thread and the lease thread."""

    def __init__(self, store: Store, job: Job, holding: object) -> None:
        self.store, self.job, self.holding = store, job, holding

    def renew_leases(self, jobs: list[Job], lease_seconds: float) -> int:
        assert self.store.finish(self.job)
        self.holding.__exit__(None, None, None)  # type: ignore[attr-defined]
        return self.store.renew_leases(jobs, lease_seconds)


def test_a_job_finished_during_a_renewal_is_not_reported_lost(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    job = _claimed(gateway)
    keeper = LeaseKeeper(gateway.store, 30)
    holding = keeper.holding(job)
    holding.__enter__()
    keeper.store = _FinishingDuringRenewal(gateway.store, job, holding)  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING):
        assert keeper.renew() == 0
    assert WARNING not in caplog.text
    keeper.stop()
    gateway.close()


def test_a_lease_taken_by_another_worker_is_reported(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    job = _claimed(gateway)
    keeper = LeaseKeeper(gateway.store, 30)
    with keeper.holding(job):
        # An hour later the lease has expired: another worker takes the job back.
        assert gateway.store.claim("worker-b", 30, now=time.time() + 3600) is not None
        with caplog.at_level(logging.WARNING):
            assert keeper.renew() == 0
    assert WARNING in caplog.text
    keeper.stop()
    gateway.close()
