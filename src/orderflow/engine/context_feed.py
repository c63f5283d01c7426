"""The market context the feature engine reads, live (the ``context`` group, ``features.context``).

The backtest's features read stored context rows once their ``ts_recv`` has passed
(:mod:`orderflow.features.context`); live, this module delivers the same kinds to the streaming
feature engine as they become known:

- ``mark_price`` and ``liquidation`` from the ``<symbol>@markPrice@1s`` and ``<symbol>@forceOrder``
  streams (:meth:`ContextFeed.on_event`), at their receive time;
- ``funding`` and the periodic statistics (``open_interest_<p>``, ``taker_ratio_<p>``, the three
  long/short ratios) polled from REST every ``poll_s`` (:meth:`ContextFeed.poll_once`); at start the
  history the group's windows need (``funding_z_window`` settled rates, ``oi_window`` periods);
- ``fear_greed`` polled from alternative.me (when a URL is configured) every ``fear_greed_poll_s``.

A polled row is delivered with ``ts_recv`` = the time it was received, never before its publication
time: live, a statistic reaches the features up to ``poll_s`` after the backtest's ``ts_recv`` (its
period's end + ``STAT_DELAY_S``), never before. A failed poll is logged and retried at the next one:
context features go stale (their values are kept), the engine keeps trading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pandas as pd

from orderflow.adapters.binance.context import STATS, ContextRest, FearGreedClient
from orderflow.core.events import Liquidation, MarkPrice
from orderflow.data import context_schema as cs
from orderflow.data.importers.context import FEAR_GREED_DELAY_S
from orderflow.features.config import ContextFeatureConfig

log = logging.getLogger(__name__)
NS = cs.NS
MS = 1_000_000
FUNDING_SPACING_NS = 8 * 3600 * NS  # the usual interval; a shorter one only returns more rows


def live_kinds(cfg: ContextFeatureConfig, fear_greed: bool = True) -> tuple[str, ...]:
    """The kinds a :class:`ContextFeed` delivers (the feature engine's ``context_kinds``)."""
    out = ["funding", "mark_price", "liquidation", *(cs.periodic_kind(s, cfg.period) for s in STATS)]
    return (*out, "fear_greed") if fear_greed else tuple(out)


class ContextFeed:
    """Feeds ``on_context(kind, row)`` (a :class:`StreamingFeatureEngine`'s) for one USD-M symbol."""

    def __init__(
        self,
        on_context: Callable[[str, dict[str, Any]], None],
        cfg: ContextFeatureConfig,
        symbol: str,
        rest: ContextRest,
        fear_greed: FearGreedClient | None = None,
        poll_s: float = 10.0,
        fear_greed_poll_s: float = 600.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if poll_s <= 0 or fear_greed_poll_s <= 0:
            raise ValueError(f"context feed: poll intervals must be > 0 s, got {poll_s}, {fear_greed_poll_s}")
        self.on_context = on_context
        self.cfg = cfg
        self.symbol = symbol.upper()
        self.rest = rest
        self.fear_greed = fear_greed
        self.poll_s = float(poll_s)
        self.fear_greed_poll_s = float(fear_greed_poll_s)
        self.clock = clock
        self.stems = tuple(STATS)
        self.last: dict[str, int] = {}  # kind -> the last ts_event delivered
        self.delivered: dict[str, int] = {}  # kind -> rows delivered
        self.errors: dict[str, str] = {}  # kind -> the last error (cleared by a good poll)
        self._fg_next = 0

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds this feed delivers (the feature engine's ``context_kinds``)."""
        return live_kinds(self.cfg, self.fear_greed is not None)

    def on_event(self, ev: object) -> bool:
        """Deliver a markPrice or forceOrder event of the symbol; False for any other event."""
        if isinstance(ev, MarkPrice | Liquidation) and ev.symbol == self.symbol:
            self._deliver(*cs.event_row(ev))
            return True
        return False

    def _deliver(self, kind: str, row: dict[str, Any]) -> None:
        self.on_context(kind, row)
        self.delivered[kind] = self.delivered.get(kind, 0) + 1

    def _start_ms(self, kind: str, history_ns: int) -> int:
        last = self.last.get(kind)
        if last is not None:
            return last // MS + 1
        return (self.clock() - history_ns) // MS

    async def _fetch(self) -> list[tuple[str, pd.DataFrame]]:
        got: list[tuple[str, pd.DataFrame]] = []
        c = self.cfg
        period_ns = cs.PERIODS[c.period] * NS
        calls: list[tuple[str, Callable[[], Awaitable[pd.DataFrame]]]] = [
            (
                "funding",
                lambda: self.rest.funding_rates(
                    self.symbol, self._start_ms("funding", (c.funding_z_window + 1) * FUNDING_SPACING_NS)
                ),
            )
        ]
        for stem in self.stems:
            kind = cs.periodic_kind(stem, c.period)
            start = self._start_ms(kind, (c.oi_window + 2) * period_ns)

            def stat(stem: str = stem, start: int = start) -> Awaitable[pd.DataFrame]:
                return self.rest.statistics(stem, self.symbol, c.period, start)

            calls.append((kind, stat))
        now = self.clock()
        if self.fear_greed is not None and now >= self._fg_next:
            self._fg_next = now + int(self.fear_greed_poll_s * NS)
            fg = self.fear_greed
            calls.append(("fear_greed", lambda: fg.history(3, FEAR_GREED_DELAY_S)))
        for kind, call in calls:
            try:
                df = await call()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one kind's failure leaves the others and the engine alone
                msg = f"{type(e).__name__}: {e}"
                if self.errors.get(kind) != msg:
                    log.warning(
                        "context feed %s %s: %s (retried every %g s)", self.symbol, kind, msg, self.poll_s
                    )
                self.errors[kind] = msg
                continue
            self.errors.pop(kind, None)
            got.append((kind, df))
        return got

    async def poll_once(self) -> int:
        """Fetch what is new of every polled kind and deliver it in (ts_recv, ts_event) order; returns
        the number of rows delivered."""
        fetched = await self._fetch()
        now = self.clock()
        rows: list[tuple[int, int, str, dict[str, object]]] = []
        for kind, df in fetched:
            if df.empty:
                continue
            df = df[df["ts_event"] > self.last.get(kind, -1)]
            df = df[df["ts_recv"] <= now]  # not published yet by our own rule: the next poll takes it
            if df.empty:
                continue
            cols = ["ts_event", "ts_recv", *cs.columns(kind)]
            for r in df[cols].to_dict("records"):
                r["ts_recv"] = max(int(r["ts_recv"]), now)  # received now, never before publication
                r["ts_event"] = int(r["ts_event"])
                rows.append((r["ts_recv"], r["ts_event"], kind, r))
            self.last[kind] = int(np.max(df["ts_event"].to_numpy(np.int64)))
        rows.sort(key=lambda x: (x[0], x[1]))
        for _, _, kind, r in rows:
            self._deliver(kind, r)
        return len(rows)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_s)
