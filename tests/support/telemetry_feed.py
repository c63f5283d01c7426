"""A synthetic engine for dashboard tests and benchmarks: publishes a run's telemetry (book, trades,
decisions, orders, fills, equity, risk, feed, model outcomes, resources) at a given rate.

    python tests/support/telemetry_feed.py DIR RUN_ID SECONDS [RATE_PER_S] [N_SYMBOLS] [--stop]

With ``--stop`` it ends with a ``run_stopped`` event; without it, it just stops (as a crash does).
The trading engine's own telemetry is tested with the paper engine; this one only drives the views.
"""

import math
import os
import random
import sys
import time
from pathlib import Path

from orderflow.telemetry import bus as B
from orderflow.telemetry import schema as S

d = Path(sys.argv[1])
run_id = int(sys.argv[2])
secs = float(sys.argv[3])
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 50
syms = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")[: int(sys.argv[5]) if len(sys.argv) > 5 else 1]
pub = B.Publisher(B.FileSink(d, run_id), run_id, interval_s=0.02, heartbeat_s=1.0, mode="paper", symbols=syms)
pub.publish(
    S.RunStarted(
        run_id=run_id, ts_ns=time.time_ns(), mode="paper", venue="local", symbols=syms, pid=os.getpid()
    )
)
rnd = random.Random(run_id)
px = {s: {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "SOLUSDT": 150.0, "BNBUSDT": 600.0}[s] for s in syms}
eq = 10000.0
peak = eq
t0 = time.time()
i = 0
pos = 0.0
oid = 0
while time.time() - t0 < secs:
    now = time.time_ns()
    i += 1
    for s in syms:
        px[s] *= math.exp(rnd.gauss(0, 2e-4))
        p = round(px[s], 1)
        pub.publish(
            S.BookTop(
                run_id=run_id,
                ts_ns=now,
                symbol=s,
                update_id=i,
                bids=tuple((round(p - 0.1 * k, 1), round(rnd.uniform(0.1, 3), 3)) for k in range(10)),
                asks=tuple((round(p + 0.1 * (k + 1), 1), round(rnd.uniform(0.1, 3), 3)) for k in range(10)),
            )
        )
        if i % 5 == 0:
            pub.publish(
                S.TradeAgg(
                    run_id=run_id,
                    ts_ns=now,
                    symbol=s,
                    start_ns=now - 10**8,
                    count=3,
                    buy_qty=0.4,
                    sell_qty=0.3,
                    vwap=p,
                    last=p,
                    high=p,
                    low=p,
                )
            )
        conf = rnd.random()
        gate = "pass" if conf > 0.93 else rnd.choice(["confidence", "ev", "quality", "regime"])
        pub.publish(
            S.Decision(
                run_id=run_id,
                ts_ns=now,
                symbol=s,
                fused=rnd.uniform(-1, 1),
                ofi_score=rnd.uniform(-1, 1),
                ai_score=rnd.uniform(-1, 1),
                confidence=conf,
                quality=rnd.random(),
                ev=rnd.uniform(-5e-4, 2e-3),
                cost=6e-4,
                action="enter_long" if gate == "pass" else "refused",
                gate=gate,
            )
        )
        if gate == "pass" and s == syms[0]:
            oid += 1
            side = "BUY" if pos <= 0 else "SELL"
            cid = f"of-{run_id}-{oid}"
            pub.publish(
                S.OrderUpdate(
                    run_id=run_id,
                    ts_ns=now,
                    symbol=s,
                    client_order_id=cid,
                    side=side,
                    order_type="limit",
                    state="new",
                    qty=0.01,
                    price=p - 0.1,
                )
            )
            pub.publish(
                S.Latency(run_id=run_id, ts_ns=now, what="tick_to_order", symbol=s, us=rnd.uniform(80, 160))
            )
            pub.publish(
                S.FillEvent(
                    run_id=run_id,
                    ts_ns=now,
                    symbol=s,
                    client_order_id=cid,
                    trade_id=str(i),
                    side=side,
                    price=p,
                    qty=0.01,
                    fee=p * 0.01 * 4e-4,
                    liquidity="taker",
                    slippage=rnd.uniform(-1e-4, 3e-4),
                )
            )
            pub.publish(
                S.OrderUpdate(
                    run_id=run_id,
                    ts_ns=now,
                    symbol=s,
                    client_order_id=cid,
                    side=side,
                    order_type="limit",
                    state="filled",
                    qty=0.01,
                    price=p - 0.1,
                    filled_qty=0.01,
                    avg_price=p,
                )
            )
            pos += 0.01 if side == "BUY" else -0.01
            pub.publish(
                S.PositionEvent(
                    run_id=run_id,
                    ts_ns=now,
                    symbol=s,
                    qty=pos,
                    avg_price=p,
                    realized_pnl=0.0,
                    unrealized_pnl=0.0,
                )
            )
            pub.publish(
                S.OrderUpdate(
                    run_id=run_id,
                    ts_ns=now,
                    symbol=s,
                    client_order_id=cid + "r",
                    side="BUY",
                    order_type="limit",
                    state="new",
                    qty=0.02,
                    price=round(p - 0.3, 1),
                )
            )
    if i % 10 == 0:
        eq += rnd.gauss(0.05, 1.0)
        peak = max(peak, eq)
        pub.publish(
            S.EquityPoint(
                run_id=run_id,
                ts_ns=now,
                equity=eq,
                balance=10000,
                unrealized_pnl=eq - 10000,
                exposure=abs(pos) * 60000,
                day_pnl=eq - 10000,
                drawdown=(peak - eq) / peak,
            )
        )
        pub.publish(
            S.RiskState(
                run_id=run_id,
                ts_ns=now,
                rules=tuple(
                    S.RuleState(rule=r, value=v * rnd.uniform(0.2, 1.0), limit=v, refusals=i // 7)
                    for r, v in [
                        ("daily_drawdown", 0.04),
                        ("max_position", 0.05),
                        ("max_capital", 5000),
                        ("var95", 0.02),
                        ("max_trades_24h", 500),
                    ]
                ),
                breaker="ok",
                kill_switch="off",
            )
        )
        for s in syms:
            pub.publish(
                S.FeedHealth(
                    run_id=run_id,
                    ts_ns=now,
                    symbol=s,
                    lag_ms=rnd.uniform(1, 9),
                    gaps=0,
                    resyncs=i // 500,
                    reconnects=0,
                    watchdog_trips=0,
                    synced=True,
                    book_updates=i,
                    trades=i // 5,
                )
            )
        pup = rnd.random() * 0.6
        pdn = rnd.random() * (1 - pup)
        pf = 1 - pup - pdn
        lab = rnd.choices([-1, 0, 1], [pdn + 0.05, pf, pup + 0.05])[0]
        pub.publish(
            S.Outcome(
                run_id=run_id,
                ts_ns=now,
                symbol=syms[0],
                pred_ts_ns=now - 10**9,
                label=lab,
                ret=lab * 1e-4 + rnd.gauss(0, 1e-4),
                p_down=pdn,
                p_flat=pf,
                p_up=pup,
                ev=(pup - pdn) * 1e-3,
            )
        )
        pub.publish(
            S.Resources(
                run_id=run_id,
                ts_ns=now,
                pid=os.getpid(),
                cpu_pct=rnd.uniform(5, 30),
                rss_bytes=int(2.5e8 + rnd.uniform(0, 2e7)),
                net_sent_bytes=i * 100,
                net_recv_bytes=i * 1000,
                threads=5,
            )
        )
    time.sleep(1.0 / rate)
pub.publish(
    S.RunStopped(run_id=run_id, ts_ns=time.time_ns(), reason="minutes elapsed")
) if "--stop" in sys.argv else None
pub.close()
