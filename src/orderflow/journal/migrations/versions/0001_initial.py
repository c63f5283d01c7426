"""The journal's first schema: runs, orders, order events, fills, positions, equity, signals, risk events,
model versions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orderflow.journal.models import Dec  # a stable column type (exact decimal), not the live models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATES = (
    "intent",
    "sent",
    "new",
    "partially_filled",
    "filled",
    "canceled",
    "expired",
    "rejected",
    "unknown",
)


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("symbols", sa.Text, nullable=False),
        sa.Column("started_ns", sa.BigInteger, nullable=False),
        sa.Column("stopped_ns", sa.BigInteger, nullable=True),
        sa.Column("config_hash", sa.String(128), nullable=False),
        sa.Column("code_version", sa.String(64), nullable=False),
        sa.Column("stop_reason", sa.Text, nullable=True),
        sa.CheckConstraint(_in("mode", ("paper", "live", "backtest")), name=op.f("ck_runs_mode")),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("order_type", sa.String(16), nullable=False),
        sa.Column("tif", sa.String(8), nullable=True),
        sa.Column("price", Dec, nullable=True),
        sa.Column("stop_price", Dec, nullable=True),
        sa.Column("qty", Dec, nullable=False),
        sa.Column("reduce_only", sa.Boolean, nullable=False),
        sa.Column("post_only", sa.Boolean, nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("purpose", sa.String(8), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("exchange_order_id", sa.String(64), nullable=True),
        sa.Column("filled_qty", Dec, nullable=False),
        sa.Column("avg_price", Dec, nullable=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("sent_ns", sa.BigInteger, nullable=True),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("client_order_id", name="uq_orders_client_order_id"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_orders_run_id_runs"),
        sa.CheckConstraint(_in("side", ("buy", "sell")), name=op.f("ck_orders_side")),
        sa.CheckConstraint(_in("purpose", ("entry", "add", "exit")), name=op.f("ck_orders_purpose")),
        sa.CheckConstraint(_in("state", _STATES), name=op.f("ck_orders_state")),
        sa.CheckConstraint(
            _in("order_type", ("limit", "market", "stop_limit", "stop_market")),
            name=op.f("ck_orders_order_type"),
        ),
    )
    op.create_index("ix_orders_state", "orders", ["state"])
    op.create_index("ix_orders_run_id_state", "orders", ["run_id", "state"])
    op.create_table(
        "order_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("old_state", sa.String(20), nullable=True),
        sa.Column("new_state", sa.String(20), nullable=False),
        sa.Column("filled_qty", Dec, nullable=True),
        sa.Column("avg_price", Dec, nullable=True),
        sa.Column("exchange_order_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("report", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_order_events"),
        sa.ForeignKeyConstraint(
            ["client_order_id"], ["orders.client_order_id"], name="fk_order_events_client_order_id_orders"
        ),
    )
    op.create_index("ix_order_events_client_order_id", "order_events", ["client_order_id"])
    op.create_table(
        "fills",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("trade_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("price", Dec, nullable=False),
        sa.Column("qty", Dec, nullable=False),
        sa.Column("fee", Dec, nullable=False),
        sa.Column("fee_asset", sa.String(16), nullable=True),
        sa.Column("liquidity", sa.String(8), nullable=True),
        sa.Column("realized_pnl", Dec, nullable=True),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.UniqueConstraint("client_order_id", "trade_id", name="uq_fills_client_order_id_trade_id"),
        sa.ForeignKeyConstraint(
            ["client_order_id"], ["orders.client_order_id"], name="fk_fills_client_order_id_orders"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_fills_run_id_runs"),
        sa.CheckConstraint(_in("side", ("buy", "sell")), name=op.f("ck_fills_side")),
    )
    op.create_index("ix_fills_run_id_ts_ns", "fills", ["run_id", "ts_ns"])
    op.create_table(
        "positions",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("qty", Dec, nullable=False),
        sa.Column("avg_price", Dec, nullable=True),
        sa.Column("realized_pnl", Dec, nullable=False),
        sa.Column("fees", Dec, nullable=False),
        sa.Column("funding", Dec, nullable=False),
        sa.Column("mark_price", Dec, nullable=True),
        sa.Column("unrealized_pnl", Dec, nullable=True),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "symbol", name="pk_positions"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_positions_run_id_runs"),
    )
    op.create_table(
        "equity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("equity", Dec, nullable=False),
        sa.Column("balance", Dec, nullable=True),
        sa.Column("unrealized_pnl", Dec, nullable=True),
        sa.Column("exposure", Dec, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_equity"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_equity_run_id_runs"),
    )
    op.create_index("ix_equity_run_id_ts_ns", "equity", ["run_id", "ts_ns"])
    op.create_table(
        "signals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        *(
            sa.Column(c, sa.Float, nullable=True)
            for c in ("fused", "ofi_score", "ai_score", "confidence", "quality", "ev", "cost")
        ),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("gate", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signals"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_signals_run_id_runs"),
    )
    op.create_index("ix_signals_run_id_ts_ns", "signals", ["run_id", "ts_ns"])
    op.create_table(
        "risk_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("limit_value", sa.Float, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("approved_qty", Dec, nullable=True),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_risk_events"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_risk_events_run_id_runs"),
    )
    op.create_index("ix_risk_events_run_id_ts_ns", "risk_events", ["run_id", "ts_ns"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("schema_hash", sa.String(128), nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_model_versions_run_id_runs"),
        sa.CheckConstraint(_in("event", ("loaded", "refused")), name=op.f("ck_model_versions_event")),
    )


def downgrade() -> None:
    for table in (
        "model_versions",
        "risk_events",
        "signals",
        "equity",
        "positions",
        "fills",
        "order_events",
        "orders",
        "runs",
    ):
        op.drop_table(table)
