"""Parity over the network: the paper/live engine trading against the local exchange (WebSocket streams,
signed REST orders, user data stream) in lockstep replay gives the same orders and fills as the
backtester on the same events, on the simulator and on a real USD-M recording."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from orderflow.adapters.binance.common.signing import Credentials
from orderflow.backtest.engine import Market, make_signals, run_backtest
from orderflow.config import Config, load_config
from orderflow.engine import core as CO
from orderflow.engine.lockstep import ManualClock, run_lockstep
from orderflow.engine.paper import FeedOptions, PaperEngine
from orderflow.execution import portfolio as PF
from orderflow.execution.local.config import LocalExchangeConfig
from orderflow.execution.local.server import LocalExchange
from orderflow.features.batch import batch_features

ROOT = Path(__file__).resolve().parents[2]


class OfiRuleModel:
    """A fixed model with the serving interface the engine calls (``predict(rows, state)``): p(up) rises
    with the OFI z-score. Only exactly rounded arithmetic, so one row or a block give the same bits."""

    def __init__(self, feature: str = "ofi_int_z_1s") -> None:
        self.manifest = SimpleNamespace(feature_names=[feature])
        self.source = f"rule on {feature}"
        self.schema_hash = "rule"

    def new_state(self) -> None:
        return None

    def predict(self, rows: np.ndarray, state: object = None) -> np.ndarray:
        z = np.nan_to_num(np.atleast_2d(np.asarray(rows, np.float64))[:, 0], nan=0.0)
        up = 0.5 + 0.5 * z / (1.0 + np.abs(z))
        return np.stack([0.8 * (1.0 - up), np.full_like(up, 0.2), 0.8 * up], axis=1)


def trading_config(base: Config, entry_style: str = "market") -> Config:
    """The configuration under test, with gates low enough that the rule trades often; entries as market
    orders or as passive post-only limits (resting, cancelled by time or cost control)."""
    strategy = base.strategy.model_copy(update={"confidence_gate": 0.55, "ev_cost_mult": 0.0,
                                                "quality_gate": 0.5})  # fmt: skip
    ex = base.backtest.exchange.model_copy(update={"venue": "binance-usdm"})
    bt = base.backtest.model_copy(update={"exchange": ex, "close_at_end": False})
    execution = base.execution.model_copy(update={"entry_style": entry_style, "max_cost_share_of_ev": 2.0})
    return base.model_copy(update={"strategy": strategy, "backtest": bt, "execution": execution})


async def lockstep(cfg: Config, source: str, seed: int = 0, sim_hours: float = 0.25,
                   start_ms: int | None = None, context_store: str | None = None,
                   announced_funding: bool = False, funding=None):  # fmt: skip
    model = OfiRuleModel()
    xcfg = LocalExchangeConfig(
        source=source, seed=seed, sim_hours=sim_hours, clock="lockstep", market="usdm", start_ms=start_ms,
        levels=cfg.features.levels, matching=cfg.backtest.exchange,
        decision_latency_us=cfg.backtest.decision_latency_us, context_store=context_store,
    )  # fmt: skip
    clock = ManualClock()
    async with LocalExchange(xcfg) as ex:
        inst = ex.venue.markets["BTCUSDT"].inst
        engine = PaperEngine(cfg, "usdm", "BTCUSDT", ex.rest_url, ex.ws_url,
                             Credentials.hmac(xcfg.api_key, xcfg.secret or ""), inst, model=model,
                             on_stop="keep", clock=clock, snapshot_on_connect=True,
                             feeds=FeedOptions(announced_funding=announced_funding))  # fmt: skip
        run = await run_lockstep(engine, ex, clock, timeout_s=60.0)  # a cold kernel cache compiles first
        engine.replay_offset = ex.venue.timeline.offset  # type: ignore[attr-defined]
        book, trades = ex.venue.replayed_frames("BTCUSDT", run.start_pos)
        orders = sorted(ex.venue.orders.values(), key=lambda o: o.order_id)
        engine.exchange_funding = (ex.venue.fundings, ex.venue.funding_paid)  # type: ignore[attr-defined]
    # the backtester on the same events: batch features, the same model, the compiled loop
    feats = batch_features(book, trades, cfg.features.model_copy(update={"tick_size": inst.tick_size}))
    probs = model.predict(feats[model.manifest.feature_names].to_numpy(np.float32))
    sig = make_signals(feats, probs, cfg.strategy)
    market = Market.from_frames("binance-usdm", "BTCUSDT", book, trades)
    if callable(funding):  # the schedule in served (shifted) times
        funding = funding(engine.replay_offset)
    bt = run_backtest(market, sig, inst, cfg.backtest, cfg.strategy, cfg.risk, cfg.execution, funding)
    return engine, run, orders, bt


def check_parity(engine: PaperEngine, orders: list, bt) -> None:
    live = engine.session.result()
    assert engine.stats.order_errors == []
    # the orders: as many reached the exchange as the backtest sent, with the core's client ids in order
    assert bt.orders > 10
    assert len(orders) == bt.orders == int(engine.session.D[CO.D_OID])
    assert [int(o.client_id.rsplit("-", 1)[1]) for o in orders] == list(range(1, bt.orders + 1))
    # the fills, one by one: times, sides, maker flags and actions exactly; prices, sizes and fees as
    # printed on the wire (fees carry 8 decimals)
    a, b = live.fills, bt.fills
    assert len(a) == len(b) > 10
    for c in a.columns:
        if a[c].dtype.kind in "iub":
            assert np.array_equal(a[c].to_numpy(), b[c].to_numpy()), c
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, atol=1e-8)
    # what the exchange executed, per side, is what the backtest filled
    for side, name in ((1, "BUY"), (-1, "SELL")):
        done = sum(o.executed for o in orders if o.side == name)
        assert done == pytest.approx(b.loc[b["side"] == side, "qty"].sum(), rel=1e-9, abs=1e-12)
    # the round trips, the equity curve and every gate's rejection count
    pd.testing.assert_frame_equal(live.trades, bt.trades, check_exact=False, rtol=1e-6, atol=1e-6)
    assert np.array_equal(live.equity["ts"].to_numpy(), bt.equity["ts"].to_numpy())
    pd.testing.assert_frame_equal(live.equity, bt.equity, check_exact=False, rtol=1e-9, atol=1e-6)
    assert live.rejections == bt.rejections


@pytest.mark.slow
@pytest.mark.parametrize("entry_style", ["market", "passive"])
def test_engine_over_the_network_matches_the_backtester_on_the_simulator(entry_style):
    cfg = trading_config(Config(), entry_style)
    engine, run, orders, bt = asyncio.run(lockstep(cfg, "sim", seed=21, sim_hours=0.3))
    assert run.events > 10_000 and run.user_messages > 10
    check_parity(engine, orders, bt)
    if entry_style == "passive":
        assert bt.fills["maker"].sum() > 10  # limits rested and were filled as maker
        assert sum(o.status == "CANCELED" for o in orders) > 10  # and cancelled by time or cost


@pytest.mark.slow
@pytest.mark.parametrize("entry_style", ["market", "passive"])
def test_engine_over_the_network_matches_the_backtester_on_a_real_recording(shared_data, entry_style):
    short = load_config(ROOT / "config" / "examples" / "short-recording", environ={})
    short = short.model_copy(update={"features": short.features.model_copy(update={"vol_pct_buckets": 20})})
    cfg = trading_config(short, entry_style)
    rec = shared_data / "hftbacktest_binance_raw" / "usdm" / "btcusdt_20240808.gz"
    engine, run, orders, bt = asyncio.run(lockstep(cfg, str(rec)))
    assert run.events > 10_000
    check_parity(engine, orders, bt)


HOUR_MS = 3_600_000


@pytest.mark.slow
def test_funding_is_booked_alike_by_the_engine_the_backtester_and_the_exchange():
    """Funding every hour at 5 bp, and a run that starts 9 minutes before the hour: the engine and the
    backtester book the same funding (parity holds with funding on), the local exchange charges the
    position held at that moment about the same amount (its mark is the mid when the hour passes), and
    the engine reads that charge back from the user data stream."""
    cfg = trading_config(Config())
    ex = cfg.backtest.exchange.model_copy(update={"funding_rate": 0.0005, "funding_interval_h": 1})
    cfg = cfg.model_copy(update={"backtest": cfg.backtest.model_copy(update={"exchange": ex})})
    start = 472_223 * HOUR_MS - 9 * 60_000  # 2023-11-14 22:51 UTC
    engine, _run, orders, bt = asyncio.run(lockstep(cfg, "sim", seed=21, sim_hours=0.3, start_ms=start))
    check_parity(engine, orders, bt)
    booked = float(engine.session.P[PF.P_FUNDING])
    assert booked != 0.0, "no position was open when the hour passed: choose another start"
    assert booked == pytest.approx(bt.info["portfolio"]["funding"], rel=1e-12)
    fundings, charged = engine.exchange_funding
    assert fundings == 1
    assert charged == pytest.approx(booked, rel=2e-3)  # the same position, marks a few events apart
    # the engine read the exchange's charge back from ACCOUNT_UPDATE (reason FUNDING_FEE)
    assert engine.stats.exchange_fundings == 1
    assert engine.stats.exchange_funding == pytest.approx(charged, rel=1e-9, abs=1e-8)


@pytest.mark.slow
def test_announced_funding_is_booked_alike_by_the_engine_the_backtester_and_the_exchange(tmp_path):
    """The exchange serves a funding history (a rate of 3 bp at 23:00, announced by markPrice@1s every
    second before it) while its configured constant is 5 bp hourly: it charges the served rate, the
    engine books the announced one (announced_funding), and the backtester with the same history as its
    schedule books the same; parity holds."""
    from orderflow.data import context_schema as cs
    from orderflow.data.store import Store
    from orderflow.engine.funding import FundingSchedule
    from support.context_frames import SIM_START_NS, write_frames

    cfg = trading_config(Config())
    ex = cfg.backtest.exchange.model_copy(update={"funding_rate": 0.0005, "funding_interval_h": 1})
    cfg = cfg.model_copy(update={"backtest": cfg.backtest.model_copy(update={"exchange": ex})})
    start = 472_223 * HOUR_MS - 9 * 60_000  # 2023-11-14 22:51 UTC: simulated 00:09 is served as 23:00
    NS = 1_000_000_000
    T = SIM_START_NS + 9 * 60 * NS
    t = SIM_START_NS + np.arange(0, 18 * 60, dtype=np.int64) * NS  # mark prices every second, 18 min
    nxt = np.where(t < T, T, T + 3600 * NS)
    marks = cs.frame("mark_price", t, t + 5_000_000, mark_price=np.full(t.size, 60_000.0),
                     index_price=np.full(t.size, 59_990.0), est_settle_price=np.full(t.size, 60_000.0),
                     funding_rate=np.where(t < T, 0.0003, 0.0001), next_funding_ns=nxt)  # fmt: skip
    fund = cs.frame("funding", [T], [T], rate=[0.0003], mark_price=[np.nan])
    write_frames(Store(tmp_path / "ctx"), "binance-usdm", "BTCUSDT", {"mark_price": marks, "funding": fund})

    def schedule(offset: int) -> FundingSchedule:
        served = fund.assign(ts_event=fund.ts_event + offset - offset % 1_000_000)
        return FundingSchedule.from_frame(served[["ts_event", "rate", "mark_price"]])

    engine, _run, orders, bt = asyncio.run(lockstep(cfg, "sim", seed=21, sim_hours=0.3, start_ms=start,
                                                    context_store=str(tmp_path / "ctx"),
                                                    announced_funding=True, funding=schedule))  # fmt: skip
    check_parity(engine, orders, bt)
    booked = float(engine.session.P[PF.P_FUNDING])
    assert booked != 0.0, "no position was open at 23:00: choose another start"
    assert booked == pytest.approx(bt.info["portfolio"]["funding"], rel=1e-12)
    f = bt.info["funding"]
    assert (f["funding_events_history"], f["funding_events_constant"]) == (1, 0)
    assert engine.stats.mark_prices > 500
    fundings, charged = engine.exchange_funding
    assert fundings == 1
    assert charged == pytest.approx(booked, rel=2e-3)  # at 3 bp, not the configured 5 bp
    assert engine.stats.exchange_funding == pytest.approx(charged, rel=1e-9, abs=1e-8)
