"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

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
