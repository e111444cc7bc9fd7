"""Web chat: attachments, invited experts, joint chats

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import smeline.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chat_attachments",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", _ID, nullable=False),
        sa.Column("sender_kind", sa.String(length=8), nullable=False),
        sa.Column("sender_user_id", _ID, nullable=True),
        sa.Column("filename", sa.String(length=160), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_chat_attachments_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_user_id"], ["users.id"], name=op.f("fk_chat_attachments_sender_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_attachments")),
    )
    op.create_index(
        op.f("ix_chat_attachments_chat_id"), "chat_attachments", ["chat_id"], unique=False
    )
    op.create_table(
        "chat_experts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("invited_by_id", _ID, nullable=True),
        sa.Column("invited_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("left_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_chat_experts_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_id"], ["users.id"], name=op.f("fk_chat_experts_invited_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chat_experts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_experts")),
    )
    op.create_index("ix_chat_experts_chat", "chat_experts", ["chat_id", "left_at"], unique=False)
    op.create_index("ix_chat_experts_user", "chat_experts", ["user_id", "left_at"], unique=False)
    with op.batch_alter_table("chats") as batch:
        batch.add_column(
            sa.Column("joint", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("chat_messages") as batch:
        batch.add_column(sa.Column("attachment_id", _ID, nullable=True))
        batch.create_foreign_key(
            op.f("fk_chat_messages_attachment_id_chat_attachments"),
            "chat_attachments",
            ["attachment_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("chat_messages") as batch:
        batch.drop_constraint(
            op.f("fk_chat_messages_attachment_id_chat_attachments"), type_="foreignkey"
        )
        batch.drop_column("attachment_id")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("joint")
    op.drop_index("ix_chat_experts_user", table_name="chat_experts")
    op.drop_index("ix_chat_experts_chat", table_name="chat_experts")
    op.drop_table("chat_experts")
    op.drop_index(op.f("ix_chat_attachments_chat_id"), table_name="chat_attachments")
    op.drop_table("chat_attachments")
