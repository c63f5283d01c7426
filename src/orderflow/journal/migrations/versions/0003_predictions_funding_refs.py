"""Model evaluation and cost attribution: the runs' sampled predictions with their outcomes, the names
of a model version's inputs, funding payments one by one, and the decision's reference price (mid) on
orders and fills.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderflow.journal.models import Dec  # a stable column type (exact decimal), not the live models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("ref_price", Dec, nullable=True))
    op.add_column("fills", sa.Column("ref_price", Dec, nullable=True))
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("event_ns", sa.BigInteger, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("p_down", sa.Float, nullable=False),
        sa.Column("p_flat", sa.Float, nullable=False),
        sa.Column("p_up", sa.Float, nullable=False),
        sa.Column("horizon_ns", sa.BigInteger, nullable=False),
        sa.Column("mid", sa.Float, nullable=False),
        sa.Column("ev", sa.Float, nullable=True),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("side", sa.SmallInteger, nullable=True),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("label", sa.SmallInteger, nullable=True),
        sa.Column("ret", sa.Float, nullable=True),
        sa.Column("outcome_ns", sa.BigInteger, nullable=True),
        sa.Column("inputs", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_predictions_run_id_runs"),
        sa.UniqueConstraint("run_id", "seq", name="uq_predictions_run_id_seq"),
    )
    op.create_index("ix_predictions_run_id_ts_ns", "predictions", ["run_id", "ts_ns"])
    op.create_index("ix_predictions_ts_ns", "predictions", ["ts_ns"])
    op.create_table(
        "model_inputs",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("names", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "version", name="pk_model_inputs"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_model_inputs_run_id_runs"),
    )
    op.create_table(
        "funding_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("amount", Dec, nullable=False),
        sa.Column("position", Dec, nullable=True),
        sa.Column("mark", Dec, nullable=True),
        sa.Column("rate", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_funding_events"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_funding_events_run_id_runs"),
        sa.CheckConstraint("source IN ('model', 'exchange')", name=op.f("ck_funding_events_source")),
    )
    op.create_index("ix_funding_events_run_id_ts_ns", "funding_events", ["run_id", "ts_ns"])


def downgrade() -> None:
    for table in ("funding_events", "model_inputs", "predictions"):
        op.drop_table(table)
    for table in ("fills", "orders"):
        if op.get_bind().dialect.name == "sqlite":
            # SQLite >= 3.35 drops a column in place; a batch rebuild would drop ``orders``, which
            # ``fills`` and ``order_events`` reference
            op.execute(f"ALTER TABLE {table} DROP COLUMN ref_price")
        else:
            op.drop_column(table, "ref_price")
