"""The local exchange's context endpoints and streams (USD-M): :class:`~orderflow.adapters.binance.replay.
context.ContextService` over ``cfg.context_store``'s context kinds of every replayed symbol, shifted with
the replay (so funding, open interest and mark prices stay aligned with the replayed market), on the
venue's clock (exchange time), with the book's mid as the premium index where no mark price is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from orderflow.adapters.binance.replay.context import ContextService, Params, WireError, load_context
from orderflow.execution.local import errors as E
from orderflow.execution.local import params as P
from orderflow.execution.local.config import LocalExchangeConfig

Route = tuple[str, Callable[[P.Params], Any], int | Callable[[P.Params], int]]


class LocalContext:
    """The context service of one local exchange; :meth:`routes` are handlers of the server's shape."""

    def __init__(self, cfg: LocalExchangeConfig, venue: Any) -> None:
        # the source's own context (the simulator's, a stored dataset's), or cfg.context_store's kinds
        # of cfg.venue; a symbol with none still answers premiumIndex from the book
        frames: dict[str, dict] = {sym: dict(d.context) for sym, d in venue.data.items()}
        if cfg.context_store is not None:
            frames = {sym: load_context(cfg.context_store, cfg.venue, sym) for sym in venue.markets}

        def mid(sym: str) -> float:
            m = venue.markets[sym]
            return 0.5 * (float(m.bid_px[0]) + float(m.ask_px[0]))

        self.service = ContextService(frames, lambda: venue.now_ns, venue.timeline.offset, mid)
        # the exchange charges the funding it serves (the configured constant outside its span)
        for sym, kinds in self.service.frames.items():
            f = kinds.get("funding")
            if f is not None and len(f) and sym in venue.markets:
                t, r = f["ts_event"].to_numpy(np.int64), f["rate"].to_numpy(np.float64)
                venue.set_funding_schedule(sym, t, r)

    def due_messages(self, until_ns: int) -> list[tuple[str, dict[str, Any]]]:
        return self.service.due_messages(until_ns)

    def routes(self) -> list[Route]:
        out: list[Route] = []
        for path, fn, weight in self.service.routes():

            def handler(p: P.Params, fn: Any = fn) -> Any:
                try:
                    return fn(Params(p.values))
                except WireError as e:
                    raise E.ApiError(e.status, e.code, e.msg) from None

            if callable(weight):

                def weigh(p: P.Params, w: Callable[[Params], int] = weight) -> int:
                    return w(Params(p.values))

                out.append((path, handler, weigh))
            else:
                out.append((path, handler, weight))
        return out


def context_service(cfg: LocalExchangeConfig, venue: Any) -> LocalContext:
    return LocalContext(cfg, venue)
