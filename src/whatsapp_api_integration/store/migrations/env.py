"""Alembic environment: always run from `Store.migrate`, which passes an open connection.

Standalone use: `alembic -x url=sqlite:///whatsapp_gateway.db upgrade head` with a config whose
`script_location` points here works too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from whatsapp_api_integration.store.schema import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
