"""Call records, telephony audit, caller profiles, landline prefixes, enterprises, members

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import smeline.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "caller_profiles",
        sa.Column("phone_key", sa.String(length=32), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("updated_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["county_code"], ["counties.code"], name=op.f("fk_caller_profiles_county_code_counties")
        ),
        sa.PrimaryKeyConstraint("phone_key", name=op.f("pk_caller_profiles")),
    )
    op.create_table(
        "enterprises",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=True),
        sa.Column("county_code", sa.String(length=6), nullable=True),
        sa.Column("phone_key", sa.String(length=32), nullable=False),
        sa.Column("contact_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["county_code"], ["counties.code"], name=op.f("fk_enterprises_county_code_counties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enterprises")),
        sa.UniqueConstraint("credit_code", name=op.f("uq_enterprises_credit_code")),
    )
    op.create_index("ix_enterprises_phone_key", "enterprises", ["phone_key"], unique=False)
    op.create_table(
        "landline_prefixes",
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("note", sa.String(length=100), nullable=False),
        sa.Column("example", sa.Boolean(), nullable=False),
        sa.Column("updated_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["county_code"],
            ["counties.code"],
            name=op.f("fk_landline_prefixes_county_code_counties"),
        ),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_landline_prefixes")),
    )
    op.create_table(
        "members",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("phone_key", sa.String(length=32), nullable=False),
        sa.Column(
            "enterprise_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("county_code", sa.String(length=6), nullable=True),
        sa.Column("created_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["county_code"], ["counties.code"], name=op.f("fk_members_county_code_counties")
        ),
        sa.ForeignKeyConstraint(
            ["enterprise_id"], ["enterprises.id"], name=op.f("fk_members_enterprise_id_enterprises")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
    )
    op.create_index(op.f("ix_members_enterprise_id"), "members", ["enterprise_id"], unique=False)
    op.create_index("ix_members_phone_key", "members", ["phone_key"], unique=False)
    op.create_table(
        "call_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("linkedid", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("caller_number", sa.String(length=64), nullable=False),
        sa.Column("caller_key", sa.String(length=32), nullable=False),
        sa.Column("caller_name", sa.String(length=128), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=True),
        sa.Column("category_code", sa.String(length=32), nullable=True),
        sa.Column(
            "windows",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "queues",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("started_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("wait_seconds", sa.Integer(), nullable=False),
        sa.Column("talk_seconds", sa.Integer(), nullable=False),
        sa.Column("handle_seconds", sa.Integer(), nullable=True),
        sa.Column("agent_interface", sa.String(length=80), nullable=True),
        sa.Column("agent_name", sa.String(length=80), nullable=True),
        sa.Column(
            "agent_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("answered_window", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("overflowed", sa.Boolean(), nullable=False),
        sa.Column("joint", sa.Boolean(), nullable=False),
        sa.Column("recording_file", sa.String(length=255), nullable=True),
        sa.Column("survey", sa.String(length=16), nullable=True),
        sa.Column("ticket_ref", sa.String(length=32), nullable=True),
        sa.Column(
            "escalations",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_user_id"], ["users.id"], name=op.f("fk_call_records_agent_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_records")),
        sa.UniqueConstraint("linkedid", name=op.f("uq_call_records_linkedid")),
    )
    op.create_index(
        "ix_call_records_caller_key", "call_records", ["caller_key", "started_at"], unique=False
    )
    op.create_index(
        "ix_call_records_county_started",
        "call_records",
        ["county_code", "started_at"],
        unique=False,
    )
    op.create_index("ix_call_records_started", "call_records", ["started_at", "id"], unique=False)
    op.create_table(
        "telephony_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "actor_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name=op.f("fk_telephony_audit_actor_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telephony_audit")),
    )
    op.create_index("ix_telephony_audit_at", "telephony_audit", ["at", "id"], unique=False)

    op.create_table(
        "agent_endpoints",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("endpoint", sa.String(length=40), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("window_code", sa.String(length=32), nullable=True),
        sa.Column("updated_at", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_agent_endpoints_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["window_code"], ["windows.code"], name=op.f("fk_agent_endpoints_window_code_windows")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_agent_endpoints")),
        sa.UniqueConstraint("endpoint", name=op.f("uq_agent_endpoints_endpoint")),
    )
    op.create_table(
        "queue_memberships",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("window_code", sa.String(length=32), nullable=False),
        sa.Column("interface", sa.String(length=80), nullable=False),
        sa.Column("member_name", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("wrapup_until", smeline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("since", smeline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_queue_memberships_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["window_code"], ["windows.code"], name=op.f("fk_queue_memberships_window_code_windows")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_queue_memberships")),
        sa.UniqueConstraint("interface", name=op.f("uq_queue_memberships_interface")),
    )


def downgrade() -> None:
    op.drop_table("queue_memberships")
    op.drop_table("agent_endpoints")
    op.drop_index("ix_telephony_audit_at", table_name="telephony_audit")
    op.drop_table("telephony_audit")
    op.drop_index("ix_call_records_started", table_name="call_records")
    op.drop_index("ix_call_records_county_started", table_name="call_records")
    op.drop_index("ix_call_records_caller_key", table_name="call_records")
    op.drop_table("call_records")
    op.drop_index("ix_members_phone_key", table_name="members")
    op.drop_index(op.f("ix_members_enterprise_id"), table_name="members")
    op.drop_table("members")
    op.drop_table("landline_prefixes")
    op.drop_index("ix_enterprises_phone_key", table_name="enterprises")
    op.drop_table("enterprises")
    op.drop_table("caller_profiles")
