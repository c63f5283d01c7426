"""Time helpers. Inside the core, time is integer nanoseconds since the Unix epoch (UTC)."""

from __future__ import annotations

import datetime as dt
import time

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

INTERVAL_NS = {
    "1s": NS_PER_S,
    "1m": 60 * NS_PER_S,
    "3m": 180 * NS_PER_S,
    "5m": 300 * NS_PER_S,
    "15m": 900 * NS_PER_S,
    "30m": 1800 * NS_PER_S,
    "1h": 3600 * NS_PER_S,
    "2h": 7200 * NS_PER_S,
    "4h": 4 * 3600 * NS_PER_S,
    "6h": 6 * 3600 * NS_PER_S,
    "8h": 8 * 3600 * NS_PER_S,
    "12h": 12 * 3600 * NS_PER_S,
    "1d": 86400 * NS_PER_S,
}


def wall_ns() -> int:
    """Wall-clock receive time. Only adapters at the edge call this."""
    return time.time_ns()


def to_ns(value: int | float, unit: str) -> int:
    factor = {"s": NS_PER_S, "ms": NS_PER_MS, "us": NS_PER_US, "ns": 1}[unit]
    return int(value * factor) if isinstance(value, float) else int(value) * factor


def guess_epoch_unit(value: float) -> str:
    """Guess the unit of an epoch timestamp from its magnitude (valid for dates 1973-2286)."""
    v = abs(value)
    if v < 1e11:
        return "s"
    if v < 1e14:
        return "ms"
    if v < 1e17:
        return "us"
    return "ns"


def ns_to_iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / NS_PER_S, tz=dt.UTC).isoformat(timespec="milliseconds")


def ns_to_date(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%d")


def interval_ns(interval: str) -> int:
    try:
        return INTERVAL_NS[interval]
    except KeyError:
        raise ValueError(f"unknown bar interval {interval!r}; known: {', '.join(INTERVAL_NS)}") from None
