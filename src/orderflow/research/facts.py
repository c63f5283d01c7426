"""Stylized facts of stored market data: activity, spread, return distribution, volatility clustering,
trade sizes and OFI price impact. Used to check the market simulator against real recordings.

Conventions:

- 1 s returns are log changes of the last mid in each 1 s bucket, buckets aligned to the first book
  event; a bucket with no book event carries the previous mid (return 0).
- ``ret_1s_kurtosis`` is the plain (Pearson) kurtosis, 3 for a normal distribution;
  ``ret_1s_excess_kurtosis`` is that minus 3.
- ``hill_tail_index`` is the Hill estimator on the largest 10 % of the non-zero |1 s returns|
  (at least 5 of them); lower means heavier tails (Student-t with ν degrees of freedom gives about ν).
- OFI price impact is :func:`orderflow.features.ofi.ofi_price_impact` on 1 s and 10 s buckets.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from orderflow.core.instruments import infer_tick
from orderflow.data.store import Store
from orderflow.features.ofi import mid_price, ofi_price_impact

log = logging.getLogger(__name__)

OFI_LEVELS = 5
NS = 1_000_000_000


def _bucket_last(ts: np.ndarray, values: np.ndarray, bucket_ns: int) -> np.ndarray:
    idx = (ts - ts[0]) // bucket_ns
    last = np.full(int(idx[-1]) + 1, -1, dtype=np.int64)
    last[idx] = np.arange(ts.size)
    np.maximum.accumulate(last, out=last)
    return values[last]


def _acf(x: np.ndarray, lag: int) -> float:
    if x.size <= lag + 2:
        return float("nan")
    a, b = x[:-lag] - x.mean(), x[lag:] - x.mean()
    den = float(np.sum((x - x.mean()) ** 2))
    return float("nan") if den == 0 else float(np.sum(a * b)) / den


def hill_index(x: np.ndarray, frac: float = 0.1, min_k: int = 5) -> float:
    """Hill tail-index estimate on the largest ``frac`` of the positive values of ``x``."""
    v = np.sort(np.asarray(x, dtype=np.float64)[np.asarray(x) > 0])[::-1]
    k = max(min_k, math.ceil(frac * v.size))
    if v.size <= k:
        return float("nan")
    logs = np.log(v[:k]) - np.log(v[k])
    m = float(logs.mean())
    return float("nan") if m <= 0 else 1.0 / m


def return_facts(mid: np.ndarray, ts: np.ndarray, bucket_ns: int = NS) -> dict[str, float]:
    """Distribution and clustering facts of log returns of the last mid per bucket."""
    last = _bucket_last(ts, mid, bucket_ns)
    r = np.diff(np.log(last))
    r = r[np.isfinite(r)]
    out: dict[str, float] = {"ret_1s_n": r.size}
    if r.size < 3 or r.std() == 0:
        out.update(
            ret_1s_std=float("nan"),
            ret_1s_kurtosis=float("nan"),
            ret_1s_excess_kurtosis=float("nan"),
            ret_1s_zero_share=float("nan"),
            abs_ret_acf_1_10=float("nan"),
            hill_tail_index=float("nan"),
        )
        return out
    z = (r - r.mean()) / r.std()
    kurt = float(np.mean(z**4))
    absr = np.abs(r)
    acfs = [_acf(absr, k) for k in range(1, 11)]
    out.update(
        ret_1s_std=float(r.std()),
        ret_1s_kurtosis=kurt,
        ret_1s_excess_kurtosis=kurt - 3.0,
        ret_1s_zero_share=float(np.mean(r == 0)),
        abs_ret_acf_1=acfs[0],
        abs_ret_acf_1_10=float(np.nanmean(acfs)),
        hill_tail_index=hill_index(absr),
    )
    return out


def compute_facts(
    store: Store,
    venue: str,
    symbol: str,
    start_ns: int | None = None,
    end_ns: int | None = None,
    tick: float | None = None,
) -> dict[str, Any]:
    """Stylized facts of the stored ``book`` and ``trade`` data of ``venue``/``symbol`` in
    [start_ns, end_ns). Raises ValueError when there are fewer than two book rows."""
    cols = ["ts_event"] + [
        f"{s}_{w}_{i}" for s in ("bid", "ask") for w in ("px", "sz") for i in range(1, OFI_LEVELS + 1)
    ]
    book = store.read(venue, symbol, "book", start_ns, end_ns, columns=cols)
    if len(book) < 2:
        raise ValueError(f"compute_facts: {venue}/{symbol} has {len(book)} book rows in {store.root}")
    trades = store.read(venue, symbol, "trade", start_ns, end_ns, columns=["ts_event", "size", "side"])
    ts = book["ts_event"].to_numpy(np.int64)

    def arr(side: str, what: str) -> np.ndarray:
        return book[[f"{side}_{what}_{i}" for i in range(1, OFI_LEVELS + 1)]].to_numpy(np.float64)

    bp, bs, ap, as_ = arr("bid", "px"), arr("bid", "sz"), arr("ask", "px"), arr("ask", "sz")
    if tick is None:
        inst = store.instrument(venue, symbol)
        tick = inst.tick_size if inst is not None else infer_tick(np.concatenate([bp[:, 0], ap[:, 0]]))
        if not tick or not math.isfinite(tick):
            raise ValueError(f"compute_facts: cannot infer the tick size of {venue}/{symbol}; pass tick=")
    duration = (int(ts[-1]) - int(ts[0])) / NS
    spread = (ap[:, 0] - bp[:, 0]) / tick
    spread = np.round(spread[np.isfinite(spread)])
    mid = mid_price(bp, ap)
    facts: dict[str, Any] = {
        "venue": venue,
        "symbol": symbol,
        "tick": tick,
        "book_events": len(book),
        "duration_s": duration,
        "book_events_per_s": len(book) / duration if duration > 0 else float("nan"),
        "trades": len(trades),
        "trades_per_s": len(trades) / duration if duration > 0 else float("nan"),
        "spread_1tick_share": float(np.mean(spread == 1)) if spread.size else float("nan"),
        "crossed_share": float(np.mean(spread <= 0)) if spread.size else float("nan"),
    }
    for q in (0.5, 0.9, 0.99):
        facts[f"spread_p{round(q * 100)}_ticks"] = (
            float(np.quantile(spread, q)) if spread.size else float("nan")
        )
    facts.update(return_facts(mid, ts))
    sizes = trades["size"].to_numpy(np.float64) if len(trades) else np.zeros(0)
    facts["trade_size_p50"] = float(np.quantile(sizes, 0.5)) if sizes.size else float("nan")
    facts["trade_size_p99"] = float(np.quantile(sizes, 0.99)) if sizes.size else float("nan")
    for sec in (1, 10):
        fit = ofi_price_impact(ts, bp, bs, ap, as_, sec * NS, tick, levels=OFI_LEVELS)
        facts[f"ofi_{sec}s_n"] = fit.n
        facts[f"ofi_{sec}s_r2_best"] = fit.r2_best
        facts[f"ofi_{sec}s_r2_5level"] = fit.r2_joint
    log.debug("facts %s/%s: %s", venue, symbol, facts)
    return facts


# (label, key, format) rows of the human-readable facts table
FACT_ROWS: list[tuple[str, str, str]] = [
    ("duration (s)", "duration_s", "{:.0f}"),
    ("book events", "book_events", "{:,}"),
    ("book events/s", "book_events_per_s", "{:.1f}"),
    ("trades/s", "trades_per_s", "{:.1f}"),
    ("spread = 1 tick", "spread_1tick_share", "{:.1%}"),
    ("spread p99 (ticks)", "spread_p99_ticks", "{:.1f}"),
    ("1 s return std", "ret_1s_std", "{:.2e}"),
    ("1 s return kurtosis", "ret_1s_kurtosis", "{:.1f}"),
    ("zero 1 s returns", "ret_1s_zero_share", "{:.1%}"),
    ("acf |1 s ret| lags 1-10", "abs_ret_acf_1_10", "{:.3f}"),
    ("Hill tail index", "hill_tail_index", "{:.2f}"),
    ("trade size p50", "trade_size_p50", "{:.4g}"),
    ("trade size p99", "trade_size_p99", "{:.4g}"),
    ("1 s OFI R^2 best level", "ofi_1s_r2_best", "{:.3f}"),
    ("1 s OFI R^2 5 levels", "ofi_1s_r2_5level", "{:.3f}"),
    ("10 s OFI R^2 best level", "ofi_10s_r2_best", "{:.3f}"),
    ("10 s OFI R^2 5 levels", "ofi_10s_r2_5level", "{:.3f}"),
    ("1 s / 10 s buckets", "", ""),
]


def _fmt_fact(facts: dict, key: str, fmt: str) -> str:
    if not key:
        return f"{facts.get('ofi_1s_n', '-')}/{facts.get('ofi_10s_n', '-')}"
    v = facts.get(key)
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return fmt.format(v)


def render_facts(columns: dict[str, dict]) -> str:
    """A text table with one column per source (name -> compute_facts dict)."""
    names = list(columns)
    width = max(12, *(len(n) for n in names))
    lines = [f"{'fact':<26}" + "".join(f" {n:>{width}}" for n in names)]
    for label, key, fmt in FACT_ROWS:
        lines.append(f"{label:<26}" + "".join(f" {_fmt_fact(columns[n], key, fmt):>{width}}" for n in names))
    return "\n".join(lines)
