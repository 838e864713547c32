"""The store's tables (DESIGN.md §10), as SQLAlchemy Core.

Times are Unix seconds (floats): every comparison the pipeline makes (`available_at`, lease
expiry) is arithmetic, and the same column type behaves alike on SQLite and PostgreSQL.
JSON is stored as text for the same reason. Migrations under `migrations/` build exactly this
schema (tests/test_store.py compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Every webhook POST, accepted or rejected. Rejected bodies are kept only in part.
webhook_bodies = Table(
    "webhook_bodies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("provider", String(16)),
    Column("outcome", String(16), nullable=False),  # accepted | rejected
    Column("http_status", Integer),
    Column("reason", Text),
    Column("headers", Text, nullable=False),  # JSON object of the headers that matter
    Column("body", LargeBinary, nullable=False),
    Column("body_length", Integer, nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("events", Integer, nullable=False, default=0),
)

# Events that are stored and logged but never answered: Unknown and WebhookError.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("body_id", Integer, ForeignKey("webhook_bodies.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # unknown | webhook_error
    Column("provider", String(16), nullable=False),
    Column("phone_number_id", String(64)),
    Column("detail", Text, nullable=False),  # JSON
    Column("received_at", Float, nullable=False),
)

# One row per inbound message, which is also its job (state, attempts, lease).
inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", Integer, primary_key=True),  # also the order of a contact's messages
    Column("provider", String(16), nullable=False),
    Column("wamid", String(256), nullable=False),
    Column("body_id", Integer, ForeignKey("webhook_bodies.id"), nullable=False),
    Column("phone_number_id", String(64)),
    Column("contact_key", String(320), nullable=False),
    Column("contact_id", String(256), nullable=False),  # wa_id, else the BSUID
    Column("message_type", String(32), nullable=False),
    Column("text", Text),  # what the backend is sent (before payload references resolve)
    Column("timestamp", Integer),  # WhatsApp's, Unix seconds
    Column("received_at", Float, nullable=False),
    # received | processing | answered | ignored | dead
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("available_at", Float, nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_expires_at", Float),
    Column("responses", Text),  # the backend's answer (JSON), kept so a retry never asks again
    Column("last_error", Text),
    Column("finished_at", Float),
    UniqueConstraint("provider", "wamid", name="uq_inbound_messages_provider_wamid"),
)
Index("ix_inbound_contact_state", inbound_messages.c.contact_key, inbound_messages.c.state)
Index("ix_inbound_state_id", inbound_messages.c.state, inbound_messages.c.id)
Index("ix_inbound_contact_id", inbound_messages.c.contact_id)

# Each reply, recorded before it is sent and again once WhatsApp accepted it.
outbound_messages = Table(
    "outbound_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("inbound_id", Integer, ForeignKey("inbound_messages.id")),  # None: proactive
    Column("seq", Integer, nullable=False),  # order within the job's replies
    Column("provider", String(16), nullable=False),
    Column("phone_number_id", String(64)),
    Column("contact_key", String(320)),
    Column("contact_id", String(256)),
    Column("request_body", Text, nullable=False),  # JSON, as rendered for the provider
    Column("state", String(16), nullable=False),  # pending | accepted | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("wamid", String(256), unique=True),
    Column("request_id", String(128)),  # SERPRO's
    Column("status", String(32)),  # latest status webhook
    Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("accepted_at", Float),
    UniqueConstraint("inbound_id", "seq", name="uq_outbound_messages_inbound_seq"),
)
Index("ix_outbound_contact_id", outbound_messages.c.contact_id)
# SERPRO's statuses name our reply by its request id (migration 0002_serpro).
Index("ix_outbound_request_id", outbound_messages.c.request_id)

# Status webhooks, once per (wamid, status). `orphan`: no outgoing message had that wamid
# when the status arrived (sent by another system, or it overtook our own write).
message_statuses = Table(
    "message_statuses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("wamid", String(256), nullable=False),
    Column("status", String(32), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("timestamp", Integer),
    Column("recipient_id", String(256)),
    Column("errors", Text),  # JSON list
    Column("orphan", Boolean, nullable=False, default=False),
    Column("body_id", Integer, ForeignKey("webhook_bodies.id")),
    Column("received_at", Float, nullable=False),
    UniqueConstraint("wamid", "status", name="uq_message_statuses_wamid_status"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("inbound_id", Integer, ForeignKey("inbound_messages.id"), nullable=False),
    Column("error", Text, nullable=False),
    Column("retryable", Boolean, nullable=False),  # False: the error itself was final
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("replayed_at", Float),
)

# Payloads too long (or repeated) for a button id, by the short reference sent instead.
payload_refs = Table(
    "payload_refs",
    metadata,
    Column("ref", String(256), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Access tokens a provider hands out (SERPRO's OAuth), shared by every process.
provider_tokens = Table(
    "provider_tokens",
    metadata,
    Column("provider", String(16), primary_key=True),
    Column("token", Text, nullable=False),
    Column("expires_at", Float),
    Column("updated_at", Float, nullable=False),
)

# Token buckets that pace sends per sending number across processes.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
