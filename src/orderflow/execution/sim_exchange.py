"""``SimulatedExchange``: the simulated exchange one event at a time, for paper trading, the local
exchange and tests. It calls the same numba kernels as the backtester's compiled loop
(:mod:`orderflow.execution.sim_kernels`; the fill rules are described there) and turns their output
rows into frozen records.

Units: prices in quote currency, sizes in base units, times in int ns since the epoch (``ts`` of
submit/cancel is strategy time, of ``on_book``/``on_trade`` exchange time), fees in quote currency.

Every fill and report carries ``ts_exchange`` and ``ts_strategy`` (= exchange time + response
latency). ``drain_fills(upto=t)`` / ``drain_reports(upto=t)`` hand out, in order of ``ts_strategy``,
only what the strategy has received by ``t`` (everything when ``upto`` is None).

``order(id)`` is the exchange's view of an order now (``PENDING_CANCEL`` while a cancel is in
flight); records of finished orders are kept until ``forget_finished()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, TypeVar

import msgspec
import numpy as np

from orderflow.core.orders import CancelRequest, OrderRequest, OrderType, TimeInForce
from orderflow.execution import sim_kernels as SK
from orderflow.execution.sim_config import SimConfig
from orderflow.execution.sim_layout import (
    F_POS,
    FF_FEE,
    FF_PRICE,
    FF_QTY,
    FF_REMAINING,
    FI_ID,
    FI_MAKER,
    FI_SIDE,
    FI_TS_EX,
    FI_TS_ST,
    GTC,
    I_HI,
    I_LOST_FILLS,
    I_LOST_REPORTS,
    I_NFILL,
    I_NREP,
    IOC,
    LIMIT,
    MARKET,
    NO_TS,
    OF_FILLED,
    OF_NOTIONAL,
    OF_PRICE,
    OF_QTY,
    OF_QUEUE,
    OF_STOP,
    OI_CANCEL_AT,
    OI_ID,
    OI_POST_ONLY,
    OI_REDUCE_ONLY,
    OI_SIDE,
    OI_STATUS,
    OI_TIF,
    OI_TRIGGERED,
    OI_TS_ARRIVE,
    OI_TS_SUBMIT,
    OI_TYPE,
    OI_USED,
    ORDER_TYPES,
    PENDING_CANCEL,
    REASONS,
    RF_AVG_PX,
    RF_FILLED,
    RF_LIMIT,
    RF_REMAINING,
    RF_VALUE,
    RI_ID,
    RI_REASON,
    RI_STATUS,
    RI_TS_EX,
    RI_TS_ST,
    STATUSES,
    STOP_LIMIT,
    TIFS,
    SimState,
    is_terminal,
    make_state,
)

TERMINAL_STATUSES = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED"})
_MAX_ID = 2**63 - 1


class Fill(msgspec.Struct, frozen=True):
    """One fill. ``fee`` in quote currency (rate * qty * price); ``remaining``: order qty left after it."""

    ts_exchange: int
    ts_strategy: int
    order_id: int
    side: int
    price: float
    qty: float
    fee: float
    maker: bool
    remaining: float


class OrderReport(msgspec.Struct, frozen=True):
    """A status change or an answer, with its reason and the numbers behind it (``value`` compared with
    ``limit``; their meaning per reason is listed in ``sim_layout``). ``remaining`` = qty not filled."""

    ts_exchange: int
    ts_strategy: int
    order_id: int
    status: str
    reason: str
    filled: float
    avg_price: float
    remaining: float
    value: float
    limit: float

    @property
    def message(self) -> str:
        return (
            f"order {self.order_id} {self.status}: {self.reason} (value {self.value:g}, limit {self.limit:g})"
        )


class OrderRecord(msgspec.Struct, frozen=True):
    """The exchange's view of one order. ``qty`` may be lower than submitted for a trimmed reduce-only
    order; ``filled + remaining == qty``; ``queue_ahead`` is NaN unless resting (inf = level not
    visible)."""

    order_id: int
    side: int
    type: str
    tif: str
    price: float
    stop_price: float
    qty: float
    filled: float
    avg_price: float
    remaining: float
    status: str
    post_only: bool
    reduce_only: bool
    triggered: bool
    queue_ahead: float
    ts_submit: int
    ts_arrive: int


def _check_id(order_id: int) -> int:
    oid = int(order_id)
    if not -_MAX_ID <= oid <= _MAX_ID:
        raise ValueError(f"order id {order_id} does not fit in int64")
    return oid


class SimulatedExchange:
    """One symbol's simulated exchange. ``levels``: book levels the kernels keep (the store has 20).
    The kernel buffers are emptied after every call; their default capacities hold the worst case of
    one call (smaller ones are for tests: a full buffer raises BufferError)."""

    def __init__(
        self,
        cfg: SimConfig | None = None,
        levels: int = 20,
        fill_capacity: int | None = None,
        report_capacity: int | None = None,
    ) -> None:
        self.cfg = cfg if cfg is not None else SimConfig()
        self.levels = levels
        self.state: SimState = make_state(self.cfg, levels, fill_capacity, report_capacity)
        self._args = self.state.args
        self._fills: list[Fill] = []
        self._reports: list[OrderReport] = []
        self._live: dict[int, OrderRecord] = {}  # as accepted into the order table (static fields)
        self._triggered: set[int] = set()
        self._done: dict[int, OrderRecord] = {}

    # ------------------------------------------------------------------------------------ orders
    def submit_limit(
        self,
        order_id: int,
        side: int,
        price: float,
        qty: float,
        ts: int,
        post_only: bool = False,
        reduce_only: bool = False,
        tif: Literal["GTC", "IOC"] = "GTC",
    ) -> None:
        """Limit order (GTC rests, IOC remainder expires); post-only is rejected if it would cross."""
        self._submit(order_id, LIMIT, side, price, math.nan, qty, ts, tif, post_only, reduce_only)

    def submit(self, req: OrderRequest | CancelRequest, ts: int) -> None:
        """A request sent at strategy time ``ts``, converted to the simulator's ints here (the one
        boundary): MARKET -> ``submit_market``, LIMIT -> ``submit_limit`` with its time in force and
        post-only flag, STOP_LIMIT -> ``submit_stop_limit``, a cancel -> :meth:`cancel`."""
        if isinstance(req, CancelRequest):
            self.cancel(req.order_id, ts)
            return
        tif: Literal["GTC", "IOC"] = "GTC" if req.time_in_force is TimeInForce.GTC else "IOC"
        if req.order_type is OrderType.MARKET:
            self.submit_market(req.order_id, int(req.side), req.qty, ts, reduce_only=req.reduce_only)
        elif req.time_in_force is TimeInForce.FOK:
            raise ValueError(f"order {req.order_id}: the simulator takes GTC or IOC limits, not FOK")
        elif req.order_type is OrderType.LIMIT:
            self.submit_limit(req.order_id, int(req.side), req.price, req.qty, ts, post_only=req.post_only,
                              reduce_only=req.reduce_only, tif=tif)  # fmt: skip
        else:
            self.submit_stop_limit(req.order_id, int(req.side), req.stop_price, req.price, req.qty, ts,
                                   reduce_only=req.reduce_only, tif=tif)  # fmt: skip

    def submit_market(self, order_id: int, side: int, qty: float, ts: int, reduce_only: bool = False) -> None:
        """Market order: takes the visible levels; the remainder beyond them expires."""
        self._submit(order_id, MARKET, side, math.nan, math.nan, qty, ts, "IOC", False, reduce_only)

    def submit_stop_limit(
        self,
        order_id: int,
        side: int,
        stop_price: float,
        price: float,
        qty: float,
        ts: int,
        reduce_only: bool = False,
        tif: Literal["GTC", "IOC"] = "GTC",
    ) -> None:
        """Stop-limit: becomes a limit order at ``price`` when a trade prints at or through
        ``stop_price`` (buy: trade >= stop, sell: trade <= stop)."""
        self._submit(order_id, STOP_LIMIT, side, price, stop_price, qty, ts, tif, False, reduce_only)

    def cancel(self, order_id: int, ts: int) -> None:
        """Cancel request sent at strategy time ``ts``; it arrives after the entry latency."""
        SK.cancel_order(self.state, int(ts), _check_id(order_id))
        self._collect()

    def _submit(
        self,
        order_id: int,
        otype: int,
        side: int,
        price: float,
        stop: float,
        qty: float,
        ts: int,
        tif: str,
        post_only: bool,
        reduce_only: bool,
    ) -> None:
        if tif not in TIFS:
            raise ValueError(f"tif must be one of {TIFS}, got {tif!r}")
        oid = _check_id(order_id)
        sd = int(side)  # anything but +1 / -1 is rejected by the kernel (invalid_side)
        price, stop, qty = float(price), float(stop), float(qty)
        code = SK.submit_order(
            self.state, int(ts), oid, otype, sd, price, stop, qty, GTC if tif == "GTC" else IOC,
            post_only, reduce_only,
        )  # fmt: skip
        self._collect()
        if code == 0:
            self._live[oid] = self.order(oid)  # type: ignore[assignment]
            self._triggered.discard(oid)
        elif REASONS[code] != "duplicate_id":
            rep = self._reports[-1]
            self._done[oid] = OrderRecord(
                order_id=oid, side=sd, type=ORDER_TYPES[otype], tif=tif, price=price, stop_price=stop,
                qty=qty, filled=0.0, avg_price=math.nan, remaining=qty, status="REJECTED",
                post_only=post_only, reduce_only=reduce_only, triggered=False, queue_ahead=math.nan,
                ts_submit=int(ts), ts_arrive=rep.ts_exchange,
            )  # fmt: skip

    # ------------------------------------------------------------------------------- market data
    def on_book(
        self,
        ts: int,
        bid_px: Sequence[float] | np.ndarray,
        bid_sz: Sequence[float] | np.ndarray,
        ask_px: Sequence[float] | np.ndarray,
        ask_sz: Sequence[float] | np.ndarray,
    ) -> None:
        """Book event at exchange time ``ts``: top levels best first (NaN = missing level)."""
        SK.on_book(
            self.state, int(ts), np.asarray(bid_px, dtype=np.float64), np.asarray(bid_sz, dtype=np.float64),
            np.asarray(ask_px, dtype=np.float64), np.asarray(ask_sz, dtype=np.float64),
        )  # fmt: skip
        self._collect()

    def on_trade(self, ts: int, price: float, size: float, side: int) -> None:
        """Trade at exchange time ``ts``; ``side`` is the aggressor (+1 buyer, -1 seller, 0 unknown)."""
        SK.on_trade(self.state, int(ts), float(price), float(size), int(side))
        self._collect()

    # ------------------------------------------------------------------------------------ output
    @property
    def position(self) -> float:
        """Net position the exchange holds for us (signed base units), moved by every fill."""
        return float(self.state.F[F_POS])

    def set_position(self, qty: float) -> None:
        """Start from an existing position (reduce-only orders are checked against it)."""
        self.state.F[F_POS] = float(qty)

    def drain_fills(self, upto: int | None = None) -> list[Fill]:
        """Fills the strategy has received by strategy time ``upto`` (all when None), oldest first."""
        out, self._fills = _split(self._fills, upto)
        return out

    def drain_reports(self, upto: int | None = None) -> list[OrderReport]:
        """Reports the strategy has received by strategy time ``upto`` (all when None), oldest first."""
        out, self._reports = _split(self._reports, upto)
        return out

    def order(self, order_id: int) -> OrderRecord | None:
        """The order now (None if this exchange never accepted a submit with that id)."""
        oid = _check_id(order_id)
        OI = self.state.OI
        held = -1  # a finished order whose cancel is still in flight
        for s in range(int(self.state.I[I_HI])):
            if OI[s, OI_USED] and OI[s, OI_ID] == oid:
                if not is_terminal(int(OI[s, OI_STATUS])):
                    return self._slot_record(s)
                held = s
        return self._slot_record(held) if held >= 0 else self._done.get(oid)

    def open_orders(self) -> list[OrderRecord]:
        """Orders not yet final (pending, open or with a cancel in flight), in slot order."""
        OI = self.state.OI
        return [
            self._slot_record(s)
            for s in range(int(self.state.I[I_HI]))
            if OI[s, OI_USED] and not is_terminal(int(OI[s, OI_STATUS]))
        ]

    def forget_finished(self) -> None:
        """Drop the records of finished orders (long runs)."""
        self._done.clear()

    # ---------------------------------------------------------------------------------- internals
    def _slot_record(self, s: int) -> OrderRecord:
        OI, OF = self.state.OI, self.state.OF
        st = int(OI[s, OI_STATUS])
        if not is_terminal(st) and OI[s, OI_CANCEL_AT] != NO_TS:
            st = PENDING_CANCEL
        filled = float(OF[s, OF_FILLED])
        qty = float(OF[s, OF_QTY])
        return OrderRecord(
            order_id=int(OI[s, OI_ID]),
            side=int(OI[s, OI_SIDE]),
            type=ORDER_TYPES[int(OI[s, OI_TYPE])],
            tif=TIFS[int(OI[s, OI_TIF])],
            price=float(OF[s, OF_PRICE]),
            stop_price=float(OF[s, OF_STOP]),
            qty=qty,
            filled=filled,
            avg_price=float(OF[s, OF_NOTIONAL]) / filled if filled > 0 else math.nan,
            remaining=qty - filled,
            status=STATUSES[st],
            post_only=bool(OI[s, OI_POST_ONLY]),
            reduce_only=bool(OI[s, OI_REDUCE_ONLY]),
            triggered=bool(OI[s, OI_TRIGGERED]),
            queue_ahead=float(OF[s, OF_QUEUE]),
            ts_submit=int(OI[s, OI_TS_SUBMIT]),
            ts_arrive=int(OI[s, OI_TS_ARRIVE]),
        )

    def _collect(self) -> None:
        I = self.state.I
        if I[I_LOST_FILLS] or I[I_LOST_REPORTS]:
            raise BufferError(
                f"simulated exchange output buffer full: {int(I[I_LOST_FILLS])} fills and "
                f"{int(I[I_LOST_REPORTS])} reports lost (capacities {len(self.state.FI)} / "
                f"{len(self.state.RI)}); raise max_orders or the capacities"
            )
        n = int(I[I_NFILL])
        if n:
            FI, FF = self.state.FI, self.state.FF
            for i in range(n):
                fill = Fill(
                    int(FI[i, FI_TS_EX]), int(FI[i, FI_TS_ST]), int(FI[i, FI_ID]), int(FI[i, FI_SIDE]),
                    float(FF[i, FF_PRICE]), float(FF[i, FF_QTY]), float(FF[i, FF_FEE]),
                    bool(FI[i, FI_MAKER]), float(FF[i, FF_REMAINING]),
                )  # fmt: skip
                self._fills.append(fill)
            I[I_NFILL] = 0
        n = int(I[I_NREP])
        if n:
            RI, RF = self.state.RI, self.state.RF
            for i in range(n):
                rep = OrderReport(
                    int(RI[i, RI_TS_EX]), int(RI[i, RI_TS_ST]), int(RI[i, RI_ID]),
                    STATUSES[int(RI[i, RI_STATUS])], REASONS[int(RI[i, RI_REASON])],
                    float(RF[i, RF_FILLED]), float(RF[i, RF_AVG_PX]), float(RF[i, RF_REMAINING]),
                    float(RF[i, RF_VALUE]), float(RF[i, RF_LIMIT]),
                )  # fmt: skip
                self._reports.append(rep)
                if rep.reason == "triggered":
                    self._triggered.add(rep.order_id)
                rec = self._live.get(rep.order_id)
                if (
                    rec is not None
                    and rep.status in TERMINAL_STATUSES
                    and rep.reason not in ("duplicate_id", "cancel_not_open")
                ):
                    self._done[rep.order_id] = msgspec.structs.replace(
                        rec, status=rep.status, qty=rep.filled + rep.remaining, filled=rep.filled,
                        avg_price=rep.avg_price, remaining=rep.remaining, queue_ahead=math.nan,
                        triggered=rep.order_id in self._triggered,
                    )  # fmt: skip
                    del self._live[rep.order_id]
                    self._triggered.discard(rep.order_id)
            I[I_NREP] = 0


_T = TypeVar("_T", Fill, OrderReport)


def _split(items: list[_T], upto: int | None) -> tuple[list[_T], list[_T]]:
    """(delivered by ``upto`` in order of ts_strategy, the rest)."""
    if upto is None:
        return sorted(items, key=lambda x: x.ts_strategy), []
    out = [x for x in items if x.ts_strategy <= upto]
    rest = [x for x in items if x.ts_strategy > upto]
    out.sort(key=lambda x: x.ts_strategy)
    return out, rest
