"""Web chat: chats, their messages, IP ranges, agents' chat seats, canned replies

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smeline.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_ip_ranges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("cidr", sa.String(length=49), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("note", sa.String(length=100), nullable=False),
        sa.Column("example", sa.Boolean(), nullable=False),
        sa.Column("updated_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["county_code"], ["counties.code"], name=op.f("fk_chat_ip_ranges_county_code_counties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_ip_ranges")),
        sa.UniqueConstraint("cidr", name=op.f("uq_chat_ip_ranges_cidr")),
    )
    op.create_table(
        "chat_agents",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("connections", sa.Integer(), nullable=False),
        sa.Column("online_since", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("offline_since", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_chat_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chat_agents_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_chat_agents")),
    )
    op.create_table(
        "chat_canned_replies",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("window_code", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_chat_canned_replies_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["window_code"],
            ["windows.code"],
            name=op.f("fk_chat_canned_replies_window_code_windows"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_canned_replies")),
    )
    op.create_index(
        op.f("ix_chat_canned_replies_window_code"),
        "chat_canned_replies",
        ["window_code"],
        unique=False,
    )
    op.create_table(
        "chats",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("visitor_id", sa.String(length=32), nullable=False),
        sa.Column("visitor_name", sa.String(length=64), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("phone_key", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("chosen_county_code", sa.String(length=6), nullable=True),
        sa.Column("county_code", sa.String(length=6), nullable=True),
        sa.Column("category_code", sa.String(length=32), nullable=False),
        sa.Column("wanted_window_code", sa.String(length=32), nullable=False),
        sa.Column("window_code", sa.String(length=32), nullable=False),
        sa.Column("routing_reason", sa.String(length=16), nullable=False),
        sa.Column("visitor_ip", sa.String(length=45), nullable=True),
        sa.Column("ip_area", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.Column("agent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("assigned_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_agent_reply_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("requeued", sa.Integer(), nullable=False),
        sa.Column("satisfaction", sa.String(length=16), nullable=True),
        sa.Column("satisfaction_comment", sa.String(length=500), nullable=True),
        sa.Column("rated_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], name=op.f("fk_chats_agent_id_users")),
        sa.ForeignKeyConstraint(
            ["category_code"], ["categories.code"], name=op.f("fk_chats_category_code_categories")
        ),
        sa.ForeignKeyConstraint(
            ["chosen_county_code"],
            ["counties.code"],
            name=op.f("fk_chats_chosen_county_code_counties"),
        ),
        sa.ForeignKeyConstraint(
            ["county_code"], ["counties.code"], name=op.f("fk_chats_county_code_counties")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_chats_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_chats_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["wanted_window_code"],
            ["windows.code"],
            name=op.f("fk_chats_wanted_window_code_windows"),
        ),
        sa.ForeignKeyConstraint(
            ["window_code"], ["windows.code"], name=op.f("fk_chats_window_code_windows")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chats")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_chats_token_hash")),
    )
    op.create_index("ix_chats_agent_state", "chats", ["agent_id", "state"], unique=False)
    op.create_index(op.f("ix_chats_phone_key"), "chats", ["phone_key"], unique=False)
    op.create_index(
        "ix_chats_queue", "chats", ["state", "window_code", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_chats_visitor_ip_created", "chats", ["visitor_ip", "created_at"], unique=False
    )
    op.create_table(
        "chat_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chat_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sender_kind", sa.String(length=8), nullable=False),
        sa.Column(
            "sender_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_chat_messages_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_user_id"], ["users.id"], name=op.f("fk_chat_messages_sender_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint(
            "chat_id", "sender_kind", "client_id", name="uq_chat_messages_chat_sender_client"
        ),
        sa.UniqueConstraint("chat_id", "seq", name="uq_chat_messages_chat_seq"),
    )


def downgrade() -> None:
    op.drop_table("chat_messages")
    op.drop_index("ix_chats_visitor_ip_created", table_name="chats")
    op.drop_index("ix_chats_queue", table_name="chats")
    op.drop_index(op.f("ix_chats_phone_key"), table_name="chats")
    op.drop_index("ix_chats_agent_state", table_name="chats")
    op.drop_table("chats")
    op.drop_index(op.f("ix_chat_canned_replies_window_code"), table_name="chat_canned_replies")
    op.drop_table("chat_canned_replies")
    op.drop_table("chat_agents")
    op.drop_table("chat_ip_ranges")
