"""An index on outbound_messages.request_id: SERPRO's status calls are matched to our replies
by SERPRO's request id (idRequisicao), inside the webhook's transaction, so the lookup must
not scan the table.

Revision ID: 0002_serpro
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002_serpro"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbound_request_id", "outbound_messages", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_outbound_request_id", table_name="outbound_messages")
