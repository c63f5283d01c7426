"""The stored kinds of market context series (issue 19), one table of truth for their columns.

Every context row has ``ts_event`` (the time the value describes: a funding time, a period's start,
an exchange event time) and ``ts_recv`` (the time it became available: the receive time when recorded,
the publication time when imported or backfilled, never earlier than ``ts_event``). Reads for a
decision at t use :func:`orderflow.data.context.asof`, which sees a row only once ``ts_recv <= t``.

- ``funding`` (``GET /fapi/v1/fundingRate``, imports): rate, mark_price; ts_event = the funding time.
- ``mark_price`` (``<s>@markPrice@1s``, ``GET /fapi/v1/premiumIndex``): mark_price, index_price,
  est_settle_price, funding_rate, next_funding_ns; ts_event = the event time E.
- ``open_interest_<p>`` (``GET /futures/data/openInterestHist``): open_interest, open_interest_value.
- ``ls_global_<p>``, ``ls_top_accounts_<p>``, ``ls_top_positions_<p>`` (``globalLongShortAccountRatio``,
  ``topLongShortAccountRatio``, ``topLongShortPositionRatio``): ratio, long_share, short_share.
- ``taker_ratio_<p>`` (``takerlongshortRatio``): buy_sell_ratio, buy_volume, sell_volume.
- ``liquidation`` (``<s>@forceOrder``): side (+1 buy, -1 sell), price, avg_price, qty, filled_qty; keyed
  by the whole row.
- ``fear_greed`` (alternative.me, imports): value (0-100), classification (0-4); ts_event = the UTC day.

The periodic statistics have ts_event = the period's start. Every kind but ``liquidation`` is keyed
by ts_event.

``<p>`` is one of :data:`PERIODS` (``5m`` .. ``1d``). A periodic statistic describes [start, start +
period) and is published after the period closes: ``ts_recv = start + period + delay``
(:data:`STAT_DELAY_S` by default).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from orderflow.core.events import Liquidation, MarkPrice

NS = 1_000_000_000
PERIODS: dict[str, int] = {
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14_400,
    "6h": 21_600,
    "12h": 43_200,
    "1d": 86_400,
}
STAT_DELAY_S = 10.0  # Binance publishes a closed 5-minute statistic a few seconds after the close
STATS_HISTORY_DAYS = 30  # /futures/data/* serve only the latest 30 days

# kind stem -> value columns (float64 unless listed in _INT_COLUMNS)
PERIODIC: dict[str, tuple[str, ...]] = {
    "open_interest": ("open_interest", "open_interest_value"),
    "ls_global": ("ratio", "long_share", "short_share"),
    "ls_top_accounts": ("ratio", "long_share", "short_share"),
    "ls_top_positions": ("ratio", "long_share", "short_share"),
    "taker_ratio": ("buy_sell_ratio", "buy_volume", "sell_volume"),
}
COLUMNS: dict[str, tuple[str, ...]] = {
    "funding": ("rate", "mark_price"),
    "mark_price": ("mark_price", "index_price", "est_settle_price", "funding_rate", "next_funding_ns"),
    "liquidation": ("side", "price", "avg_price", "qty", "filled_qty"),
    "fear_greed": ("value", "classification"),
}
_INT_COLUMNS = {"next_funding_ns": np.int64, "side": np.int8, "classification": np.int8}
KEYED_BY_EVENT = ("funding", "mark_price", "fear_greed")  # kinds whose key is ts_event


def periodic_kind(stem: str, period: str) -> str:
    """``open_interest`` + ``5m`` -> ``open_interest_5m``; refuses an unknown stem or period by name."""
    if stem not in PERIODIC:
        raise ValueError(f"unknown context statistic {stem!r} (known: {', '.join(PERIODIC)})")
    if period not in PERIODS:
        raise ValueError(f"unknown statistics period {period!r} (known: {', '.join(PERIODS)})")
    return f"{stem}_{period}"


def split_kind(kind: str) -> tuple[str, str | None]:
    """(stem, period) of a context kind: ``ls_global_1h`` -> (``ls_global``, ``1h``); a non-periodic
    kind -> (kind, None)."""
    stem, _, period = kind.rpartition("_")
    if stem in PERIODIC and period in PERIODS:
        return stem, period
    return kind, None


def sparse_kind(kind: str) -> bool:
    """A kind stored in monthly partitions (``date=YYYY-MM``): funding, fear & greed and the periodic
    statistics, a few to a few hundred rows a day, where one file a day would make years of history
    thousands of small files."""
    return kind in ("funding", "fear_greed") or split_kind(kind)[1] is not None


def is_context_kind(kind: str) -> bool:
    return kind in COLUMNS or split_kind(kind)[1] is not None


def columns(kind: str) -> tuple[str, ...]:
    """The value columns of a context kind (ValueError naming an unknown kind)."""
    stem, period = split_kind(kind)
    if period is not None:
        return PERIODIC[stem]
    if kind in COLUMNS:
        return COLUMNS[kind]
    raise ValueError(f"{kind!r} is not a context kind")


def publication_ns(kind: str, ts_event: np.ndarray, delay_s: float = STAT_DELAY_S) -> np.ndarray:
    """When rows of a periodic kind starting at ``ts_event`` became available: the period's end plus
    ``delay_s``."""
    _, period = split_kind(kind)
    if period is None:
        raise ValueError(f"{kind!r} is not a periodic statistic")
    return np.asarray(ts_event, np.int64) + PERIODS[period] * NS + round(delay_s * NS)


def frame(kind: str, ts_event, ts_recv, **values) -> pd.DataFrame:
    """A context frame of ``kind`` in the stored column order and dtypes. Every value column must be
    given (a missing one is refused by name); ``ts_recv < ts_event`` is refused."""
    cols = columns(kind)
    missing = [c for c in cols if c not in values]
    extra = [c for c in values if c not in cols]
    if missing or extra:
        raise ValueError(f"{kind} frame: missing columns {missing}, unknown columns {extra}")
    ev = np.asarray(ts_event, np.int64)
    rv = np.asarray(ts_recv, np.int64)
    if ev.shape != rv.shape:
        raise ValueError(f"{kind} frame: {ev.size} ts_event but {rv.size} ts_recv")
    if (rv < ev).any():
        i = int(np.argmax(rv < ev))
        raise ValueError(
            f"{kind} frame: row {i} becomes available (ts_recv {rv[i]}) before its ts_event {ev[i]}"
        )
    out = {"ts_event": ev, "ts_recv": rv}
    for c in cols:
        out[c] = np.asarray(values[c], _INT_COLUMNS.get(c, np.float64))
        if out[c].shape != ev.shape:
            raise ValueError(f"{kind} frame: column {c} has {out[c].size} values for {ev.size} rows")
    return pd.DataFrame(out)


def event_row(ev: MarkPrice | Liquidation) -> tuple[str, dict[str, Any]]:
    """(kind, row) of a streamed context event: a markPrice update (``mark_price``) or a forceOrder
    (``liquidation``, side +1 buy, -1 sell); a receive time before the event time (a clock behind) is
    raised to it."""
    head = {"ts_event": ev.ts_event, "ts_recv": max(ev.ts_recv, ev.ts_event)}
    if isinstance(ev, MarkPrice):
        return "mark_price", {**head, **{c: getattr(ev, c) for c in COLUMNS["mark_price"]}}
    rest = {c: getattr(ev, c) for c in COLUMNS["liquidation"][1:]}  # after side
    return "liquidation", {**head, "side": int(ev.side), **rest}


def events_frame(kind: str, events: list) -> pd.DataFrame:
    """A frame of ``kind`` (``mark_price`` or ``liquidation``) of streamed events (:func:`event_row`)."""
    rows = [event_row(e)[1] for e in events]
    return frame(kind, [r["ts_event"] for r in rows], [r["ts_recv"] for r in rows],
                 **{c: [r[c] for r in rows] for c in columns(kind)})  # fmt: skip
