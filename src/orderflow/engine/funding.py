"""Funding schedules for the trading core (:mod:`orderflow.engine.core`, "Funding"): which rate is
booked at which funding time, and how a run reports what it booked.

A :class:`FundingSchedule` holds explicit funding times with their rates and marks. The backtester
takes it from the store's kind ``funding`` of the backtested venue and symbol (:func:`from_store`:
the stored ``ts_event`` are the funding times, so a change of Binance's funding interval is followed;
``mark_price`` is the mark when stored, else the core marks at the mid). Funding times outside the
schedule's span fall back to the configured constant rate on its grid. The paper/live engine grows a
schedule from the rates the exchange announces (:meth:`FundingSchedule.with_point`).

:func:`funding_summary` turns the core's counters into the report's figures: ``funding_source`` (e.g.
``"history (4188 rates from store)"`` or ``"constant 0.0001 per 8 h"``), the funding events booked and
their total, per source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orderflow.engine import core as CO

NS = 1_000_000_000
H_NS = 3600 * NS


@dataclass(frozen=True)
class FundingSchedule:
    """Funding times (int64 ns, ascending, unique), their rates and marks (NaN: the mid)."""

    ts: np.ndarray
    rate: np.ndarray
    mark: np.ndarray
    origin: str = "history"  # what the rates are: "history" (stored) or "announced" (by the exchange)

    def __post_init__(self) -> None:
        if not (self.ts.shape == self.rate.shape == self.mark.shape):
            raise ValueError(f"funding schedule: {self.ts.size} times, {self.rate.size} rates, "
                             f"{self.mark.size} marks")  # fmt: skip
        if self.ts.size > 1 and not (np.diff(self.ts) > 0).all():
            raise ValueError("funding schedule: times must be strictly ascending")
        if not np.isfinite(self.rate).all():
            raise ValueError("funding schedule: a rate is not a finite number")

    @classmethod
    def empty(cls, origin: str = "history") -> FundingSchedule:
        return cls(*CO.no_schedule(), origin=origin)

    @classmethod
    def from_frame(cls, rows: pd.DataFrame, origin: str = "history") -> FundingSchedule:
        """From rows of kind ``funding`` (``ts_event``, ``rate``, ``mark_price``); rows without a rate are
        left out, a duplicated time keeps its last row."""
        if rows.empty:
            return cls.empty(origin)
        df = rows[np.isfinite(rows["rate"].to_numpy(np.float64))].sort_values("ts_event", kind="stable")
        df = df.drop_duplicates("ts_event", keep="last")
        mark = df["mark_price"].to_numpy(np.float64) if "mark_price" in df else np.full(len(df), np.nan)
        mark = np.where(mark > 0, mark, np.nan)
        return cls(np.ascontiguousarray(df["ts_event"].to_numpy(np.int64)),
                   np.ascontiguousarray(df["rate"].to_numpy(np.float64)), np.ascontiguousarray(mark),
                   origin)  # fmt: skip

    @property
    def n(self) -> int:
        return int(self.ts.size)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(FT, FR, FM)`` as :class:`~orderflow.engine.core.CoreState` takes them."""
        return self.ts, self.rate, self.mark

    def with_point(self, ts: int, rate: float, mark: float = float("nan")) -> FundingSchedule:
        """This schedule with the rate of funding time ``ts`` set (the exchange's announcement of the
        next funding: a new last point, or an update of the last one). Only the last point may change:
        a time before it is refused, naming both."""
        ts = int(ts)
        if self.n and ts < int(self.ts[-1]):
            raise ValueError(f"funding schedule: time {ts} is before its last time {int(self.ts[-1])}")
        if self.n and ts == int(self.ts[-1]):
            rate_a, mark_a = self.rate.copy(), self.mark.copy()
            rate_a[-1], mark_a[-1] = float(rate), float(mark)
            return FundingSchedule(self.ts, rate_a, mark_a, self.origin)
        return FundingSchedule(np.append(self.ts, np.int64(ts)), np.append(self.rate, float(rate)),
                               np.append(self.mark, float(mark)), self.origin)  # fmt: skip


def from_store(store: Any, venue: str, symbol: str) -> FundingSchedule:
    """The stored funding history of ``venue``/``symbol`` (kind ``funding``), empty if none."""
    rows = store.read(venue, symbol, "funding", columns=["ts_event", "rate", "mark_price"])
    return FundingSchedule.from_frame(rows)


def _utc(ns: int) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M")


def constant_text(rate: float, interval_ns: int) -> str:
    return f"constant {rate:g} per {interval_ns / H_NS:g} h"


def describe(
    schedule: FundingSchedule | None, rate: float, interval_ns: int, start_ns: int, end_ns: int
) -> str:
    """The report's ``funding_source`` for a run over ``[start_ns, end_ns]``: the constant, or the
    schedule with the parts of the run beyond it that were booked at the constant."""
    const = constant_text(rate, interval_ns) if rate != 0.0 else "none (no funding on this venue)"
    if schedule is None or schedule.n == 0:
        return const
    lo, hi = int(schedule.ts[0]), int(schedule.ts[-1])
    inside = int(((schedule.ts >= start_ns) & (schedule.ts <= end_ns)).sum())
    where = " from store" if schedule.origin == "history" else ""
    rates = "1 rate" if schedule.n == 1 else f"{schedule.n} rates"
    span = _utc(lo) if lo == hi else f"{_utc(lo)} .. {_utc(hi)}"
    source = f"{schedule.origin} ({rates}{where}, {span} UTC; "
    source += f"{inside} in the run's span)"
    outside = []
    if start_ns < lo:
        outside.append(f"before {_utc(lo)}")
    if end_ns > hi:
        outside.append(f"after {_utc(hi)}")
    if outside and rate != 0.0:
        source += f"; {const} {' and '.join(outside)} (beyond the stored history)"
    return source


def funding_summary(
    schedule: FundingSchedule | None, D: np.ndarray, Df: np.ndarray, rate: float, interval_ns: int,
    start_ns: int, end_ns: int,
) -> dict[str, Any]:  # fmt: skip
    """The report's funding figures for a run over ``[start_ns, end_ns]`` from the core's counters
    ``D``/``Df`` (paid > 0, quote): ``funding_source`` (:func:`describe`), ``funding_events`` and
    ``funding_total`` (all booked), and per source ``funding_events_history`` /
    ``funding_total_history`` (the schedule's rates) and ``funding_events_constant`` /
    ``funding_total_constant``."""
    n_s, n_c = int(D[CO.D_NFUND_SCHED]), int(D[CO.D_NFUND_CONST])
    a_s, a_c = float(Df[CO.DF_FUND_SCHED]), float(Df[CO.DF_FUND_CONST])
    return {
        "funding_source": describe(schedule, rate, interval_ns, start_ns, end_ns),
        "funding_events": n_s + n_c,
        "funding_total": a_s + a_c,
        "funding_events_history": n_s,
        "funding_total_history": a_s,
        "funding_events_constant": n_c,
        "funding_total_constant": a_c,
    }


def combine_summaries(parts: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """The funding figures of consecutive runs (walk-forward test windows) added up, with ``source``
    (:func:`describe` over their whole span)."""
    keys = ("funding_events", "funding_total", "funding_events_history", "funding_total_history",
            "funding_events_constant", "funding_total_constant")  # fmt: skip
    out: dict[str, Any] = {"funding_source": source}
    for k in keys:
        out[k] = sum(p[k] for p in parts) if parts else 0
    return out
