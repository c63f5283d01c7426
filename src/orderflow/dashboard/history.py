"""Read the journal (SQLite or PostgreSQL) read-only for the dashboard's history.

The dashboard never writes the journal and never migrates it: SQLite is opened with
``mode=ro`` (the engine's WAL keeps the reader consistent), PostgreSQL with
``default_transaction_read_only``. A journal that does not exist yet is an empty history, not an
error, so the dashboard can start before the first engine.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from orderflow.journal.db import readonly_engine, resolve_url, sqlite_path
from orderflow.journal.models import EquitySnapshot, Order, Run, Signal
from orderflow.journal.models import FillRow as Fill

ROW_LIMIT = 2000


def _num(x: Any) -> Any:
    return float(x) if isinstance(x, Decimal) else x


def _row(obj: Any, cols: tuple[str, ...]) -> dict[str, Any]:
    return {c: _num(getattr(obj, c)) for c in cols}


class History:
    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        path = sqlite_path(self.url)
        self._path = path
        self.engine = readonly_engine(self.url)

    def available(self) -> bool:
        return self._path is None or self._path.exists()

    def _all(self, q: Any) -> list[Any]:
        if not self.available():
            return []
        with self.engine.connect() as c:
            try:
                return list(c.execute(q))
            except sa.exc.OperationalError:  # no journal tables yet
                return []

    def runs(self) -> list[dict[str, Any]]:
        cols = ("id", "mode", "venue", "symbols", "started_ns", "stopped_ns", "stop_reason")
        rows = self._all(sa.select(*[getattr(Run, c) for c in cols]).order_by(Run.id))
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def run(self, run_id: int) -> dict[str, Any]:
        """A run's recorded orders, fills, last signals and equity, newest last."""
        ocols = (
            "client_order_id",
            "symbol",
            "side",
            "order_type",
            "price",
            "qty",
            "state",
            "filled_qty",
            "avg_price",
            "created_ns",
            "updated_ns",
            "reason",
        )
        fcols = ("client_order_id", "trade_id", "symbol", "side", "price", "qty", "fee", "liquidity", "ts_ns")
        scols = (
            "ts_ns",
            "symbol",
            "fused",
            "ofi_score",
            "ai_score",
            "confidence",
            "quality",
            "ev",
            "cost",
            "action",
            "gate",
        )
        ecols = ("ts_ns", "equity", "balance", "unrealized_pnl", "exposure")

        def take(model: Any, cols: tuple[str, ...], order: Any) -> list[dict[str, Any]]:
            q = sa.select(*[getattr(model, c) for c in cols]).where(model.run_id == run_id)
            rows = self._all(q.order_by(order.desc()).limit(ROW_LIMIT))
            return [{c: _num(v) for c, v in zip(cols, r, strict=True)} for r in reversed(rows)]

        return {
            "orders": take(Order, ocols, Order.id),
            "fills": take(Fill, fcols, Fill.id),
            "decisions": take(Signal, scols, Signal.id),
            "equity": take(EquitySnapshot, ecols, EquitySnapshot.id),
        }

    def close(self) -> None:
        self.engine.dispose()
