"""Expert pool: experts and consultations (three-way escalation)

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import smeline.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("phone_key", sa.String(length=32), nullable=False),
        sa.Column(
            "specialties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "schedule",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("last_consulted_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experts")),
    )
    op.create_index("ix_experts_active", "experts", ["active", "id"], unique=False)
    op.create_table(
        "consultations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("linkedid", sa.String(length=64), nullable=False),
        sa.Column("expert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("target_kind", sa.String(length=10), nullable=False),
        sa.Column("target_ref", sa.String(length=64), nullable=False),
        sa.Column("started_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column(
            "agent_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["agent_user_id"], ["users.id"], name=op.f("fk_consultations_agent_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["experts.id"], name=op.f("fk_consultations_expert_id_experts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
    )
    op.create_index(
        "ix_consultations_expert_started",
        "consultations",
        ["expert_id", "started_at"],
        unique=False,
    )
    op.create_index("ix_consultations_linkedid", "consultations", ["linkedid", "id"], unique=False)
    op.create_index(
        "ix_consultations_open", "consultations", ["ended_at", "started_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_consultations_open", table_name="consultations")
    op.drop_index("ix_consultations_linkedid", table_name="consultations")
    op.drop_index("ix_consultations_expert_started", table_name="consultations")
    op.drop_table("consultations")
    op.drop_index("ix_experts_active", table_name="experts")
    op.drop_table("experts")
