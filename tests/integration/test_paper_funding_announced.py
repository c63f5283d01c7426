"""The paper engine books funding at the rate the venue announces: with ``announced_funding`` on USD-M
it subscribes to ``<symbol>@markPrice@1s`` and puts each update's rate ``r`` for the funding at ``T``
into the trading core's funding schedule (the last announcement before T stands). Against the local
exchange on the simulator, whose mark prices and funding come from its own flow (sim_context), in
lockstep over real sockets."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from orderflow.adapters.binance.common.signing import Credentials
from orderflow.config import Config
from orderflow.data.config import SimulatorConfig
from orderflow.data.simulator import simulate
from orderflow.engine.lockstep import ManualClock, run_lockstep
from orderflow.engine.paper import FeedOptions, PaperEngine
from orderflow.execution.local.config import LocalExchangeConfig
from orderflow.execution.local.server import LocalExchange

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
HOURS = 0.05
MS = 1_000_000


@pytest.mark.parametrize("announced", [True, False])
def test_the_markprice_streams_rate_enters_the_funding_schedule(announced):
    cfg = Config()
    sim = simulate(SimulatorConfig(symbol="BTCUSDT", seed=5, hours=HOURS, levels=cfg.features.levels))
    marks = sim.context["mark_price"]

    async def go():
        xcfg = LocalExchangeConfig(source="sim", seed=5, sim_hours=HOURS, clock="lockstep", market="usdm",
                                   levels=cfg.features.levels, matching=cfg.backtest.exchange)  # fmt: skip
        clock = ManualClock()
        async with LocalExchange(xcfg) as ex:
            inst = ex.venue.markets["BTCUSDT"].inst
            keys = Credentials.hmac(xcfg.api_key, xcfg.secret or "")
            engine = PaperEngine(cfg, "usdm", "BTCUSDT", ex.rest_url, ex.ws_url, keys, inst, clock=clock,
                                 snapshot_on_connect=True,
                                 feeds=FeedOptions(announced_funding=announced))  # fmt: skip
            await run_lockstep(engine, ex, clock, timeout_s=120.0)
            off = ex.venue.timeline.offset
        return engine, off - off % MS

    engine, shift = asyncio.run(go())
    sched = engine.session.funding
    if not announced:
        assert engine.stats.mark_prices == 0 and sched.n == 0
        return
    # every update published by the end of the replay was read (the last second may still be in flight)
    assert engine.stats.mark_prices >= len(marks) - 2 and engine.stats.mark_prices > 100
    nxt = marks["next_funding_ns"].to_numpy(np.int64)
    assert len(set(nxt)) == 1  # three minutes: one funding ahead, 08:00 simulated
    assert sched.n == 1 and int(sched.ts[0]) == int(nxt[0]) + shift
    read = marks.iloc[engine.stats.mark_prices - 1]  # the last update the engine read
    assert float(sched.rate[0]) == pytest.approx(float(read["funding_rate"]), abs=1e-12)
    assert sched.origin == "announced"
