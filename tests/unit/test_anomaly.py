"""The anomaly detector: robust z-scores with a MAD floor, warm-up, hysteresis, a baseline the anomaly
does not poison, the metrics taken from real telemetry structs, the config, and its speed."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orderflow.alerts.anomaly import (
    METRICS,
    Anomaly,
    AnomalyConfig,
    AnomalyMonitor,
    MetricConfig,
    _bounds,
    _Series,
)
from orderflow.telemetry import schema as S

NS = 1_000_000_000
MIN = 60 * NS
RUN, SYM = 7, "BTCUSDT"


def cfg(metric: str, **kw) -> AnomalyConfig:
    """Only ``metric`` enabled, with ``kw`` over its defaults."""
    return AnomalyConfig(
        metrics={m: {"enabled": m == metric, **(kw if m == metric else {})} for m in METRICS}
    )


def feed(mon: AnomalyMonitor, values, t0: int = 0, dt: int = NS // 10) -> list[Anomaly]:
    """One FeedHealth per value (the feed_lag metric), ``dt`` apart."""
    out = []
    for i, v in enumerate(values):
        ev = S.FeedHealth(
            run_id=RUN,
            ts_ns=t0 + i * dt,
            symbol=SYM,
            lag_ms=float(v),
            gaps=0,
            resyncs=0,
            reconnects=0,
            watchdog_trips=0,
            synced=True,
        )
        out += mon.observe(ev)
    return out


def book(t: int, bid: float, ask: float, sym: str = SYM, run: int = RUN) -> S.BookTop:
    return S.BookTop(
        run_id=run,
        ts_ns=t,
        symbol=sym,
        update_id=t,
        bids=((bid, 1.0), (bid - 0.1, 2.0)),
        asks=((ask, 1.0), (ask + 0.1, 2.0)),
    )


def fill(t: int, price: float, slippage: float = 0.0, cid: str = "c1", side: str = "BUY") -> S.FillEvent:
    return S.FillEvent(
        run_id=RUN,
        ts_ns=t,
        symbol=SYM,
        client_order_id=cid,
        trade_id=f"{cid}-{t}",
        side=side,
        price=price,
        qty=0.01,
        fee=0.0,
        slippage=slippage,
    )


def position(t: int, qty: float, realized: float) -> S.PositionEvent:
    return S.PositionEvent(
        run_id=RUN,
        ts_ns=t,
        symbol=SYM,
        qty=qty,
        avg_price=100.0 if qty else None,
        realized_pnl=realized,
        unrealized_pnl=0.0,
    )


def stats(mon: AnomalyMonitor, metric: str) -> dict:
    return mon.snapshot()[RUN][SYM][metric]


# -- the detector ---------------------------------------------------------------------------------
def test_a_constant_series_does_not_alarm_on_its_first_change():
    # feed_lag: min_mad 25 ms, z 8: the floor puts the alarm at median + 8 * 1.4826 * 25 = +296.5 ms
    mon = AnomalyMonitor(cfg("feed_lag", confirm=1))
    assert feed(mon, [5.0] * 2000) == []
    assert stats(mon, "feed_lag") == {
        "samples": 600,
        "median": 5.0,
        "mad": 0.0,
        "mad_used": 25.0,
        "active": False,
        "held_out": 0,
        "armed": True,
    }
    assert feed(mon, [5.0 + 290.0], t0=2000 * NS) == []  # a change below the floored threshold
    assert [a.active for a in feed(mon, [5.0 + 300.0], t0=2001 * NS)] == [True]


def test_no_alarm_during_warmup_even_on_a_spike():
    mon = AnomalyMonitor(cfg("feed_lag", warmup=60, confirm=1))
    rng = np.random.default_rng(3)
    noisy = 20.0 + 5.0 * rng.standard_normal(59)
    noisy[10] = 10_000.0  # a 2000-sigma spike at sample 11 of the warm-up
    assert feed(mon, noisy) == []
    assert stats(mon, "feed_lag")["armed"] is False
    # armed at the 60th sample: the next spike opens an incident
    out = feed(mon, [20.0, 10_000.0], t0=100 * NS)
    assert [(a.active, a.value) for a in out] == [(True, 10_000.0)]


def test_a_noisy_series_stays_quiet():
    mon = AnomalyMonitor(cfg("feed_lag", min_mad=0.1))
    rng = np.random.default_rng(11)
    assert feed(mon, 100.0 + 10.0 * rng.standard_normal(20_000)) == []  # 8 sigma never happens in 20k
    s = stats(mon, "feed_lag")
    assert s["median"] == pytest.approx(100.0, abs=1.5)
    assert s["mad"] * 1.4826 == pytest.approx(10.0, rel=0.1)  # the MAD estimates sigma


def test_a_step_opens_one_incident_and_clears_once():
    mon = AnomalyMonitor(cfg("feed_lag", confirm=2, clear=5))
    rng = np.random.default_rng(5)
    base = lambda n: 50.0 + 5.0 * rng.standard_normal(n)  # noqa: E731
    assert feed(mon, base(1000)) == []
    before = stats(mon, "feed_lag")
    out = feed(mon, np.r_[base(1) + 2000.0, base(3), 2000.0 + base(50), base(20)], t0=1000 * NS)
    # the single spike (then normal) does not open: confirm=2; the 50-sample step opens at its 2nd sample
    assert [(a.active, a.ts_ns) for a in out] == [
        (True, 1000 * NS + 5 * NS // 10),
        (False, 1000 * NS + 58 * NS // 10),
    ]
    opened = out[0]
    assert opened.metric == "feed_lag" and opened.unit == "ms" and opened.severity == "warning"
    assert opened.run_id == RUN and opened.symbol == SYM and opened.samples == 600
    assert opened.z == pytest.approx((opened.value - opened.median) / (1.4826 * opened.mad))
    assert opened.mad == max(25.0, opened.mad)  # floored
    # the step's samples were held out: the baseline is what it was
    after = stats(mon, "feed_lag")
    assert after["median"] == pytest.approx(before["median"], abs=1.0)
    assert after["mad"] == pytest.approx(before["mad"], rel=0.15)


def test_confirm_needs_the_samples_and_the_seconds():
    mon = AnomalyMonitor(cfg("feed_lag", confirm=3, confirm_s=1.0, clear=2))
    feed(mon, [10.0] * 600)  # 0.1 s apart
    assert feed(mon, [5000.0] * 5 + [10.0] * 3, t0=1000 * NS) == []  # 5 samples over 0.4 s: a blip
    out = feed(mon, [5000.0] * 12 + [10.0] * 2, t0=2000 * NS)
    # the 11th abnormal sample is 1.0 s after the first: open; the 2nd normal one clears
    assert [(a.active, a.ts_ns) for a in out] == [(True, 2000 * NS + NS), (False, 2000 * NS + 13 * NS // 10)]


def test_without_holding_out_a_long_incident_would_clear_itself():
    """Why the anomaly's samples stay out of the baseline: a step longer than half the window would
    move the median onto it. Held out, it stays open for the whole step (up to the level-shift rule)."""
    mon = AnomalyMonitor(cfg("feed_lag", window=600, clear=5))
    feed(mon, [50.0] * 600)
    out = feed(mon, [1000.0] * 290 + [50.0] * 10, t0=1000 * NS)
    assert [a.active for a in out] == [True, False]
    assert out[1].ts_ns == 1000 * NS + 294 * NS // 10  # cleared 5 samples after the step, not during it


def test_a_lasting_level_shift_rebaselines():
    mon = AnomalyMonitor(cfg("feed_lag", window=100, warmup=50, clear=5))
    feed(mon, [50.0] * 100)
    out = feed(mon, [1000.0] * 200, t0=1000 * NS)
    # opened at once; after more than half the window held out (51 samples) the baseline restarts from
    # the last 100 samples (half of them the new level)... and 5 samples later the incident clears
    assert [a.active for a in out] == [True, False]
    assert stats(mon, "feed_lag")["median"] == 1000.0
    assert feed(mon, [1000.0] * 50, t0=2000 * NS) == []


@pytest.mark.parametrize(
    ("direction", "spikes", "opens"),
    [("high", [+1], 1), ("high", [-1], 0), ("low", [-1], 1), ("low", [+1], 0), ("both", [+1, -1], 2)],
)
def test_direction(direction, spikes, opens):
    mon = AnomalyMonitor(cfg("feed_lag", direction=direction, confirm=1, clear=1))
    feed(mon, [1000.0] * 600)
    out = []
    for i, sgn in enumerate(spikes):
        out += feed(mon, [1000.0 + sgn * 900.0, 1000.0], t0=(1000 + 10 * i) * NS)
    assert sum(a.active for a in out) == opens
    assert sum(not a.active for a in out) == opens


def test_disabled():
    assert feed(AnomalyMonitor(AnomalyConfig(enabled=False)), [1.0] * 100 + [1e9] * 5) == []
    mon = AnomalyMonitor(cfg("spread"))
    assert feed(mon, [1.0] * 100 + [1e9] * 5) == []
    assert mon.snapshot() == {}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 1.0, 1.0, 2.0, 3.5, -4.0]) | st.floats(-1e3, 1e3), min_size=1, max_size=80)
)
def test_the_mad_is_exact_and_its_bounds_hold(values):
    s = _Series(MetricConfig(z=3.0, min_mad=1e-9, warmup=1, window=100_000))
    s.sorted = sorted(values)
    m = s.median()
    assert m == np.median(values)
    mad = s.mad(m)
    assert mad == pytest.approx(float(np.median(np.abs(np.asarray(values) - m))), abs=1e-12)
    n = len(values)
    p = int(np.searchsorted(s.sorted, m, side="left"))
    for k in {n // 2, max(0, n // 2 - 1)}:
        lo, up = _bounds(s.sorted, p, m, k)
        kth = sorted(abs(v - m) for v in values)[k]
        assert lo <= kth + 1e-12 and kth <= up + 1e-12


# -- the metrics, from real structs ---------------------------------------------------------------
def test_spread_and_fill_distance_from_the_book():
    mon = AnomalyMonitor(AnomalyConfig())
    mon.observe(book(1 * NS, 60_000.0, 60_000.2))
    # (60000.2 - 60000) / 60000.1 * 1e4 = 0.0333328 bps
    assert stats(mon, "spread")["median"] == pytest.approx(0.2 / 60_000.1 * 1e4)
    mon.observe(fill(2 * NS, 60_030.1, slippage=0.0004))
    # |60030.1 - 60000.1| / 60000.1 = 5.0 bps; slippage 0.0004 = 4 bps
    assert stats(mon, "fill_distance")["median"] == pytest.approx(30.0 / 60_000.1 * 1e4)
    assert stats(mon, "slippage")["median"] == pytest.approx(4.0)
    mon.observe(book(3 * NS, 60_100.0, 60_100.1))  # the latest book gives the mid
    mon.observe(fill(4 * NS, 60_100.05))
    assert stats(mon, "fill_distance")["median"] == pytest.approx((30.0 / 60_000.1 * 1e4) / 2)  # [5, 0]
    one_sided = S.BookTop(run_id=RUN, ts_ns=5 * NS, symbol=SYM, update_id=5, bids=((1.0, 1.0),), asks=())
    mon.observe(one_sided)
    assert stats(mon, "spread")["samples"] == 2


def test_feed_lag_from_feed_health():
    mon = AnomalyMonitor(AnomalyConfig())
    feed(mon, [12.5, 14.5])
    s = stats(mon, "feed_lag")
    assert (s["samples"], s["median"], s["mad"]) == (2, 13.5, 1.0)


def test_trade_pnl_per_round_trip_and_flip_flops():
    mon = AnomalyMonitor(AnomalyConfig())
    events = [
        position(1 * NS, 0.0, 0.0),
        position(2 * NS, 0.5, 0.0),  # long opens (realized 0)
        position(3 * NS, 0.5, 0.0),  # the periodic state: nothing changes
        position(4 * NS, 0.2, 1.5),  # partly closed
        position(5 * NS, 0.0, 2.0),  # flat: the trip made 2.0
        position(6 * NS, -0.3, 2.0),  # short: a reversal
        position(7 * NS, 0.3, 1.0),  # flipped to long in one fill: the short made -1.0; a reversal
        position(8 * NS, 0.0, 1.25),  # flat: +0.25
        position(9 * NS, 0.4, 1.25),  # long again after a long: no reversal
        position(10 * NS, 1e-15, 1.25),  # dust is flat: 0.0
    ]
    for e in events:
        mon.observe(e)
    s = stats(mon, "trade_pnl")
    assert s["samples"] == 4 and s["median"] == pytest.approx(np.median([2.0, -1.0, 0.25, 0.0]))
    mon.observe(position(MIN + 1, 0.0, 1.25))  # the next minute closes this one: 2 reversals
    s = stats(mon, "flip_flop")
    assert (s["samples"], s["median"]) == (1, 2.0)


def test_orders_and_market_trades_per_minute():
    mon = AnomalyMonitor(AnomalyConfig())
    t = 10 * MIN  # minute 10

    def order(t, cid, state):
        return S.OrderUpdate(
            run_id=RUN,
            ts_ns=t,
            symbol=SYM,
            client_order_id=cid,
            side="BUY",
            order_type="market",
            state=state,
            qty=1.0,
        )

    def trades(t, n):
        return S.TradeAgg(
            run_id=RUN,
            ts_ns=t,
            symbol=SYM,
            start_ns=t - NS // 4,
            count=n,
            buy_qty=1.0,
            sell_qty=1.0,
            vwap=1.0,
            last=1.0,
            high=1.0,
            low=1.0,
        )

    for e in [
        order(t + 1, "a", "pending_new"),
        order(t + 2, "a", "new"),
        fill(t + 3, 1.0, cid="a"),
        fill(t + 4, 1.0, cid="a"),
        fill(t + 5, 1.0, cid="b"),
        order(t + 6, "c", "new"),
        trades(t + 7, 40),
        trades(t + 8, 2),
    ]:
        assert mon.observe(e) == []
    assert "trade_rate" not in mon.snapshot()[RUN][SYM]  # minute 10 is still open
    mon.observe(book(t + MIN + 1, 1.0, 1.01))  # minute 11 begins: minute 10 is sampled
    assert stats(mon, "trade_rate")["median"] == 3.0  # orders a, b, c (a once, whatever its events)
    assert stats(mon, "market_trade_rate")["median"] == 42.0
    mon.observe(book(t + 4 * MIN + 1, 1.0, 1.01))  # minute 14: minutes 11, 12, 13 had nothing
    assert (stats(mon, "trade_rate")["samples"], stats(mon, "trade_rate")["median"]) == (4, 0.0)
    assert stats(mon, "market_trade_rate")["samples"] == 4


def test_runs_and_symbols_are_apart_and_a_stopped_run_clears_its_incidents():
    mon = AnomalyMonitor(cfg("spread", warmup=10, confirm=1, confirm_s=0.0))
    for i in range(20):
        mon.observe(book(i * NS, 100.0, 100.01))
        mon.observe(book(i * NS, 10.0, 10.01, sym="ETHUSDT"))
        mon.observe(book(i * NS, 100.0, 100.02, run=8))
    opened = mon.observe(book(30 * NS, 100.0, 101.0))
    assert [(a.run_id, a.symbol, a.active, a.severity, a.unit) for a in opened] == [
        (RUN, SYM, True, "warning", "bps")
    ]
    assert mon.snapshot()[8][SYM]["spread"]["median"] == pytest.approx(0.02 / 100.01 * 1e4)
    closed = mon.observe(S.RunStopped(run_id=RUN, ts_ns=31 * NS, reason="stop"))
    assert [(a.metric, a.symbol, a.active) for a in closed] == [("spread", SYM, False)]
    assert list(mon.snapshot()) == [8]


# -- the config -----------------------------------------------------------------------------------
def test_defaults_cover_every_metric_and_overrides_merge():
    c = AnomalyConfig()
    assert (
        set(c.metrics)
        == set(METRICS)
        == {
            "spread",
            "feed_lag",
            "slippage",
            "fill_distance",
            "trade_pnl",
            "trade_rate",
            "market_trade_rate",
            "flip_flop",
        }
    )
    assert c.metrics["trade_pnl"].direction == "both" and c.metrics["spread"].direction == "high"
    c2 = AnomalyConfig.model_validate({"metrics": {"spread": {"z": 12, "severity": "critical"}}})
    assert c2.metrics["spread"] == METRICS["spread"].defaults.model_copy(
        update={"z": 12.0, "severity": "critical"}
    )
    assert c2.metrics["feed_lag"] == METRICS["feed_lag"].defaults


def test_an_unknown_metric_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"unknown anomaly metric 'sprad' \(known: spread, ") as e:
        AnomalyConfig.model_validate({"metrics": {"sprad": {"z": 3}, "spread": {"z": 9}}})
    (err,) = e.value.errors()  # type: ignore[attr-defined]
    assert "\n" not in err["msg"] and "sprad" in err["msg"]
    with pytest.raises(ValueError, match="unknown anomaly metrics 'a', 'b'"):
        AnomalyConfig(metrics={"b": {}, "a": {}})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"warmup": 700}, "warmup 700 > window 600"),
        ({"zz": 1}, "Extra inputs are not permitted"),
        ({"severity": "loud"}, "'info', 'warning' or 'critical'"),
        ({"min_mad": 0}, "greater than 0"),
        ({"direction": "up"}, "'high', 'low' or 'both'"),
    ],
)
def test_bad_metric_settings_are_refused(override, message):
    with pytest.raises(ValidationError, match=message):
        AnomalyConfig.model_validate({"metrics": {"feed_lag": override}})


def test_config_is_frozen():
    c = AnomalyConfig()
    with pytest.raises(ValidationError):
        c.enabled = False  # type: ignore[misc]
    with pytest.raises(ValidationError):
        c.metrics["spread"].z = 1.0  # type: ignore[misc]


# -- speed ----------------------------------------------------------------------------------------
def test_observe_is_fast():
    """1e5 events of an engine's mix (two symbols: books, trades, feed health, orders, fills, positions)."""
    rnd = random.Random(1)
    events = []
    pos = 0.0
    for i in range(100_000):
        t = i * NS // 50
        sym = ("BTCUSDT", "ETHUSDT")[i % 2]
        r = rnd.random()
        if r < 0.6:
            b = 60_000.0 + rnd.gauss(0, 5)
            events.append(
                S.BookTop(
                    run_id=1,
                    ts_ns=t,
                    symbol=sym,
                    update_id=i,
                    bids=tuple((b - 0.1 * k, 1.0) for k in range(10)),
                    asks=tuple((b + 0.1 * rnd.choice([1, 1, 1, 2]) + 0.1 * k, 1.0) for k in range(10)),
                )
            )
        elif r < 0.8:
            events.append(
                S.TradeAgg(
                    run_id=1,
                    ts_ns=t,
                    symbol=sym,
                    start_ns=t - NS // 4,
                    count=rnd.randint(1, 9),
                    buy_qty=1.0,
                    sell_qty=1.0,
                    vwap=b,
                    last=b,
                    high=b,
                    low=b,
                )
            )
        elif r < 0.9:
            events.append(
                S.FeedHealth(
                    run_id=1,
                    ts_ns=t,
                    symbol=sym,
                    lag_ms=abs(rnd.gauss(5, 2)),
                    gaps=0,
                    resyncs=0,
                    reconnects=0,
                    watchdog_trips=0,
                    synced=True,
                )
            )
        elif r < 0.95:
            events.append(
                S.FillEvent(
                    run_id=1,
                    ts_ns=t,
                    symbol=sym,
                    client_order_id=f"o{i // 3}",
                    trade_id=str(i),
                    side="BUY",
                    price=b + rnd.gauss(0, 1),
                    qty=0.01,
                    fee=0.0,
                    slippage=abs(rnd.gauss(0, 2e-5)),
                )
            )
        else:
            pos = 0.0 if pos else rnd.choice([-0.01, 0.01])
            events.append(
                S.PositionEvent(
                    run_id=1,
                    ts_ns=t,
                    symbol=sym,
                    qty=pos,
                    avg_price=b,
                    realized_pnl=rnd.gauss(0, 1),
                    unrealized_pnl=0.0,
                )
            )
    mon = AnomalyMonitor(AnomalyConfig())
    t0 = time.perf_counter()
    n_out = sum(len(mon.observe(e)) for e in events)
    dt = time.perf_counter() - t0
    rate = len(events) / dt
    print(f"\nobserve: {len(events):,} events in {dt:.3f} s = {rate:,.0f} events/s ({n_out} transitions)")
    assert dt < 2.0
