"""The alerter's tables: alerts, their deliveries per channel, incidents, scheduled report sends and the
alerter's durable state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("incident", sa.String(200), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("symbol", sa.String(32), nullable=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("numbers", sa.Text, nullable=False),
        sa.Column("link", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.CheckConstraint(_in("severity", ("info", "warning", "critical")), name=op.f("ck_alerts_severity")),
        sa.CheckConstraint(
            _in("kind", ("trigger", "resolved", "escalation", "test", "report")), name=op.f("ck_alerts_kind")
        ),
    )
    op.create_index("ix_alerts_ts_ns", "alerts", ["ts_ns"])
    op.create_index("ix_alerts_incident", "alerts", ["incident"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_ns", sa.BigInteger, nullable=False),
        sa.Column("sent_ns", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name="fk_alert_deliveries_alert_id_alerts"),
        sa.UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_alert_id_channel"),
        sa.CheckConstraint(
            _in("state", ("pending", "sent", "failed")), name=op.f("ck_alert_deliveries_state")
        ),
    )
    op.create_index("ix_alert_deliveries_state_next_ns", "alert_deliveries", ["state", "next_ns"])
    op.create_table(
        "alert_incidents",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("symbol", sa.String(32), nullable=True),
        sa.Column("opened_ns", sa.BigInteger, nullable=False),
        sa.Column("last_sent_ns", sa.BigInteger, nullable=False),
        sa.Column("escalations", sa.Integer, nullable=False),
        sa.Column("resolved_ns", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_alert_incidents"),
    )
    op.create_table(
        "report_sends",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("alert_id", sa.Integer, nullable=True),
        sa.Column("claimed_ns", sa.BigInteger, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("kind", "label", name="pk_report_sends"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name="fk_report_sends_alert_id_alerts"),
    )
    op.create_table(
        "alerter_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_alerter_state"),
    )


def downgrade() -> None:
    for table in ("alerter_state", "report_sends", "alert_incidents", "alert_deliveries", "alerts"):
        op.drop_table(table)
