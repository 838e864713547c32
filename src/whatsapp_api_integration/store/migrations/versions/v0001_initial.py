"""The initial store: bodies, events, messages and their jobs, replies, statuses, dead letters,
payload references, provider tokens, rate buckets.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_bodies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("provider", sa.String(16)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("reason", sa.Text),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("body_length", sa.Integer, nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_bodies"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("phone_number_id", sa.String(64)),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_events"),
        sa.ForeignKeyConstraint(
            ["body_id"], ["webhook_bodies.id"], name="fk_webhook_events_body_id_webhook_bodies"
        ),
    )
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("wamid", sa.String(256), nullable=False),
        sa.Column("body_id", sa.Integer, nullable=False),
        sa.Column("phone_number_id", sa.String(64)),
        sa.Column("contact_key", sa.String(320), nullable=False),
        sa.Column("contact_id", sa.String(256), nullable=False),
        sa.Column("message_type", sa.String(32), nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("timestamp", sa.Integer),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("available_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Column("responses", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("finished_at", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_messages"),
        sa.ForeignKeyConstraint(
            ["body_id"], ["webhook_bodies.id"], name="fk_inbound_messages_body_id_webhook_bodies"
        ),
        sa.UniqueConstraint("provider", "wamid", name="uq_inbound_messages_provider_wamid"),
    )
    op.create_index("ix_inbound_contact_state", "inbound_messages", ["contact_key", "state"])
    op.create_index("ix_inbound_state_id", "inbound_messages", ["state", "id"])
    op.create_index("ix_inbound_contact_id", "inbound_messages", ["contact_id"])
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("inbound_id", sa.Integer),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("phone_number_id", sa.String(64)),
        sa.Column("contact_key", sa.String(320)),
        sa.Column("contact_id", sa.String(256)),
        sa.Column("request_body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("wamid", sa.String(256)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("status", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("accepted_at", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_messages"),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name="fk_outbound_messages_inbound_id_inbound_messages",
        ),
        sa.UniqueConstraint("wamid", name="uq_outbound_messages_wamid"),
        sa.UniqueConstraint("inbound_id", "seq", name="uq_outbound_messages_inbound_seq"),
    )
    op.create_index("ix_outbound_contact_id", "outbound_messages", ["contact_id"])
    op.create_table(
        "message_statuses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("wamid", sa.String(256), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("timestamp", sa.Integer),
        sa.Column("recipient_id", sa.String(256)),
        sa.Column("errors", sa.Text),
        sa.Column("orphan", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("body_id", sa.Integer),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message_statuses"),
        sa.ForeignKeyConstraint(
            ["body_id"], ["webhook_bodies.id"], name="fk_message_statuses_body_id_webhook_bodies"
        ),
        sa.UniqueConstraint("wamid", "status", name="uq_message_statuses_wamid_status"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("inbound_id", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("retryable", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("replayed_at", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name="fk_dead_letters_inbound_id_inbound_messages",
        ),
    )
    op.create_table(
        "payload_refs",
        sa.Column("ref", sa.String(256), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("ref", name="pk_payload_refs"),
    )
    op.create_table(
        "provider_tokens",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("provider", name="pk_provider_tokens"),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_buckets"),
    )


def downgrade() -> None:
    for table in (
        "rate_buckets",
        "provider_tokens",
        "payload_refs",
        "dead_letters",
        "message_statuses",
        "outbound_messages",
        "inbound_messages",
        "webhook_events",
        "webhook_bodies",
    ):
        op.drop_table(table)
