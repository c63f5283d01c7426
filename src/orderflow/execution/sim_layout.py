"""State layout of the simulated exchange kernels: index constants into the state arrays, the codes of
order types, statuses and report reasons (small ints in kernels, tuples of names for Python), the price
comparison helpers, and ``make_state`` which allocates one exchange's arrays.

Units everywhere: prices in quote currency, sizes in base units, times in int ns since the epoch, fee
and funding rates as fractions (0.0005 = 5 bp).

State of one simulated exchange (one symbol), all numpy arrays (see :class:`SimState`):

- ``I`` int64 scalars (``I_*``) and ``F`` float64 scalars (``F_*``);
- ``C`` the config, a 1-element record array (``SimConfig.to_record()``); kernels read ``C[0]`` by
  field name (``C.maker_fee``);
- ``OI`` int64 / ``OF`` float64 order table, one row per slot (columns ``OI_*`` / ``OF_*``); a slot is
  used from submit until the order is terminal (or, if a cancel is in flight, until that cancel
  arrives). Slots ``[0, I[I_HI])`` may be used;
- ``B`` (6, L) float64: the current book (``B_BID_PX`` .. ``B_ASK_SZ``, best first, NaN = no level)
  and the size our taker orders took from each level since the last book event (``B_TAKEN_*``);
- fills: ``FI`` int64 (``FI_*``) + ``FF`` float64 (``FF_*``), ``I[I_NFILL]`` rows written;
- reports: ``RI`` int64 (``RI_*``) + ``RF`` float64 (``RF_*``), ``I[I_NREP]`` rows written.

Fills and reports are split into an int64 and a float64 array because float64 cannot hold ns
timestamps (1.7e18 > 2^53) or 64-bit client order ids exactly. When a buffer is full, rows are not
written and ``I[I_LOST_FILLS]`` / ``I[I_LOST_REPORTS]`` count them: callers must check these (the
Python wrapper raises) and copy rows out, then set ``I[I_NFILL]`` / ``I[I_NREP]`` back to 0.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import from_dtype, njit, types

from orderflow.core.records import Indices
from orderflow.execution.sim_config import LATENCY_KINDS, QUEUE_MODELS
from orderflow.execution.sim_config import RECORD as CONFIG_RECORD

# order sides (signs); aggressor side 0 = unknown
BUY, SELL = 1, -1

# order types
ORDER_TYPES = ("LIMIT", "MARKET", "STOP_LIMIT")
(LIMIT, MARKET, STOP_LIMIT) = range(len(ORDER_TYPES))

# time in force
TIFS = ("GTC", "IOC")
(GTC, IOC) = range(len(TIFS))

# order statuses (UNKNOWN: only in reports about an id the exchange does not hold)
STATUSES = (
    "PENDING_NEW",
    "NEW",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCELED",
    "REJECTED",
    "EXPIRED",
    "PENDING_CANCEL",
    "UNKNOWN",
)
(
    PENDING_NEW,  # sent, not yet at the exchange
    NEW,
    PARTIALLY_FILLED,
    FILLED,
    CANCELED,
    REJECTED,
    EXPIRED,  # IOC / market remainder, or a reduce-only remainder once the position is flat
    PENDING_CANCEL,  # shown by the wrapper for a live order whose cancel is in flight
    UNKNOWN,
) = range(len(STATUSES))

# report reasons; each report also carries a value and the limit it was compared with (see REASONS)
REASONS = (
    "accepted",
    "partially_filled",
    "filled",
    "canceled",
    "expired",
    "triggered",
    "reduce_only_trimmed",
    "post_only",
    "reduce_only",
    "duplicate_id",
    "invalid_qty",
    "invalid_price",
    "invalid_side",
    "invalid_type",
    "too_many_orders",
    "cancel_not_open",
    "cancel_pending",
)
(
    R_ACCEPTED,  # value, limit: NaN
    R_PARTIALLY_FILLED,  # filled qty, order qty
    R_FILLED,  # filled qty, order qty
    R_CANCELED,  # remaining qty, order qty
    R_EXPIRED,  # remaining qty, order qty
    R_TRIGGERED,  # stop-limit: trade price, stop price
    R_REDUCE_ONLY_TRIMMED,  # reduce-only qty cut to the position: old qty, new qty
    R_POST_ONLY,  # rejected post-only: order price, best available opposite price
    R_REDUCE_ONLY,  # rejected/expired reduce-only: position, 0
    R_DUPLICATE_ID,  # client id already live: id, NaN
    R_INVALID_QTY,  # qty, 0 (must be > 0 and finite)
    R_INVALID_PRICE,  # price (or stop price), 0
    R_INVALID_SIDE,  # side, NaN (must be +1 or -1)
    R_INVALID_TYPE,  # order type, time in force
    R_TOO_MANY_ORDERS,  # orders held, capacity of the order table
    R_CANCEL_NOT_OPEN,  # cancel of an id that is not open (unknown or terminal): NaN, NaN
    R_CANCEL_PENDING,  # a second cancel while one is in flight: NaN, NaN
) = range(len(REASONS))

# latency kinds and queue models (codes in C)
(LAT_CONSTANT, LAT_LOGNORMAL) = range(len(LATENCY_KINDS))
(Q_RISK_AVERSE, Q_POWER, Q_LOG) = range(len(QUEUE_MODELS))

# int state
_i = Indices()
I_HI = _i()  # slots [0, I_HI) may be used
I_NLIVE = _i()  # used slots
I_SEQ = _i()  # next request sequence number (orders and cancels share one FIFO channel)
I_NEXT_ARR = _i()  # earliest pending arrival (order or cancel), NO_TS when none
I_LAST_ARR = _i()  # last arrival time handed out (arrivals are FIFO: never earlier than the previous)
I_LAST_RESP = _i()  # last strategy time of an event-driven message (responses are FIFO too)
I_LAST_TS = _i()  # ts of the last market event applied
I_NFILL = _i()  # rows in the fill buffer
I_NREP = _i()  # rows in the report buffer
I_LOST_FILLS = _i()  # fills that did not fit in the buffer (callers must check)
I_LOST_REPORTS = _i()  # reports that did not fit in the buffer
I_RNG = _i()  # splitmix64 state of the latency RNG
I_BAD_TRADES = _i()  # trades ignored (size <= 0, price <= 0 or NaN)
N_I = _i.n

# float state
_f = Indices()
F_POS = _f()  # net position the exchange holds for us (base units, signed); reduce-only checks it
F_MID = _f()  # mid of the last book (infers unknown trade aggressors)
N_F = _f.n

# book rows
_b = Indices()
B_BID_PX = _b()
B_BID_SZ = _b()
B_ASK_PX = _b()
B_ASK_SZ = _b()
B_TAKEN_BID = _b()
B_TAKEN_ASK = _b()
N_B = _b.n

# order table, int columns
_oi = Indices()
OI_USED = _oi()
OI_ID = _oi()  # client order id
OI_STATUS = _oi()
OI_SIDE = _oi()  # +1 buy, -1 sell
OI_TYPE = _oi()
OI_TIF = _oi()
OI_POST_ONLY = _oi()
OI_REDUCE_ONLY = _oi()
OI_TRIGGERED = _oi()  # stop-limit has triggered
OI_RESTING = _oi()  # on the book: queue position tracked
OI_ARRIVED = _oi()  # reached the exchange
OI_SEQ = _oi()  # sequence number of the submit
OI_TS_SUBMIT = _oi()  # strategy time of the submit
OI_TS_ARRIVE = _oi()  # exchange time the order arrives
OI_CANCEL_AT = _oi()  # exchange time its cancel arrives, NO_TS when none in flight
OI_CANCEL_SEQ = _oi()
N_OI = _oi.n

# order table, float columns
_of = Indices()
OF_PRICE = _of()  # limit price (NaN for market)
OF_STOP = _of()  # stop price (NaN unless stop-limit)
OF_QTY = _of()  # order qty (a reduce-only order may be trimmed)
OF_FILLED = _of()
OF_NOTIONAL = _of()  # sum of price * qty of the fills (avg price = notional / filled)
OF_FEES = _of()
OF_QUEUE = _of()  # queue_ahead: displayed size ahead of us at our price (inf = level not visible yet)
OF_LEVEL = _of()  # displayed size at our price in the last book (NaN = not visible)
OF_TRADED = _of()  # trade volume at our price on our side since the last book
N_OF = _of.n

# fill buffer
_fi = Indices()
FI_TS_EX = _fi()
FI_TS_ST = _fi()
FI_ID = _fi()
FI_SIDE = _fi()
FI_MAKER = _fi()
N_FI = _fi.n
_ff = Indices()
FF_PRICE = _ff()
FF_QTY = _ff()
FF_FEE = _ff()
FF_REMAINING = _ff()
N_FF = _ff.n

# report buffer
_ri = Indices()
RI_TS_EX = _ri()
RI_TS_ST = _ri()
RI_ID = _ri()
RI_STATUS = _ri()
RI_REASON = _ri()
N_RI = _ri.n
_rf = Indices()
RF_FILLED = _rf()
RF_AVG_PX = _rf()
RF_REMAINING = _rf()
RF_VALUE = _rf()
RF_LIMIT = _rf()
N_RF = _rf.n

NO_TS = 9_223_372_036_854_775_807  # int64 max: "no time"
PX_REL_EPS = 1e-9  # two prices are equal when they differ by at most this share of their size
QTY_REL_EPS = 1e-9  # a remainder below this share of the order qty counts as filled


# numba types of the state arrays (C-contiguous, as make_state allocates them). Internal kernels carry
# explicit signatures built from these: numba would otherwise compile one specialization per literal
# status / reason code passed to them (tens of copies, a long first compile).
T_VI = types.int64[::1]  # I
T_VF = types.float64[::1]  # F
T_C = from_dtype(CONFIG_RECORD.dtype)  # C: the config record (SimConfig.to_record()[0])
T_MI = types.int64[:, ::1]  # OI, FI, RI
T_MF = types.float64[:, ::1]  # OF, B, FF, RF
i8, f8, b1, void = types.int64, types.float64, types.boolean, types.void


# ------------------------------------------------------------------------------------------ helpers
@njit(b1(f8, f8), cache=True)
def px_eq(a: float, b: float) -> bool:
    """Same price level (relative tolerance PX_REL_EPS, against float noise in computed prices)."""
    return abs(a - b) <= PX_REL_EPS * max(abs(a), abs(b))


@njit(b1(i8, f8, f8), cache=True)
def px_reaches(side: int, p: float, limit: float) -> bool:
    """A price ``p`` on the opposite side is at or better than ``limit`` for an order of ``side``:
    buy: p <= limit, sell: p >= limit (market orders pass +inf / -inf)."""
    if side == BUY:
        return p <= limit + PX_REL_EPS * abs(limit)
    return p >= limit - PX_REL_EPS * abs(limit)


@njit(b1(i8), cache=True)
def is_live(status: int) -> bool:
    """Open at the exchange (can fill or be canceled)."""
    return NEW <= status <= PARTIALLY_FILLED  # codes 1, 2


@njit(b1(i8), cache=True)
def is_terminal(status: int) -> bool:
    """Final: FILLED, CANCELED, REJECTED or EXPIRED (codes 3..6)."""
    return FILLED <= status <= EXPIRED


# ---------------------------------------------------------------------------------------- the state
# SimState.args: its ten arrays as a plain tuple, in field order, with the config record ``C[0]`` in
# place of ``C`` (a fixed length, so that a call ``kernel(*state.args, ...)`` is checked argument by
# argument)
SimArgs = tuple[
    np.ndarray, np.ndarray, np.void, np.ndarray, np.ndarray,
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
]  # fmt: skip


class SimState(NamedTuple):
    """The arrays of one simulated exchange, the first argument of every public kernel (``sim_kernels``);
    ``args`` is the argument prefix of the internal kernels."""

    I: np.ndarray
    F: np.ndarray
    C: np.ndarray
    OI: np.ndarray
    OF: np.ndarray
    B: np.ndarray
    FI: np.ndarray
    FF: np.ndarray
    RI: np.ndarray
    RF: np.ndarray

    @property
    def args(self) -> SimArgs:
        return (self.I, self.F, self.C[0], self.OI, self.OF, self.B, self.FI, self.FF, self.RI, self.RF)


def make_state(
    cfg: Any, levels: int = 20, fill_capacity: int | None = None, report_capacity: int | None = None
) -> SimState:
    """Allocate the arrays of one exchange from a ``SimConfig``.

    Default buffer sizes hold the worst case of one kernel call (every order walking every level and
    emitting all its reports), so a caller that empties them after each call never loses a row; a
    backtest that keeps rows for a whole run passes larger capacities.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    n = int(cfg.max_orders)
    fcap = fill_capacity if fill_capacity is not None else n * (levels + 2) + 16
    rcap = report_capacity if report_capacity is not None else n * 8 + 16
    if fcap < 1 or rcap < 1:
        raise ValueError("buffer capacities must be >= 1")
    I = np.zeros(N_I, dtype=np.int64)
    I[I_NEXT_ARR] = NO_TS
    I[I_LAST_ARR] = -NO_TS
    I[I_LAST_RESP] = -NO_TS
    I[I_LAST_TS] = -NO_TS
    I[I_RNG] = int(cfg.latency.seed)
    F = np.zeros(N_F)
    F[F_MID] = np.nan
    OI = np.zeros((n, N_OI), dtype=np.int64)
    OF = np.full((n, N_OF), np.nan)
    B = np.full((N_B, levels), np.nan)
    B[B_TAKEN_BID] = 0.0
    B[B_TAKEN_ASK] = 0.0
    return SimState(
        I=I,
        F=F,
        C=cfg.to_record(),
        OI=OI,
        OF=OF,
        B=B,
        FI=np.zeros((fcap, N_FI), dtype=np.int64),
        FF=np.zeros((fcap, N_FF)),
        RI=np.zeros((rcap, N_RI), dtype=np.int64),
        RF=np.zeros((rcap, N_RF)),
    )
