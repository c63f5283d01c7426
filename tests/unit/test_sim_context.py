"""The simulated market context (data/sim_context.py) on hand-made trade streams: funding follows the
premium's sign, open interest responds to the net flow, taker volumes are the trades' own sums,
liquidations burst on sharp moves on the moving side, every row is published after its event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orderflow.data.config import ContextSimConfig, SimulatorConfig
from orderflow.data.context_schema import columns
from orderflow.data.sim_context import simulate_context
from orderflow.data.simulator import simulate

NS = 1_000_000_000
T0 = pd.Timestamp("2024-01-01", tz="UTC").value


def trades(seconds: int, price, side, size=0.5, per_s: int = 2, seed: int = 0) -> pd.DataFrame:
    """``per_s`` trades a second at the given price path (callable of seconds) and sides."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds * per_s) / per_s
    ts = T0 + np.round(t * NS).astype(np.int64) + 1_000
    sd = side(t, rng) if callable(side) else np.full(t.size, side)
    sz = np.round(rng.uniform(0.001, 2 * size, t.size), 3)
    return pd.DataFrame({"ts_event": ts, "price": price(t), "size": sz, "side": sd.astype(np.int8)})


def alternating(t, rng):
    return np.where(np.arange(t.size) % 2 == 0, 1, -1)


def test_funding_follows_the_sign_of_the_premium():
    h8 = 8 * 3600
    flat = simulate_context(trades(h8, lambda t: np.full(t.size, 60_000.0), alternating), T0, T0 + h8 * NS)
    up = simulate_context(
        trades(h8, lambda t: 60_000.0 * np.exp(0.1 * t / h8), alternating), T0, T0 + h8 * NS
    )
    down = simulate_context(
        trades(h8, lambda t: 60_000.0 * np.exp(-0.1 * t / h8), alternating), T0, T0 + h8 * NS
    )
    cfg = ContextSimConfig()
    for f in (flat, up, down):
        assert len(f["funding"]) == 1 and f["funding"].ts_event.iloc[0] == T0 + h8 * NS
        assert (f["funding"].ts_recv == f["funding"].ts_event).all()
    # flat price: premium = the index noise only (|mean| << 0.05 %), so the rate is the interest rate
    assert flat["funding"].rate.iloc[0] == pytest.approx(cfg.interest_rate)
    # a 10 % rally over 8 h: the index (EMA, half-life 600 s) lags ~ 866 s x 3.5e-6/s = 0.3 % below
    mp = up["mark_price"].iloc[:-1]  # the seconds up to T - 1 s: the interval's last announcement settles
    prem_up = ((mp.mark_price - mp.index_price) / mp.index_price).mean()
    assert prem_up > 0.002
    assert up["funding"].rate.iloc[0] == pytest.approx(prem_up - cfg.interest_clamp, rel=1e-6)
    assert down["funding"].rate.iloc[0] < -0.002
    # the stream's last announcement for the funding time (at T - 1 s) is the settled rate
    last = up["mark_price"].iloc[-2]
    assert last.next_funding_ns == T0 + h8 * NS
    assert last.funding_rate == pytest.approx(up["funding"].rate.iloc[0], rel=1e-12)


def test_open_interest_responds_to_the_net_flow():
    s = 4 * 3600
    px = lambda t: np.full(t.size, 60_000.0)  # noqa: E731
    both = simulate_context(trades(s, px, alternating), T0, T0 + s * NS)["open_interest_5m"]
    buys = simulate_context(trades(s, px, 1), T0, T0 + s * NS)["open_interest_5m"]
    idle = simulate_context(trades(1, px, 1), T0, T0 + s * NS)["open_interest_5m"]
    oi0 = ContextSimConfig().oi_initial
    # the same volume, one-sided: more positions opened
    assert (buys.open_interest.to_numpy()[1:] > both.open_interest.to_numpy()[1:]).all()
    assert both.open_interest.iloc[-1] > oi0 + 100  # volume alone opens positions
    assert (np.diff(both.open_interest.to_numpy()) > 0).all()
    # without flow the opened positions decay back toward the initial open interest
    opened = idle.open_interest.to_numpy() - oi0
    assert 0 < opened[-1] < 0.7 * opened.max() < 1  # exp(-4 h / oi_tau_s 6 h) ~ 0.51 of the peak
    np.testing.assert_allclose(buys.open_interest_value, np.round(buys.open_interest * 60_000.0, 2))


def test_taker_volumes_are_the_trades_buy_and_sell_sums_per_period():
    s = 2 * 3600
    tr = trades(s, lambda t: 60_000 + np.sin(t / 100), lambda t, r: r.choice([-1, 0, 1], t.size), per_s=5)
    f = simulate_context(tr, T0, T0 + s * NS)
    for p, sec in (("5m", 300), ("1h", 3600)):
        tk = f[f"taker_ratio_{p}"]
        assert len(tk) == s // sec and list(tk.columns)[2:] == list(columns(f"taker_ratio_{p}"))
        start = (tr.ts_event - T0) // (sec * NS) * (sec * NS) + T0
        buy = tr[tr.side > 0].groupby(start[tr.side > 0])["size"].sum()
        sell = tr[tr.side < 0].groupby(start[tr.side < 0])["size"].sum()
        np.testing.assert_allclose(tk.buy_volume, buy.loc[tk.ts_event].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(tk.sell_volume, sell.loc[tk.ts_event].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(tk.buy_sell_ratio, tk.buy_volume / tk.sell_volume, rtol=1e-15)
        # published after the period closed (+ the delay), never before
        assert (tk.ts_recv == tk.ts_event + sec * NS + 10 * NS).all()


def test_liquidations_burst_on_sharp_moves_on_the_moving_side():
    s = 3600

    # calm for 30 min, a 2 % crash over one minute, calm, a 2 % rally over one minute
    def px(t):
        lp = np.where(t < 1800, 0.0, np.where(t < 1860, -0.02 * (t - 1800) / 60, -0.02))
        lp = lp + np.where(t < 2700, 0.0, np.where(t < 2760, 0.02 * (t - 2700) / 60, 0.02))
        return 60_000 * np.exp(lp)

    liq = simulate_context(trades(s, px, alternating), T0, T0 + s * NS, seed=3)["liquidation"]
    sec = (liq.ts_event - T0) // NS
    assert len(liq) > 20 and ((sec >= 1800) & (sec < 1920) | (sec >= 2700) & (sec < 2820)).all()
    assert (liq.side[sec < 2000] == -1).all() and (liq.side[sec >= 2700] == 1).all()
    assert (liq.ts_recv > liq.ts_event).all() and (liq.qty > 0).all()
    assert (liq.price[liq.side == -1] < liq.avg_price[liq.side == -1]).all()  # sell orders below the mark


def test_same_seed_same_series_and_bad_inputs_are_named():
    s = 1800
    tr = trades(s, lambda t: 60_000 + t, alternating)
    a, b = (simulate_context(tr, T0, T0 + s * NS, seed=5) for _ in range(2))
    assert a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)
    with pytest.raises(ValueError, match="lacks columns"):
        simulate_context(tr.drop(columns="side"), T0, T0 + s * NS)
    with pytest.raises(ValueError, match="no trades"):
        simulate_context(tr.iloc[:0], T0, T0 + s * NS)
    with pytest.raises(ValueError, match=r"context\.periods"):
        ContextSimConfig(periods=("7m",))


def test_simulate_writes_the_context_under_the_simulated_symbol(tmp_path):
    from orderflow.data.store import Store

    store = Store(tmp_path / "store")
    res = simulate(SimulatorConfig(hours=0.25, chunk_hours=0.1, seed=2), store=store)
    assert res.context_rows > 900
    tk = store.read("sim", "BTCUSDT", "taker_ratio_5m")
    tr = store.read("sim", "BTCUSDT", "trade")
    assert len(tk) == 3 and len(store.read("sim", "BTCUSDT", "mark_price")) == 900
    first = tr[tr.ts_event < T0 + 300 * NS]
    assert tk.buy_volume.iloc[0] == pytest.approx(first["size"][first.side > 0].sum(), rel=1e-12)
    off = simulate(SimulatorConfig(hours=0.25, chunk_hours=0.1, seed=2, context=None), store=store)
    assert off.context_rows == 0 and store.read("sim", "BTCUSDT", "mark_price").empty
