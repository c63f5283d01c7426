"""Performance metrics of one backtest run, or of walk-forward test windows chained into one record.

Inputs (pandas DataFrames from the backtester; extra columns are allowed, missing ones are named):

- ``equity``: one row per account sample, time-ordered. ``ts`` (int64 ns since epoch, or datetime64),
  ``equity`` (quote currency, marked to mid, after fees and funding; the first row must be > 0),
  ``position`` (signed base qty), ``price`` (mid, quote), optional ``regime`` (str).
- ``trades``: one row per round trip. ``entry_ts``, ``exit_ts`` (int64 ns), ``side`` (+1 long, -1
  short), ``qty`` (base, > 0), ``entry_px``, ``exit_px`` (volume-weighted fill prices), ``gross_pnl``
  (price PnL before costs, quote), ``fees`` (>= 0), ``slippage`` (>= 0, cost of the fills against the
  mid at decision time, already inside ``gross_pnl``), ``funding`` (+ = paid), ``net_pnl`` (must equal
  ``gross_pnl - fees - funding``), ``exit_reason`` (str), optional ``regime``.
- ``fills``: ``ts``, ``side`` (+1 buy, -1 sell), ``qty`` (base, > 0), ``price`` (> 0), ``fee`` (quote,
  negative for a rebate), ``maker`` (bool).
- ``rejections``: gate or risk-rule name -> count; ``initial_equity``: quote currency, > 0.

A frame with no rows and no columns stands for "none of them". Equity needs at least one row.

Definitions (``r`` = per-bar simple returns, ``N`` = their count, ``T`` = ``end_ts - start_ts``):

- Bars: ``freq`` (a pandas offset such as ``"1min"``, ``"1h"``) cuts time into bars aligned on
  multiples of the bar width since the epoch, ``[k*w, (k+1)*w)``, from the bar of the first equity
  sample to the bar of the last. A bar's value is the last equity sample inside it; a bar with no
  sample takes the previous bar's value (forward fill). ``r_k = E_k / E_{k-1} - 1``; ``bars`` = N.
  If equity is <= 0 on any bar, returns are undefined and sharpe, sortino, var95, cvar95 and
  ann_volatility are None.
- Annualisation: 365-day crypto year, ``B = 365 * 86400 s / w`` bars per year.
- ``sharpe = mean(r) / std(r, ddof=1) * sqrt(B)`` (None when N < 2 or std = 0);
  ``ann_volatility = std(r, ddof=1) * sqrt(B)``.
- ``sortino = mean(r) / DD * sqrt(B)`` with the downside deviation ``DD = sqrt(sum(min(r, 0)^2) / N)``
  over ALL N bars (bars with r >= 0 count as zero); None when no bar has r < 0.
- ``var95 = -q`` where ``q`` is the 5% quantile of r (linear interpolation between order statistics
  at position ``0.05 * (N - 1)``, numpy's default); ``cvar95 = -mean(r[r <= q])``. Both are losses
  per bar as fractions of equity, positive when the bar loses (None when N = 0).
- ``max_drawdown``: ``max_t (1 - E_t / max_{s<=t} E_s)`` over the raw equity samples (not the bars),
  a positive fraction of the peak. ``max_drawdown_duration_days``: longest time from a peak to the
  first sample back at or above it (or to the end if never).
- ``period_days = T / 1 day``; ``total_return = E_last / initial_equity - 1`` (fraction);
  ``return_pct = 100 * total_return`` (percent, as the name says); ``annual_return = total_return *
  365 / period_days`` (simple, not compounded, so short windows do not explode; None when T = 0);
  ``calmar = annual_return / max_drawdown`` (None when max_drawdown = 0).
- Trades: ``win_rate`` = share with net_pnl > 0 (a trade at exactly 0 is not a win);
  ``profit_factor = sum(net_pnl > 0) / |sum(net_pnl < 0)|``, None when no trade lost (infinite);
  ``avg_pnl_per_trade`` = mean net_pnl; ``trades_per_day = trades / period_days``;
  ``buy_sell_balance`` = long trades / trades; gross_pnl, net_pnl, fees, slippage, funding are sums
  over trades (quote). ``cost_share = (fees + slippage + funding) / |gross_pnl|`` (None when
  gross_pnl = 0). Trade-level metrics are None when there are no trades (counts and sums are 0).
- ``exposure``: share of time T with ``|position| > 1e-12`` base units; sample i's position holds over
  ``[ts_i, ts_{i+1})``. None when T = 0.
- ``turnover = sum(qty * price of fills) / initial_equity / period_days`` (per day; None when T = 0).
- ``per_regime``: for each value of trades' ``regime`` (as str): ``{trades, win_rate, net_pnl,
  avg_pnl_per_trade}``; empty when trades have no regime column.

Extra keys: bars, freq, ann_volatility, annual_return, total_return, initial_equity, final_equity,
max_drawdown_duration_days, long_trades, short_trades, long_net_pnl, short_net_pnl, avg_win, avg_loss,
avg_holding_s, exit_reasons (reason -> count), fills, fill_fees, traded_notional, maker_share (maker
notional / traded notional), rejections_total, regime_time_share (regime of the equity samples ->
share of T, when equity has a regime column).

The result is JSON-safe: int, finite float, str, None, dict and list only (non-finite -> None).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

NS = 1_000_000_000
DAY_NS = 86_400 * NS
YEAR_NS = 365 * DAY_NS
POSITION_EPS = 1e-12
MAX_BARS = 50_000_000

EQUITY_COLUMNS = ("ts", "equity", "position", "price")
TRADE_COLUMNS = ("entry_ts", "exit_ts", "side", "qty", "entry_px", "exit_px", "gross_pnl", "fees",
                 "slippage", "funding", "net_pnl", "exit_reason")  # fmt: skip
FILL_COLUMNS = ("ts", "side", "qty", "price", "fee", "maker")
EXIT_REASONS = ("take_profit", "stop", "timeout", "signal", "risk", "end")  # known; others are counted too
TS_COLUMNS = frozenset({"ts", "entry_ts", "exit_ts"})
METRIC_KEYS = ("trades", "trades_per_day", "win_rate", "gross_pnl", "net_pnl", "fees", "slippage",
               "funding", "avg_pnl_per_trade", "profit_factor", "sharpe", "sortino", "max_drawdown",
               "calmar", "var95", "cvar95", "exposure", "turnover", "cost_share", "buy_sell_balance",
               "rejections", "per_regime", "period_days", "return_pct", "start_ts", "end_ts")  # fmt: skip


# -- validation ------------------------------------------------------------------------------------


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    def dtype(c: str) -> str:
        if c in TS_COLUMNS or c == "side":
            return "int64"
        return {"exit_reason": "object", "regime": "object", "maker": "bool"}.get(c, "float64")

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in columns})


def _ns(s: pd.Series, where: str) -> np.ndarray:
    """Integer ns since epoch from an integer or datetime64 column."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.dt.as_unit("ns").to_numpy().view(np.int64).copy()
    if not pd.api.types.is_integer_dtype(s.dtype):
        raise ValueError(f"{where}: must be int64 ns since epoch or datetime64, got dtype {s.dtype}")
    return s.to_numpy(dtype=np.int64)


def _floats(df: pd.DataFrame, col: str, where: str) -> np.ndarray:
    try:
        x = df[col].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}.{col}: not numeric ({e})") from None
    return x


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _fail_first(bad: np.ndarray, df: pd.DataFrame, where: str, what: str, cols: Sequence[str]) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        vals = ", ".join(f"{c}={_py(df[c].iloc[i])!r}" for c in cols)
        raise ValueError(f"{where}: {int(bad.sum())} row(s) where {what}; first at row {i}: {vals}")


def _frame(df: pd.DataFrame, columns: Sequence[str], where: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0 and len(df.columns) == 0:
        return _empty(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; present: {list(df.columns)}")
    return df.reset_index(drop=True)


def validate_equity(equity: pd.DataFrame) -> pd.DataFrame:
    """Check the equity frame (module docstring); return it with ``ts`` as int64 ns and a fresh index."""
    df = _frame(equity, EQUITY_COLUMNS, "equity")
    if len(df) == 0:
        raise ValueError("equity: no rows; a run records at least its starting sample")
    df = df.assign(ts=_ns(df["ts"], "equity.ts"))
    ts = df["ts"].to_numpy()
    _fail_first(np.concatenate(([False], np.diff(ts) < 0)), df, "equity", "ts decreases", ["ts"])
    for c in ("equity", "position"):
        _fail_first(~np.isfinite(_floats(df, c, "equity")), df, "equity", f"{c} is not finite", [c])
    if df["equity"].iloc[0] <= 0:
        raise ValueError(f"equity: the first equity must be > 0, got {df['equity'].iloc[0]}")
    return df


def validate_trades(trades: pd.DataFrame) -> pd.DataFrame:
    """Check the trades frame (module docstring); return it with int64 ns times and a fresh index."""
    df = _frame(trades, TRADE_COLUMNS, "trades")
    df = df.assign(
        entry_ts=_ns(df["entry_ts"], "trades.entry_ts"), exit_ts=_ns(df["exit_ts"], "trades.exit_ts")
    )
    num = {c: _floats(df, c, "trades") for c in TRADE_COLUMNS if c not in TS_COLUMNS and c != "exit_reason"}
    for c, x in num.items():
        _fail_first(~np.isfinite(x), df, "trades", f"{c} is not finite", [c])
    _fail_first(~np.isin(num["side"], (-1.0, 1.0)), df, "trades", "side is not +1 or -1", ["side"])
    _fail_first(num["qty"] <= 0, df, "trades", "qty <= 0", ["qty"])
    _fail_first(num["fees"] < 0, df, "trades", "fees < 0", ["fees"])
    _fail_first(num["slippage"] < 0, df, "trades", "slippage < 0", ["slippage"])
    _fail_first(df["exit_ts"].to_numpy() < df["entry_ts"].to_numpy(), df, "trades", "exit_ts < entry_ts",
                ["entry_ts", "exit_ts"])  # fmt: skip
    expect = num["gross_pnl"] - num["fees"] - num["funding"]
    tol = 1e-9 * np.maximum(1.0, np.abs(num["gross_pnl"]) + num["fees"] + np.abs(num["funding"]))
    _fail_first(np.abs(num["net_pnl"] - expect) > tol, df, "trades", "net_pnl != gross_pnl - fees - funding",
                ["gross_pnl", "fees", "funding", "net_pnl"])  # fmt: skip
    return df


def validate_fills(fills: pd.DataFrame) -> pd.DataFrame:
    """Check the fills frame (module docstring); return it with ``ts`` as int64 ns and a fresh index."""
    df = _frame(fills, FILL_COLUMNS, "fills")
    df = df.assign(ts=_ns(df["ts"], "fills.ts"))
    num = {c: _floats(df, c, "fills") for c in ("side", "qty", "price", "fee")}
    for c, x in num.items():
        _fail_first(~np.isfinite(x), df, "fills", f"{c} is not finite", [c])
    _fail_first(~np.isin(num["side"], (-1.0, 1.0)), df, "fills", "side is not +1 or -1", ["side"])
    _fail_first(num["qty"] <= 0, df, "fills", "qty <= 0", ["qty"])
    _fail_first(num["price"] <= 0, df, "fills", "price <= 0", ["price"])
    return df


def validate_rejections(rejections: Mapping[str, int]) -> dict[str, int]:
    """Counts by gate/rule name as a sorted ``{str: int}``; counts must be integers >= 0."""
    out: dict[str, int] = {}
    for k, v in rejections.items():
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise ValueError(f"rejections[{k!r}]: count must be an int >= 0, got {v!r}")
        out[str(k)] = int(v)
    return dict(sorted(out.items()))


# -- pieces ----------------------------------------------------------------------------------------


def bar_ns(freq: str) -> int:
    """Width of one bar of ``freq`` (pandas offset string, e.g. "1min") in ns."""
    try:
        w = int(pd.Timedelta(freq).value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"freq {freq!r}: not a fixed pandas offset ({e})") from None
    if w <= 0:
        raise ValueError(f"freq {freq!r}: bar width must be > 0 ns, got {w}")
    return w


def bar_closes(ts: np.ndarray, equity: np.ndarray, width_ns: int) -> np.ndarray:
    """Equity on the bar grid: last sample in each bar, forward-filled over empty bars (module docstring)."""
    b = np.asarray(ts, dtype=np.int64) // width_ns
    n = int(b[-1] - b[0]) + 1
    if n > MAX_BARS:
        raise ValueError(f"freq: {n} bars exceed the limit {MAX_BARS}; use a coarser freq")
    idx = np.searchsorted(b, np.arange(b[0], b[-1] + 1), side="right") - 1
    return np.asarray(equity, dtype=np.float64)[idx]


def _return_stats(ts: np.ndarray, eq: np.ndarray, width_ns: int) -> dict[str, Any]:
    closes = bar_closes(ts, eq, width_ns)
    out: dict[str, Any] = {"bars": int(closes.size - 1), "sharpe": None, "sortino": None, "var95": None,
                           "cvar95": None, "ann_volatility": None}  # fmt: skip
    if closes.size < 2 or (closes <= 0).any():
        return out
    r = closes[1:] / closes[:-1] - 1.0
    k = math.sqrt(YEAR_NS / width_ns)
    mean = float(r.mean())
    if r.size >= 2:
        sd = float(r.std(ddof=1))
        out["ann_volatility"] = sd * k
        out["sharpe"] = mean / sd * k if sd > 0 else None
    dd = math.sqrt(float(np.square(np.minimum(r, 0.0)).mean()))
    out["sortino"] = mean / dd * k if dd > 0 else None
    q = float(np.quantile(r, 0.05))
    out["var95"] = -q
    out["cvar95"] = -float(r[r <= q].mean())
    return out


def _drawdown(ts: np.ndarray, eq: np.ndarray) -> dict[str, float]:
    peak = np.maximum.accumulate(eq)
    high = eq >= peak
    last_high = np.maximum.accumulate(np.where(high, np.arange(eq.size), 0))
    prev_high = np.concatenate(([0], last_high[:-1]))
    was_under = np.concatenate(([False], ~high[:-1]))
    dur = np.where(~high | was_under, ts - ts[prev_high], 0)
    return {
        "max_drawdown": float((1.0 - eq / peak).max()),
        "max_drawdown_duration_days": float(dur.max()) / DAY_NS,
    }


def _time_shares(ts: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    dt = np.diff(ts)
    total = float(dt.sum())
    shares: Counter[str] = Counter()
    for lab, d in zip(labels[:-1], dt, strict=True):
        shares[str(lab)] += float(d)
    return {k: v / total for k, v in sorted(shares.items())} if total > 0 else {}


def _trade_stats(tr: pd.DataFrame) -> dict[str, Any]:
    net = tr["net_pnl"].to_numpy(dtype=np.float64)
    side = tr["side"].to_numpy(dtype=np.float64)
    n = int(net.size)
    wins, losses = net[net > 0], net[net < 0]
    gross = float(tr["gross_pnl"].sum())
    costs = float(tr["fees"].sum() + tr["slippage"].sum() + tr["funding"].sum())
    hold = (tr["exit_ts"].to_numpy() - tr["entry_ts"].to_numpy()) / NS
    return {
        "trades": n,
        "win_rate": wins.size / n if n else None,
        "gross_pnl": gross,
        "net_pnl": float(net.sum()),
        "fees": float(tr["fees"].sum()),
        "slippage": float(tr["slippage"].sum()),
        "funding": float(tr["funding"].sum()),
        "avg_pnl_per_trade": float(net.mean()) if n else None,
        "profit_factor": float(wins.sum() / -losses.sum()) if losses.size else None,
        "cost_share": costs / abs(gross) if gross != 0 else None,
        "buy_sell_balance": float((side > 0).sum()) / n if n else None,
        "long_trades": int((side > 0).sum()),
        "short_trades": int((side < 0).sum()),
        "long_net_pnl": float(net[side > 0].sum()),
        "short_net_pnl": float(net[side < 0].sum()),
        "avg_win": float(wins.mean()) if wins.size else None,
        "avg_loss": float(losses.mean()) if losses.size else None,
        "avg_holding_s": float(hold.mean()) if n else None,
        "exit_reasons": dict(sorted(Counter(str(x) for x in tr["exit_reason"]).items())),
    }


def _per_regime(tr: pd.DataFrame) -> dict[str, dict[str, Any]]:
    if "regime" not in tr.columns or len(tr) == 0:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for reg, g in tr.groupby(tr["regime"].astype(str), sort=True):
        net = g["net_pnl"].to_numpy(dtype=np.float64)
        out[str(reg)] = {"trades": int(net.size), "win_rate": float((net > 0).mean()),
                         "net_pnl": float(net.sum()), "avg_pnl_per_trade": float(net.mean())}  # fmt: skip
    return out


def _json_safe(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return int(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    raise TypeError(f"metrics: value of type {type(v).__name__} is not JSON-safe")


# -- public ----------------------------------------------------------------------------------------


def compute_metrics(
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    fills: pd.DataFrame,
    rejections: Mapping[str, int],
    initial_equity: float,
    freq: str = "1min",
) -> dict[str, Any]:
    """Every metric of the module docstring (exact key names there), JSON-safe.

    ``initial_equity`` in quote currency (> 0); ``freq`` is the bar width of the return series.
    Raises ValueError on invalid inputs (naming the missing column or the first bad row).
    """
    try:
        initial_equity = float(initial_equity)
    except (TypeError, ValueError):
        raise ValueError(f"initial_equity must be a finite number > 0, got {initial_equity!r}") from None
    if not (math.isfinite(initial_equity) and initial_equity > 0):
        raise ValueError(f"initial_equity must be a finite number > 0, got {initial_equity!r}")
    width = bar_ns(freq)
    eqf, tr, fl = validate_equity(equity), validate_trades(trades), validate_fills(fills)
    rej = validate_rejections(rejections)
    ts = eqf["ts"].to_numpy()
    eq = eqf["equity"].to_numpy(dtype=np.float64)
    pos = eqf["position"].to_numpy(dtype=np.float64)
    span = int(ts[-1] - ts[0])
    days = span / DAY_NS
    total_return = float(eq[-1]) / initial_equity - 1.0
    out: dict[str, Any] = {
        "start_ts": int(ts[0]),
        "end_ts": int(ts[-1]),
        "period_days": days,
        "freq": str(freq),
        "initial_equity": float(initial_equity),
        "final_equity": float(eq[-1]),
        "total_return": total_return,
        "return_pct": 100.0 * total_return,
        "annual_return": total_return * 365.0 / days if span > 0 else None,
    }
    out.update(_return_stats(ts, eq, width))
    out.update(_drawdown(ts, eq))
    mdd = out["max_drawdown"]
    out["calmar"] = out["annual_return"] / mdd if out["annual_return"] is not None and mdd > 0 else None
    held = np.abs(pos[:-1]) > POSITION_EPS
    out["exposure"] = float(np.diff(ts)[held].sum()) / span if span > 0 else None
    if "regime" in eqf.columns:
        out["regime_time_share"] = _time_shares(ts, eqf["regime"].to_numpy())
    out.update(_trade_stats(tr))
    out["trades_per_day"] = out["trades"] / days if span > 0 else None
    out["per_regime"] = _per_regime(tr)
    qty, px = fl["qty"].to_numpy(dtype=np.float64), fl["price"].to_numpy(dtype=np.float64)
    notional = qty * px
    traded = float(notional.sum())
    out["fills"] = len(fl)
    out["fill_fees"] = float(fl["fee"].sum())
    out["traded_notional"] = traded
    out["maker_share"] = (
        float(notional[fl["maker"].to_numpy(dtype=bool)].sum()) / traded if traded > 0 else None
    )
    out["turnover"] = traded / initial_equity / days if span > 0 else None
    out["rejections"] = rej
    out["rejections_total"] = sum(rej.values())
    return _json_safe(out)


def metrics_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Two string columns (name, value) for printing: the documented keys first, then the extras.

    Nested dicts are flattened with dotted names (``per_regime.trend.net_pnl``); start/end times are
    shown as UTC ISO strings; floats with 6 significant digits; None as ``n/a``.
    """
    rows: list[tuple[str, str]] = []

    def fmt(name: str, v: Any) -> str:
        if v is None:
            return "n/a"
        if name in ("start_ts", "end_ts") and isinstance(v, int):
            return pd.Timestamp(v, unit="ns", tz="UTC").isoformat()
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v)

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, Mapping):
            if not v:
                rows.append((prefix, "(none)"))
            for k, x in v.items():
                walk(f"{prefix}.{k}", x)
        else:
            rows.append((prefix, fmt(prefix, v)))

    extras = sorted(k for k in metrics if k not in METRIC_KEYS)
    for key in [*[k for k in METRIC_KEYS if k in metrics], *extras]:
        walk(key, metrics[key])
    return pd.DataFrame(rows, columns=["name", "value"])


Window = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Mapping[str, int]]


def combine_windows(
    windows: Sequence[Window],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Concatenate walk-forward test windows (time-ordered, not overlapping) into one out-of-sample record.

    Each window is ``(equity, trades, fills, rejections)``. Equity is chained additively: window k's
    equity is shifted by a constant so that its first sample equals window k-1's last equity, which
    keeps every window's PnL in quote currency (so trade PnL still sums to the equity change; a
    multiplicative rescale would not). Trades and fills are concatenated unchanged; every frame gets an
    int ``window`` column (0-based); rejection counts are summed by name.
    """
    if not windows:
        raise ValueError("combine_windows: no windows")
    eqs, trs, fls = [], [], []
    rej: Counter[str] = Counter()
    prev_end: float | None = None
    prev_ts: int | None = None
    for k, (equity, trades, fills, rejections) in enumerate(windows):
        e = validate_equity(equity)
        ts = e["ts"].to_numpy()
        if prev_ts is not None and ts[0] < prev_ts:
            raise ValueError(f"combine_windows: window {k} starts at ts={int(ts[0])}, before the end of "
                             f"window {k - 1} at ts={prev_ts}; windows must be time-ordered")  # fmt: skip
        if prev_end is not None:
            e = e.assign(equity=e["equity"] + (prev_end - float(e["equity"].iloc[0])))
        prev_end, prev_ts = float(e["equity"].iloc[-1]), int(ts[-1])
        eqs.append(e.assign(window=k))
        trs.append(validate_trades(trades).assign(window=k))
        fls.append(validate_fills(fills).assign(window=k))
        rej.update(validate_rejections(rejections))

    def cat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        nonempty = [f for f in frames if len(f)]
        return pd.concat(nonempty, ignore_index=True) if nonempty else frames[0]

    return cat(eqs), cat(trs), cat(fls), dict(sorted(rej.items()))
