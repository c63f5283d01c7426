"""The context feature group live: a paper engine with ``features.context`` on subscribes to
``markPrice@1s`` and ``forceOrder`` and polls the REST statistics, funding and fear & greed
(engine.context_feed), against the local exchange on the simulator (whose context series come from its
own flow) and a loopback alternative.me, in lockstep over real sockets. Every row the servers published
reaches the features exactly once, in order, never before its publication time, and the engine's
context features at the end are what the batch engine computes from the rows it was given."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from orderflow.adapters.binance.common.signing import Credentials
from orderflow.config import Config
from orderflow.data import context_schema as cs
from orderflow.data.config import SimulatorConfig
from orderflow.data.simulator import simulate
from orderflow.engine.lockstep import ManualClock, run_lockstep
from orderflow.engine.paper import FeedOptions, PaperEngine
from orderflow.execution.local.config import LocalExchangeConfig
from orderflow.execution.local.fear_greed import FearGreedServer
from orderflow.execution.local.server import LocalExchange
from orderflow.features.config import ContextFeatureConfig
from orderflow.features.context import context_batch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
NS, MS, DAY = cs.NS, 1_000_000, 86_400 * cs.NS
HOURS = 0.2  # 12 simulated minutes: two 5-minute statistics published


def test_the_engine_reads_every_published_context_row_once_and_never_early():
    base = Config()
    cfg = base.model_copy(
        update={"features": base.features.model_copy(update={"context": ContextFeatureConfig()})}
    )
    sim = simulate(SimulatorConfig(symbol="BTCUSDT", seed=3, hours=HOURS, levels=cfg.features.levels))
    src = sim.context
    start = sim.start_ns  # 2024-01-01 00:00 UTC: the lockstep exchange runs on the simulator's clock
    days = start - np.arange(5)[::-1] * DAY  # 2023-12-28 .. 2024-01-01
    fg = cs.frame(
        "fear_greed", days, days + 87_000 * NS, value=[20, 40, 50, 60, 80], classification=[0, 1, 2, 3, 4]
    )
    got: list[tuple[str, dict, int]] = []
    seen: dict = {}

    async def go():
        fgs = await FearGreedServer(fg).start()
        xcfg = LocalExchangeConfig(source="sim", seed=3, sim_hours=HOURS, clock="lockstep", market="usdm",
                                   levels=cfg.features.levels, matching=cfg.backtest.exchange)  # fmt: skip
        clock = ManualClock()
        try:
            async with LocalExchange(xcfg) as ex:
                inst = ex.venue.markets["BTCUSDT"].inst
                keys = Credentials.hmac(xcfg.api_key, xcfg.secret or "")
                engine = PaperEngine(cfg, "usdm", "BTCUSDT", ex.rest_url, ex.ws_url, keys, inst, clock=clock,
                                     snapshot_on_connect=True,
                                     feeds=FeedOptions(fear_greed_url=fgs.url,
                                                       context_poll_s=0.05))  # fmt: skip
                feat = engine.features
                on_context, on_trade, on_book = feat.on_context, feat.on_trade, feat.on_book
                trades: list[tuple[int, float, float, int]] = []

                def ctx(kind, row):
                    got.append((kind, dict(row), clock()))
                    on_context(kind, row)

                def trade(t, px, sz, side):
                    trades.append((t, px, sz, side))
                    on_trade(t, px, sz, side)

                def book(t, *a):
                    out = on_book(t, *a)
                    seen["t"], seen["values"], seen["n_ctx"], seen["trades"] = (
                        t,
                        out.copy(),
                        len(got),
                        len(trades),
                    )
                    return out

                feat.on_context, feat.on_trade, feat.on_book = ctx, trade, book
                await run_lockstep(engine, ex, clock, timeout_s=120.0)
                off = ex.venue.timeline.offset
                now = ex.venue.now_ns
        finally:
            await fgs.stop()
        return engine, off - off % MS, now, trades

    engine, shift, now, trades = asyncio.run(go())
    by_kind: dict[str, list] = {}
    for kind, row, at in got:
        by_kind.setdefault(kind, []).append((row, at))
    # the polled statistics: every row published by the exchange's clock, once, in order, at or after
    # its publication (period end + 10 s) and delivered with that receive time
    for stem in ("open_interest", "taker_ratio", "ls_global", "ls_top_accounts", "ls_top_positions"):
        kind = f"{stem}_5m"
        pub = src[kind][src[kind]["ts_recv"] + shift <= now - int(0.5 * NS)]  # the last poll may lag
        rows = by_kind.get(kind, [])
        assert len(pub) == 2 and [r["ts_event"] for r, _ in rows][: len(pub)] == list(pub["ts_event"] + shift)
        for (r, at), (_, p) in zip(rows, pub.iterrows(), strict=False):
            assert at >= p["ts_recv"] + shift and r["ts_recv"] == at
        col = cs.columns(kind)[0]
        # (as served: ratios to 4 decimals, as Binance prints them)
        assert [r[col] for r, _ in rows[: len(pub)]] == pytest.approx(list(pub[col]), rel=1e-4, abs=5e-5)
    # the mark prices and liquidations streamed (a second may still be in flight at the end)
    marks = src["mark_price"]
    n_marks = int((marks["ts_recv"] + shift <= now).sum())
    assert n_marks - 3 <= len(by_kind["mark_price"]) <= n_marks
    assert len(by_kind.get("liquidation", [])) == int((src["liquidation"]["ts_recv"] + shift <= now).sum())
    # fear & greed: the days published by their day's end + 10 min (the backtest's rule), never today's
    # (the feed asks for the last 3 days: 2023-12-30 is published, 2023-12-31 at 2024-01-01 00:10, in the
    # run, and 2024-01-01 not before 2024-01-02 00:10)
    fgr = by_kind.get("fear_greed", [])
    assert [r["ts_event"] for r, _ in fgr] in (list(days[2:3]), list(days[2:4]))
    assert all(at >= r["ts_event"] + 87_000 * NS and r["ts_recv"] == at for r, at in fgr)
    assert "funding" not in by_kind  # 12 minutes from 00:00: the first simulated funding is at 08:00
    # the engine's context features after its last book event, against the batch engine over the rows
    # delivered before it (at their delivery times) and the trades it had read
    frames: dict[str, pd.DataFrame] = {}
    for kind, row, _ in got[: seen["n_ctx"]]:
        frames.setdefault(kind, []).append(row)
    frames = {k: pd.DataFrame(v) for k, v in frames.items()}
    for kind in engine.context_feed.kinds:  # a series the source has, with no row yet (no liquidation)
        frames.setdefault(kind, pd.DataFrame(columns=["ts_event", "ts_recv", *cs.columns(kind)]))
    tr = np.array(trades[: seen["trades"]], dtype=np.float64)
    batch = context_batch(frames, tr[:, 0].astype(np.int64), tr[:, 1], tr[:, 2], tr[:, 3].astype(np.int64),
                          np.array([seen["t"]], np.int64), cfg.features.context)  # fmt: skip
    live = seen["values"][-batch.shape[1] :]
    names = engine.names[-batch.shape[1] :]
    diff = [(n, a, b) for n, a, b in zip(names, live, batch[0], strict=True)
            if not (np.isclose(a, b, rtol=1e-9, atol=1e-12) or (np.isnan(a) and np.isnan(b)))]  # fmt: skip
    assert not diff, diff
    np.testing.assert_allclose(live, batch[0], rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isfinite(live).sum() >= 8  # mark/premium, OI, taker, long/short, fear & greed...
