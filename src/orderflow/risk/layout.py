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

NS = 1_000_000_000
DAY_NS = 86_400 * NS
Z95 = 1.645  # one-sided 95 % quantile of the standard normal (VaR)
LOT_EPS = 1e-9  # lots: tolerance when rounding a quantity down to the lot grid (float noise)

# reason codes (indices into RULES); 0 = approved
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
) = range(15)
N_RULES = 15
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
)

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
(KILL_OFF, KILL_REDUCE_ONLY, KILL_HALT) = range(3)
KILL_MODES = ("off", "reduce_only", "halt")

# int64 state
(
    S_DAY_SET,  # 1 once a UTC day has been seen
    S_DAY,  # UTC day id: ts // DAY_NS
    S_HALTED,  # 1: the daily drawdown breaker tripped in the current day
    S_KILL,  # kill-switch mode (KILL_*)
    S_HAS_ENTRY,  # 1 once an entry has been recorded
    S_LAST_ENTRY_TS,  # ts of the last recorded entry (ns)
    S_OPEN,  # 1: a position is open (first entry recorded, not flat since)
    S_OPEN_TS,  # ts the open position was first entered (ns)
    S_ADDS,  # adds recorded in the open position
    S_SIDE,  # side of the open position (+1 / -1, 0 when flat)
    S_HEAD,  # entries recorded in total (next ring slot = S_HEAD % len(ring))
    S_TRIPS,  # times the daily breaker tripped
) = range(12)
S_REFUSED0 = 12  # RS[S_REFUSED0 + code]: refusals with that reason code
N_S = S_REFUSED0 + N_RULES

# float64 state
(
    F_DAY_START_EQ,  # first equity seen in the current UTC day (quote)
    F_LAST_EQ,  # last equity seen (quote)
    F_TRIP_DD,  # drawdown (fraction) at which the breaker tripped today
) = range(3)
N_F = 3
