"""The anomaly detector on real recordings: its false-alarm rate on normal data with the default config,
and injected anomalies caught, each by exactly one incident, within a few samples.

Three recordings are replayed into the telemetry a paper engine would publish while the project's
backtester trades over them (``tests/support/anomaly_feed.py`` says how): Binance USD-M BTCUSDT and
ETHUSDT (6 minutes each) and Binance spot NEXOUSDT (24 hours, an illiquid pair). Every incident opened
on the unmodified recordings counts as a false alarm, even where the market did something unusual.
The per-minute metrics need 30 minutes of warm-up, so only the 24-hour recording exercises them.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

from orderflow.alerts.anomaly import METRICS, AnomalyConfig, AnomalyMonitor
from orderflow.telemetry import schema as S
from support import anomaly_feed as F

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

NS = 1_000_000_000
RUN = 1
RECORDINGS = {
    "btcusdt-usdm": ["hftbacktest_binance_raw/usdm/btcusdt_20240808.gz"],
    "ethusdt-usdm": ["hftbacktest_binance_raw/usdm/ethusdt_20240808.gz"],
    "nexousdt-spot-24h": [
        "long_recordings/spot_nexousdt/nexousdt_20240723.dat.gz",
        "long_recordings/spot_nexousdt/nexousdt_20240724.dat.gz",
    ],
}
# False alarms measured with the default config (opens on the unmodified recording), with a margin:
# per hour on the 24-hour recording; as counts on the 6-minute ones, where one alarm is 10 per hour.
FALSE_ALARMS_PER_HOUR = {"nexousdt-spot-24h": 0.5}  # measured: at most 0.29 (market_trade_rate)
FALSE_ALARMS_6MIN = {"btcusdt-usdm": 1, "ethusdt-usdm": 1}  # measured: 0 and 0


@dataclass
class Run:
    rec: F.Recording
    anomalies: list
    seconds: float


def monitor(events: list) -> tuple[list, float]:
    mon = AnomalyMonitor(AnomalyConfig())
    t = time.perf_counter()
    out = [a for e in events for a in mon.observe(e)]
    return out, time.perf_counter() - t


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory) -> dict[str, Run]:
    out = {}
    for name, files in RECORDINGS.items():
        paths = [shared_data / f for f in files]
        for p in paths:
            if not p.is_file():
                msg = f"recording {p} not found in the shared data"
                if os.environ.get("CI", "").lower() == "true":
                    pytest.fail(msg + " - required when CI=true")
                pytest.skip(msg)
        rec = F.replay(name, paths, tmp_path_factory.mktemp(name) / "store", RUN)
        anomalies, secs = monitor(rec.events)
        out[name] = Run(rec, anomalies, secs)
    return out


def test_the_replayed_telemetry_matches_the_backtest(runs):
    """The feed carries the backtester's fills, and the monitor's round trips (from the position stream)
    are the backtester's: as many, with the same median and MAD of gross PnL."""
    keep_all = {"z": 1e9, "warmup": 1, "window": 100_000}
    for name, r in runs.items():
        ev = r.rec.events
        assert sum(isinstance(e, S.FillEvent) for e in ev) == len(r.rec.fills) > 50, name
        mon = AnomalyMonitor(AnomalyConfig(metrics={"trade_pnl": keep_all}))
        for e in ev:
            mon.observe(e)
        got = mon.snapshot()[RUN][r.rec.symbol]["trade_pnl"]
        pnl = r.rec.trips.gross_pnl.to_numpy()
        assert got["samples"] == len(pnl) > 40, name
        assert got["median"] == pytest.approx(np.median(pnl), abs=1e-9), name
        assert got["mad"] == pytest.approx(np.median(np.abs(pnl - np.median(pnl))), abs=1e-9), name


def test_false_alarm_rate_on_normal_data(runs):
    print()
    print(
        f"{'recording':18s} {'hours':>6s} {'events':>7s} {'ev/s':>8s}  "
        + " ".join(f"{m:>13s}" for m in METRICS)
    )
    for name, r in runs.items():
        opens = Counter(a.metric for a in r.anomalies if a.active)
        clears = Counter(a.metric for a in r.anomalies if not a.active)
        h = r.rec.hours
        print(
            f"{name:18s} {h:6.2f} {len(r.rec.events):7d} {len(r.rec.events) / r.seconds:8.0f}  "
            + " ".join(f"{opens[m]:4d} ({opens[m] / h:5.2f}/h)" for m in METRICS)
        )
        for a in r.anomalies:
            if a.active:
                print(
                    f"    {a.metric}: value {a.value:.4g} {a.unit}, median {a.median:.4g}, mad {a.mad:.3g}, "
                    f"z {a.z:.1f} at +{(a.ts_ns - r.rec.events[0].ts_ns) / NS:.0f} s"
                )
        # every incident that opened cleared (or is the last one, still open at the end)
        for m in METRICS:
            assert clears[m] in (opens[m], opens[m] - 1), (name, m)
        if name in FALSE_ALARMS_PER_HOUR:
            for m in METRICS:
                assert opens[m] / h <= FALSE_ALARMS_PER_HOUR[name], (name, m, opens[m])
        else:
            for m in METRICS:
                assert opens[m] <= FALSE_ALARMS_6MIN[name], (name, m, opens[m])


def _t(rec: F.Recording, frac: float) -> int:
    t0, t1 = rec.events[0].ts_ns, rec.events[-1].ts_ns
    return t0 + int((t1 - t0) * frac)


def _sources(metric: str):
    return {
        "spread": S.BookTop,
        "feed_lag": S.FeedHealth,
        "slippage": S.FillEvent,
        "fill_distance": S.FillEvent,
        "trade_pnl": S.PositionEvent,
    }.get(metric)


def inject(kind: str, rec: F.Recording) -> tuple[str, list, int, str]:
    """``(metric, events, start, what)`` of one injected anomaly, at 80 % of the recording."""
    ev = rec.events
    t0 = _t(rec, 0.8)
    if kind == "spread x10 for 30 s":
        return "spread", F.widen_spread(ev, t0, 30.0, 10.0), t0, kind
    if kind == "feed lag +2 s for 30 s":
        return "feed_lag", F.add_lag(ev, t0, 30.0, 2000.0), t0, kind
    if kind == "a fill far from mid":
        spread = [
            (e.asks[0][0] - e.bids[0][0]) / (e.asks[0][0] + e.bids[0][0]) * 2e4
            for e in ev
            if isinstance(e, S.BookTop) and e.bids and e.asks
        ]
        bps = 50.0 if np.median(spread) < 1.0 else 200.0  # NEXOUSDT fills reach 54 bps from mid normally
        return "fill_distance", F.far_fill(ev, t0, bps, RUN), t0, f"a fill {bps:.0f} bps from mid"
    if kind == "slippage x20":
        slips = np.array([e.slippage for e in ev if isinstance(e, S.FillEvent)])
        ref = float(np.percentile(slips, 95))
        out, f = F.set_slippage(ev, t0, 20.0 * ref)
        return "slippage", out, f.ts_ns, f"a fill slipping 20 x the p95 ({ref * 1e4:.2f} bps)"
    if kind == "flip-flop burst":
        out, t = F.flip_flops(ev, t0, 12, RUN)
        return "flip_flop", out, t, "12 long/short reversals in 30 s"
    if kind == "-5 sigma trade PnL":
        pnl = rec.trips.gross_pnl.to_numpy()
        loss = float(np.median(pnl) - 5 * pnl.std())
        out, t = F.pnl_trip(ev, t0, loss, RUN)
        return "trade_pnl", out, t, f"a round trip of {loss:.2f} (median - 5 std)"
    if kind == "order burst":
        return "trade_rate", F.order_burst(ev, t0, 30, RUN), t0, "30 orders in 50 s"
    if kind == "market trade burst":
        n = 25 * int(np.median(F.trades_per_minute(ev)))
        return (
            "market_trade_rate",
            F.market_burst(ev, t0, n, RUN),
            t0,
            f"{n} market trades at once (25 x the median minute)",
        )
    raise ValueError(kind)


SHORT = ["spread x10 for 30 s", "feed lag +2 s for 30 s", "a fill far from mid", "slippage x20"]
LONG = [*SHORT, "flip-flop burst", "-5 sigma trade PnL", "order burst", "market trade burst"]
CASES = (
    [("btcusdt-usdm", k) for k in SHORT]
    + [("ethusdt-usdm", k) for k in SHORT]
    + [("nexousdt-spot-24h", k) for k in LONG]
)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_injected_anomaly_opens_one_incident(runs, name, kind):
    r = runs[name]
    metric, events, start, what = inject(kind, r.rec)
    got, _ = monitor(events)
    base = [a for a in r.anomalies if a.metric == metric]
    new = [a for a in got if a.metric == metric]
    extra_open = [
        a
        for a in new
        if a.active and a.ts_ns >= start and not any(b.active and b.ts_ns == a.ts_ns for b in base)
    ]
    assert len(extra_open) == 1, (what, extra_open)
    a = extra_open[0]
    # exactly one more incident than on the normal data, and it clears
    assert sum(x.active for x in new) == sum(x.active for x in base) + 1, what
    assert any(not x.active and x.ts_ns > a.ts_ns for x in new), f"{what}: the incident never cleared"
    src = _sources(metric)
    delay = sum(1 for e in events if start <= e.ts_ns <= a.ts_ns and isinstance(e, src)) if src else None
    print(
        f"\n{name}: {what}: {metric} opened after {(a.ts_ns - start) / NS:.2f} s"
        + (f" ({delay} samples)" if delay is not None else "")
        + f", value {a.value:.4g} {a.unit}, median {a.median:.4g}, z {a.z:.1f}"
    )
    cfg = METRICS[metric].defaults
    if delay is not None:
        # confirm samples, or those of the first confirm_s seconds, and one more (fills at the same time)
        confirm_end = start + int(cfg.confirm_s * NS)
        in_confirm_s = sum(1 for e in events if start <= e.ts_ns <= confirm_end and isinstance(e, src))
        assert delay <= max(cfg.confirm, in_confirm_s + 1) + 2, (what, delay)
    else:
        assert (a.ts_ns - start) / NS <= 120, what  # per-minute counts: by the end of the next minute
    # the other metrics open no more incidents than on the normal data (the injection is specific)
    others = Counter(x.metric for x in got if x.active and x.metric != metric)
    before = Counter(x.metric for x in r.anomalies if x.active and x.metric != metric)
    assert others == before, (what, others - before)
