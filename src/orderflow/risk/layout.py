"""State layout of the risk kernels: indices into the state arrays ``RS`` (int64) and ``RSF`` (float64),
kill-switch modes and the
reason codes (``RULES``). No numba here, so the config module can import it cheaply.

Arrays (one set per :class:`~orderflow.risk.engine.RiskEngine`, i.e. per traded symbol):

- ``RS`` (int64, ``N_S``): flags, counters and timestamps. Timestamps are int ns since the epoch and
  stay int64 because float64 cannot hold a 2024 timestamp to the nanosecond (its spacing there is
  256 ns), and the rolling 24 h window is exact to 1 ns. ``RS[S_REFUSED0 + code]`` counts refusals
  per reason code.
- ``RSF`` (float64, ``N_F``): equity figures of the UTC day (quote currency). (``RF`` is the simulated
  exchange's report array: the risk floats are ``RSF`` everywhere.)
- ``ring`` (int64, ``max_trades_24h``): timestamps of the last entries, written at ``RS[S_HEAD] %
  len(ring)``.
- ``C``: the configuration, a record built by :meth:`RiskConfig.to_record` and read by field name
  (``C.max_position``; fractions, counts, durations in int ns).
"""

from __future__ import annotations

from orderflow.core.records import Indices

NS = 1_000_000_000
DAY_NS = 86_400 * NS
Z95 = 1.645  # one-sided 95 % quantile of the standard normal (VaR)
LOT_EPS = 1e-9  # lots: tolerance when rounding a quantity down to the lot grid (float noise)

# reason codes (indices into RULES); 0 = approved
RULES = (
    "ok",
    "kill_switch",
    "daily_drawdown",
    "min_interval",
    "max_trades_24h",
    "opposite_position",
    "max_adds",
    "confidence",
    "high_vol",
    "max_position",
    "max_capital",
    "var95",
    "min_size",
    "max_holding",
    "bad_input",
    "portfolio_var95",
    "correlation_budget",
    "allocation",
)
(
    OK,
    KILL_SWITCH,
    DAILY_DRAWDOWN,
    MIN_INTERVAL,
    MAX_TRADES_24H,
    OPPOSITE_POSITION,
    MAX_ADDS,
    CONFIDENCE,
    HIGH_VOL,
    MAX_POSITION,
    MAX_CAPITAL,
    VAR95,
    MIN_SIZE,
    MAX_HOLDING,
    BAD_INPUT,
    PORTFOLIO_VAR95,
    CORRELATION_BUDGET,
    ALLOCATION,
) = range(len(RULES))
N_RULES = len(RULES)

# entry inputs checked by kernels.first_bad_input, in order (a bad_input refusal names the first)
BAD_INPUT_NAMES = (
    "side",
    "price",
    "stop_dist",
    "equity",
    "lot_size",
    "vol_horizon",
    "min_notional",
    "other_gross_notional",
    "pos_qty",
    "vol_pct",
)

# kill-switch modes (RS[S_KILL])
KILL_MODES = ("off", "reduce_only", "halt")
(KILL_OFF, KILL_REDUCE_ONLY, KILL_HALT) = range(len(KILL_MODES))

# int64 state
_s = Indices()
S_DAY_SET = _s()  # 1 once a UTC day has been seen
S_DAY = _s()  # UTC day id: ts // DAY_NS
S_HALTED = _s()  # 1: the daily drawdown breaker tripped in the current day
S_KILL = _s()  # kill-switch mode (KILL_*)
S_HAS_ENTRY = _s()  # 1 once an entry has been recorded
S_LAST_ENTRY_TS = _s()  # ts of the last recorded entry (ns)
S_OPEN = _s()  # 1: a position is open (first entry recorded, not flat since)
S_OPEN_TS = _s()  # ts the open position was first entered (ns)
S_ADDS = _s()  # adds recorded in the open position
S_SIDE = _s()  # side of the open position (+1 / -1, 0 when flat)
S_HEAD = _s()  # entries recorded in total (next ring slot = S_HEAD % len(ring))
S_TRIPS = _s()  # times the daily breaker tripped
S_REFUSED0 = _s(N_RULES)  # RS[S_REFUSED0 + code]: refusals with that reason code
N_S = _s.n

# float64 state
_f = Indices()
F_DAY_START_EQ = _f()  # first equity seen in the current UTC day (quote)
F_LAST_EQ = _f()  # last equity seen (quote)
F_TRIP_DD = _f()  # drawdown (fraction) at which the breaker tripped today
N_F = _f.n
