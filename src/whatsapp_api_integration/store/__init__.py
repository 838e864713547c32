"""The durable store (DESIGN.md §10): SQLAlchemy Core over SQLite or PostgreSQL, with Alembic
migrations shipped in the package and run by `Store.migrate()`."""

from whatsapp_api_integration.store.store import (
    AcceptCounts,
    DeadLetter,
    EventRecord,
    InboundRecord,
    Job,
    OutboundRecord,
    StatusRecord,
    Store,
)

__all__ = [
    "AcceptCounts",
    "DeadLetter",
    "EventRecord",
    "InboundRecord",
    "Job",
    "OutboundRecord",
    "StatusRecord",
    "Store",
]
