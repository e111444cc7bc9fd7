"""Indexes that let the work-order list walk in id order per filter

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_tickets_sla_state", table_name="tickets")
    op.create_index("ix_tickets_sla_state", "tickets", ["sla_state", "id"])
    op.drop_index("ix_tickets_created", table_name="tickets")
    op.create_index("ix_tickets_created", "tickets", ["created_at", "id"])
    op.create_index("ix_tickets_category_status", "tickets", ["category_code", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_category_status", table_name="tickets")
    op.drop_index("ix_tickets_created", table_name="tickets")
    op.create_index("ix_tickets_created", "tickets", ["created_at"])
    op.drop_index("ix_tickets_sla_state", table_name="tickets")
    op.create_index("ix_tickets_sla_state", "tickets", ["sla_state", "resolution_due_at"])
