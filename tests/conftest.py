"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy

if TYPE_CHECKING:
    from fakes import FakeGraph
    from whatsapp_api_integration.backends import Backend
    from whatsapp_api_integration.pipeline.gateway import Gateway

REPO_ROOT = Path(__file__).parents[1]
# CI lays a copy of the project's shared/ folder beside the clone.
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the shared/ folder is not beside the repository ({SHARED})")
    return SHARED


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """TEST_DATABASE_URL scoped to a schema of its own (dropped afterwards), so parallel runs
    do not meet; skips, saying why, when TEST_DATABASE_URL is unset."""
    from whatsapp_api_integration.store import Store

    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1/test)")
    schema = f"pipeline_test_{uuid.uuid4().hex[:10]}"
    admin = Store(url).engine
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    scoped = sqlalchemy.engine.make_url(url).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def make_gateway(tmp_path: Path, fake_graph: FakeGraph) -> Iterator[Callable[..., Gateway]]:
    """Gateways on one SQLite file, sending to the test's fake Graph (the test module
    provides `fake_graph`), closed after the test."""
    from whatsapp_api_integration.pipeline.gateway import Gateway, GatewayConfig
    from whatsapp_api_integration.providers.cloud_api import CloudApiClient

    created: list[Gateway] = []

    def make(backend: Backend, **overrides: Any) -> Gateway:
        settings: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path / 'gateway.db'}",
            "workers": 0,
            "retry_base_seconds": 0.01,
            "retry_max_seconds": 0.02,
            **overrides,
        }
        client = CloudApiClient("test-token", base_url=fake_graph.url, timeout=5)
        gateway = Gateway(GatewayConfig(**settings), backend, {"cloud_api": client})
        created.append(gateway)
        return gateway

    yield make
    for gateway in created:
        gateway.close()
