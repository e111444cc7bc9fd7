"""Wrap-ups: what an agent records after each call or chat

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smeline.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wrapups",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("contact_kind", sa.String(length=8), nullable=False),
        sa.Column("call_linkedid", sa.String(length=64), nullable=True),
        sa.Column("chat_id", _ID, nullable=True),
        sa.Column("agent_user_id", _ID, nullable=False),
        sa.Column("window_code", sa.String(length=32), nullable=True),
        sa.Column("county_code", sa.String(length=6), nullable=True),
        sa.Column("enterprise_name", sa.String(length=200), nullable=False),
        sa.Column("enterprise_id", _ID, nullable=True),
        sa.Column("category_code", sa.String(length=32), nullable=False),
        sa.Column("service_mode", sa.String(length=8), nullable=False),
        sa.Column("result", sa.String(length=8), nullable=False),
        sa.Column("ticket_id", _ID, nullable=True),
        sa.Column("created_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_user_id"], ["users.id"], name=op.f("fk_wrapups_agent_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["category_code"], ["categories.code"], name=op.f("fk_wrapups_category_code_categories")
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_wrapups_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["county_code"], ["counties.code"], name=op.f("fk_wrapups_county_code_counties")
        ),
        sa.ForeignKeyConstraint(
            ["enterprise_id"], ["enterprises.id"], name=op.f("fk_wrapups_enterprise_id_enterprises")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_wrapups_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["window_code"], ["windows.code"], name=op.f("fk_wrapups_window_code_windows")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wrapups")),
        sa.UniqueConstraint("agent_user_id", "call_linkedid", name="uq_wrapups_agent_call"),
        sa.UniqueConstraint("agent_user_id", "chat_id", name="uq_wrapups_agent_chat"),
    )
    op.create_index("ix_wrapups_created", "wrapups", ["created_at", "id"], unique=False)
    op.create_index("ix_wrapups_call", "wrapups", ["call_linkedid"], unique=False)
    op.create_index("ix_wrapups_chat", "wrapups", ["chat_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_wrapups_chat", table_name="wrapups")
    op.drop_index("ix_wrapups_call", table_name="wrapups")
    op.drop_index("ix_wrapups_created", table_name="wrapups")
    op.drop_table("wrapups")
